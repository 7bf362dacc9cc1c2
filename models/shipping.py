"""Shipments: the child workflow's input, its activities' messages and its state."""

from datetime import date, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field


class ShipmentStatus(StrEnum):
    PENDING = "pending"
    PICKING = "picking"
    PICKED = "picked"
    PACKED = "packed"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    LOST = "lost"
    RETURNED = "returned"


class ServiceLevel(StrEnum):
    STANDARD = "standard"
    EXPRESS = "express"


class DeliveryChoice(BaseModel):
    """The delivery option an order was placed with, priced at intake."""

    carrier: str
    service_level: ServiceLevel
    option: str
    price_minor: int
    estimated_delivery: date


class ShipmentLine(BaseModel):
    line: int
    sku: str
    quantity: int


class ShipmentState(BaseModel):
    shipment_id: str
    number: str
    warehouse: str
    status: ShipmentStatus = ShipmentStatus.PENDING
    lines: list[ShipmentLine]
    package_code: str | None = None
    weight_grams: int | None = None
    carrier: str | None = None
    tracking_number: str | None = None
    label_ref: str | None = None
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None
    held: bool = False
    # Units of `lines` as first planned that the pickers did not find.
    short: list[ShipmentLine] = []
    # The carrier's last word on the parcel, and whether it stopped moving.
    tracking_status: str | None = None
    last_movement_at: datetime | None = None
    late: bool = False

    @property
    def has_left(self) -> bool:
        return self.status in (ShipmentStatus.SHIPPED, ShipmentStatus.DELIVERED)


class FulfilShipment(BaseModel):
    """Input of `ShipmentWorkflow`."""

    order_id: str
    order_number: str
    shipment: ShipmentState
    country: str
    postal_code: str
    # A parcel with no news from its carrier this long is flagged late.
    late_after_seconds: float = 3 * 86_400
    # The carrier and service the customer chose; None: the default carrier.
    carrier: str | None = None
    service_level: ServiceLevel = ServiceLevel.STANDARD


CarrierEventKind = Literal[
    "in_transit",
    "out_for_delivery",
    "delivered",
    "failed_attempt",
    "returned_to_sender",
    "lost",
]


class CarrierEvent(BaseModel):
    """A carrier's tracking event for a parcel, from its signed webhook."""

    event_id: str
    kind: CarrierEventKind
    at: datetime
    description: str | None = None


class ShipmentEventIn(BaseModel):
    """Input of `record_shipment_event`: a status change and its timeline entry."""

    order_id: str
    shipment: ShipmentState
    event_id: str
    at: datetime
    type: str
    message: str
    actor: str = "system"
    data: dict[str, Any] = {}


class PickingTicket(BaseModel):
    """What the warehouse answers when it is asked to pick a shipment.

    An automatic warehouse confirms picking and packing by itself after the
    given delays; a manual one waits for staff to confirm.
    """

    automatic: bool
    pick_after_seconds: float = 0.0
    pack_after_seconds: float = 0.0


class PackShipment(BaseModel):
    order_id: str
    shipment: ShipmentState
    event_id: str
    at: datetime
    actor: str = "system"


class Packed(BaseModel):
    package_code: str
    weight_grams: int


class Booking(BaseModel):
    carrier: str
    tracking_number: str
    label_ref: str | None = None
    # Set once the parcel has left.
    shipped_at: datetime | None = None
    check_after_seconds: float


class BookShipment(BaseModel):
    """Input of `book_shipment` (a label for the packed parcel) and of
    `ship_shipment` (the parcel leaves; booked here if it was not before)."""

    order_id: str
    shipment: ShipmentState
    country: str
    postal_code: str
    event_id: str
    at: datetime
    carrier: str | None = None
    service_level: ServiceLevel = ServiceLevel.STANDARD
    booking: Booking | None = None


class CancelBooking(BaseModel):
    """Input of `cancel_booking`: the parcel will not leave after all."""

    order_id: str
    shipment: ShipmentState
    booking: Booking
    event_id: str
    at: datetime


class TrackShipment(BaseModel):
    order_id: str
    shipment_id: str
    carrier: str
    tracking_number: str
    shipped_at: datetime


class Tracking(BaseModel):
    delivered: bool
    delivered_at: datetime | None = None
    description: str
    check_after_seconds: float = Field(default=60.0, gt=0)


class PickConfirmation(BaseModel):
    """From warehouse staff: the shipment's lines are picked.

    `found` lists the units found per line when fewer than asked were there
    (a short pick); absent, every unit was found.
    """

    actor: str
    found: list[ShipmentLine] | None = None


class PackConfirmation(BaseModel):
    """Signal from warehouse staff: the parcel is packed and weighed."""

    actor: str
    weight_grams: int | None = Field(default=None, gt=0)


class DeliveryConfirmation(BaseModel):
    """Signal from a carrier's webhook: the parcel was delivered."""

    delivered_at: datetime
    description: str = "delivered"
