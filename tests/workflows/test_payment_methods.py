"""Payment links and cash on delivery; backorders and asking the customer."""

import uuid
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from db.inventory import StockLevel
from models.order_actions import AmendLine, AmendOrder, PaymentNotification, Restock
from models.orders import (
    OrderPolicy,
    OrderStatus,
    OutOfStockPolicy,
    PaymentStatus,
)
from tests.conftest import FIRST, MakeProduct
from tests.helpers import (
    finished,
    payment_events_of,
    payments_of,
    place_order,
    start_order,
    stock_of,
    timeline_of,
    until_query,
)
from workers.settings import Settings
from workers.worker import WorkerGroup
from workflows.orders import OrderWorkflow


def notification(
    kind: Literal["paid", "failed"], amount_minor: int
) -> PaymentNotification:
    return PaymentNotification(
        event_id=f"evt_{uuid.uuid4().hex}",
        kind=kind,
        amount_minor=amount_minor,
        currency="EUR",
        at=datetime.now(UTC),
        detail=None if kind == "paid" else "insufficient funds",
    )


async def test_paid_link_is_captured_once_and_the_order_completes(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 3})
    order = place_order([(sku, 2)], method="link")
    handle = await start_order(client, order, settings.temporal_task_queue)
    waiting = await until_query(
        handle,
        OrderWorkflow.current_state,
        lambda s: s.status == OrderStatus.AWAITING_PAYMENT,
    )
    assert waiting.payment_link is not None
    assert "/v1/sandbox/payment-links/sbx_link_" in waiting.payment_link.url

    await handle.signal(
        OrderWorkflow.payment_notification, notification("failed", 2000)
    )
    paid = notification("paid", 2000)
    await handle.signal(OrderWorkflow.payment_notification, paid)
    await handle.signal(OrderWorkflow.payment_notification, paid)  # delivered twice
    done = await finished(handle)

    assert done.status == OrderStatus.COMPLETED
    assert done.payment_status == PaymentStatus.CAPTURED
    assert await payment_events_of(engine, order.order_id) == [("capture", 2000)]
    [payment] = await payments_of(engine, order.order_id)
    assert (payment["status"], payment["captured_minor"]) == (
        PaymentStatus.CAPTURED,
        2000,
    )
    timeline = await timeline_of(engine, order.order_id)
    assert "payment.link_attempt_failed" in timeline
    assert timeline.index("payment.link_paid") < timeline.index("order.confirmed")
    assert await stock_of(engine, sku) == {FIRST: (1, 0)}


async def test_cash_on_delivery_is_collected_when_delivered(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 3})
    order = place_order([(sku, 1)], method="cod")

    done = await finished(
        await start_order(client, order, settings.temporal_task_queue)
    )

    assert done.status == OrderStatus.COMPLETED
    assert done.payment_status == PaymentStatus.CAPTURED
    assert await payment_events_of(engine, order.order_id) == [("capture", 1000)]
    timeline = await timeline_of(engine, order.order_id)
    assert timeline.index("shipment.delivered") < timeline.index("payment.captured")


async def test_backordered_order_goes_on_when_stock_arrives(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 1})
    policy = OrderPolicy(out_of_stock=OutOfStockPolicy.BACKORDER, backorder_seconds=600)
    order = place_order([(sku, 3)], policy=policy)
    handle = await start_order(client, order, settings.temporal_task_queue)
    await until_query(
        handle,
        OrderWorkflow.current_state,
        lambda s: s.status == OrderStatus.AWAITING_STOCK,
    )

    async with engine.begin() as conn:
        await conn.execute(
            update(StockLevel)
            .where(StockLevel.sku == sku, StockLevel.warehouse == FIRST)
            .values(on_hand=5)
        )
    await handle.signal(OrderWorkflow.restocked, Restock(skus=[sku]))
    done = await finished(handle)

    assert done.status == OrderStatus.COMPLETED
    assert await stock_of(engine, sku) == {FIRST: (2, 0)}


async def test_asked_customer_amends_to_what_is_in_stock(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 2})
    policy = OrderPolicy(out_of_stock=OutOfStockPolicy.ASK_CUSTOMER)
    order = place_order([(sku, 5)], policy=policy)
    handle = await start_order(client, order, settings.temporal_task_queue)
    await until_query(
        handle,
        OrderWorkflow.current_state,
        lambda s: s.status == OrderStatus.AWAITING_STOCK,
    )

    amended = await handle.execute_update(
        OrderWorkflow.amend,
        AmendOrder(lines=[AmendLine(sku=sku, name="s", quantity=2)], actor="customer"),
    )
    done = await finished(handle)

    assert amended.total_minor == 2000
    assert done.status == OrderStatus.COMPLETED
    assert await stock_of(engine, sku) == {FIRST: (0, 0)}
    assert await payment_events_of(engine, order.order_id) == [
        ("authorize", 2000),
        ("capture", 2000),
    ]
