"""The application's services, handed to every face's handlers by Litestar's DI.

`create_app` registers `services(...)` as the app-level dependencies; a handler (or a
router's own dependency) asks for one by naming a parameter after it:

    async def page(settings: SettingsDep, gateway: GatewayDep) -> ...

Nothing is looked up in `app.state`. A test swaps the Stripe gateway for a fake by giving
`create_app(..., gateway=fake)`. The values are the app's own objects, not copies, so their
validation is skipped (a fake gateway need not be a StripeGateway).
"""

from __future__ import annotations

from typing import Any, TypeAlias

from litestar.di import NamedDependency, Provide
from litestar.params import SkipValidation
from piccolo.engine.base import Engine

from receivables.payments.gateway import StripeGateway
from receivables.settings import Settings

SettingsDep: TypeAlias = NamedDependency[SkipValidation[Settings]]
GatewayDep: TypeAlias = NamedDependency[SkipValidation[StripeGateway]]
EngineDep: TypeAlias = NamedDependency[SkipValidation[Engine]]


def _value(value: Any) -> Provide:
    def provide() -> Any:
        return value

    return Provide(provide, use_cache=True, sync_to_thread=False)


def services(settings: Settings, gateway: StripeGateway, engine: Engine) -> dict[str, Provide]:
    """The app-level dependency map: `settings`, `gateway` (Stripe) and `engine` (database)."""
    return {"settings": _value(settings), "gateway": _value(gateway), "engine": _value(engine)}
