"""Bearer API keys: the key names the company every call acts for."""

from __future__ import annotations

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers import BaseRouteHandler

from receivables.access.api_keys import resolve_key
from receivables.access.tables import ApiKey
from receivables.history import Actor, ActorKind

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
