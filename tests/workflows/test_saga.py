"""Cancel at every stage, amend, hold: stock and money end exactly right.

Every test checks the stock table and the payments ledger, not only the
order's status. Gates in the sandbox gateway and carrier (tests/gates.py) stop
an order at an exact moment without sleeping.
"""

import asyncio
import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from models.order_actions import (
    AmendLine,
    AmendOrder,
    CancelOrder,
    HoldOrder,
    LineQuantity,
)
from models.orders import (
    Address,
    CancelReason,
    OrderStatus,
    PaymentStatus,
)
from models.shipping import PackConfirmation, PickConfirmation, ShipmentStatus
from tests.conftest import FIRST, MANUAL, SECOND, MakeProduct
from tests.gates import GatedCarrier, GatedGateway
from tests.helpers import (
    cancel,
    finished,
    gated_token,
    payment_events_of,
    payments_of,
    place_order,
    release,
    reservations_of,
    shipment_handle,
    start_held_after_payment,
    start_on_hold,
    start_order,
    stock_of,
    timeline_of,
    until_query,
    until_shipment,
    until_signalled,
    until_status,
)
from workers.settings import Settings
from workers.worker import WorkerGroup
from workflows.orders import OrderWorkflow
from workflows.shipping import ShipmentWorkflow

# Cancel at each stage.


async def test_cancel_before_anything_was_reserved_undoes_nothing(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 5})
    order = place_order([(sku, 2)])
    handle = await start_on_hold(client, order, settings.temporal_task_queue)

    cancelled = await cancel(handle)

    assert cancelled.status == OrderStatus.CANCELLED
    assert cancelled.cancellation is not None
    assert cancelled.cancellation.reason == CancelReason.CUSTOMER_REQUEST
    assert await stock_of(engine, sku) == {FIRST: (5, 0)}
    assert await reservations_of(engine, order.order_id) == []
    assert await payment_events_of(engine, order.order_id) == []
    assert (await timeline_of(engine, order.order_id))[-2:] == [
        "order.held",
        "order.cancelled",
    ]


