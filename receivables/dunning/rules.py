"""The company's dunning rules: the minimum worth chasing, the run's hour and days, its time
zone (the company's 'today'), and the days a formal notice gives to pay.

Read by the run and the scheduler; set by admins on the Penalties & rules page, every
change in the history.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from receivables import history
from receivables.clock import valid_timezone
from receivables.db import atomic
from receivables.errors import FieldProblem, InvalidInput, NotFound
from receivables.history import Actor
from receivables.ledger.tables import Company
from receivables.money import Money, MoneyError, NotTypedAmount, parse_typed_minor


@dataclass(frozen=True)
class RulesInput:
    """The form as typed: every field is text until `check_rules` accepts it."""

    min_amount: str = ""
    timezone: str = ""
    hour: str = ""
    business_days: bool = True
    notice_days: str = ""


@dataclass(frozen=True)
class Rules:
    min_minor: int
    timezone: str
    hour: int
    business_days: bool
    notice_days: int


def _whole(value: str, field: str, low: int, high: int, problems: list[FieldProblem]) -> int:
    value = value.strip()
    if not re.fullmatch(r"\d{1,4}", value) or not low <= int(value) <= high:
        problems.append(FieldProblem(field, f"a whole number from {low} to {high}"))
        return low
    return int(value)


def check_rules(form: RulesInput, currency: str) -> Rules:
    """The rules if every field is sensible; InvalidInput naming each bad field.

    The minimum is read strictly: digits and at most one '.' with the currency's decimals
    ("1,000" is ambiguous and refused rather than guessed)."""
    problems: list[FieldProblem] = []
    raw = form.min_amount.strip()
    min_minor = 0
    bad = FieldProblem("min_amount", f"an amount in {currency} like 10 or 10.50 (no separators)")
    try:
        typed = parse_typed_minor(raw, currency)
    except NotTypedAmount:
        typed = None
    except MoneyError as exc:
        bad = FieldProblem("min_amount", str(exc))
        typed = None
    if typed is None:
        problems.append(bad)
    else:
        min_minor = typed
    timezone = form.timezone.strip()
    if not timezone or not valid_timezone(timezone):
        problems.append(FieldProblem("timezone", "an IANA time zone such as Europe/Paris"))
    hour = _whole(form.hour, "hour", 0, 23, problems)
    notice = _whole(form.notice_days, "notice_days", 1, 90, problems)
    if problems:
        raise InvalidInput(problems)
    return Rules(min_minor, timezone, hour, form.business_days, notice)


def rules_of(company: Company) -> RulesInput:
    """The company's rules as the form shows them."""
    return RulesInput(
        min_amount=str(
            Money.from_minor(int(company.dunning_min_minor or 0), company.currency).amount
        ),
        timezone=company.timezone,
        hour=str(company.dunning_hour),
        business_days=bool(company.dunning_business_days),
        notice_days=str(company.formal_notice_days),
    )


async def set_rules(company_id: int, form: RulesInput, actor: Actor) -> Company:
    company = await Company.objects().get(Company.id == company_id)
    if company is None:
        raise NotFound(f"company {company_id}")
    rules = check_rules(form, company.currency)
    before = rules_of(company)
    async with atomic():
        await Company.update(
            {
                Company.dunning_min_minor: rules.min_minor,
                Company.timezone: rules.timezone,
                Company.dunning_hour: rules.hour,
                Company.dunning_business_days: rules.business_days,
                Company.formal_notice_days: rules.notice_days,
            }
        ).where(Company.id == company_id)
        await history.record(
            company_id=company_id,
            actor=actor,
            kind="dunning.rules_set",
            details={
                "before": before.__dict__,
                "after": {
                    "min_amount": str(Money.from_minor(rules.min_minor, company.currency).amount),
                    "timezone": rules.timezone,
                    "hour": rules.hour,
                    "business_days": rules.business_days,
                    "notice_days": rules.notice_days,
                },
            },
        )
    updated = await Company.objects().get(Company.id == company_id)
    assert updated is not None
    return updated
