"""Shipments in a manual warehouse: staff confirmations, and a cancel meanwhile."""

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import CancelledError

from db.orders import OrderEvent
from models.orders import OrderState, OrderStatus, workflow_id_for
from models.shipping import (
    PackConfirmation,
    PickConfirmation,
    ShipmentState,
    ShipmentStatus,
)
from tests.conftest import MANUAL, MakeProduct
from tests.helpers import (
    finished,
    payment_events_of,
    place_order,
    reservations_of,
    start_order,
    stock_of,
    timeline_of,
    until_query,
)
from workers.settings import Settings
from workers.worker import WorkerGroup
from workflows.orders import OrderWorkflow
from workflows.shipping import ShipmentWorkflow


async def test_manual_warehouse_waits_for_staff_to_pick_and_pack(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({MANUAL: 2}, weight_grams=300)
    order = place_order([(sku, 2)])
    handle = await start_order(client, order, settings.temporal_task_queue)

    state: OrderState = await until_query(
        handle,
        OrderWorkflow.current_state,
        lambda s: bool(s.shipments) and s.shipments[0].status == ShipmentStatus.PICKING,
    )
    number = state.shipments[0].number
    shipment = client.get_workflow_handle_for(
        ShipmentWorkflow.run, f"{workflow_id_for(order.order_id)}-shipment-{number}"
    )
    # Nobody confirmed yet: a manual warehouse does not move on by itself.
    assert "shipment.picked" not in await timeline_of(engine, order.order_id)
    assert state.status == OrderStatus.IN_FULFILMENT

    await shipment.signal(
        ShipmentWorkflow.confirm_picked, PickConfirmation(actor="ann")
    )
    await shipment.signal(
        ShipmentWorkflow.confirm_packed, PackConfirmation(actor="bob", weight_grams=777)
    )
    final = await finished(handle)

    assert final.status == OrderStatus.COMPLETED
    delivered: ShipmentState = final.shipments[0]
    assert delivered.weight_grams == 777
    async with engine.connect() as conn:
        actors = dict(
            (
                await conn.execute(
                    select(OrderEvent.type, OrderEvent.actor).where(
                        OrderEvent.order_id == order.order_id
                    )
                )
            ).all()
        )
    assert actors["shipment.picked"] == "ann"
    assert actors["shipment.packed"] == "bob"


async def test_cancelling_the_workflow_undoes_stock_and_payment(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({MANUAL: 3})
    order = place_order([(sku, 2)])
    handle = await start_order(client, order, settings.temporal_task_queue)
    await until_query(
        handle,
        OrderWorkflow.current_state,
        lambda s: bool(s.shipments) and s.shipments[0].status == ShipmentStatus.PICKING,
    )

    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as ended:
        await finished(handle)

    assert isinstance(ended.value.cause, CancelledError)
    assert await stock_of(engine, sku) == {MANUAL: (3, 0)}
    assert await reservations_of(engine, order.order_id) == [
        (sku, MANUAL, 2, "released")
    ]
    assert [kind for kind, _ in await payment_events_of(engine, order.order_id)] == [
        "authorize",
        "void",
    ]
    timeline = await timeline_of(engine, order.order_id)
    assert "shipment.cancelled" in timeline
    assert timeline[-1] == "order.cancelled"
