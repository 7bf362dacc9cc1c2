"""Three hundred orders race for 25 units in two warehouses: exactly 25 are
sold, stock never goes below zero, and reserved stock always equals the
live reservations, at every moment of the race, not only at its end."""

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from models.orders import FailureReason, OrderStatus
from tests.conftest import FIRST, SECOND, MakeProduct
from tests.helpers import place_order, start_order
from workers.bench import RACE_SNAPSHOT
from workers.reconcile import check_database
from workers.settings import Settings
from workers.worker import WorkerGroup

ORDERS = 300
RACE_TIMEOUT = 600.0


async def test_three_hundred_orders_for_25_units_sell_exactly_25(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 15, SECOND: 10})
    orders = [place_order([(sku, 1)]) for _ in range(ORDERS)]
    snapshots = 0
    broken: list[tuple[object, ...]] = []
    racing = True

    async def watch() -> None:
        nonlocal snapshots
        while racing:
            async with engine.connect() as conn:
                for row in await conn.execute(RACE_SNAPSHOT, {"sku": sku}):
                    _, on_hand, reserved, live = row
                    if not (0 <= reserved <= on_hand and reserved == live):
                        broken.append(tuple(row))
            snapshots += 1
            await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch())
    handles = await asyncio.gather(
        *(start_order(client, order, settings.temporal_task_queue) for order in orders)
    )
    states = await asyncio.wait_for(
        asyncio.gather(*(handle.result() for handle in handles)), RACE_TIMEOUT
    )
    racing = False
    await watcher

    completed = [state for state in states if state.status == OrderStatus.COMPLETED]
    refused = [state for state in states if state.status == OrderStatus.FAILED]
    assert len(completed) == 25
    assert len(refused) == ORDERS - 25
    assert {state.failure_reason for state in refused} == {FailureReason.OUT_OF_STOCK}
    assert sum(state.captured_minor for state in completed) == 25 * 1000
    assert all(state.captured_minor == 0 for state in refused)
    async with engine.connect() as conn:
        final = {
            row[0]: row[1:] for row in await conn.execute(RACE_SNAPSHOT, {"sku": sku})
        }
    assert final == {FIRST: (0, 0, 0), SECOND: (0, 0, 0)}
    assert broken == [] and snapshots > 10
    assert [
        str(item) for item in await check_database(engine) if sku in item.subject
    ] == []
