"""Crashes lose nothing: with a hundred orders in flight, the worker is killed,
the Temporal server restarts, PostgreSQL restarts. Afterwards every order
reaches its end, its money is exactly right and the stock reconciles.

These tests run a stack of their own (PostgreSQL, a Temporal dev server
persisting to a file, `oms worker` processes), so that they can stop its
parts. `pytest -m "not crash"` leaves them out of a quick local run.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from db.engine import create_engine
from db.migrate import upgrade
from db.seed import seed_database
from models.orders import OrderState, OrderStatus, PlaceOrder
from tests.conftest import CODEC_KEYS
from tests.helpers import add_product, free_port, place_order, start_order
from workers.codec import data_converter
from workers.embedded import embedded_postgres, temporal_dev_server
from workers.reconcile import check_database, check_workflows
from workflows.orders import OrderWorkflow

pytestmark = pytest.mark.crash

ORDERS = 100
DECLINED_EVERY = 10
# Time for every order to finish after the last disruption.
RECOVERY_TIMEOUT = 600.0
QUEUE = "oms-orders"


@dataclass
class Stack:
    """PostgreSQL, Temporal and one worker process, each of which can be
    stopped and started again on the same data."""

    folder: Path
    temporal_port: int = field(default_factory=free_port)
    ui_port: int = field(default_factory=free_port)
    database_url: str = ""
    worker: "subprocess.Popen[bytes] | None" = None
    parts: ExitStack = field(default_factory=ExitStack)
    postgres: ExitStack = field(default_factory=ExitStack)
    temporal: ExitStack = field(default_factory=ExitStack)

    @property
    def temporal_address(self) -> str:
        return f"127.0.0.1:{self.temporal_port}"

    def start_postgres(self) -> None:
        self.database_url = self.postgres.enter_context(
            embedded_postgres(self.folder / "postgres")
        )

    def start_temporal(self) -> None:
        self.temporal.enter_context(
            temporal_dev_server(
                self.folder / "temporal.db",
                port=self.temporal_port,
                ui_port=self.ui_port,
                namespace="default",
                log_file=self.folder / "temporal.log",
            )
        )

    def start_worker(self) -> None:
        env = {
            **os.environ,
            "OMS_DATABASE_URL": self.database_url,
            "OMS_TEMPORAL_ADDRESS": self.temporal_address,
            "OMS_CODEC_KEYS": json.dumps(CODEC_KEYS),
            "OMS_CODEC_KEY_ID": "test-1",
            "OMS_SANDBOX_PICK_SECONDS": "0.2",
            "OMS_SANDBOX_PACK_SECONDS": "0.2",
            "OMS_SANDBOX_TRANSIT_SECONDS": "0.5",
            "OMS_LOG_LEVEL": "WARNING",
        }
        log = (self.folder / "worker.log").open("ab")
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "workers", "worker"], env=env, stderr=log
        )
        log.close()

    def kill_worker(self) -> None:
        assert self.worker is not None
        self.worker.send_signal(signal.SIGKILL)
        self.worker.wait()

    def stop(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.kill_worker()
        self.temporal.close()
        self.postgres.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(tmp_path_factory.mktemp("crash"))
    try:
        stack.start_postgres()
        upgrade(stack.database_url)
        asyncio.run(seed_database(stack.database_url))
        stack.start_temporal()
        stack.start_worker()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
async def stack_engine(stack: Stack) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(stack.database_url)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="module")
async def stack_client(stack: Stack) -> Client:
    return await Client.connect(
        stack.temporal_address, data_converter=data_converter(CODEC_KEYS, "test-1")
    )


async def place_orders(engine: AsyncEngine, client: Client) -> list[PlaceOrder]:
    """A hundred orders started at once; every tenth card is declined."""
    skus = [await add_product(engine, {"BER": 500, "AMS": 500}) for _ in range(3)]
    orders = [
        place_order(
            [(skus[i % 3], 1 + i % 2), (skus[(i + 1) % 3], 1)],
            token="tok_decline" if i % DECLINED_EVERY == 0 else "tok_visa",
        )
        for i in range(ORDERS)
    ]
    await asyncio.gather(*(start_order(client, order, QUEUE) for order in orders))
    return orders


async def until_some_finished(client: Client, orders: list[PlaceOrder]) -> None:
    """Wait on the results until a tenth of the orders ended: the rest are
    still mid-flight."""
    pending = [asyncio.ensure_future(outcome(client, order)) for order in orders]
    finished = asyncio.as_completed(pending, timeout=RECOVERY_TIMEOUT)
    for _ in range(ORDERS // 10):
        await next(finished)
    for waiting in pending:
        waiting.cancel()


async def outcome(client: Client, order: PlaceOrder) -> OrderState:
    """The order's end, waiting through a server that is coming back."""
    handle: WorkflowHandle[Any, OrderState] = client.get_workflow_handle_for(
        OrderWorkflow.run, f"order-{order.order_id}"
    )
    while True:
        try:
            return await handle.result()
        except RPCError:
            await asyncio.sleep(0.5)


async def all_outcomes(client: Client, orders: list[PlaceOrder]) -> list[OrderState]:
    return await asyncio.wait_for(
        asyncio.gather(*(outcome(client, order) for order in orders)),
        RECOVERY_TIMEOUT,
    )


async def assert_nothing_lost(
    engine: AsyncEngine, client: Client, orders: list[PlaceOrder]
) -> None:
    states = await all_outcomes(client, orders)
    declined = {
        order.order_id for i, order in enumerate(orders) if i % DECLINED_EVERY == 0
    }

    for order, state in zip(orders, states, strict=True):
        if order.order_id in declined:
            assert state.status == OrderStatus.FAILED, order.number
            assert state.captured_minor == 0
        else:
            assert state.status == OrderStatus.COMPLETED, order.number
            assert state.captured_minor == order.total_minor
            assert state.refunded_minor == 0
    assert [str(item) for item in await check_database(engine)] == []
    ids = [order.order_id for order in orders]
    assert await check_workflows(engine, client, len(ids), among=ids) == []


async def replace_the_worker(stack: Stack) -> None:
    stack.kill_worker()
    stack.start_worker()


async def restart_temporal(stack: Stack) -> None:
    await asyncio.to_thread(stack.temporal.close)
    await asyncio.to_thread(stack.start_temporal)


async def restart_postgres(stack: Stack) -> None:
    await asyncio.to_thread(stack.postgres.close)
    await asyncio.to_thread(stack.start_postgres)


@pytest.mark.parametrize(
    "disrupt",
    [replace_the_worker, restart_temporal, restart_postgres],
    ids=["worker-killed", "temporal-restarted", "postgres-restarted"],
)
async def test_orders_in_flight_survive(
    disrupt: Callable[[Stack], Awaitable[None]],
    stack: Stack,
    stack_engine: AsyncEngine,
    stack_client: Client,
) -> None:
    orders = await place_orders(stack_engine, stack_client)
    await until_some_finished(stack_client, orders)

    await disrupt(stack)

    await assert_nothing_lost(stack_engine, stack_client, orders)
