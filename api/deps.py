"""Dependencies shared by the routes, as `Annotated` aliases."""

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio.client import Client

from activities.carriers import Carrier, DeliveryPricing, sandbox_carriers
from workers.settings import Settings


@dataclass(frozen=True)
class Services:
    """What the API talks to (the database, Temporal) and how it is set up."""

    engine: AsyncEngine
    temporal: Client
    settings: Settings
    # The carriers the workers book with; the built-in sandbox ones by default.
    carriers: Sequence[Carrier] = ()

    @property
    def task_queue(self) -> str:
        return self.settings.temporal_task_queue

    @cached_property
    def delivery_pricing(self) -> DeliveryPricing:
        """The carriers delivery is quoted with (the first the default) and
        the shop's delivery rules."""
        return DeliveryPricing(
            carriers=self.carriers
            or sandbox_carriers(self.settings.sandbox_transit_seconds),
            rules=self.settings.delivery_rules,
        )


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_connection(services: ServicesDep) -> AsyncIterator[AsyncConnection]:
    async with services.engine.connect() as conn:
        yield conn


ConnectionDep = Annotated[AsyncConnection, Depends(get_connection)]
