"""Order read model: the order row, its lines and its timeline."""

import uuid
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from db.customers import add_address, record_customer
from db.orders import Order, OrderLine, append_event
from models.orders import OrderChanged, OrderEventIn, PlaceOrder


class OrderActivities:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @activity.defn
    async def record_order(self, order: PlaceOrder) -> None:
        """Write a received order into the read model, once, and bring its
        customer's card up to date in the same transaction."""
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(Order)
                .values(
                    id=order.order_id,
                    number=order.number,
                    channel=order.channel,
                    external_id=order.external_id,
                    status="received",
                    payment_status="pending",
                    payment_method=order.payment.method,
                    customer_email=order.customer.email,
                    customer_name=order.customer.name,
                    customer_phone=order.customer.phone,
                    shipping_address=order.shipping_address.model_dump(),
                    currency=order.currency,
                    subtotal_minor=order.subtotal_minor,
                    shipping_minor=order.shipping_minor,
                    total_minor=order.total_minor,
                    units=sum(line.quantity for line in order.lines),
                    delivery=(
                        None
                        if order.delivery is None
                        else order.delivery.model_dump(mode="json")
                    ),
                    created_at=order.placed_at,
                )
                .on_conflict_do_nothing(index_elements=["id"])
            )
            await conn.execute(
                insert(OrderLine).on_conflict_do_nothing(),
                [
                    {"order_id": order.order_id, **line.model_dump()}
                    for line in order.lines
                ],
            )
            await append_event(
                conn,
                order_id=order.order_id,
                event_id=str(uuid.uuid5(uuid.UUID(order.order_id), "order.received")),
                at=order.placed_at,
                type="order.received",
                actor=order.created_by or f"channel:{order.channel}",
                message=f"order {order.number} received from {order.channel}",
                data={"number": order.number, "total_minor": order.total_minor},
            )
            await record_customer(
                conn,
                email=order.customer.email,
                name=order.customer.name,
                phone=order.customer.phone,
                address=order.shipping_address.model_dump(),
                placed_at=order.placed_at,
            )
        activity.logger.info("order %s recorded as %s", order.order_id, order.number)

    @activity.defn
    async def record_order_event(self, event: OrderEventIn) -> None:
        """Apply a status change to the read model and add it to the timeline."""
        changes: dict[str, Any] = {
            name: value
            for name, value in (
                ("status", event.status),
                ("payment_status", event.payment_status),
                ("failure_reason", event.failure_reason),
                ("failure_detail", (event.failure_detail or "")[:500] or None),
                ("cancel_reason", event.cancel_reason),
                ("cancel_note", event.cancel_note),
                ("hold_reason", event.hold_reason),
            )
            if value is not None
        }
        if event.hold_cleared:
            changes["hold_reason"] = None
        async with self._engine.begin() as conn:
            if changes:
                await conn.execute(
                    update(Order).where(Order.id == event.order_id).values(**changes)
                )
            await append_event(
                conn,
                order_id=event.order_id,
                event_id=event.event_id,
                at=event.at,
                type=event.type,
                actor=event.actor,
                message=event.message,
                data=event.data,
            )
        activity.logger.info("order %s: %s", event.order_id, event.message)

    @activity.defn
    async def record_order_change(self, change: OrderChanged) -> None:
        """Store an order's new lines, totals or address, and why they changed."""
        address = change.shipping_address.model_dump()
        async with self._engine.begin() as conn:
            customer_id = (
                await conn.execute(
                    update(Order)
                    .where(Order.id == change.order_id)
                    .values(
                        subtotal_minor=change.subtotal_minor,
                        shipping_minor=change.shipping_minor,
                        total_minor=change.total_minor,
                        units=sum(line.quantity for line in change.lines),
                        shipping_address=address,
                    )
                    .returning(Order.customer_id)
                )
            ).scalar_one_or_none()
            if customer_id is not None:
                await add_address(conn, customer_id, address)
            await conn.execute(
                delete(OrderLine).where(OrderLine.order_id == change.order_id)
            )
            await conn.execute(
                insert(OrderLine),
                [
                    {"order_id": change.order_id, **line.model_dump()}
                    for line in change.lines
                ],
            )
            await append_event(
                conn,
                order_id=change.order_id,
                event_id=change.event_id,
                at=change.at,
                type=change.type,
                actor=change.actor,
                message=change.message,
                data=change.data,
            )
        activity.logger.info("order %s: %s", change.order_id, change.message)
