"""Requests that meet at the wrong moment: money and stock still end right."""

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError, CancelledError

from db.orders import Order
from db.payments import Payment
from models.order_actions import (
    AmendLine,
    AmendOrder,
    CancelOrder,
    HoldOrder,
    LineQuantity,
    PaymentNotification,
)
from models.orders import (
    CancelReason,
    OrderPolicy,
    OrderStatus,
    OutOfStockPolicy,
    PaymentStatus,
)
from tests.conftest import FIRST, MakeProduct
from tests.gates import GatedCarrier, GatedGateway
from tests.helpers import (
    Handle,
    cancel,
    finished,
    gated_token,
    payment_events_of,
    payments_of,
    place_order,
    release,
    start_held_after_payment,
    start_order,
    stock_of,
    until_query,
    until_status,
)
from workers.settings import Settings
from workers.worker import WorkerGroup
from workflows.orders import OrderWorkflow


def paid(amount_minor: int, link_id: str | None = None) -> PaymentNotification:
    return PaymentNotification(
        event_id=f"evt_{uuid.uuid4().hex}",
        link_id=link_id,
        kind="paid",
        amount_minor=amount_minor,
        currency="EUR",
        at=datetime.now(UTC),
    )


async def link_id_of(engine: AsyncEngine, order_id: str, n: int = -1) -> str:
    async with engine.connect() as conn:
        refs = (
            await conn.execute(
                select(Payment.provider_ref)
                .where(Payment.order_id == order_id)
                .order_by(Payment.created_at)
            )
        ).scalars()
        found = list(refs)[n]
    assert found is not None
    return found


async def test_two_partial_cancels_of_a_paid_link_refund_exactly_what_went(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 5})
    order = place_order([(sku, 3)], method="link")
    handle = await start_order(client, order, settings.temporal_task_queue)
    await until_status(handle, OrderStatus.AWAITING_PAYMENT)
    await handle.execute_update(
        OrderWorkflow.hold, HoldOrder(reason="check", actor="ann")
    )
    await handle.signal(OrderWorkflow.payment_notification, paid(3000))
    await until_query(
        handle, OrderWorkflow.current_state, lambda s: s.captured_minor == 3000
    )

    await cancel(handle, lines=[LineQuantity(line=1, quantity=1)])
    await cancel(handle, lines=[LineQuantity(line=1, quantity=1)])
    await release(handle)
    done = await finished(handle)

    assert done.total_minor == 1000
    assert await payment_events_of(engine, order.order_id) == [
        ("capture", 3000),
        ("refund", 1000),
        ("refund", 1000),
    ]
    assert await stock_of(engine, sku) == {FIRST: (4, 0)}


async def test_two_cancels_that_together_are_too_many_refuse_the_second(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    gateway: GatedGateway,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 5})
    order = place_order([(sku, 3)], token=gated_token())
    handle = await start_held_after_payment(
        client, order, settings.temporal_task_queue, gateway
    )

    results = await asyncio.gather(
        cancel(handle, lines=[LineQuantity(line=1, quantity=2)]),
        cancel(handle, lines=[LineQuantity(line=1, quantity=2)]),
        return_exceptions=True,
    )

    refused = [r for r in results if isinstance(r, WorkflowUpdateFailedError)]
    assert len(refused) == 1
    assert isinstance(refused[0].cause, ApplicationError)
    assert refused[0].cause.type == "invalid-lines"
    await release(handle)
    done = await finished(handle)
    assert done.status == OrderStatus.COMPLETED
    assert done.total_minor == 1000
    assert await stock_of(engine, sku) == {FIRST: (4, 0)}


async def test_cancel_from_temporal_during_a_step_undoes_the_step(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    gateway: GatedGateway,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 5})
    token = gated_token()
    gate = gateway.gate(token)
    order = place_order([(sku, 2)], token=token)
    handle = await start_order(client, order, settings.temporal_task_queue)
    await gate.entered.wait()

    await handle.cancel()
    gate.opened.set()
    with pytest.raises(WorkflowFailureError) as ended:
        await finished(handle)

    assert isinstance(ended.value.cause, CancelledError)
    assert await stock_of(engine, sku) == {FIRST: (5, 0)}
    assert await payment_events_of(engine, order.order_id) == [
        ("authorize", 2000),
        ("void", 2000),
    ]


