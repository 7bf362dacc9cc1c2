"""`oms bench`: orders per second against the Temporal server's ceiling.

It starts a stack of its own (`oms dev` on embedded defaults in a fresh data
folder, with the sandbox warehouse and carriers confirming at once and no
return window), or uses a running one (`--url` and `--key`). Then, on the
same Temporal server:

1. the reference: a bare workflow with four no-op activities, run as fast as
   it completes, which is what the server can do with the least work;
2. the orders: created over HTTP (a mix of SKUs, channels, card and cash on
   delivery, some declined cards, some cancelled at once), each followed to
   its end through its workflow's result.

It prints a table with both ratios and writes the figures as JSON. Only
127.0.0.1 is contacted unless `--url` says otherwise, and it stops by itself.
"""

import asyncio
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from pydantic import SecretStr
from sqlalchemy import insert, text
from temporalio.client import Client
from temporalio.worker import Worker

from activities.reference import reference_step
from api.access import create_key
from db.catalog import Product, ProductPrice
from db.engine import create_engine
from db.inventory import StockLevel
from models.orders import workflow_id_for
from models.rules import Role
from workers.embedded import port_is_free, running_dev_database, stop_process
from workers.settings import Settings
from workers.temporal import connect
from workflows.reference import ReferenceWorkflow

logger = logging.getLogger(__name__)

# SKUs of the demo catalogue held in warehouses that confirm by themselves.
SKUS = ["TSHIRT-BLK-M", "TSHIRT-WHT-L", "MUG-CERAMIC", "NOTEBOOK-A5", "CHARGER-65W"]
CHANNELS = ["web", "marketplace", "callcentre"]
STOCK_TOP_UP = 1_000_000


@dataclass
class Latencies:
    """Seconds, summarised in milliseconds."""

    samples: list[float] = field(default_factory=list)

    def ms(self, quantile: float) -> float:
        if not self.samples:
            return 0.0
        ordered = sorted(self.samples)
        index = min(len(ordered) - 1, round(quantile * (len(ordered) - 1)))
        return round(ordered[index] * 1000, 1)

    def summary(self) -> dict[str, float]:
        return {"p50_ms": self.ms(0.5), "p90_ms": self.ms(0.9), "p99_ms": self.ms(0.99)}


@dataclass
class Run:
    name: str
    started: int = 0
    finished: int = 0
    errors: int = 0
    seconds: float = 0.0
    start: Latencies = field(default_factory=Latencies)
    lifecycle: Latencies = field(default_factory=Latencies)
    outcomes: dict[str, int] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return round(self.finished / self.seconds, 2) if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "completed": self.finished,
            "errors": self.errors,
            "seconds": round(self.seconds, 1),
            "per_second": self.per_second,
            "start_latency": self.start.summary(),
            "lifecycle_latency": self.lifecycle.summary(),
            "outcomes": self.outcomes,
        }


class Progress:
    """One line on stderr, redrawn: a bar, counts and the rate so far."""

    def __init__(self, run: Run, total: int) -> None:
        self.run, self.total, self.began = run, total, time.monotonic()

    def draw(self, final: bool = False) -> None:
        done = self.run.finished + self.run.errors
        width = 30
        filled = width * done // max(self.total, 1)
        rate = self.run.finished / max(time.monotonic() - self.began, 1e-9)
        sys.stderr.write(
            f"\r{self.run.name:<10} [{'#' * filled}{'.' * (width - filled)}] "
            f"{done}/{self.total} {rate:6.2f}/s errors {self.run.errors}"
            + ("\n" if final else "")
        )
        sys.stderr.flush()


