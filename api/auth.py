"""Bearer API keys: the key names the company every call acts for."""

from __future__ import annotations

from dataclasses import dataclass

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers import BaseRouteHandler

from receivables.access.api_keys import resolve_key
from receivables.access.tables import ApiKey
from receivables.history import Actor, ActorKind
from receivables.ledger.tables import Company

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="relance"'}


async def requires_api_key(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    header = connection.headers.get("authorization", "")
    scheme, _sep, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise NotAuthorizedException(
            "send your API key as 'Authorization: Bearer rk_...'", headers=_CHALLENGE
        )
    key = await resolve_key(value.strip())
    if key is None:
        raise NotAuthorizedException("unknown or revoked API key", headers=_CHALLENGE)
    connection.state.api_key = key


def api_key_of(connection: ASGIConnection) -> ApiKey:
    return connection.state.api_key


def api_actor(key: ApiKey) -> Actor:
    return Actor(ActorKind.api, f"api key {key.prefix}… ({key.name})", key.id)


@dataclass(frozen=True)
class Caller:
    """Who is calling: the key, its company (the only one it may touch) and the history actor."""

    key: ApiKey
    company_id: int
    company_code: str
    actor: Actor


async def provide_caller(request: Request) -> Caller:
    """Dependency `caller` of every API handler (the guard has resolved the key already)."""
    key = api_key_of(request)
    company = await Company.select(Company.code).where(Company.id == key.company).first()
    if company is None:  # the key row cascades with its company; only a race gets here
        raise NotAuthorizedException("this API key's company no longer exists", headers=_CHALLENGE)
    return Caller(
        key=key, company_id=key.company, company_code=company["code"], actor=api_actor(key)
    )
