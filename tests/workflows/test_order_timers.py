"""Deadlines measured in days, on the time-skipping test server.

The activities are the real ones on PostgreSQL; only the clock jumps. A
payment link that nobody pays, a backorder that no stock arrives for and a
question the customer never answers each end the order cancelled, with its
stock released.
"""

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.payment_gateway import SandboxGateway
from models.order_actions import AmendLine, AmendOrder
from models.orders import (
    CancelReason,
    OrderPolicy,
    OrderState,
    OrderStatus,
    OutOfStockPolicy,
    PaymentStatus,
    PlaceOrder,
    workflow_id_for,
)
from tests.conftest import FIRST, MakeProduct
from tests.helpers import finished, payments_of, place_order, reservations_of, stock_of
from workers.embedded import wheel_binary
from workers.settings import Settings
from workers.worker import build_workers
from workflows.orders import OrderWorkflow

QUEUE = f"oms-timers-{uuid.uuid4().hex[:8]}"


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
        settings.model_copy(update={"temporal_task_queue": QUEUE}),
        gateway=SandboxGateway(),
    )
    async with worker:
        yield env
    await env.shutdown()


async def run(env: WorkflowEnvironment, order: PlaceOrder) -> OrderState:
    handle = await env.client.start_workflow(
        OrderWorkflow.run, order, id=workflow_id_for(order.order_id), task_queue=QUEUE
    )
    return await finished(handle)


async def test_unpaid_link_expires_and_releases_the_stock(
    skipping: WorkflowEnvironment, engine: AsyncEngine, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 4})
    order = place_order([(sku, 3)], method="link")  # links last a day by default

    state = await run(skipping, order)

    assert state.status == OrderStatus.CANCELLED
    assert state.cancellation is not None
    assert state.cancellation.reason == CancelReason.PAYMENT_EXPIRED
    assert await stock_of(engine, sku) == {FIRST: (4, 0)}
    assert [r[3] for r in await reservations_of(engine, order.order_id)] == ["released"]
    [payment] = await payments_of(engine, order.order_id)
    assert payment["status"] == PaymentStatus.EXPIRED


@pytest.mark.parametrize(
    "policy", [OutOfStockPolicy.BACKORDER, OutOfStockPolicy.ASK_CUSTOMER]
)
async def test_order_waiting_for_stock_cancels_itself_at_its_deadline(
    skipping: WorkflowEnvironment,
    engine: AsyncEngine,
    make_product: MakeProduct,
    policy: OutOfStockPolicy,
) -> None:
    sku = await make_product({FIRST: 1})
    order = place_order([(sku, 2)], policy=OrderPolicy(out_of_stock=policy))

    state = await run(skipping, order)

    assert state.status == OrderStatus.CANCELLED
    assert state.cancellation is not None
    assert state.cancellation.reason == CancelReason.OUT_OF_STOCK
    assert await stock_of(engine, sku) == {FIRST: (1, 0)}
    assert await reservations_of(engine, order.order_id) == []
    assert await payments_of(engine, order.order_id) == []


async def test_a_replaced_link_brings_its_own_deadline(
    skipping: WorkflowEnvironment, engine: AsyncEngine, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 4})
    order = place_order([(sku, 1)], method="link")  # links last a day
    handle = await skipping.client.start_workflow(
        OrderWorkflow.run, order, id=workflow_id_for(order.order_id), task_queue=QUEUE
    )
    await skipping.sleep(timedelta(hours=20))
    await handle.execute_update(
        OrderWorkflow.amend,
        AmendOrder(lines=[AmendLine(sku=sku, name="s", quantity=2)], actor="ann"),
    )

    # Past the first link's deadline, within the new one's: still waiting.
    await skipping.sleep(timedelta(hours=10))
    waiting = await handle.query(OrderWorkflow.current_state)
    state = await finished(handle)

    assert waiting.status == OrderStatus.AWAITING_PAYMENT
    assert state.cancellation is not None
    assert state.cancellation.reason == CancelReason.PAYMENT_EXPIRED
    assert await stock_of(engine, sku) == {FIRST: (4, 0)}
