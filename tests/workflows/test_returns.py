"""Returns on the time-skipping test server: windows and deadlines in days.

The activities are the real ones on PostgreSQL (stock, payments, timeline);
only the clock jumps. Each order here is delivered by the automatic sandbox
warehouse and carrier, then returned in part or in full.
"""

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.carriers import CarrierTracking, SandboxCarrier
from activities.payment_gateway import SandboxGateway
from models.orders import (
    OrderPolicy,
    OrderState,
    OrderStatus,
    PaymentStatus,
    PlaceOrder,
    workflow_id_for,
)
from models.returns import (
    Disposition,
    ExchangeShipping,
    InspectedLine,
    OpenReturn,
    ReceiveReturn,
    RefundDelivery,
    ReplacementLine,
    ReturnedQuantity,
    ReturnReason,
    ReturnState,
    ReturnStatus,
    ReviewReturn,
)
from models.rules import allowed_actions
from tests.conftest import FIRST, MakeProduct
from tests.helpers import (
    finished,
    payment_events_of,
    place_order,
    stock_of,
    timeline_of,
)
from workers.embedded import wheel_binary
from workers.settings import Settings
from workers.worker import build_workers
from workflows.orders import OrderWorkflow
from workflows.returns import ReturnWorkflow

QUEUE = f"oms-returns-{uuid.uuid4().hex[:8]}"
DAY = 86_400
WINDOW = OrderPolicy(return_window_seconds=14 * DAY, return_goods_seconds=10 * DAY)

OrderHandle = WorkflowHandle[OrderWorkflow, OrderState]
ReturnHandle = WorkflowHandle[ReturnWorkflow, ReturnState]


class InstantCarrier(SandboxCarrier):
    """Delivers on the first look: the sandbox carrier's own clock is the wall
    clock, which the test server's jumps leave behind."""

    async def track(
        self, *, tracking_number: str, shipped_at: datetime
    ) -> CarrierTracking:
        return CarrierTracking(True, shipped_at, "delivered to the recipient", 60.0)


@pytest.fixture(scope="module")
async def skipping(
    engine: AsyncEngine, settings: Settings
) -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=wheel_binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    worker = build_workers(
        env.client,
        engine,
        settings.model_copy(
            update={
                "temporal_task_queue": QUEUE,
                "sandbox_pick_seconds": 0,
                "sandbox_pack_seconds": 0,
            }
        ),
        gateway=SandboxGateway(),
        carriers=[InstantCarrier(0)],
    )
    async with worker:
        yield env
    await env.shutdown()


async def moments(env: WorkflowEnvironment) -> None:
    """Let the workflows do what needs no one (the test server's clock only
    jumps once they are all idle): an hour is far below any deadline here."""
    await env.sleep(timedelta(hours=1))


async def delivered(env: WorkflowEnvironment, order: PlaceOrder) -> OrderHandle:
    handle = await env.client.start_workflow(
        OrderWorkflow.run, order, id=workflow_id_for(order.order_id), task_queue=QUEUE
    )
    await moments(env)
    state = await handle.query(OrderWorkflow.current_state)
    assert state.status == OrderStatus.DELIVERED
    return handle


async def open_return(
    env: WorkflowEnvironment,
    order: OrderHandle,
    lines: dict[int, int],
    reason: ReturnReason = ReturnReason.CHANGED_MIND,
    replacement: list[ReplacementLine] | None = None,
) -> ReturnHandle:
    opened = await order.execute_update(
        OrderWorkflow.request_return,
        OpenReturn(
            return_id=str(uuid.uuid4()),
            lines=[ReturnedQuantity(line=k, quantity=v) for k, v in lines.items()],
            reason=reason,
            replacement=replacement,
            actor="ann (support)",
        ),
    )
    return env.client.get_workflow_handle_for(ReturnWorkflow.run, opened.workflow_id)


async def receive(
    env: WorkflowEnvironment, ret: ReturnHandle, *outcomes: tuple[int, int, Disposition]
) -> ReturnState:
    await moments(env)
    assert (await ret.query(ReturnWorkflow.state)).status == ReturnStatus.AWAITING_GOODS
    return await ret.execute_update(
        ReturnWorkflow.receive,
        ReceiveReturn(
            actor="bo (warehouse)",
            lines=[
                InspectedLine(line=n, quantity=q, outcome=o) for n, q, o in outcomes
            ],
        ),
    )


async def open_exchange(
    env: WorkflowEnvironment, order: OrderHandle, sku: str, price_minor: int
) -> tuple[ReturnHandle, OrderHandle]:
    """Return the first unit of line 1 for one unit of `sku`; the replacement
    order is placed once the return is authorized."""
    wanted = ReplacementLine(
        sku=sku, name="s", quantity=1, unit_price_minor=price_minor
    )
    ret = await open_return(env, order, {1: 1}, ReturnReason.SIZE_OR_FIT, [wanted])
    await moments(env)
    placed = await ret.query(ReturnWorkflow.state)
    assert placed.exchange is not None and placed.exchange.order_id is not None
    replacement = env.client.get_workflow_handle_for(
        OrderWorkflow.run, workflow_id_for(placed.exchange.order_id)
    )
    return ret, replacement


