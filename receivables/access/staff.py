"""Staff users: creation and password checks (argon2)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email

from receivables.access.tables import Role, StaffUser
from receivables.errors import FieldProblem, InvalidInput

_hasher = PasswordHasher()
# Checked against when the email is unknown, so both paths cost the same time.
_DUMMY_HASH = _hasher.hash("not a real password")
MIN_PASSWORD = 10


def hash_password(password: str) -> str:
    return _hasher.hash(password)


async def create_user(
    email: str, name: str, role: str, password: str, phone: str = ""
) -> StaffUser:
    problems: list[FieldProblem] = []
    try:
        email = validate_email(email, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        problems.append(FieldProblem("email", str(exc)))
    if not name.strip():
        problems.append(FieldProblem("name", "required"))
    if role not in {r.value for r in Role}:
        problems.append(FieldProblem("role", f"one of {', '.join(r.value for r in Role)}"))
    if len(password) < MIN_PASSWORD:
        problems.append(FieldProblem("password", f"at least {MIN_PASSWORD} characters"))
    if not problems and await StaffUser.exists().where(StaffUser.email == email):
        problems.append(FieldProblem("email", f"{email} already has an account"))
    if problems:
        raise InvalidInput(problems)
    user = StaffUser(
        email=email,
        name=name.strip(),
        role=role,
        phone=phone,
        password_hash=hash_password(password),
    )
    await user.save()
    return user


async def authenticate(email: str, password: str) -> StaffUser | None:
    """The active user with that email and password, or None (same cost either way)."""
    user = await StaffUser.objects().get(
        (StaffUser.email == email.strip().lower()) & (StaffUser.active == True)  # noqa: E712
    )
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    return user
