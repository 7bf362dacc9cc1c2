"""Shipping: warehouse picking and packing, carrier booking and tracking.

Carriers sit behind `activities.carriers.Carrier`; each shipment is booked
with the carrier its order chose (the first one configured by default). The
warehouse side reads each warehouse's `confirmation` setting: `automatic`
warehouses confirm picking and packing by themselves after the sandbox delays,
`manual` ones wait for staff to confirm.
"""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.carriers import Carrier
from activities.inventory import consume_reservations
from db.catalog import Product
from db.inventory import Confirmation, Warehouse
from db.orders import append_event
from db.shipping import Shipment, ShipmentLine, package_code_seq
from models.shipping import (
    Booking,
    BookShipment,
    CancelBooking,
    Packed,
    PackShipment,
    PickingTicket,
    ShipmentEventIn,
    ShipmentState,
    ShipmentStatus,
    Tracking,
    TrackShipment,
)

PACKAGING_GRAMS = 50


# What the read model's shipments table keeps of a shipment's state.
_STORED = {
    "number",
    "warehouse",
    "status",
    "package_code",
    "weight_grams",
    "carrier",
    "tracking_number",
    "label_ref",
    "shipped_at",
    "delivered_at",
    "tracking_status",
    "last_movement_at",
    "late",
}


def _shipment_values(shipment: ShipmentState) -> dict[str, Any]:
    return shipment.model_dump(include=_STORED)


async def _sync_lines(conn: AsyncConnection, shipment: ShipmentState) -> None:
    """After a short pick: the lines hold what was found."""
    await conn.execute(
        delete(ShipmentLine).where(
            ShipmentLine.shipment_id == shipment.shipment_id,
            ShipmentLine.line.not_in([line.line for line in shipment.lines]),
        )
    )
    for line in shipment.lines:
        await conn.execute(
            update(ShipmentLine)
            .where(
                ShipmentLine.shipment_id == shipment.shipment_id,
                ShipmentLine.line == line.line,
            )
            .values(quantity=line.quantity)
        )