async def refused(order: OrderHandle, lines: dict[int, int]) -> str | None:
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await order.execute_update(
            OrderWorkflow.request_return,
            OpenReturn(
                return_id=str(uuid.uuid4()),
                lines=[ReturnedQuantity(line=k, quantity=v) for k, v in lines.items()],
                reason=ReturnReason.DAMAGED,
                actor="ann (support)",
            ),
        )
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    return cause.type


async def test_a_partial_return_restocks_and_refunds_what_was_accepted(
    skipping: WorkflowEnvironment, engine: AsyncEngine, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 5})
    order = place_order([(sku, 3)], price_minor=1250, policy=WINDOW)
    handle = await delivered(skipping, order)
    assert await stock_of(engine, sku) == {FIRST: (2, 0)}

    ret = await open_return(skipping, handle, {1: 2})
    received = await receive(
        skipping, ret, (1, 1, Disposition.RESTOCK), (1, 1, Disposition.REFUSE)
    )
    closed = await finished(ret)
    state = await handle.query(OrderWorkflow.current_state)

    assert received.status in (ReturnStatus.RECEIVED, ReturnStatus.CLOSED)
    assert (closed.status, closed.refund_minor) == (ReturnStatus.CLOSED, 1250)
    assert await stock_of(engine, sku) == {FIRST: (3, 0)}  # one unit back on hand
    events = await payment_events_of(engine, order.order_id)
    assert [amount for kind, amount in events if kind == "refund"] == [1250]
    assert (state.status, state.refunded_minor) == (OrderStatus.DELIVERED, 1250)
    assert state.payment_status == PaymentStatus.PARTIALLY_REFUNDED
    assert state.returns[0].status == ReturnStatus.CLOSED
    timeline = await timeline_of(engine, order.order_id)
    assert [t for t in timeline if t.startswith("return.")] == [
        "return.opened",
        "return.authorized",
        "return.received",
        "return.closed",
    ]
    assert "stock.restocked" in timeline


async def test_returns_never_exceed_what_was_delivered(
    skipping: WorkflowEnvironment, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 5})
    handle = await delivered(skipping, place_order([(sku, 2)], policy=WINDOW))

    await open_return(skipping, handle, {1: 1})

    assert await refused(handle, {1: 2}) == "return-exceeds-delivered"
    assert await refused(handle, {2: 1}) == "invalid-lines"
    await open_return(skipping, handle, {1: 1})  # the last delivered unit
    assert await refused(handle, {1: 1}) == "return-exceeds-delivered"


async def test_the_window_closes_to_completed_and_takes_no_more_returns(
    skipping: WorkflowEnvironment, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 5})
    handle = await delivered(skipping, place_order([(sku, 1)], policy=WINDOW))
    delivered_state = await handle.query(OrderWorkflow.current_state)

    await skipping.sleep(timedelta(days=13))
    inside = await handle.query(OrderWorkflow.current_state)
    done = await finished(handle)

    assert delivered_state.return_window_ends is not None
    assert "return" in allowed_actions(delivered_state)
    assert inside.status == OrderStatus.DELIVERED
    assert done.status == OrderStatus.COMPLETED
    assert "return" not in allowed_actions(done)


async def test_an_order_waits_for_its_open_return_past_the_window(
    skipping: WorkflowEnvironment, engine: AsyncEngine, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 5})
    policy = WINDOW.model_copy(update={"return_goods_seconds": 30 * DAY})
    order = place_order([(sku, 1)], price_minor=800, policy=policy)
    handle = await delivered(skipping, order)
    ret = await open_return(skipping, handle, {1: 1})

    await skipping.sleep(timedelta(days=15))  # past the window, goods not in yet
    waiting = await handle.query(OrderWorkflow.current_state)
    await receive(skipping, ret, (1, 1, Disposition.WRITE_OFF))
    done = await finished(handle)

    assert waiting.status == OrderStatus.DELIVERED
    assert done.status == OrderStatus.COMPLETED
    assert done.refunded_minor == 800
    assert done.payment_status == PaymentStatus.REFUNDED
    assert await stock_of(engine, sku) == {FIRST: (4, 0)}  # written off, not back


