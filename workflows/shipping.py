"""ShipmentWorkflow: one parcel from picking to delivery, a child of its order."""

import asyncio
from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from models.inventory import StockLine, WriteOffShort
    from models.shipping import (
        Booking,
        BookShipment,
        CancelBooking,
        CarrierEvent,
        DeliveryConfirmation,
        FulfilShipment,
        PackConfirmation,
        Packed,
        PackShipment,
        PickConfirmation,
        PickingTicket,
        ShipmentEventIn,
        ShipmentLine,
        ShipmentState,
        ShipmentStatus,
        Tracking,
        TrackShipment,
    )
    from workflows.steps import run_step

Condition = Callable[[], bool]


class _Stopped(Exception):
    """The order stopped this shipment before it left."""


def _refuse(rule: str, message: str) -> None:
    raise ApplicationError(message, type=rule, non_retryable=True)


@workflow.defn
class ShipmentWorkflow:
    @workflow.init
    def __init__(self, request: FulfilShipment) -> None:
        self._request = request
        self._shipment = request.shipment.model_copy(deep=True)
        self._picked: PickConfirmation | None = None
        self._packed: PackConfirmation | None = None
        self._delivered: DeliveryConfirmation | None = None
        self._stop_requested = False
        self._held = False
        self._leaving = False
        self._events: list[CarrierEvent] = []
        self._seen_events: set[str] = set()
        self._gone: CarrierEvent | None = None
        self._booking: Booking | None = None

    @workflow.run
    async def run(self, request: FulfilShipment) -> ShipmentState:
        try:
            return await self._fulfil()
        except _Stopped:
            await self._cancel_booking()
            self._shipment.status = ShipmentStatus.CANCELLED
            await self._record(
                "shipment.cancelled",
                f"shipment {self._shipment.number} stopped before it left",
                "system",
            )
            return self._shipment
        except asyncio.CancelledError:
            if not self._shipment.has_left:
                await self._cancel_booking()
                self._shipment.status = ShipmentStatus.CANCELLED
                await self._record(
                    "shipment.cancelled",
                    f"shipment {self._shipment.number} cancelled before it left",
                    "system",
                )
            raise

    async def _fulfil(self) -> ShipmentState:
        ticket = await self._start_picking()
        picked_by = await self._picking_done(ticket)
        if self._picked is not None and self._picked.found is not None:
            if not await self._short_picked(self._picked.found, picked_by):
                return self._shipment
        self._shipment.status = ShipmentStatus.PICKED
        await self._record(
            "shipment.picked", f"shipment {self._shipment.number} picked", picked_by
        )
        packed_by = await self._packing_done(ticket)
        await self._pack(packed_by)
        if workflow.patched("book-at-packing"):
            # The label goes on the parcel at the packing table.
            await self._book()
        # A held order does not leave the warehouse.
        await self._until_released()
        if self._stop_requested:
            raise _Stopped
        # From here on the parcel is leaving: stop and hold no longer apply.
        self._leaving = True
        booking = await self._ship()
        if await self._track(booking):
            await self._deliver()
        return self._shipment

    @workflow.query
    def state(self) -> ShipmentState:
        return self._shipment

    @workflow.signal
    def confirm_picked(self, confirmation: PickConfirmation) -> None:
        self._picked = self._picked or confirmation

    @workflow.signal
    def confirm_packed(self, confirmation: PackConfirmation) -> None:
        self._packed = self._packed or confirmation

    @workflow.update
    async def pick(self, confirmation: PickConfirmation) -> ShipmentState:
        """Warehouse staff confirm the picking; answered once it is recorded."""
        self.confirm_picked(confirmation)
        await workflow.wait_condition(
            lambda: self._shipment.status != ShipmentStatus.PICKING
        )
        return self._shipment

    @pick.validator
    def _check_pick(self, confirmation: PickConfirmation) -> None:
        if self._shipment.status != ShipmentStatus.PICKING or self._picked:
            _refuse("not-picking", f"the shipment is {self._shipment.status}")
        if confirmation.found is None:
            return
        asked = {line.line: line.quantity for line in self._shipment.lines}
        for line in confirmation.found:
            if line.line not in asked:
                _refuse("invalid-lines", f"the shipment has no line {line.line}")
            if not 0 <= line.quantity <= asked[line.line]:
                _refuse(
                    "invalid-lines",
                    f"line {line.line}: between 0 and {asked[line.line]} units",
                )

    @workflow.update
    async def pack(self, confirmation: PackConfirmation) -> ShipmentState:
        """Warehouse staff confirm the packing; answered with the package code."""
        self.confirm_packed(confirmation)
        await workflow.wait_condition(
            lambda: self._shipment.status != ShipmentStatus.PICKED
        )
        return self._shipment

    @pack.validator
    def _check_pack(self, confirmation: PackConfirmation) -> None:
        if self._shipment.status != ShipmentStatus.PICKED or self._packed:
            _refuse("not-picked", f"the shipment is {self._shipment.status}")

    @workflow.signal
    def confirm_delivered(self, confirmation: DeliveryConfirmation) -> None:
        self._delivered = self._delivered or confirmation

    @workflow.signal
    def carrier_event(self, event: CarrierEvent) -> None:
        """A tracking event from the carrier's webhook; each counts once."""
        if event.event_id not in self._seen_events:
            self._seen_events.add(event.event_id)
            self._events.append(event)

    @workflow.signal
    def stop(self) -> None:
        """The order asks to stop this shipment if it has not started leaving."""
        self._stop_requested = True

    @workflow.signal
    async def hold(self) -> None:
        """The order is on hold: do not leave the warehouse until released.

        The order learns that the hold took (or that the parcel is leaving
        already) from the progress this reports.
        """
        if self._leaving:
            return
        self._held = True
        self._shipment.held = True
        await self._report()

    @workflow.signal
    async def release(self) -> None:
        self._held = False
        if self._shipment.held:
            self._shipment.held = False
            await self._report()

    async def _until_released(self) -> None:
        await workflow.wait_condition(lambda: not self._held or self._stop_requested)
        if self._stop_requested:
            raise _Stopped

    async def _start_picking(self) -> PickingTicket:
        self._shipment.status = ShipmentStatus.PICKING
        ticket = await run_step(
            "start_picking",
            self._event(
                "shipment.picking",
                f"shipment {self._shipment.number} sent to "
                f"{self._shipment.warehouse} for picking",
            ),
            PickingTicket,
            summary="start picking",
        )
        await self._report()
        return ticket

    async def _picking_done(self, ticket: PickingTicket) -> str:
        automatic = ticket.pick_after_seconds if ticket.automatic else None
        if await self._confirmed(lambda: self._picked is not None, automatic):
            assert self._picked is not None
            return self._picked.actor
        return f"warehouse:{self._shipment.warehouse}"

    async def _packing_done(self, ticket: PickingTicket) -> str:
        automatic = ticket.pack_after_seconds if ticket.automatic else None
        if await self._confirmed(lambda: self._packed is not None, automatic):
            assert self._packed is not None
            self._shipment.weight_grams = self._packed.weight_grams
            return self._packed.actor
        return f"warehouse:{self._shipment.warehouse}"

    async def _short_picked(self, found: list[ShipmentLine], actor: str) -> bool:
        """Fewer units were found than asked: write the rest off and tell the
        order, which sources them elsewhere. False if nothing is left to ship."""
        counted = {line.line: line.quantity for line in found}
        lines, short = [], []
        for line in self._shipment.lines:
            there = counted.get(line.line, line.quantity)
            if there:
                lines.append(line.model_copy(update={"quantity": there}))
            if there < line.quantity:
                short.append(
                    line.model_copy(update={"quantity": line.quantity - there})
                )
        if not short:
            return True
        await run_step(
            "write_off_short",
            WriteOffShort(
                order_id=self._request.order_id,
                shipment_number=self._shipment.number,
                warehouse=self._shipment.warehouse,
                lines=[
                    StockLine(line=line.line, sku=line.sku, quantity=line.quantity)
                    for line in short
                ],
                actor=actor,
                event_id=str(workflow.uuid4()),
                at=workflow.now(),
            ),
            type(None),
            summary="write off units not found",
        )
        self._shipment.lines = lines
        self._shipment.short = short
        if lines:
            return True
        self._shipment.status = ShipmentStatus.CANCELLED
        await self._record(
            "shipment.cancelled",
            f"shipment {self._shipment.number}: none of its units were found",
            actor,
        )
        return False

    async def _pack(self, actor: str) -> None:
        packed = await run_step(
            "pack_shipment",
            PackShipment(
                order_id=self._request.order_id,
                shipment=self._shipment,
                event_id=str(workflow.uuid4()),
                at=workflow.now(),
                actor=actor,
            ),
            Packed,
            summary="pack",
        )
        self._shipment.status = ShipmentStatus.PACKED
        self._shipment.package_code = packed.package_code
        self._shipment.weight_grams = packed.weight_grams
        await self._report()

    def _booking_request(self) -> BookShipment:
        return BookShipment(
            order_id=self._request.order_id,
            shipment=self._shipment,
            country=self._request.country,
            postal_code=self._request.postal_code,
            event_id=str(workflow.uuid4()),
            at=workflow.now(),
            carrier=self._request.carrier,
            service_level=self._request.service_level,
            booking=self._booking,
        )

    async def _book(self) -> None:
        """Book the packed parcel with its carrier: tracking number and label."""
        self._booking = await run_step(
            "book_shipment", self._booking_request(), Booking, summary="book carrier"
        )
        self._shipment.carrier = self._booking.carrier
        self._shipment.tracking_number = self._booking.tracking_number
        self._shipment.label_ref = self._booking.label_ref
        await self._report()

    async def _cancel_booking(self) -> None:
        """The booked parcel stays in the warehouse: its label is cancelled."""
        if self._booking is None:
            return
        booking, self._booking = self._booking, None
        await run_step(
            "cancel_booking",
            CancelBooking(
                order_id=self._request.order_id,
                shipment=self._shipment,
                booking=booking,
                event_id=str(workflow.uuid4()),
                at=workflow.now(),
            ),
            type(None),
            summary="cancel carrier booking",
        )

    async def _ship(self) -> Booking:
        booking = await run_step(
            "ship_shipment",
            self._booking_request(),
            Booking,
            summary="hand to carrier" if self._booking else "book carrier and ship",
        )
        assert booking.shipped_at is not None
        self._booking = booking
        self._shipment.status = ShipmentStatus.SHIPPED
        self._shipment.carrier = booking.carrier
        self._shipment.tracking_number = booking.tracking_number
        self._shipment.label_ref = booking.label_ref
        self._shipment.shipped_at = booking.shipped_at
        await self._report()
        return booking

    async def _track(self, booking: Booking) -> bool:
        """Follow the parcel until it is delivered (True) or lost or sent back.

        The carrier's webhooks arrive as signals; between them the carrier is
        asked when it said to ask again. A parcel with no movement for
        `late_after_seconds` is flagged late, once per silence.
        """
        late_after = timedelta(seconds=self._request.late_after_seconds)
        shipped_at = booking.shipped_at
        assert shipped_at is not None
        next_check = workflow.now() + timedelta(seconds=booking.check_after_seconds)
        while self._delivered is None and self._gone is None:
            silent_since = self._shipment.last_movement_at or shipped_at
            due = next_check
            if not self._shipment.late:
                due = min(due, silent_since + late_after)
            wait = (due - workflow.now()).total_seconds()
            if await self._confirmed(self._tracking_news, wait):
                await self._take_events(booking)
                continue
            if workflow.now() < next_check:
                self._shipment.late = True
                since = silent_since.isoformat(timespec="minutes")
                await self._record(
                    "shipment.late",
                    f"shipment {self._shipment.number}: no news from "
                    f"{booking.carrier} since {since}",
                    "system",
                )
                continue
            tracking = await run_step(
                "track_shipment",
                TrackShipment(
                    order_id=self._request.order_id,
                    shipment_id=self._shipment.shipment_id,
                    carrier=booking.carrier,
                    tracking_number=booking.tracking_number,
                    shipped_at=shipped_at,
                ),
                Tracking,
                summary="track parcel",
            )
            if tracking.delivered and tracking.delivered_at is not None:
                self._delivered = DeliveryConfirmation(
                    delivered_at=tracking.delivered_at,
                    description=tracking.description,
                )
            next_check = workflow.now() + timedelta(
                seconds=tracking.check_after_seconds
            )
        if self._gone is None:
            return True
        lost = self._gone.kind == "lost"
        self._shipment.status = ShipmentStatus.LOST if lost else ShipmentStatus.RETURNED
        what = "lost" if lost else "returned to the sender"
        await self._record(
            "shipment.lost" if lost else "shipment.returned",
            f"shipment {self._shipment.number} {what}"
            + (f": {self._gone.description}" if self._gone.description else ""),
            f"carrier:{booking.carrier}",
        )
        return False

    def _tracking_news(self) -> bool:
        return self._delivered is not None or bool(self._events)

    async def _take_events(self, booking: Booking) -> None:
        while self._events:
            event = self._events.pop(0)
            self._shipment.tracking_status = event.kind
            self._shipment.last_movement_at = event.at
            self._shipment.late = False
            if event.kind == "delivered":
                self._delivered = DeliveryConfirmation(
                    delivered_at=event.at, description=event.description or "delivered"
                )
            elif event.kind in ("lost", "returned_to_sender"):
                self._gone = event
            else:
                await self._record(
                    f"shipment.{event.kind}",
                    f"shipment {self._shipment.number}: "
                    + (event.description or event.kind.replace("_", " ")),
                    f"carrier:{booking.carrier}",
                )

    async def _deliver(self) -> None:
        assert self._delivered is not None
        self._shipment.status = ShipmentStatus.DELIVERED
        self._shipment.delivered_at = self._delivered.delivered_at
        said = self._delivered.description
        await self._record(
            "shipment.delivered",
            f"shipment {self._shipment.number} delivered"
            + ("" if said == "delivered" else f": {said}"),
            f"carrier:{self._shipment.carrier}",
        )

    async def _confirmed(self, done: Condition, timeout: float | None) -> bool:
        """Wait until `done()`; True if it happened, False if `timeout` ran out.

        Before the parcel leaves, a stop request ends the wait (and the
        shipment) at once.
        """
        leaving = self._shipment.has_left
        if timeout is not None and timeout <= 0:
            return done()
        try:
            await workflow.wait_condition(
                lambda: done() or (self._stop_requested and not leaving),
                timeout=None if timeout is None else timedelta(seconds=timeout),
            )
        except TimeoutError:
            return False
        if self._stop_requested and not leaving:
            raise _Stopped
        return True

    async def _record(self, event_type: str, message: str, actor: str) -> None:
        await run_step(
            "record_shipment_event",
            self._event(event_type, message, actor),
            type(None),
            summary=event_type,
        )
        await self._report()

    async def _report(self) -> None:
        """Tell the order workflow where this shipment is now."""
        parent = workflow.info().parent
        if parent is not None:
            await workflow.get_external_workflow_handle(
                parent.workflow_id, run_id=parent.run_id
            ).signal("shipment_progress", self._shipment)

    def _event(
        self, event_type: str, message: str, actor: str = "system"
    ) -> ShipmentEventIn:
        return ShipmentEventIn(
            order_id=self._request.order_id,
            shipment=self._shipment,
            event_id=str(workflow.uuid4()),
            at=workflow.now(),
            type=event_type,
            message=message,
            actor=actor,
        )
