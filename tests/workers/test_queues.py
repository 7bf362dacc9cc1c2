"""Task queues per domain: where each step runs, and `oms worker --queues`
processes that share the work and drain it on SIGTERM."""

import asyncio
import json
import os
import re
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from db.inventory import StockLevel
from models.orders import OrderStatus
from models.shipping import ShipmentStatus
from tests.conftest import CODEC_KEYS, FIRST, MakeProduct, own_queues
from tests.helpers import (
    RESULT_TIMEOUT,
    eventually,
    finished,
    free_port,
    place_order,
    shipment_handle,
    start_order,
)
from tests.workers.deployment import dashboard_metrics
from workers.queues import Domain, parse_domains
from workers.settings import Settings
from workers.worker import (
    WORKFLOWS,
    WorkerGroup,
    activities,
    activities_by_domain,
    build_workers,
)
from workflows.steps import LOCAL


def test_queue_lists_parse_and_name_what_is_unknown() -> None:
    assert parse_domains(" payments, Orders ") == {Domain.PAYMENTS, Domain.ORDERS}
    with pytest.raises(ValueError, match="unknown queue billing"):
        parse_domains("orders,billing")
    with pytest.raises(ValueError, match="none given"):
        parse_domains(",")


async def history(handle: WorkflowHandle[Any, Any]) -> list[HistoryEvent]:
    return [event async for event in handle.fetch_history_events()]


def scheduled_queues(events: list[HistoryEvent]) -> dict[str, str]:
    """{activity name: the task queue it was scheduled on}."""
    return {
        event.activity_task_scheduled_event_attributes.activity_type.name: (
            event.activity_task_scheduled_event_attributes.task_queue.name
        )
        for event in events
        if event.HasField("activity_task_scheduled_event_attributes")
    }


def local_steps(events: list[HistoryEvent]) -> set[str]:
    """The activities that ran as local activities, by their markers."""
    names = set()
    for event in events:
        marker = event.marker_recorded_event_attributes
        if event.HasField("marker_recorded_event_attributes") and (
            marker.marker_name == "core_local_activity"
        ):
            names.add(
                json.loads(marker.details["data"].payloads[0].data)["activity_type"]
            )
    return names


def domain_of(engine: AsyncEngine, settings: Settings) -> dict[str, Domain]:
    grouped = activities_by_domain(engine, settings)
    return {f.__name__: domain for domain, fs in grouped.items() for f in fs}


async def test_each_step_runs_on_its_domains_task_queue(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 5})
    order = place_order([(sku, 1)])

    handle = await start_order(client, order, settings.temporal_task_queue)
    state = await finished(handle)

    assert state.status == OrderStatus.COMPLETED
    events = await history(handle)
    events += await history(shipment_handle(client, order, state))
    queues = scheduled_queues(events)
    domains = domain_of(engine, settings)
    assert {domains[name] for name in queues} == {
        Domain.INVENTORY,
        Domain.PAYMENTS,
        Domain.SHIPPING,
        Domain.NOTIFICATIONS,
    }
    for name, queue in queues.items():
        assert queue == settings.task_queue(domains[name]), name
    assert len(set(queues.values())) == 4
    # The read-model writes ran inside the workflows' own tasks.
    assert set(queues).isdisjoint(LOCAL)
    assert local_steps(events) >= {"record_order", "record_shipment_event"}


