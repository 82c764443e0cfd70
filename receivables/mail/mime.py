"""The exact bytes of one email, written directly (no `email.message` object).

Building an `EmailMessage` and flattening it cost about 2 ms a message, as much as the SMTP
exchange itself; writing the MIME here costs a tenth of that. Everything is ASCII with
CRLF line ends, so the bytes hashed are the bytes the server receives (no SMTPUTF8 or
8BITMIME needed): headers in RFC 2047 encoded words where they are not ASCII, text parts
in quoted-printable (C-coded `binascii`), attachments in base64, boundaries starting with
`=_`, which neither encoding can produce.
"""

from __future__ import annotations

import binascii
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, formataddr, parseaddr
from functools import lru_cache

CRLF = "\r\n"
_LIMIT = 78
_CONTENT_TYPE = re.compile(r"[a-z0-9][a-z0-9.+-]*/[a-z0-9][a-z0-9.+-]*")


@dataclass(frozen=True)
class Part:
    """A file attached to the message."""

    filename: str
    """Already safe: ASCII letters, digits, `._-`."""
    content_type: str
    content: bytes


def _fold(line: str) -> str:
    """An ASCII header line folded at spaces to lines of 78 characters where it can be."""
    if len(line) <= _LIMIT:
        return line
    lines: list[str] = []
    current = ""
    for n, word in enumerate(line.split(" ")):
        if n > 1 and len(current) + 1 + len(word) > _LIMIT:  # never right after "Name:"
            lines.append(current)
            current = " " + word
        else:
            current = f"{current} {word}" if current else word
    lines.append(current)
    return CRLF.join(lines)


def _needs_encoding(value: str) -> bool:
    return not value.isascii() or "=?" in value or any(len(w) > 900 for w in value.split(" "))


def _encoded_words(value: str) -> str:
    """RFC 2047 encoded words (UTF-8, base64) of at most 45 bytes each, never splitting a
    character, separated by spaces (where the line may be folded; readers drop them)."""
    data = value.encode("utf-8")
    words = []
    start = 0
    while start < len(data):
        end = min(start + 45, len(data))
        while end < len(data) and (data[end] & 0xC0) == 0x80:  # inside a character
            end -= 1
        words.append(f"=?utf-8?b?{binascii.b2a_base64(data[start:end], newline=False).decode()}?=")
        start = end
    return " ".join(words)


def header(name: str, value: str) -> str:
    """One header line (with its CRLF); a value that is not plain ASCII in encoded words."""
    return _fold(f"{name}: {_encoded_words(value) if _needs_encoding(value) else value}") + CRLF


@lru_cache(maxsize=1024)
def address(line: str) -> str:
    """`Name <addr>` with the name in encoded words when it is not ASCII (`formataddr`, as
    the outbox stores recipients, has done it already)."""
    if line.isascii():
        return line
    name, addr = parseaddr(line)
    if not addr:
        return _encoded_words(line) if _needs_encoding(line) else line
    if name and _needs_encoding(name):
        return f"{_encoded_words(name)} <{addr}>"
    return formataddr((name, addr))


def _addresses(name: str, lines: Sequence[str]) -> str:
    return _fold(f"{name}: " + ", ".join(address(line) for line in lines)) + CRLF


def _quoted_printable(text: str) -> bytes:
    data = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    return binascii.b2a_qp(data, istext=True).replace(b"\n", b"\r\n")


def _text(subtype: str, text: str) -> bytes:
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"{CRLF}'
        f"Content-Transfer-Encoding: quoted-printable{CRLF}{CRLF}"
    ).encode() + _quoted_printable(text)


def _file(part: Part) -> bytes:
    content_type = part.content_type.lower()
    if not _CONTENT_TYPE.fullmatch(content_type):
        content_type = "application/octet-stream"
    body = binascii.b2a_base64(part.content, newline=False)
    lines = b"\r\n".join(body[i : i + 76] for i in range(0, len(body), 76))
    return (
        f"Content-Type: {content_type}{CRLF}"
        f'Content-Disposition: attachment; filename="{part.filename}"{CRLF}'
        f"Content-Transfer-Encoding: base64{CRLF}{CRLF}"
    ).encode() + lines


def _multipart(subtype: str, parts: list[bytes]) -> bytes:
    boundary = "=_rl" + secrets.token_hex(12)
    head = f'Content-Type: multipart/{subtype}; boundary="{boundary}"{CRLF}{CRLF}'.encode()
    delimiter = f"{CRLF}--{boundary}{CRLF}".encode()
    return (
        head
        + f"--{boundary}{CRLF}".encode()
        + delimiter.join(parts)
        + f"{CRLF}--{boundary}--{CRLF}".encode()
    )


def message_bytes(
    *,
    message_id: str,
    date: datetime,
    mail_from: str,
    to: Sequence[str],
    reply_to: str,
    subject: str,
    in_reply_to: str,
    references: str,
    text: str,
    html: str,
    attachments: Sequence[Part] = (),
) -> bytes:
    """The message as transmitted: ASCII, CRLF line ends, ending with CRLF."""
    head = [
        header("Date", format_datetime(date, usegmt=True)),
        _addresses("From", [mail_from]),
        _addresses("To", to),
    ]
    if reply_to:
        head.append(_addresses("Reply-To", [reply_to]))
    head += [header("Subject", subject), header("Message-ID", message_id)]
    if in_reply_to:
        head += [header("In-Reply-To", in_reply_to), header("References", references)]
    head += ["Auto-Submitted: auto-generated" + CRLF, "MIME-Version: 1.0" + CRLF]
    body = _text("plain", text)
    if html:
        body = _multipart("alternative", [body, _text("html", html)])
    if attachments:
        body = _multipart("mixed", [body, *(_file(a) for a in attachments)])
    raw = "".join(head).encode("ascii") + body
    return raw if raw.endswith(b"\r\n") else raw + b"\r\n"
