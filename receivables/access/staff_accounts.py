"""Staff accounts as an admin manages them: list, role changes, deactivation, password resets.

Creation is `receivables.access.staff.create_user` (shared with `relance createuser`).
An admin cannot lock themselves out: they cannot demote or deactivate their own account,
and the last active admin stays an admin.
"""

from __future__ import annotations

from receivables.access.staff import MIN_PASSWORD, hash_password
from receivables.access.tables import Role, StaffUser
from receivables.db import atomic
from receivables.errors import Conflict, InvalidInput, NotFound


async def list_staff() -> list[StaffUser]:
    return (
        await StaffUser.objects()
        .order_by(StaffUser.active, ascending=False)
        .order_by(StaffUser.name)
    )


async def active_collectors() -> list[dict]:
    """Who a customer can be assigned to: active collectors and admins."""
    return (
        await StaffUser.select(StaffUser.id, StaffUser.name, StaffUser.role)
        .where(
            (StaffUser.active == True)  # noqa: E712
            & StaffUser.role.is_in([Role.collector.value, Role.admin.value])
        )
        .order_by(StaffUser.name)
    )


async def _get(user_id: int) -> StaffUser:
    user = await StaffUser.objects().get(StaffUser.id == user_id)
    if user is None:
        raise NotFound(f"staff user {user_id}")
    return user


async def _other_active_admins(user_id: int) -> int:
    return await StaffUser.count().where(
        (StaffUser.role == Role.admin.value)
        & (StaffUser.active == True)  # noqa: E712
        & (StaffUser.id != user_id)
    )


async def set_role(user_id: int, role: str, *, by: StaffUser) -> StaffUser:
    if role not in {r.value for r in Role}:
        raise InvalidInput.one("role", f"one of {', '.join(r.value for r in Role)}")
    async with atomic():
        user = await _get(user_id)
        if user.id == by.id and role != user.role:
            raise Conflict("you cannot change your own role; ask another admin")
        if user.role == Role.admin.value and role != Role.admin.value:
            if not await _other_active_admins(user.id):
                raise Conflict("the last active admin stays an admin")
        await StaffUser.update({StaffUser.role: role}).where(StaffUser.id == user_id)
        user.role = role
    return user


async def set_active(user_id: int, active: bool, *, by: StaffUser) -> StaffUser:
    async with atomic():
        user = await _get(user_id)
        if user.id == by.id and not active:
            raise Conflict("you cannot deactivate your own account")
        if not active and user.role == Role.admin.value and not await _other_active_admins(user.id):
            raise Conflict("the last active admin cannot be deactivated")
        await StaffUser.update({StaffUser.active: active}).where(StaffUser.id == user_id)
        user.active = active
    return user


async def reset_password(user_id: int, password: str) -> None:
    """A new password; the user's open sessions end (they carry the old hash's fingerprint)."""
    if len(password) < MIN_PASSWORD:
        raise InvalidInput.one("password", f"at least {MIN_PASSWORD} characters")
    await _get(user_id)
    await StaffUser.update({StaffUser.password_hash: hash_password(password)}).where(
        StaffUser.id == user_id
    )


async def set_language(user_id: int, language: str) -> StaffUser:
    """The language of a user's back-office pages and notifications (English or French)."""
    from receivables.i18n import LANGUAGES

    if language not in LANGUAGES:
        raise InvalidInput.one("language", f"one of {', '.join(LANGUAGES)}")
    user = await _get(user_id)
    await StaffUser.update({StaffUser.language: language}).where(StaffUser.id == user_id)
    user.language = language
    return user
