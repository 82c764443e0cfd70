"""What the portal's services need to write an email: a composer and the sender address.

The domain decides when, to whom and with which facts; the face composes the words from
templates/emails/ (Jinja stays out of the domain) through this small protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class ComposedEmail:
    subject: str
    text: str
    html: str = ""


class Composer(Protocol):
    def __call__(self, template: str, context: dict[str, Any], language: str) -> ComposedEmail:
        """Render templates/emails/<template>.{subject.txt,txt,html} in `language`."""
        ...


@dataclass(frozen=True)
class PortalMail:
    compose: Composer
    mail_from: str
    base_url: str