async def test_hold_while_the_parcel_is_handed_over_is_refused(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    carrier: GatedCarrier,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 2})
    postal_code = f"G{uuid.uuid4().hex[:8]}"
    gate = carrier.gate(postal_code)
    order = place_order([(sku, 1)], postal_code=postal_code)
    handle = await start_order(client, order, settings.temporal_task_queue)
    await gate.entered.wait()

    holding = handle.execute_update(
        OrderWorkflow.hold, HoldOrder(reason="too late", actor="ann")
    )
    gate.opened.set()
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await holding

    assert isinstance(refused.value.cause, ApplicationError)
    assert refused.value.cause.type == "shipment-already-left"
    done = await finished(handle)
    assert (done.status, done.hold) == (OrderStatus.COMPLETED, None)


async def test_partial_cancel_while_asking_the_customer_reserves_what_is_left(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    in_stock = await make_product({FIRST: 1})
    missing = await make_product({FIRST: 0})
    order = place_order(
        [(in_stock, 1), (missing, 3)],
        policy=OrderPolicy(out_of_stock=OutOfStockPolicy.ASK_CUSTOMER),
    )
    handle = await start_order(client, order, settings.temporal_task_queue)
    await until_status(handle, OrderStatus.AWAITING_STOCK)

    await cancel(handle, CancelReason.OUT_OF_STOCK, [LineQuantity(line=2, quantity=3)])
    done = await finished(handle)

    assert done.status == OrderStatus.COMPLETED
    assert done.total_minor == 1000
    assert await stock_of(engine, in_stock) == {FIRST: (0, 0)}


async def test_declined_amendment_leaves_the_order_authorized(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    gateway: GatedGateway,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 5})
    token = gated_token()
    gateway.decline_after_first.add(token)
    order = place_order([(sku, 1)], token=token)
    handle = await start_held_after_payment(
        client, order, settings.temporal_task_queue, gateway
    )

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            OrderWorkflow.amend,
            AmendOrder(lines=[AmendLine(sku=sku, name="s", quantity=3)], actor="ann"),
        )

    assert isinstance(refused.value.cause, ApplicationError)
    assert refused.value.cause.type == "payment-declined"
    state = await handle.query(OrderWorkflow.current_state)
    assert state.payment_status == PaymentStatus.AUTHORIZED
    async with engine.connect() as conn:
        stored = (
            await conn.execute(
                select(Order.payment_status).where(Order.id == order.order_id)
            )
        ).scalar_one()
    assert stored == PaymentStatus.AUTHORIZED
    assert await stock_of(engine, sku) == {FIRST: (5, 1)}
    await cancel(handle)


async def test_amending_a_link_order_sends_a_new_link_and_refunds_the_old_one_if_paid(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 5})
    order = place_order([(sku, 1)], method="link")
    handle: Handle = await start_order(client, order, settings.temporal_task_queue)
    first = await until_status(handle, OrderStatus.AWAITING_PAYMENT)
    old_link = await link_id_of(engine, order.order_id)

    amended = await handle.execute_update(
        OrderWorkflow.amend,
        AmendOrder(lines=[AmendLine(sku=sku, name="s", quantity=2)], actor="ann"),
    )
    new_link = await link_id_of(engine, order.order_id)
    # The customer pays the old link (just too late), then the new one.
    await handle.signal(OrderWorkflow.payment_notification, paid(1000, old_link))
    await handle.signal(OrderWorkflow.payment_notification, paid(2000, new_link))
    done = await finished(handle)

    assert amended.payment_link is not None and first.payment_link is not None
    assert amended.payment_link.url != first.payment_link.url
    assert amended.payment_status == PaymentStatus.PENDING
    assert done.status == OrderStatus.COMPLETED
    payments = await payments_of(engine, order.order_id)
    assert sorted((p["captured_minor"], p["refunded_minor"]) for p in payments) == [
        (1000, 1000),
        (2000, 0),
    ]
    assert await stock_of(engine, sku) == {FIRST: (3, 0)}


async def test_refunding_more_than_was_captured_is_impossible_by_cancel_rules(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 5})
    order = place_order([(sku, 1)])
    handle = await start_order(client, order, settings.temporal_task_queue)

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            OrderWorkflow.cancel,
            CancelOrder(
                reason=CancelReason.CUSTOMER_REQUEST,
                lines=[LineQuantity(line=1, quantity=2)],
                actor="ann",
            ),
        )

    assert isinstance(refused.value.cause, ApplicationError)
    assert refused.value.cause.type == "invalid-lines"
    assert (await finished(handle)).status == OrderStatus.COMPLETED