async def _race(
    run: Run,
    total: int,
    concurrency: int,
    one: Callable[[int], Awaitable[None]],
    rate: float | None = None,
) -> None:
    """Run `one` for 0..total-1, `concurrency` at a time (and no more than
    `rate` starts per second, if given), drawing progress."""
    progress = Progress(run, total)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(total):
        queue.put_nowait(index)
    began = time.monotonic()

    async def drive() -> None:
        while not queue.empty():
            index = queue.get_nowait()
            if rate:
                await asyncio.sleep(max(0.0, began + index / rate - time.monotonic()))
            try:
                await one(index)
            except Exception as error:  # a failed call is a figure, not a crash
                run.errors += 1
                logger.debug("%s %s failed: %s", run.name, index, error)

    async def redraw() -> None:
        while True:
            progress.draw()
            await asyncio.sleep(0.25)

    drawing = asyncio.create_task(redraw())
    await asyncio.gather(*(drive() for _ in range(concurrency)))
    run.seconds = time.monotonic() - began
    drawing.cancel()
    progress.draw(final=True)


async def run_reference(client: Client, total: int, concurrency: int) -> Run:
    """Bare workflows with four no-op activities, as fast as they complete."""
    queue = f"oms-bench-reference-{uuid.uuid4().hex[:8]}"
    run = Run("reference")

    async def one(index: int) -> None:
        began = time.monotonic()
        # By name: mypy 2.4, given the typed `ReferenceWorkflow.run` here,
        # solves every other `get_workflow_handle_for` in the project wrongly.
        handle = await client.start_workflow(
            "ReferenceWorkflow",
            id=f"bench-reference-{queue}-{index}",
            task_queue=queue,
        )
        run.start.samples.append(time.monotonic() - began)
        await handle.result()
        run.lifecycle.samples.append(time.monotonic() - began)
        run.finished += 1

    async with Worker(
        client,
        task_queue=queue,
        workflows=[ReferenceWorkflow],
        activities=[reference_step],
    ):
        await _race(run, total, concurrency, one)
    return run


def order_body(
    rng: random.Random,
    index: int,
    skus: list[str] = SKUS,
    channels: list[str] = CHANNELS,
) -> tuple[dict[str, Any], str]:
    """A mixed order, and what the bench does with it: pay, decline or cancel."""
    roll = rng.random()
    plan = "decline" if roll < 0.05 else "cancel" if roll < 0.10 else "ship"
    cash = plan == "ship" and rng.random() < 0.15
    lines = [
        {"sku": sku, "quantity": rng.randint(1, 2)}
        for sku in rng.sample(skus, rng.randint(1, min(3, len(skus))))
    ]
    payment = (
        {"method": "cod"}
        if cash
        else {
            "method": "card",
            "token": "tok_decline" if plan == "decline" else "tok_visa",
        }
    )
    return {
        "channel": rng.choice(channels),
        "external_id": f"BENCH-{uuid.uuid4().hex[:12]}-{index}",
        "customer": {"email": f"bench{index}@example.com", "name": "Bench Customer"},
        "shipping_address": {
            "country": "DE",
            "city": "Berlin",
            "postal_code": "10115",
            "line1": "Invalidenstr. 1",
        },
        "lines": lines,
        "currency": "EUR",
        "payment": payment,
    }, plan


async def run_orders(
    http: httpx.AsyncClient,
    client: Client,
    total: int,
    concurrency: int,
    seed: int,
    rate: float | None = None,
    *,
    skus: list[str] = SKUS,
    channels: list[str] = CHANNELS,
) -> Run:
    """Orders over HTTP, each followed to the end of its workflow."""
    run = Run("orders")
    rng = random.Random(seed)
    bodies = [order_body(rng, index, skus, channels) for index in range(total)]

    async def one(index: int) -> None:
        body, plan = bodies[index]
        began = time.monotonic()
        created = await http.post("/v1/orders", json=body)
        run.start.samples.append(time.monotonic() - began)
        created.raise_for_status()
        order_id = created.json()["id"]
        if plan == "cancel":
            await http.post(
                f"/v1/orders/{order_id}/cancel", json={"reason": "customer_request"}
            )
        state = await client.get_workflow_handle(workflow_id_for(order_id)).result()
        run.lifecycle.samples.append(time.monotonic() - began)
        status = state["status"] if isinstance(state, dict) else state.status
        run.outcomes[str(status)] = run.outcomes.get(str(status), 0) + 1
        run.finished += 1

    await _race(run, total, concurrency, one, rate)
    return run