async def test_cancel_while_the_card_is_being_authorized_voids_it(
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

    # The cancel waits for the authorization in flight, then undoes it.
    cancelling = handle.execute_update(
        OrderWorkflow.cancel,
        CancelOrder(reason=CancelReason.FRAUD_SUSPECTED, actor="ann"),
    )
    gate.opened.set()
    cancelled = await cancelling

    assert cancelled.status == OrderStatus.CANCELLED
    assert await stock_of(engine, sku) == {FIRST: (5, 0)}
    assert await payment_events_of(engine, order.order_id) == [
        ("authorize", 2000),
        ("void", 2000),
    ]
    [payment] = await payments_of(engine, order.order_id)
    assert payment["status"] == PaymentStatus.VOIDED


async def test_cancel_of_an_authorized_order_on_hold(
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
    held = await handle.query(OrderWorkflow.current_state)
    assert held.status == OrderStatus.ON_HOLD
    assert held.payment_status == PaymentStatus.AUTHORIZED
    assert await stock_of(engine, sku) == {FIRST: (5, 3)}

    cancelled = await cancel(handle)

    assert cancelled.status == OrderStatus.CANCELLED
    assert await stock_of(engine, sku) == {FIRST: (5, 0)}
    assert await payment_events_of(engine, order.order_id) == [
        ("authorize", 3000),
        ("void", 3000),
    ]
    timeline = await timeline_of(engine, order.order_id)
    assert timeline.index("payment.voided") < timeline.index("stock.released")


async def test_cancel_while_the_payment_link_is_open_closes_it(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 5})
    order = place_order([(sku, 1)], method="link")
    handle = await start_order(client, order, settings.temporal_task_queue)
    waiting = await until_status(handle, OrderStatus.AWAITING_PAYMENT)
    assert waiting.payment_link is not None
    assert await stock_of(engine, sku) == {FIRST: (5, 1)}

    cancelled = await cancel(handle, CancelReason.DUPLICATE)

    assert cancelled.status == OrderStatus.CANCELLED
    assert await stock_of(engine, sku) == {FIRST: (5, 0)}
    [payment] = await payments_of(engine, order.order_id)
    assert payment["status"] == PaymentStatus.EXPIRED
    assert await payment_events_of(engine, order.order_id) == []


async def test_cancel_while_picking_stops_the_shipment(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({MANUAL: 4})
    order = place_order([(sku, 2)])
    handle = await start_order(client, order, settings.temporal_task_queue)
    await until_shipment(handle, ShipmentStatus.PICKING)

    cancelled = await cancel(handle)

    assert cancelled.status == OrderStatus.CANCELLED
    assert cancelled.shipments[0].status == ShipmentStatus.CANCELLED
    assert await stock_of(engine, sku) == {MANUAL: (4, 0)}
    assert await payment_events_of(engine, order.order_id) == [
        ("authorize", 2000),
        ("void", 2000),
    ]
    timeline = await timeline_of(engine, order.order_id)
    assert timeline.index("shipment.cancelled") < timeline.index("payment.voided")


async def test_cancel_of_a_packed_parcel_that_has_not_left(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    carrier: GatedCarrier,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({MANUAL: 4})
    order = place_order([(sku, 1)])
    handle = await start_order(client, order, settings.temporal_task_queue)
    state = await until_shipment(handle, ShipmentStatus.PICKING)
    await handle.execute_update(
        OrderWorkflow.hold, HoldOrder(reason="address check", actor="ann")
    )
    parcel = shipment_handle(client, order, state)
    await parcel.signal(ShipmentWorkflow.confirm_picked, PickConfirmation(actor="bo"))
    await parcel.signal(ShipmentWorkflow.confirm_packed, PackConfirmation(actor="bo"))
    labelled = await until_query(
        handle,
        OrderWorkflow.current_state,
        lambda s: s.shipments[0].label_ref is not None,
    )
    assert labelled.shipments[0].package_code
    tracking_number = labelled.shipments[0].tracking_number

    cancelled = await cancel(handle)

    assert cancelled.shipments[0].status == ShipmentStatus.CANCELLED
    assert await stock_of(engine, sku) == {MANUAL: (4, 0)}
    assert await payment_events_of(engine, order.order_id) == [
        ("authorize", 1000),
        ("void", 1000),
    ]
    # The label was booked at packing; the parcel stays, so it is cancelled.
    assert tracking_number in carrier.cancelled
    assert tracking_number not in carrier.handed_over
    timeline = await timeline_of(engine, order.order_id)
    assert timeline.index("shipment.booked") < timeline.index(
        "shipment.booking_cancelled"
    )


async def test_cancel_while_the_label_is_booked_cancels_the_booking(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    carrier: GatedCarrier,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 2})
    postal_code = f"B{uuid.uuid4().hex[:8]}"
    gate = carrier.booking_gate(postal_code)
    order = place_order([(sku, 1)], postal_code=postal_code)
    handle = await start_order(client, order, settings.temporal_task_queue)
    await gate.entered.wait()  # packed; the carrier is printing the label

    cancelling = asyncio.ensure_future(cancel(handle))
    state = await handle.query(OrderWorkflow.current_state)
    await until_signalled(shipment_handle(client, order, state), "stop")
    gate.opened.set()
    cancelled = await cancelling

    assert cancelled.status == OrderStatus.CANCELLED
    [parcel] = cancelled.shipments
    assert parcel.status == ShipmentStatus.CANCELLED
    assert parcel.tracking_number in carrier.cancelled
    assert parcel.tracking_number not in carrier.handed_over
    assert await stock_of(engine, sku) == {FIRST: (2, 0)}
    assert await payment_events_of(engine, order.order_id) == [
        ("authorize", 1000),
        ("void", 1000),
    ]


async def test_cancel_racing_the_carrier_loses_and_the_order_completes(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    carrier: GatedCarrier,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 2})
    postal_code = f"G{uuid.uuid4().hex[:8]}"
    gate = carrier.gate(postal_code)
    order = place_order([(sku, 1)], postal_code=postal_code)
    handle = await start_order(client, order, settings.temporal_task_queue)
    await gate.entered.wait()  # the parcel is being handed to the carrier

    cancelling = handle.execute_update(
        OrderWorkflow.cancel,
        CancelOrder(reason=CancelReason.CUSTOMER_REQUEST, actor="ann"),
    )
    gate.opened.set()
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await cancelling

    assert isinstance(refused.value.cause, ApplicationError)
    assert refused.value.cause.type == "shipment-already-left"
    state = await finished(handle)
    assert state.status == OrderStatus.COMPLETED
    assert await stock_of(engine, sku) == {FIRST: (1, 0)}
    assert await payment_events_of(engine, order.order_id) == [
        ("authorize", 1000),
        ("capture", 1000),
    ]


async def test_cancel_after_shipping_is_refused_by_its_rule(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    carrier: GatedCarrier,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 2})
    order = place_order([(sku, 1)])
    handle = await start_order(client, order, settings.temporal_task_queue)
    await until_shipment(handle, ShipmentStatus.SHIPPED)

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await cancel(handle)

    assert isinstance(refused.value.cause, ApplicationError)
    assert refused.value.cause.type in ("shipment-already-left", "order-delivered")
    assert (await finished(handle)).status == OrderStatus.COMPLETED


