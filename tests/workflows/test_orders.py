"""OrderWorkflow end to end on the real Temporal server, activities and database."""

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from activities.payment_gateway import SandboxGateway
from models.orders import FailureReason, OrderPolicy, OrderStatus, PaymentStatus
from models.shipping import ShipmentStatus
from tests.conftest import FIRST, SECOND, MakeProduct
from tests.helpers import (
    finished,
    payment_events_of,
    place_order,
    reservations_of,
    start_order,
    stock_of,
    timeline_of,
)
from workers.settings import Settings
from workers.worker import WorkerGroup


async def test_order_completes_when_stock_and_card_are_fine(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    shirt = await make_product({FIRST: 5, SECOND: 5})
    mug = await make_product({FIRST: 3})
    order = place_order([(shirt, 2), (mug, 1)], price_minor=1250)

    state = await finished(
        await start_order(client, order, settings.temporal_task_queue)
    )

    assert state.status == OrderStatus.COMPLETED
    assert state.payment_status == PaymentStatus.CAPTURED
    assert state.captured_minor == state.total_minor == 3750
    [shipment] = state.shipments
    assert shipment.status == ShipmentStatus.DELIVERED
    assert shipment.warehouse == FIRST
    assert shipment.package_code and shipment.tracking_number
    # The goods left the first warehouse: on hand went down, nothing stays held.
    assert await stock_of(engine, shirt) == {FIRST: (3, 0), SECOND: (5, 0)}
    assert await stock_of(engine, mug) == {FIRST: (2, 0)}
    assert [r[3] for r in await reservations_of(engine, order.order_id)] == [
        "shipped",
        "shipped",
    ]
    assert await payment_events_of(engine, order.order_id) == [
        ("authorize", 3750),
        ("capture", 3750),
    ]
    assert await timeline_of(engine, order.order_id) == [
        "order.received",
        "stock.reserved",
        "payment.authorized",
        "order.confirmed",
        "order.in_fulfilment",
        "shipment.picking",
        "shipment.picked",
        "shipment.packed",
        "shipment.booked",
        "shipment.shipped",
        "payment.captured",
        "shipment.delivered",
        "order.delivered",
        "order.completed",
    ]


async def test_order_fails_out_of_stock_and_holds_nothing(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    # Each warehouse has one of the two lines, none has both, and the channel
    # allows one shipment: nothing can ship, and nothing may stay reserved.
    only_first = await make_product({FIRST: 10})
    only_second = await make_product({SECOND: 10})
    order = place_order(
        [(only_first, 1), (only_second, 1)], policy=OrderPolicy(max_shipments=1)
    )

    state = await finished(
        await start_order(client, order, settings.temporal_task_queue)
    )

    assert state.status == OrderStatus.FAILED
    assert state.failure_reason == FailureReason.OUT_OF_STOCK
    assert state.payment_status == PaymentStatus.PENDING
    assert await reservations_of(engine, order.order_id) == []
    assert await stock_of(engine, only_first) == {FIRST: (10, 0)}
    assert await stock_of(engine, only_second) == {SECOND: (10, 0)}
    assert await payment_events_of(engine, order.order_id) == []
    assert (await timeline_of(engine, order.order_id))[-1] == "order.failed"


async def test_order_fails_out_of_stock_when_quantity_exceeds_stock(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    scarce = await make_product({FIRST: 2, SECOND: 2})
    order = place_order([(scarce, 5)])

    state = await finished(
        await start_order(client, order, settings.temporal_task_queue)
    )

    assert state.failure_reason == FailureReason.OUT_OF_STOCK
    assert await stock_of(engine, scarce) == {FIRST: (2, 0), SECOND: (2, 0)}


async def test_lines_in_two_warehouses_ship_as_two_parcels_charged_apart(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    shirt = await make_product({FIRST: 5})
    mug = await make_product({SECOND: 5})
    order = place_order([(shirt, 2), (mug, 1)], price_minor=1250)

    state = await finished(
        await start_order(client, order, settings.temporal_task_queue)
    )

    assert state.status == OrderStatus.COMPLETED
    first, second = state.shipments
    assert (first.warehouse, second.warehouse) == (FIRST, SECOND)
    assert [(line.sku, line.quantity) for line in first.lines] == [(shirt, 2)]
    assert [(line.sku, line.quantity) for line in second.lines] == [(mug, 1)]
    for shipment in state.shipments:
        assert shipment.status == ShipmentStatus.DELIVERED
        assert shipment.tracking_number
    assert first.tracking_number != second.tracking_number
    # Each parcel is charged as it leaves: two captures, the total in all.
    events = await payment_events_of(engine, order.order_id)
    assert events[0] == ("authorize", 3750)
    assert sorted(events[1:]) == [("capture", 1250), ("capture", 2500)]
    assert state.captured_minor == state.total_minor == 3750
    assert state.payment_status == PaymentStatus.CAPTURED
    assert await stock_of(engine, shirt) == {FIRST: (3, 0)}
    assert await stock_of(engine, mug) == {SECOND: (4, 0)}
    timeline = await timeline_of(engine, order.order_id)
    assert timeline.count("shipment.delivered") == 2
    assert timeline.index("order.delivered") > max(
        i for i, kind in enumerate(timeline) if kind == "shipment.delivered"
    )


async def test_declined_card_releases_the_reservation(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 4})
    order = place_order([(sku, 3)], token="tok_decline")

    state = await finished(
        await start_order(client, order, settings.temporal_task_queue)
    )

    assert state.status == OrderStatus.FAILED
    assert state.failure_reason == FailureReason.PAYMENT_DECLINED
    assert state.payment_status == PaymentStatus.DECLINED
    assert await reservations_of(engine, order.order_id) == [
        (sku, FIRST, 3, "released")
    ]
    assert await stock_of(engine, sku) == {FIRST: (4, 0)}
    assert await payment_events_of(engine, order.order_id) == [("decline", 3000)]
    timeline = await timeline_of(engine, order.order_id)
    assert timeline[-3:] == ["payment.declined", "stock.released", "order.failed"]


async def test_flaky_gateway_is_retried_to_one_authorization(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    gateway: SandboxGateway,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 1})
    order = place_order([(sku, 1)], token="tok_flaky")

    state = await finished(
        await start_order(client, order, settings.temporal_task_queue)
    )

    key = f"{order.order_id}:authorize"
    assert state.status == OrderStatus.COMPLETED
    # Failed before charging, charged but the answer was lost, then answered:
    # three calls, and still a single authorization at the gateway and here.
    assert gateway.calls[key] == 3
    assert gateway.charges_for(order.order_id) == 1
    assert await payment_events_of(engine, order.order_id) == [
        ("authorize", 1000),
        ("capture", 1000),
    ]


async def test_step_the_database_refuses_fails_the_order_instead_of_stalling(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    # Past the API's validation (say, a future channel bridge with a bug): a
    # name longer than its column. Retrying cannot help; the order must end.
    sku = await make_product({FIRST: 1})
    order = place_order([(sku, 1)])
    order.customer.name = "x" * 300

    state = await finished(
        await start_order(client, order, settings.temporal_task_queue)
    )

    assert state.status == OrderStatus.FAILED
    assert state.failure_reason == FailureReason.PROCESSING_ERROR
    assert "StringDataRightTruncation" in (state.failure_detail or "")