class PeakMemory:
    """The largest resident memory seen per process role, sampled twice a second."""

    def __init__(self, processes: dict[str, psutil.Process]) -> None:
        self.processes = processes
        self.peaks_mb: dict[str, float] = dict.fromkeys(processes, 0.0)

    async def sample(self) -> None:
        while True:
            for role, process in self.processes.items():
                try:
                    rss = process.memory_info().rss / 2**20
                except psutil.Error:
                    continue
                self.peaks_mb[role] = round(max(self.peaks_mb[role], rss), 1)
            await asyncio.sleep(0.5)


def _stack_processes(root_pid: int | None) -> dict[str, psutil.Process]:
    """The worker and API processes: children of `oms dev`, or any on this host."""
    candidates = (
        psutil.Process(root_pid).children(recursive=True)
        if root_pid
        else list(psutil.process_iter())
    )
    found: dict[str, psutil.Process] = {}
    for process in candidates:
        try:
            command = " ".join(process.cmdline())
        except psutil.Error:
            continue
        for role in ("worker", "api"):
            if f"workers {role}" in command or f"oms {role}" in command:
                found.setdefault(role, process)
    return found


@dataclass
class Stack:
    url: str
    key: str
    settings: Settings
    root_pid: int | None


def _free_ports(names: list[str]) -> dict[str, int]:
    """Free ports ten apart (the Temporal dev server takes some beside its own)."""
    for base in range(20000, 30000, 100):
        ports = {name: base + 10 * i for i, name in enumerate(names)}
        if all(port_is_free(port, "127.0.0.1") for port in ports.values()):
            return ports
    raise RuntimeError("no free ports between 20000 and 30000")


@contextmanager
def own_stack(
    settings: Settings, overrides: dict[str, str] | None = None
) -> Iterator[Stack]:
    """`oms dev` in a fresh folder, tuned so that only the software is measured."""
    folder = Path(tempfile.mkdtemp(prefix="oms-bench-"))
    ports = _free_ports(["api", "temporal", "ui", "codec"])
    env = {
        **os.environ,
        "OMS_DATA_DIR": str(folder),
        "OMS_DATABASE_URL": "",
        "OMS_TEMPORAL_ADDRESS": "",
        "OMS_API_PORT": str(ports["api"]),
        "OMS_TEMPORAL_PORT": str(ports["temporal"]),
        "OMS_TEMPORAL_UI_PORT": str(ports["ui"]),
        "OMS_CODEC_PORT": str(ports["codec"]),
        "OMS_LOG_LEVEL": "WARNING",
        "OMS_SANDBOX_PICK_SECONDS": "0",
        "OMS_SANDBOX_PACK_SECONDS": "0",
        "OMS_SANDBOX_TRANSIT_SECONDS": "0",
        "OMS_RETURN_WINDOW_SECONDS": "0",
        "OMS_RATE_LIMIT_PER_SECOND": "100000",
        "OMS_RATE_LIMIT_BURST": "100000",
        **(overrides or {}),
    }
    log = (folder / "dev.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "workers", "dev"], env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{ports['api']}"
    try:
        _wait_ready(url, process, folder)
        database = running_dev_database(folder)
        assert database is not None
        key = asyncio.run(_admin_key(database))
        codec_keys = json.loads((folder / "codec-keys.json").read_text())
        stack_settings = settings.model_copy(
            update={
                "database_url": database,
                "temporal_address": f"127.0.0.1:{ports['temporal']}",
                "codec_keys": {k: SecretStr(v) for k, v in codec_keys.items()},
                "codec_key_id": max(codec_keys),
            }
        )
        yield Stack(url, key, stack_settings, process.pid)
    finally:
        stop_process(process, "oms dev", timeout=60)
        log.close()


def _wait_ready(url: str, process: "subprocess.Popen[bytes]", folder: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"oms dev exited; see {folder / 'dev.log'}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"oms dev was not ready in 120 s; see {folder / 'dev.log'}")


async def _admin_key(database: str) -> str:
    engine = create_engine(database, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE stock_levels SET on_hand = on_hand + :units"),
                {"units": STOCK_TOP_UP},
            )
        return await create_key(
            engine, name=f"bench-{uuid.uuid4().hex[:6]}", role=Role.ADMIN, channel=None
        )
    finally:
        await engine.dispose()


async def measure(
    stack: Stack, orders: int, concurrency: int, seed: int, rate: float | None = None
) -> dict[str, Any]:
    client = await connect(stack.settings, wait_seconds=30)
    memory = PeakMemory(_stack_processes(stack.root_pid))
    sampling = asyncio.create_task(memory.sample())
    reference = await run_reference(client, orders, concurrency)
    headers = {"Authorization": f"Bearer {stack.key}"}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=stack.url, headers=headers, timeout=60, limits=limits
    ) as http:
        placed = await run_orders(http, client, orders, concurrency, seed, rate)
    sampling.cancel()
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": sys.version.split()[0],
        },
        "orders": orders,
        "concurrency": concurrency,
        "rate_per_second": rate,
        "reference": reference.as_dict(),
        "lifecycles": placed.as_dict(),
        "ratios": {
            "orders_per_s_over_reference_per_s": round(
                placed.per_second / reference.per_second, 2
            )
            if reference.per_second
            else None,
            "create_p50_over_bare_start_p50": _ratio(
                placed.start.ms(0.5), reference.start.ms(0.5)
            ),
            "create_p99_over_bare_start_p99": _ratio(
                placed.start.ms(0.99), reference.start.ms(0.99)
            ),
        },
        "peak_memory_mb": memory.peaks_mb,
    }