class ShippingActivities:
    def __init__(
        self,
        engine: AsyncEngine,
        carriers: Sequence[Carrier],
        *,
        pick_seconds: float,
        pack_seconds: float,
    ) -> None:
        if not carriers:
            raise ValueError("at least one carrier is needed")
        self._engine = engine
        self._carriers = {carrier.name: carrier for carrier in carriers}
        self._default_carrier = carriers[0]
        self._pick_seconds = pick_seconds
        self._pack_seconds = pack_seconds

    @activity.defn
    async def start_picking(self, request: ShipmentEventIn) -> PickingTicket:
        """Create the shipment in the read model and hand it to its warehouse."""
        shipment = request.shipment
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(Shipment)
                .values(
                    id=shipment.shipment_id,
                    order_id=request.order_id,
                    **_shipment_values(shipment),
                )
                .on_conflict_do_nothing(index_elements=["id"])
            )
            await conn.execute(
                insert(ShipmentLine).on_conflict_do_nothing(),
                [
                    {"shipment_id": shipment.shipment_id, **line.model_dump()}
                    for line in shipment.lines
                ],
            )
            await self._append(conn, request)
            confirmation = (
                await conn.execute(
                    select(Warehouse.confirmation).where(
                        Warehouse.code == shipment.warehouse
                    )
                )
            ).scalar_one()
        activity.logger.info(
            "order %s: shipment %s sent to %s for picking",
            request.order_id,
            shipment.number,
            shipment.warehouse,
        )
        automatic = confirmation == Confirmation.AUTOMATIC
        return PickingTicket(
            automatic=automatic,
            pick_after_seconds=self._pick_seconds if automatic else 0.0,
            pack_after_seconds=self._pack_seconds if automatic else 0.0,
        )

    @activity.defn
    async def record_shipment_event(self, request: ShipmentEventIn) -> None:
        """Store the shipment's new state and add the step to the timeline."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(Shipment)
                .where(Shipment.id == request.shipment.shipment_id)
                .values(**_shipment_values(request.shipment))
            )
            if request.shipment.short:
                await _sync_lines(conn, request.shipment)
            await self._append(conn, request)
        activity.logger.info("order %s: %s", request.order_id, request.message)

    @activity.defn
    async def pack_shipment(self, request: PackShipment) -> Packed:
        """Assign the parcel its package code (once) and record it packed."""
        shipment = request.shipment
        async with self._engine.begin() as conn:
            code = (
                await conn.execute(
                    select(Shipment.package_code)
                    .where(Shipment.id == shipment.shipment_id)
                    .with_for_update()
                )
            ).scalar_one()
            if code is None:
                number = (
                    await conn.execute(package_code_seq.next_value())
                ).scalar_one()
                code = f"PKG{number:09d}"
            weight = shipment.weight_grams or await self._weigh(conn, shipment)
            await conn.execute(
                update(Shipment)
                .where(Shipment.id == shipment.shipment_id)
                .values(
                    status=ShipmentStatus.PACKED, package_code=code, weight_grams=weight
                )
            )
            await append_event(
                conn,
                order_id=request.order_id,
                event_id=request.event_id,
                at=request.at,
                type="shipment.packed",
                actor=request.actor,
                message=f"shipment {shipment.number} packed as {code}, {weight} g",
                data={"shipment": shipment.number, "package_code": code},
            )
        activity.logger.info(
            "order %s: shipment %s packed as %s",
            request.order_id,
            shipment.number,
            code,
        )
        return Packed(package_code=code, weight_grams=weight)

    def _carrier(self, name: str | None) -> Carrier:
        if name is None:
            return self._default_carrier
        try:
            return self._carriers[name]
        except KeyError:
            raise ApplicationError(
                f"carrier {name!r} is not configured on this worker",
                type="unknown-carrier",
            ) from None

    async def _book(self, request: BookShipment) -> Booking:
        shipment = request.shipment
        assert shipment.package_code is not None and shipment.weight_grams is not None
        carrier = self._carrier(request.carrier)
        booked = await carrier.book(
            shipment_number=shipment.number,
            package_code=shipment.package_code,
            weight_grams=shipment.weight_grams,
            country=request.country,
            postal_code=request.postal_code,
            service_level=request.service_level,
            idempotency_key=f"{shipment.shipment_id}:book",
        )
        return Booking(
            carrier=carrier.name,
            tracking_number=booked.tracking_number,
            label_ref=booked.label_ref,
            check_after_seconds=booked.check_after_seconds,
        )

    @activity.defn
    async def book_shipment(self, request: BookShipment) -> Booking:
        """Book the packed parcel with its carrier: a tracking number and label."""
        booking = await self._book(request)
        shipment = request.shipment
        async with self._engine.begin() as conn:
            await conn.execute(
                update(Shipment)
                .where(Shipment.id == shipment.shipment_id)
                .values(
                    carrier=booking.carrier,
                    tracking_number=booking.tracking_number,
                    label_ref=booking.label_ref,
                )
            )
            await append_event(
                conn,
                order_id=request.order_id,
                event_id=request.event_id,
                at=request.at,
                type="shipment.booked",
                actor=f"carrier:{booking.carrier}",
                message=(
                    f"shipment {shipment.number} booked with {booking.carrier} "
                    f"({request.service_level}), tracking {booking.tracking_number}"
                ),
                data={
                    "shipment": shipment.number,
                    "carrier": booking.carrier,
                    "service_level": request.service_level,
                    "tracking_number": booking.tracking_number,
                    "label_ref": booking.label_ref,
                },
            )
        activity.logger.info(
            "order %s: shipment %s booked with %s, tracking %s",
            request.order_id,
            shipment.number,
            booking.carrier,
            booking.tracking_number,
        )
        return booking

    @activity.defn
    async def cancel_booking(self, request: CancelBooking) -> None:
        """The booked parcel will not leave: cancel its label with the carrier."""
        booking = request.booking
        await self._carrier(booking.carrier).cancel(
            tracking_number=booking.tracking_number
        )
        async with self._engine.begin() as conn:
            await append_event(
                conn,
                order_id=request.order_id,
                event_id=request.event_id,
                at=request.at,
                type="shipment.booking_cancelled",
                actor="system",
                message=(
                    f"shipment {request.shipment.number}: booking "
                    f"{booking.tracking_number} with {booking.carrier} cancelled"
                ),
                data={
                    "shipment": request.shipment.number,
                    "tracking_number": booking.tracking_number,
                },
            )
        activity.logger.info(
            "order %s: booking %s cancelled",
            request.order_id,
            booking.tracking_number,
        )

    @activity.defn
    async def ship_shipment(self, request: BookShipment) -> Booking:
        """The parcel leaves with its carrier (booked now unless it was at
        packing); its stock leaves the warehouse."""
        shipment = request.shipment
        booking = request.booking or await self._book(request)
        await self._carrier(booking.carrier).hand_over(
            tracking_number=booking.tracking_number
        )
        async with self._engine.begin() as conn:
            shipped_at = (
                await conn.execute(
                    update(Shipment)
                    .where(Shipment.id == shipment.shipment_id)
                    .values(
                        status=ShipmentStatus.SHIPPED,
                        carrier=booking.carrier,
                        tracking_number=booking.tracking_number,
                        label_ref=booking.label_ref,
                        shipped_at=func.coalesce(Shipment.shipped_at, request.at),
                    )
                    .returning(Shipment.shipped_at)
                )
            ).scalar_one()
            units = await consume_reservations(
                conn,
                request.order_id,
                shipment.warehouse,
                [line.line for line in shipment.lines],
            )
            await append_event(
                conn,
                order_id=request.order_id,
                event_id=request.event_id,
                at=request.at,
                type="shipment.shipped",
                actor=f"carrier:{booking.carrier}",
                message=(
                    f"shipment {shipment.number} handed to {booking.carrier}, "
                    f"tracking {booking.tracking_number}"
                ),
                data={
                    "shipment": shipment.number,
                    "tracking_number": booking.tracking_number,
                    "units": units,
                },
            )
        activity.logger.info(
            "order %s: shipment %s shipped, tracking %s",
            request.order_id,
            shipment.number,
            booking.tracking_number,
        )
        return booking.model_copy(update={"shipped_at": shipped_at})

    @activity.defn
    async def track_shipment(self, request: TrackShipment) -> Tracking:
        """Ask the carrier where the parcel is (when no webhook told us)."""
        tracking = await self._carrier(request.carrier).track(
            tracking_number=request.tracking_number, shipped_at=request.shipped_at
        )
        return Tracking(
            delivered=tracking.delivered,
            delivered_at=tracking.delivered_at,
            description=tracking.description,
            check_after_seconds=tracking.check_after_seconds,
        )

    @staticmethod
    async def _append(conn: AsyncConnection, request: ShipmentEventIn) -> None:
        await append_event(
            conn,
            order_id=request.order_id,
            event_id=request.event_id,
            at=request.at,
            type=request.type,
            actor=request.actor,
            message=request.message,
            data={"shipment": request.shipment.number, **request.data},
        )

    @staticmethod
    async def _weigh(conn: AsyncConnection, shipment: ShipmentState) -> int:
        weights = dict(
            (
                await conn.execute(
                    select(Product.sku, Product.weight_grams).where(
                        Product.sku.in_([line.sku for line in shipment.lines])
                    )
                )
            ).all()
        )
        return PACKAGING_GRAMS + sum(
            weights.get(line.sku, 0) * line.quantity for line in shipment.lines
        )