async def test_a_return_without_goods_expires_and_refunds_nothing(
    skipping: WorkflowEnvironment, engine: AsyncEngine, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 5})
    order = place_order([(sku, 2)], policy=WINDOW)
    handle = await delivered(skipping, order)
    ret = await open_return(skipping, handle, {1: 2})

    await skipping.sleep(timedelta(days=11))  # the goods were due in 10
    expired = await ret.query(ReturnWorkflow.state)
    done = await finished(handle)

    assert expired.status == ReturnStatus.EXPIRED
    assert expired.refund_minor == 0
    assert done.status == OrderStatus.COMPLETED
    assert done.refunded_minor == 0
    assert [k for k, _ in await payment_events_of(engine, order.order_id)] == [
        "authorize",
        "capture",
    ]
    assert "return.expired" in await timeline_of(engine, order.order_id)


async def test_a_full_return_refunds_the_delivery_charge_too(
    skipping: WorkflowEnvironment, engine: AsyncEngine, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 5})
    order = place_order([(sku, 2)], price_minor=1000, policy=WINDOW)
    order = order.model_copy(update={"shipping_minor": 490, "total_minor": 2490})
    handle = await delivered(skipping, order)

    first = await open_return(skipping, handle, {1: 1})
    await receive(skipping, first, (1, 1, Disposition.RESTOCK))
    partial = await finished(first)
    second = await open_return(skipping, handle, {1: 1})
    await receive(skipping, second, (1, 1, Disposition.RESTOCK))
    full = await finished(second)
    done = await finished(handle)

    assert (partial.refund_minor, partial.delivery_refund_minor) == (1000, 0)
    assert (full.refund_minor, full.delivery_refund_minor) == (1490, 490)
    assert (done.captured_minor, done.refunded_minor) == (2490, 2490)
    assert done.payment_status == PaymentStatus.REFUNDED


async def test_a_reason_under_review_waits_for_staff(
    skipping: WorkflowEnvironment, engine: AsyncEngine, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 5})
    policy = WINDOW.model_copy(
        update={
            "return_review_reasons": [ReturnReason.DAMAGED],
            "refund_delivery": RefundDelivery.NEVER,
        }
    )
    order = place_order([(sku, 2)], policy=policy)
    handle = await delivered(skipping, order)

    rejected = await open_return(skipping, handle, {1: 1}, ReturnReason.DAMAGED)
    in_review = await rejected.query(ReturnWorkflow.state)
    after = await rejected.execute_update(
        ReturnWorkflow.reject, ReviewReturn(actor="ann (support)", note="photo is fine")
    )
    approved = await open_return(skipping, handle, {1: 1}, ReturnReason.DAMAGED)
    await approved.execute_update(
        ReturnWorkflow.approve, ReviewReturn(actor="ann (support)")
    )
    await receive(skipping, approved, (1, 1, Disposition.WRITE_OFF))
    closed = await finished(approved)

    assert in_review.status == ReturnStatus.PENDING_REVIEW
    assert in_review.label is None
    assert after.status == ReturnStatus.REJECTED
    assert after.review is not None and after.review.note == "photo is fine"
    # The rejected return gave its unit back to be returned again.
    assert closed.refund_minor == 1000
    assert closed.delivery_refund_minor == 0


async def test_a_cheaper_exchange_ships_on_receipt_and_refunds_the_difference(
    skipping: WorkflowEnvironment, engine: AsyncEngine, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 5})
    other = await make_product({FIRST: 3}, price_minor=700)
    order = place_order([(sku, 1)], price_minor=1000, policy=WINDOW)
    handle = await delivered(skipping, order)

    ret, replacement = await open_exchange(skipping, handle, other, 700)
    waiting = await replacement.query(OrderWorkflow.current_state)
    reserved_before_receipt = await stock_of(engine, other)
    await receive(skipping, ret, (1, 1, Disposition.RESTOCK))
    closed = await finished(ret)
    await moments(skipping)
    shipped = await replacement.query(OrderWorkflow.current_state)

    assert waiting.replaces == order.number
    assert waiting.status == OrderStatus.CONFIRMED
    assert shipped.status == OrderStatus.DELIVERED
    assert waiting.shipments == []  # reserved, not shipped before the goods came
    assert reserved_before_receipt == {FIRST: (3, 1)}
    assert closed.exchange is not None
    assert closed.exchange.difference_minor == -300
    assert closed.refund_minor == 300
    events = await payment_events_of(engine, order.order_id)
    assert [amount for kind, amount in events if kind == "refund"] == [300]
    assert await payment_events_of(engine, waiting.order_id) == []
    assert await stock_of(engine, other) == {FIRST: (2, 0)}
    assert await stock_of(engine, sku) == {FIRST: (5, 0)}