def _ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 2) if denominator else None


def table(results: dict[str, Any]) -> str:
    reference, orders = results["reference"], results["lifecycles"]
    ratios, memory = results["ratios"], results["peak_memory_mb"]
    rows = [
        ("full lifecycles per second", f"{orders['per_second']}"),
        (
            "reference workflows per second (4 no-op activities)",
            f"{reference['per_second']}",
        ),
        (
            "ratio: lifecycles / reference",
            f"{ratios['orders_per_s_over_reference_per_s']}",
        ),
        (
            "create order over HTTP p50 / p90 / p99 (ms)",
            "{p50_ms} / {p90_ms} / {p99_ms}".format(**orders["start_latency"]),
        ),
        (
            "bare workflow start p50 / p90 / p99 (ms)",
            "{p50_ms} / {p90_ms} / {p99_ms}".format(**reference["start_latency"]),
        ),
        (
            "ratio: create p99 / bare start p99",
            f"{ratios['create_p99_over_bare_start_p99']}",
        ),
        (
            "lifecycle p50 / p99 (ms)",
            "{p50_ms} / {p99_ms}".format(**orders["lifecycle_latency"]),
        ),
        ("errors", f"{orders['errors']}"),
        (
            "outcomes",
            ", ".join(f"{k} {v}" for k, v in sorted(orders["outcomes"].items())),
        ),
        (
            "peak memory, worker / API (MB)",
            f"{memory.get('worker')} / {memory.get('api')}",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"| {'figure':<{width}} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {name:<{width}} | {value} |" for name, value in rows]
    return "\n".join(lines)


# The contention scenario: many orders for a few units in two warehouses.
RACE_UNITS = {"BER": 15, "AMS": 10}

# One statement, so one snapshot: stock and reservations as of one moment.
RACE_SNAPSHOT = text(
    """
    SELECT s.warehouse, s.on_hand, s.reserved,
           coalesce((SELECT sum(r.quantity) FROM reservations r
                     WHERE r.sku = s.sku AND r.warehouse = s.warehouse
                       AND r.state = 'reserved'), 0) AS live
    FROM stock_levels s WHERE s.sku = :sku
    """
)


async def measure_contention(
    stack: Stack, orders: int, concurrency: int
) -> dict[str, Any]:
    """`orders` one-unit orders race for 25 units; count what was sold, and
    check stock against reservations all through the race."""
    engine = create_engine(stack.settings.database_url, pool_size=2)
    client = await connect(stack.settings, wait_seconds=30)
    sku = f"RACE-{uuid.uuid4().hex[:8].upper()}"
    async with engine.begin() as conn:
        await conn.execute(
            insert(Product).values(
                sku=sku, name="Limited edition", category="race", weight_grams=200
            )
        )
        await conn.execute(
            insert(ProductPrice).values(sku=sku, currency="EUR", amount_minor=2500)
        )
        await conn.execute(
            insert(StockLevel),
            [
                {"sku": sku, "warehouse": warehouse, "on_hand": units, "reserved": 0}
                for warehouse, units in RACE_UNITS.items()
            ],
        )
    violations: list[tuple[Any, ...]] = []
    snapshots = 0

    async def watch() -> None:
        nonlocal snapshots
        while True:
            async with engine.connect() as conn:
                for row in await conn.execute(RACE_SNAPSHOT, {"sku": sku}):
                    _, on_hand, reserved, live = row
                    if not (0 <= reserved <= on_hand and reserved == live):
                        violations.append(tuple(row))
            snapshots += 1
            await asyncio.sleep(0.02)

    watching = asyncio.create_task(watch())
    run = Run("race")
    headers = {"Authorization": f"Bearer {stack.key}"}
    async with httpx.AsyncClient(
        base_url=stack.url, headers=headers, timeout=60
    ) as http:

        async def one(index: int) -> None:
            body, _ = order_body(random.Random(index), index)
            body |= {"channel": "web", "lines": [{"sku": sku, "quantity": 1}]}
            body["payment"] = {"method": "card", "token": "tok_visa"}
            created = await http.post("/v1/orders", json=body)
            created.raise_for_status()
            handle = client.get_workflow_handle(workflow_id_for(created.json()["id"]))
            state = await handle.result()
            key = str(state["status"])
            run.outcomes[key] = run.outcomes.get(key, 0) + 1
            run.finished += 1

        await _race(run, orders, concurrency, one)
    watching.cancel()
    async with engine.connect() as conn:
        final = {
            row[0]: {"on_hand": row[1], "reserved": row[2], "live": row[3]}
            for row in await conn.execute(RACE_SNAPSHOT, {"sku": sku})
        }
    await engine.dispose()
    return {
        "scenario": "contention",
        "orders": orders,
        "units": sum(RACE_UNITS.values()),
        "outcomes": run.outcomes,
        "errors": run.errors,
        "final_stock": final,
        "snapshots": snapshots,
        "violations": [list(row) for row in violations],
    }


async def measure_parked(
    stack: Stack, orders: int, concurrency: int, seed: int
) -> dict[str, Any]:
    """Orders that wait for their carrier: the worker's memory as they grow."""
    engine = create_engine(stack.settings.database_url, pool_size=4)
    worker = _stack_processes(stack.root_pid).get("worker")
    rng = random.Random(seed)
    run = Run("parked")
    memory: list[dict[str, float]] = []
    shipped = text(
        "SELECT count(*) FROM shipments WHERE order_id = :id AND status = 'shipped'"
    )
    headers = {"Authorization": f"Bearer {stack.key}"}
    step = max(orders // 10, 1)
    async with httpx.AsyncClient(
        base_url=stack.url, headers=headers, timeout=60
    ) as http:

        async def one(index: int) -> None:
            body, _ = order_body(rng, index)
            body["payment"] = {"method": "card", "token": "tok_visa"}
            created = await http.post("/v1/orders", json=body)
            created.raise_for_status()
            order_id = created.json()["id"]
            while True:
                async with engine.connect() as conn:
                    if (await conn.execute(shipped, {"id": order_id})).scalar_one():
                        break
                await asyncio.sleep(0.5)
            run.finished += 1
            if run.finished % step == 0 and worker is not None:
                rss = worker.memory_info().rss / 2**20
                memory.append({"parked": run.finished, "worker_rss_mb": round(rss, 1)})

        await _race(run, orders, concurrency, one)
    await engine.dispose()
    return {
        "scenario": "parked",
        "orders": orders,
        "parked": run.finished,
        "errors": run.errors,
        "seconds": round(run.seconds, 1),
        "worker_memory": memory,
    }
