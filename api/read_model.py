"""Orders as the read model has them, for lists and for orders without history."""

from typing import Any

from sqlalchemy import Row, Select, select
from sqlalchemy.ext.asyncio import AsyncConnection

from db.orders import Order, OrderLine
from db.shipping import Shipment, ShipmentLine
from models.customers import customer_url
from models.money import Money
from models.order_views import OrderSummary
from models.orders import Address, Cancellation, Customer, OrderState, PlaceOrder
from models.orders import OrderLine as OrderLineModel
from models.shipping import ShipmentLine as ShipmentLineModel
from models.shipping import ShipmentState


async def stored_state(conn: AsyncConnection, order: PlaceOrder) -> OrderState:
    """The order as last written by its activities (as received if never)."""
    order_id = order.order_id
    row = (await conn.execute(select(Order).where(Order.id == order_id))).first()
    if row is None:
        return OrderState.received(order)
    lines = await conn.execute(
        select(OrderLine).where(OrderLine.order_id == order_id).order_by(OrderLine.line)
    )
    return OrderState(
        order_id=row.id,
        number=row.number,
        channel=row.channel,
        external_id=row.external_id,
        status=row.status,
        payment_status=row.payment_status,
        payment_method=row.payment_method,
        failure_reason=row.failure_reason,
        failure_detail=row.failure_detail,
        customer=Customer(
            email=row.customer_email, name=row.customer_name, phone=row.customer_phone
        ),
        shipping_address=Address.model_validate(row.shipping_address),
        currency=row.currency,
        lines=[
            OrderLineModel(
                line=line.line,
                sku=line.sku,
                name=line.name,
                quantity=line.quantity,
                unit_price_minor=line.unit_price_minor,
                total_minor=line.total_minor,
                cancelled_quantity=line.cancelled_quantity,
            )
            for line in lines
        ],
        subtotal_minor=row.subtotal_minor,
        shipping_minor=row.shipping_minor,
        delivery=row.delivery,
        total_minor=row.total_minor,
        authorized_minor=row.authorized_minor,
        captured_minor=row.captured_minor,
        refunded_minor=row.refunded_minor,
        cancellation=(
            None
            if row.cancel_reason is None
            else Cancellation(
                reason=row.cancel_reason,
                note=row.cancel_note,
                actor="(see the timeline)",
                at=row.updated_at,
            )
        ),
        shipments=await _shipments(conn, order_id),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def _shipments(conn: AsyncConnection, order_id: str) -> list[ShipmentState]:
    query = select(Shipment).where(Shipment.order_id == order_id)
    return [
        state
        for _, state in await load_shipments(conn, query.order_by(Shipment.number))
    ]


async def load_shipments(
    conn: AsyncConnection, query: Select[Any]
) -> list[tuple[Any, ShipmentState]]:
    """The shipments rows `query` selects, in its order, each with its lines."""
    shipments = (await conn.execute(query)).all()
    lines = (
        await conn.execute(
            select(ShipmentLine)
            .where(ShipmentLine.shipment_id.in_([s.id for s in shipments]))
            .order_by(ShipmentLine.line)
        )
    ).all()
    return [
        (
            shipment,
            ShipmentState(
                shipment_id=shipment.id,
                number=shipment.number,
                warehouse=shipment.warehouse,
                status=shipment.status,
                lines=[
                    ShipmentLineModel(
                        line=item.line, sku=item.sku, quantity=item.quantity
                    )
                    for item in lines
                    if item.shipment_id == shipment.id
                ],
                package_code=shipment.package_code,
                weight_grams=shipment.weight_grams,
                carrier=shipment.carrier,
                tracking_number=shipment.tracking_number,
                label_ref=shipment.label_ref,
                shipped_at=shipment.shipped_at,
                delivered_at=shipment.delivered_at,
                tracking_status=shipment.tracking_status,
                last_movement_at=shipment.last_movement_at,
                late=shipment.late,
            ),
        )
        for shipment in shipments
    ]


def order_summary(row: Row[Any]) -> OrderSummary:
    return OrderSummary(
        id=row.id,
        number=row.number,
        channel=row.channel,
        external_id=row.external_id,
        status=row.status,
        payment_status=row.payment_status,
        failure_reason=row.failure_reason,
        customer_email=row.customer_email,
        customer_id=row.customer_id,
        customer_url=customer_url(row.customer_id),
        total=Money.of(row.total_minor, row.currency),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