class WorkerProcess:
    """`oms worker --queues ...` in a process of its own; its log is kept."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.log: list[str] = []
        self._lines: asyncio.Queue[str] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.log.append(line)
            self._lines.put_nowait(line)

    async def wait_for_line(self, marker: str) -> None:
        async def watch() -> None:
            while marker not in await self._lines.get():
                pass

        try:
            await asyncio.wait_for(watch(), RESULT_TIMEOUT)
        except TimeoutError:
            tail = "\n".join(self.log[-30:])
            raise AssertionError(
                f"no {marker!r} in the worker's log:\n{tail}"
            ) from None

    async def stop(self) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), RESULT_TIMEOUT)
        await self._reader
        return code

    def tail(self) -> str:
        return "\n".join(self.log[-40:])


StartWorker = Callable[..., Any]


@pytest.fixture
async def worker_processes(
    settings: Settings, client: Client
) -> AsyncIterator[tuple[dict[str, str], StartWorker]]:
    """Queue names of this test's own, and a way to start worker processes
    on them against this session's PostgreSQL and Temporal."""
    queues = own_queues(f"oms-split-{uuid.uuid4().hex[:8]}")
    env = {
        **os.environ,
        "OMS_DATABASE_URL": settings.database_url,
        "OMS_TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "OMS_CODEC_KEYS": json.dumps(CODEC_KEYS),
        "OMS_CODEC_KEY_ID": settings.codec_key_id,
        "OMS_SANDBOX_PICK_SECONDS": "0.05",
        "OMS_SANDBOX_PACK_SECONDS": "0.05",
        "OMS_SANDBOX_TRANSIT_SECONDS": "0.1",
        "OMS_LOG_LEVEL": "INFO",
        **{f"OMS_{name.upper()}": queue for name, queue in queues.items()},
    }
    started: list[WorkerProcess] = []

    async def start(domains: str, **extra_env: str) -> WorkerProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "workers",
            "worker",
            "--queues",
            domains,
            env={**env, **extra_env},
            stderr=asyncio.subprocess.PIPE,
        )
        worker = WorkerProcess(process)
        started.append(worker)
        await worker.wait_for_line("worker polling task queues")
        return worker

    yield queues, start
    for worker in started:
        if worker.process.returncode is None:
            worker.process.kill()
            await worker.process.wait()


def identities(events: list[HistoryEvent]) -> dict[str, set[str]]:
    """{"workflow": who ran its workflow tasks, activity name: who ran it}."""
    seen: dict[str, set[str]] = {}
    names = {
        event.event_id: event.activity_task_scheduled_event_attributes.activity_type
        for event in events
        if event.HasField("activity_task_scheduled_event_attributes")
    }
    for event in events:
        if event.HasField("activity_task_started_event_attributes"):
            started = event.activity_task_started_event_attributes
            name = names[started.scheduled_event_id].name
            seen.setdefault(name, set()).add(started.identity)
        if event.HasField("workflow_task_completed_event_attributes"):
            identity = event.workflow_task_completed_event_attributes.identity
            seen.setdefault("workflow", set()).add(identity)
    return seen


