"""Returns: the read model and timeline, return labels, restocking.

Every activity here is idempotent: the return row is an upsert of the
workflow's state, timeline entries carry the step's event id, and a restock
is recorded once per return and line, so a retried activity changes nothing.
"""

import hashlib
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.carriers import Carrier
from db.inventory import StockLevel, StockMovement
from db.orders import OrderEvent, OrderIntake, append_event, order_number_seq
from db.returns import Return
from models.orders import PlaceOrder
from models.returns import (
    CancelReturnLabel,
    RestockReturn,
    ReturnEventIn,
    ReturnLabel,
    ReturnLabelRequest,
)
from models.shipping import ServiceLevel


class ReturnActivities:
    def __init__(self, engine: AsyncEngine, carriers: Sequence[Carrier]) -> None:
        self._engine = engine
        # Returns travel with the default carrier.
        self._carrier = carriers[0]
        self._carriers = {carrier.name: carrier for carrier in carriers}

    @activity.defn
    async def record_return(self, request: ReturnEventIn) -> None:
        """Store the return as it is now and add the step to the timeline."""
        ret = request.state
        values = {
            "status": ret.status.value,
            "refund_minor": ret.refund_minor,
            "state": ret.model_dump(mode="json"),
            "received_at": ret.received_at,
            "closed_at": ret.closed_at,
        }
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(Return)
                .values(
                    id=ret.return_id,
                    order_id=ret.order_id,
                    rma=ret.rma,
                    workflow_id=ret.workflow_id,
                    channel=ret.channel,
                    reason=ret.reason.value,
                    currency=ret.currency,
                    **values,
                )
                .on_conflict_do_update(index_elements=["id"], set_=values)
            )
            await append_event(
                conn,
                order_id=ret.order_id,
                event_id=request.event_id,
                at=request.at,
                type=request.type,
                actor=request.actor,
                message=request.message,
                data={"return": ret.rma, "status": ret.status.value},
            )
        activity.logger.info("order %s: %s", ret.order_id, request.message)

    @activity.defn
    async def place_exchange(self, draft: PlaceOrder) -> PlaceOrder:
        """Take the replacement order of an exchange in, once per return: it
        gets an order number; a retry finds the order taken in before. The
        order's workflow is started by the original order, so the intake row
        says so already."""
        async with self._engine.begin() as conn:
            number = (await conn.execute(order_number_seq.next_value())).scalar_one()
            order = draft.model_copy(update={"number": f"SO-{number:06d}"})
            payload = order.model_dump(mode="json")
            await conn.execute(
                insert(OrderIntake)
                .values(
                    order_id=order.order_id,
                    number=order.number,
                    channel=order.channel,
                    external_id=order.external_id,
                    request_hash=hashlib.sha256(
                        order.model_dump_json().encode()
                    ).hexdigest(),
                    payload=payload,
                    workflow_started=True,
                )
                .on_conflict_do_nothing()
            )
            stored = (
                await conn.execute(
                    select(OrderIntake.payload).where(
                        OrderIntake.channel == order.channel,
                        OrderIntake.external_id == order.external_id,
                    )
                )
            ).scalar_one()
        placed = PlaceOrder.model_validate(stored)
        exchange = placed.exchange
        assert exchange is not None
        activity.logger.info(
            "order %s: replacement order %s (%s) taken in for return %s",
            exchange.order_id,
            placed.order_id,
            placed.number,
            exchange.rma,
        )
        return placed

    @activity.defn
    async def issue_return_label(self, request: ReturnLabelRequest) -> ReturnLabel:
        """A label for the customer to send the goods back with."""
        ret = request.state
        booked = await self._carrier.book(
            shipment_number=ret.rma,
            package_code=ret.rma,
            weight_grams=1,
            country=request.country,
            postal_code=request.postal_code,
            service_level=ServiceLevel.STANDARD,
            idempotency_key=f"{ret.return_id}:label",
        )
        return ReturnLabel(
            carrier=self._carrier.name,
            tracking_number=booked.tracking_number,
            label_ref=booked.label_ref,
        )

    @activity.defn
    async def cancel_return_label(self, request: CancelReturnLabel) -> None:
        """The goods never came: the unused label is cancelled."""
        carrier = self._carriers.get(request.label.carrier)
        if carrier is None:
            raise ApplicationError(
                f"carrier {request.label.carrier!r} is not configured",
                type="unknown-carrier",
            )
        await carrier.cancel(tracking_number=request.label.tracking_number)

    @activity.defn
    async def restock_return(self, request: RestockReturn) -> None:
        """Accepted units go back on hand in the receiving warehouse, once."""
        units = sum(line.quantity for line in request.lines)
        async with self._engine.begin() as conn:
            first = await conn.execute(
                insert(OrderEvent)
                .values(
                    id=request.event_id,
                    order_id=request.order_id,
                    at=request.at,
                    type="stock.restocked",
                    actor=request.actor[:200],
                    message=f"{units} returned units back on hand in "
                    f"{request.warehouse} (return {request.rma})",
                    data={"return": request.rma, "warehouse": request.warehouse},
                )
                .on_conflict_do_nothing(index_elements=["id"])
                .returning(OrderEvent.id)
            )
            if first.first() is None:
                return
            for line in sorted(request.lines, key=lambda line: (line.sku, line.line)):
                after = (
                    await conn.execute(
                        insert(StockLevel)
                        .values(
                            sku=line.sku,
                            warehouse=request.warehouse,
                            on_hand=line.quantity,
                        )
                        .on_conflict_do_update(
                            index_elements=["sku", "warehouse"],
                            set_={"on_hand": StockLevel.on_hand + line.quantity},
                        )
                        .returning(StockLevel.on_hand)
                    )
                ).scalar_one()
                await conn.execute(
                    insert(StockMovement).values(
                        sku=line.sku,
                        warehouse=request.warehouse,
                        delta=line.quantity,
                        on_hand_after=after,
                        reason=f"return {request.rma}",
                        actor=request.actor[:200],
                    )
                )
        activity.logger.info(
            "order %s: %s units of return %s restocked in %s",
            request.order_id,
            units,
            request.rma,
            request.warehouse,
        )