async def test_a_dearer_exchange_charges_the_difference_to_the_card(
    skipping: WorkflowEnvironment, engine: AsyncEngine, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 5})
    dearer = await make_product({FIRST: 3}, price_minor=1600)
    order = place_order([(sku, 1)], price_minor=1000, policy=WINDOW)
    handle = await delivered(skipping, order)

    ret, _ = await open_exchange(skipping, handle, dearer, 1600)
    await receive(skipping, ret, (1, 1, Disposition.RESTOCK))
    closed = await finished(ret)
    state = await handle.query(OrderWorkflow.current_state)

    assert closed.exchange is not None
    assert closed.exchange.difference_minor == 600
    assert closed.refund_minor == 0
    events = await payment_events_of(engine, order.order_id)
    assert events == [
        ("authorize", 1000),
        ("capture", 1000),
        ("authorize", 600),
        ("capture", 600),
    ]
    assert (state.captured_minor, state.refunded_minor) == (1600, 0)


async def test_an_exchange_whose_goods_never_come_is_cancelled(
    skipping: WorkflowEnvironment, engine: AsyncEngine, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 5})
    other = await make_product({FIRST: 3}, price_minor=1000)
    order = place_order([(sku, 1)], policy=WINDOW)
    handle = await delivered(skipping, order)

    _, replacement = await open_exchange(skipping, handle, other, 1000)
    await skipping.sleep(timedelta(days=11))  # the goods were due in 10
    cancelled = await replacement.query(OrderWorkflow.current_state)

    assert cancelled.status == OrderStatus.CANCELLED
    assert cancelled.cancellation is not None
    assert "never came back" in (cancelled.cancellation.note or "")
    assert await stock_of(engine, other) == {FIRST: (3, 0)}


async def test_an_exchange_shipped_at_once_leaves_before_the_goods_are_back(
    skipping: WorkflowEnvironment, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 5})
    other = await make_product({FIRST: 3}, price_minor=1000)
    policy = WINDOW.model_copy(update={"exchange_ships": ExchangeShipping.AT_ONCE})
    order = place_order([(sku, 1)], policy=policy)
    handle = await delivered(skipping, order)

    ret, replacement = await open_exchange(skipping, handle, other, 1000)
    await moments(skipping)
    shipped = await replacement.query(OrderWorkflow.current_state)
    still_waiting = await ret.query(ReturnWorkflow.state)

    assert (shipped.status, shipped.replaces) == (OrderStatus.DELIVERED, order.number)
    assert still_waiting.status == ReturnStatus.AWAITING_GOODS


async def test_an_exchange_without_stock_refunds_the_goods_instead(
    skipping: WorkflowEnvironment, engine: AsyncEngine, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 5})
    gone = await make_product({FIRST: 0}, price_minor=700)
    order = place_order([(sku, 1)], price_minor=1000, policy=WINDOW)
    handle = await delivered(skipping, order)

    ret, replacement = await open_exchange(skipping, handle, gone, 700)
    failed = await finished(replacement)
    await receive(skipping, ret, (1, 1, Disposition.RESTOCK))
    closed = await finished(ret)

    assert failed.status == OrderStatus.FAILED
    assert closed.refund_minor == 1000  # all of it: the replacement never came
    events = await payment_events_of(engine, order.order_id)
    assert [amount for kind, amount in events if kind == "refund"] == [1000]
    assert "exchange.failed" in await timeline_of(engine, order.order_id)


async def test_returns_received_together_refund_the_delivery_once(
    skipping: WorkflowEnvironment, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 5})
    order = place_order([(sku, 2)], price_minor=1000, policy=WINDOW)
    order = order.model_copy(update={"shipping_minor": 490, "total_minor": 2490})
    handle = await delivered(skipping, order)

    first = await open_return(skipping, handle, {1: 1})
    second = await open_return(skipping, handle, {1: 1})
    await receive(skipping, first, (1, 1, Disposition.RESTOCK))
    await receive(skipping, second, (1, 1, Disposition.RESTOCK))
    await moments(skipping)
    done = await handle.query(OrderWorkflow.current_state)

    assert sorted(r.delivery_refund_minor for r in done.returns) == [0, 490]
    assert (done.captured_minor, done.refunded_minor) == (2490, 2490)


async def test_an_exchange_whose_goods_are_refused_is_cancelled(
    skipping: WorkflowEnvironment, engine: AsyncEngine, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 5})
    dearer = await make_product({FIRST: 3}, price_minor=1600)
    order = place_order([(sku, 1)], price_minor=1000, policy=WINDOW)
    handle = await delivered(skipping, order)

    ret, replacement = await open_exchange(skipping, handle, dearer, 1600)
    await receive(skipping, ret, (1, 1, Disposition.REFUSE))
    await moments(skipping)
    closed = await ret.query(ReturnWorkflow.state)
    cancelled = await replacement.query(OrderWorkflow.current_state)

    assert closed.refund_minor == 0
    assert cancelled.status == OrderStatus.CANCELLED
    assert [k for k, _ in await payment_events_of(engine, order.order_id)] == [
        "authorize",
        "capture",
    ]
    assert await stock_of(engine, dearer) == {FIRST: (3, 0)}