async def test_second_cancel_is_refused_or_closed(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 5})
    order = place_order([(sku, 1)])
    handle = await start_on_hold(client, order, settings.temporal_task_queue)
    await cancel(handle)

    # The first cancel ended the workflow: the second finds it closed (the
    # API answers 409 order-closed).
    with pytest.raises(RPCError) as again:
        await cancel(handle)

    assert again.value.status == RPCStatusCode.NOT_FOUND
    assert await stock_of(engine, sku) == {FIRST: (5, 0)}
    assert await payment_events_of(engine, order.order_id) == []


# Partial cancels.


async def test_partial_cancel_before_shipping_releases_and_voids_the_part(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    gateway: GatedGateway,
    make_product: MakeProduct,
) -> None:
    a = await make_product({FIRST: 5})
    b = await make_product({FIRST: 5})
    order = place_order([(a, 3), (b, 1)], token=gated_token())
    handle = await start_held_after_payment(
        client, order, settings.temporal_task_queue, gateway
    )

    reduced = await cancel(handle, lines=[LineQuantity(line=1, quantity=2)])
    await release(handle)
    done = await finished(handle)

    assert reduced.status == OrderStatus.ON_HOLD
    assert [(line.quantity, line.cancelled_quantity) for line in reduced.lines] == [
        (1, 2),
        (1, 0),
    ]
    assert done.status == OrderStatus.COMPLETED
    assert done.total_minor == 2000
    assert await stock_of(engine, a) == {FIRST: (4, 0)}
    assert await stock_of(engine, b) == {FIRST: (4, 0)}
    assert await payment_events_of(engine, order.order_id) == [
        ("authorize", 4000),
        ("void", 2000),
        ("capture", 2000),
    ]


