"""`oms reconcile` finds what disagrees, and nothing in orders that went well.

The database is shared with the other tests, so each test looks only at the
orders and SKUs it made.
"""

import uuid

from sqlalchemy import delete, insert, update
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from db.inventory import Reservation
from db.orders import Order
from db.payments import PaymentEvent
from models.orders import OrderStatus
from tests.conftest import FIRST, MakeProduct
from tests.helpers import finished, place_order, start_order
from workers.reconcile import Disagreement, check_database, check_workflows
from workers.settings import Settings
from workers.worker import WorkerGroup


def about(found: list[Disagreement], subject: str) -> list[str]:
    return [str(item) for item in found if subject in item.subject]


async def test_a_finished_order_agrees_everywhere_until_its_money_is_tampered_with(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 5})
    order = place_order([(sku, 2)], price_minor=1250)
    state = await finished(
        await start_order(client, order, settings.temporal_task_queue)
    )
    assert state.status == OrderStatus.COMPLETED

    clean = await check_database(engine)
    workflows = await check_workflows(engine, client, 1, among=[order.order_id])
    async with engine.begin() as conn:
        await conn.execute(
            delete(PaymentEvent).where(
                PaymentEvent.order_id == order.order_id, PaymentEvent.kind == "capture"
            )
        )
    tampered = await check_database(engine)

    assert about(clean, order.number) == [] and about(clean, sku) == []
    assert workflows == []
    found = about(tampered, order.number)
    assert found == [
        f"capture    order {order.number} (completed): shipped value 2500, "
        "captured less refunded 0"
    ]
    assert [item.check for item in tampered if order.order_id in item.subject] == [
        "payment"
    ]


async def test_reserved_stock_without_its_reservations_is_reported(
    engine: AsyncEngine, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 5})
    async with engine.begin() as conn:
        await conn.execute(
            insert(Reservation).values(
                order_id=str(uuid.uuid4()), line=1, sku=sku, warehouse=FIRST, quantity=2
            )
        )

    found = about(await check_database(engine), sku)

    assert found == [
        f"stock      {sku} at {FIRST}: on hand 5, reserved 0, live reservations 2"
    ]


async def test_a_read_model_that_lags_its_workflow_is_reported(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 5})
    order = place_order([(sku, 1)])
    await finished(await start_order(client, order, settings.temporal_task_queue))
    async with engine.begin() as conn:
        await conn.execute(
            update(Order).where(Order.id == order.order_id).values(status="confirmed")
        )

    found = await check_workflows(engine, client, 1, among=[order.order_id])

    assert [str(item) for item in found] == [
        f"workflow   order {order.number}: read model (status, payment, captured, "
        "refunded) ('confirmed', 'captured', 1000, 0), workflow ('completed', "
        "'captured', 1000, 0)"
    ]
