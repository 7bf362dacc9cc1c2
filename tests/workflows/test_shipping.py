"""ShipmentWorkflow: staff confirmations in a manual warehouse."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import Worker

from db.orders import OrderEvent
from models.orders import OrderState, OrderStatus, workflow_id_for
from models.shipping import (
    PackConfirmation,
    PickConfirmation,
    ShipmentState,
    ShipmentStatus,
)
from tests.conftest import MANUAL, MakeProduct
from tests.helpers import finished, place_order, start_order, timeline_of, until_query
from workers.settings import Settings
from workflows.orders import OrderWorkflow
from workflows.shipping import ShipmentWorkflow


async def test_manual_warehouse_waits_for_staff_to_pick_and_pack(
    client: Client,
    worker: Worker,
    settings: Settings,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({MANUAL: 2}, weight_grams=300)
    order = place_order([(sku, 2)])
    handle = await start_order(client, order, settings.temporal_task_queue)

    state: OrderState = await until_query(
        handle,
        OrderWorkflow.state,
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