async def test_partial_cancel_while_picking_ships_the_rest_in_a_new_parcel(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    a = await make_product({MANUAL: 5})
    b = await make_product({MANUAL: 5})
    order = place_order([(a, 1), (b, 2)])
    handle = await start_order(client, order, settings.temporal_task_queue)
    await until_shipment(handle, ShipmentStatus.PICKING)

    reduced = await cancel(handle, lines=[LineQuantity(line=1, quantity=1)])
    state = await until_shipment(handle, ShipmentStatus.PICKING)
    parcel = shipment_handle(client, order, state)
    await parcel.signal(ShipmentWorkflow.confirm_picked, PickConfirmation(actor="bo"))
    await parcel.signal(ShipmentWorkflow.confirm_packed, PackConfirmation(actor="bo"))
    done = await finished(handle)

    assert reduced.shipments[0].status == ShipmentStatus.CANCELLED
    assert [s.status for s in done.shipments] == [
        ShipmentStatus.CANCELLED,
        ShipmentStatus.DELIVERED,
    ]
    assert [(line.sku, line.quantity) for line in done.shipments[1].lines] == [(b, 2)]
    assert await stock_of(engine, a) == {MANUAL: (5, 0)}
    assert await stock_of(engine, b) == {MANUAL: (3, 0)}
    assert await payment_events_of(engine, order.order_id) == [
        ("authorize", 3000),
        ("void", 1000),
        ("capture", 2000),
    ]


# Amendments.


async def test_amend_lines_reserves_again_and_reauthorizes(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    gateway: GatedGateway,
    make_product: MakeProduct,
) -> None:
    a = await make_product({FIRST: 5, SECOND: 5})
    b = await make_product({SECOND: 5})
    order = place_order([(a, 1)], token=gated_token())
    handle = await start_held_after_payment(
        client, order, settings.temporal_task_queue, gateway
    )
    assert await stock_of(engine, a) == {FIRST: (5, 1), SECOND: (5, 0)}

    amended = await handle.execute_update(
        OrderWorkflow.amend,
        AmendOrder(
            lines=[
                AmendLine(sku=a, name="a", quantity=2),
                AmendLine(sku=b, name="b", quantity=1, catalogue_price_minor=500),
            ],
            shipping_address=Address(
                country="DE", city="Hamburg", postal_code="20095", line1="Hafen 1"
            ),
            actor="ann",
        ),
    )
    await release(handle)
    done = await finished(handle)

    assert amended.total_minor == 2500
    assert amended.shipping_address.city == "Hamburg"
    assert done.status == OrderStatus.COMPLETED
    # Only the second warehouse has both SKUs now.
    assert done.shipments[0].warehouse == SECOND
    assert await stock_of(engine, a) == {FIRST: (5, 0), SECOND: (3, 0)}
    assert await stock_of(engine, b) == {SECOND: (4, 0)}
    payments = await payments_of(engine, order.order_id)
    assert [(p["status"], p["authorized_minor"]) for p in payments] == [
        (PaymentStatus.VOIDED, 1000),
        (PaymentStatus.CAPTURED, 2500),
    ]


async def test_refused_amendment_changes_nothing(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    gateway: GatedGateway,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 3})
    order = place_order([(sku, 1)], token=gated_token())
    handle = await start_held_after_payment(
        client, order, settings.temporal_task_queue, gateway
    )
    await handle.execute_update(
        OrderWorkflow.amend,
        AmendOrder(lines=[AmendLine(sku=sku, name="s", quantity=2)], actor="ann"),
    )

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            OrderWorkflow.amend,
            AmendOrder(lines=[AmendLine(sku=sku, name="s", quantity=9)], actor="ann"),
        )

    assert isinstance(refused.value.cause, ApplicationError)
    assert refused.value.cause.type == "out-of-stock"
    state = await handle.query(OrderWorkflow.current_state)
    assert [line.quantity for line in state.lines] == [2]
    await release(handle)
    done = await finished(handle)
    assert done.total_minor == 2000
    assert await stock_of(engine, sku) == {FIRST: (1, 0)}
    # The refused amendment's authorization was voided at once: the only
    # money that moved is the order's total.
    payments = await payments_of(engine, order.order_id)
    assert sorted((p["status"], p["authorized_minor"]) for p in payments) == [
        (PaymentStatus.CAPTURED, 2000),
        (PaymentStatus.VOIDED, 1000),
        (PaymentStatus.VOIDED, 9000),
    ]
    assert sum(p["captured_minor"] for p in payments) == 2000
    assert all(
        p["authorized_minor"] == p["captured_minor"] + p["voided_minor"]
        for p in payments
    )


async def test_amend_after_picking_started_is_refused(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({MANUAL: 3})
    order = place_order([(sku, 1)])
    handle = await start_order(client, order, settings.temporal_task_queue)
    await until_shipment(handle, ShipmentStatus.PICKING)

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            OrderWorkflow.amend,
            AmendOrder(lines=[AmendLine(sku=sku, name="s", quantity=2)], actor="ann"),
        )

    assert isinstance(refused.value.cause, ApplicationError)
    assert refused.value.cause.type == "picking-started"
    await cancel(handle)


# Holds.


async def test_hold_stops_before_the_next_step_and_release_goes_on(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 2})
    order = place_order([(sku, 1)])
    handle = await start_on_hold(client, order, settings.temporal_task_queue)
    held = await handle.query(OrderWorkflow.current_state)
    assert held.status == OrderStatus.ON_HOLD
    assert await reservations_of(engine, order.order_id) == []

    released = await release(handle)
    done = await finished(handle)

    assert released.hold is None
    assert done.status == OrderStatus.COMPLETED
    timeline = await timeline_of(engine, order.order_id)
    assert timeline.index("order.released") < timeline.index("stock.reserved")