async def test_two_worker_processes_on_split_queues_complete_orders_together(
    client: Client,
    make_product: MakeProduct,
    worker_processes: tuple[dict[str, str], StartWorker],
) -> None:
    queues, start = worker_processes
    sku = await make_product({FIRST: 20})
    metrics = {side: f"127.0.0.1:{free_port()}" for side in ("orders", "money")}
    orders_side = await start(
        "orders,inventory",
        OMS_WORKER_METRICS_ADDRESS=metrics["orders"],
        OMS_ORDERS_GAUGE_SECONDS="0.2",
    )
    money_side = await start(
        "payments,shipping,returns,notifications",
        OMS_WORKER_METRICS_ADDRESS=metrics["money"],
    )
    orders = [place_order([(sku, 1)]) for _ in range(8)]
    declined = place_order([(sku, 1)], token="tok_decline")

    handles = [
        await start_order(client, order, queues["temporal_task_queue"])
        for order in [*orders, declined]
    ]
    *states, failed = await asyncio.gather(*(finished(h) for h in handles))

    assert {state.status for state in states} == {OrderStatus.COMPLETED}
    assert all(s.shipments[0].status == ShipmentStatus.DELIVERED for s in states)
    assert failed.status == OrderStatus.FAILED
    ran = identities(await history(handles[0]))
    orders_pid = f"{orders_side.process.pid}@"
    money_pid = f"{money_side.process.pid}@"
    assert all(who.startswith(orders_pid) for who in ran["workflow"])
    assert all(who.startswith(orders_pid) for who in ran["reserve_stock"])
    assert all(who.startswith(money_pid) for who in ran["authorize_payment"])
    assert all(who.startswith(money_pid) for who in ran["capture_payment"])
    # What the compose file's Grafana dashboard charts, the workers serve.
    async with httpx.AsyncClient() as http:
        served = [
            (await http.get(f"http://{address}/metrics")).text
            for address in metrics.values()
        ]
    names = {
        line.split("{")[0].split()[0]
        for text in served
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert dashboard_metrics() <= names
    assert f'task_queue="{queues["payments_task_queue"]}"' in served[1]
    # The worker of the orders queue counts orders by status; the other not.
    await until_served(metrics["orders"], r'oms_orders\{[^}]*status="completed"')
    assert "oms_orders" not in served[1]
    for side in (orders_side, money_side):
        assert await side.stop() == 0, side.tail()


async def until_served(address: str, pattern: str, timeout: float = 10) -> None:
    """Scrape the metrics at `address` until a line matches `pattern`."""
    async with httpx.AsyncClient() as http:

        async def served() -> bool:
            text = (await http.get(f"http://{address}/metrics")).text
            return re.search(pattern, text) is not None

        await eventually(served, timeout, every=0.1)


async def test_sigterm_lets_the_step_in_hand_finish_before_the_worker_exits(
    client: Client,
    settings: Settings,
    engine: AsyncEngine,
    make_product: MakeProduct,
    worker_processes: tuple[dict[str, str], StartWorker],
) -> None:
    queues, start = worker_processes
    own = settings.model_copy(update=queues)
    sku = await make_product({FIRST: 5})
    inventory = await start("inventory", OMS_WORKER_SHUTDOWN_SECONDS="60")
    others = build_workers(
        client, engine, own, domains=set(Domain) - {Domain.INVENTORY}
    )
    order = place_order([(sku, 1)])

    async with others, engine.connect() as locker:
        # Hold the stock row, so the reservation blocks inside the worker.
        lock = await locker.begin()
        await locker.execute(
            select(StockLevel).where(StockLevel.sku == sku).with_for_update()
        )
        handle = await start_order(client, order, queues["temporal_task_queue"])
        await until_blocked_on_a_lock(engine)
        inventory.process.send_signal(signal.SIGTERM)
        await inventory.wait_for_line("worker stopping")
        still_running = inventory.process.returncode is None
        await lock.commit()
        code = await inventory.stop()
        # The rest of the order's inventory steps need a worker again.
        async with build_workers(client, engine, own, domains={Domain.INVENTORY}):
            state = await finished(handle)

    assert still_running and code == 0, inventory.tail()
    assert state.status == OrderStatus.COMPLETED
    events = await history(handle)
    attempts = [
        event.activity_task_started_event_attributes.attempt
        for event in events
        if event.HasField("activity_task_started_event_attributes")
        and scheduled_name(events, event) == "reserve_stock"
    ]
    assert attempts == [1]
    assert inventory.process.pid is not None
    assert any(
        who.startswith(f"{inventory.process.pid}@")
        for who in identities(events)["reserve_stock"]
    )


def scheduled_name(events: list[HistoryEvent], started: HistoryEvent) -> str:
    scheduled_id = started.activity_task_started_event_attributes.scheduled_event_id
    scheduled = next(event for event in events if event.event_id == scheduled_id)
    return scheduled.activity_task_scheduled_event_attributes.activity_type.name


async def until_blocked_on_a_lock(engine: AsyncEngine) -> None:
    """Wait until some session waits for a row lock on stock_levels."""
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND query ILIKE '%stock_levels%'"
    )

    async def poll() -> None:
        while True:
            async with engine.connect() as conn:
                if (await conn.execute(waiting)).scalar_one():
                    return
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), RESULT_TIMEOUT)


async def test_steps_queued_before_the_split_still_run_after_it(
    client: Client,
    settings: Settings,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    own = settings.model_copy(update=own_queues(f"oms-legacy-{uuid.uuid4().hex[:8]}"))
    orders_queue = own.temporal_task_queue
    sku = await make_product({FIRST: 5})
    order = place_order([(sku, 1)])
    # A worker of the version before task queues per domain: everything on
    # one queue, no routing; it cannot reserve, so the step waits there.
    everything = activities(engine, own)
    before = Worker(
        client,
        task_queue=orders_queue,
        workflows=WORKFLOWS,
        activities=[f for f in everything if f.__name__ != "reserve_stock"],
    )

    async with before:
        handle = await start_order(client, order, orders_queue)
        await until_scheduled(handle, "reserve_stock")
    async with build_workers(client, engine, own):
        state = await finished(handle)

    assert state.status == OrderStatus.COMPLETED
    queues = scheduled_queues(await history(handle))
    assert queues["reserve_stock"] == orders_queue
    assert queues["capture_payment"] == own.payments_task_queue


async def until_scheduled(handle: WorkflowHandle[Any, Any], activity: str) -> None:
    async def watch() -> None:
        async for event in handle.fetch_history_events(wait_new_event=True):
            scheduled = event.activity_task_scheduled_event_attributes
            if scheduled.activity_type.name == activity:
                return

    await asyncio.wait_for(watch(), RESULT_TIMEOUT)
