"""Readiness follows the dependencies: a load balancer stops sending traffic
to an API whose database or Temporal is down, and resumes once they answer."""

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from api.app import create_app
from api.deps import Services
from db.engine import create_engine
from tests.conftest import http_client
from workers.settings import Settings

NOWHERE = "127.0.0.1:1"


@pytest.fixture
async def dead_database() -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"postgresql://oms@{NOWHERE}/oms")
    yield engine
    await engine.dispose()


@pytest.fixture
async def dead_temporal() -> Client:
    return await Client.connect(NOWHERE, lazy=True)


async def readiness(
    settings: Settings, engine: AsyncEngine, temporal: Client
) -> tuple[int, dict[str, str], dict[str, object]]:
    app = create_app(settings, Services(engine, temporal, settings))
    async with http_client(app, None) as http:
        answer = await http.get("/readyz")
    return answer.status_code, dict(answer.headers), answer.json()


async def test_ready_while_both_answer(
    settings: Settings, engine: AsyncEngine, client: Client
) -> None:
    status, _, body = await readiness(settings, engine, client)

    assert status == 200
    assert body["checks"] == {"database": "ok", "temporal": "ok"}


async def test_not_ready_while_the_database_is_down(
    settings: Settings, dead_database: AsyncEngine, client: Client
) -> None:
    status, headers, body = await readiness(settings, dead_database, client)

    assert status == 503
    assert headers["content-type"] == "application/problem+json"
    assert headers["retry-after"] == "5"
    assert str(body["detail"]).startswith("database: unavailable")
    assert "temporal" not in str(body["detail"])


async def test_not_ready_while_temporal_is_down(
    settings: Settings, engine: AsyncEngine, dead_temporal: Client
) -> None:
    status, _, body = await readiness(settings, engine, dead_temporal)

    assert status == 503
    assert str(body["detail"]).startswith("temporal: unavailable")
