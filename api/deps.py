"""Dependencies shared by the routes, as `Annotated` aliases."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio.client import Client

from workers.settings import Settings


@dataclass(frozen=True)
class Services:
    """What the API talks to (the database, Temporal) and how it is set up."""

    engine: AsyncEngine
    temporal: Client
    settings: Settings

    @property
    def task_queue(self) -> str:
        return self.settings.temporal_task_queue


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_connection(services: ServicesDep) -> AsyncIterator[AsyncConnection]:
    async with services.engine.connect() as conn:
        yield conn


ConnectionDep = Annotated[AsyncConnection, Depends(get_connection)]
