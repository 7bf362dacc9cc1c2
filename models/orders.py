"""Orders: what an integrator sends, what the workflow holds, what the API shows."""

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from models.money import Currency
from models.returns import (
    LIVE_RETURN_STATUSES,
    ExchangeOf,
    ExchangeShipping,
    RefundDelivery,
    ReturnReason,
    ReturnState,
)
from models.shipping import DeliveryChoice, ShipmentState, ShipmentStatus


class OrderStatus(StrEnum):
    RECEIVED = "received"
    AWAITING_STOCK = "awaiting_stock"
    AWAITING_PAYMENT = "awaiting_payment"
    ON_HOLD = "on_hold"
    CONFIRMED = "confirmed"
    IN_FULFILMENT = "in_fulfilment"
    DELIVERED = "delivered"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


class PaymentStatus(StrEnum):
    PENDING = "pending"
    AUTHORIZED = "authorized"
    PARTIALLY_CAPTURED = "partially_captured"
    CAPTURED = "captured"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    VOIDED = "voided"
    DECLINED = "declined"
    EXPIRED = "expired"


class FailureReason(StrEnum):
    OUT_OF_STOCK = "out_of_stock"
    PAYMENT_DECLINED = "payment_declined"
    PROCESSING_ERROR = "processing_error"


TERMINAL_STATUSES = frozenset(
    {OrderStatus.COMPLETED, OrderStatus.CANCELLED, OrderStatus.FAILED}
)


@dataclass(frozen=True)
class Matching:
    """Metadata for `Annotated[str, ...]`: the whole value matches `pattern`.

    Refused with "... is not {what}"; the pattern is in the JSON schema too, so
    clients can check before they send.
    """

    pattern: str
    what: str

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        compiled = re.compile(self.pattern)

        def check(value: str) -> str:
            if not compiled.fullmatch(value):
                raise ValueError(f"{value[:80]!r} is not {self.what}")
            return value

        return core_schema.no_info_after_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["pattern"] = f"^{self.pattern}$"
        return json_schema


PRINTABLE = Matching(
    r"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*", "free of control characters"
)

Text = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    PRINTABLE,
]
PostalCode = Annotated[str, StringConstraints(min_length=1, max_length=16), PRINTABLE]
CardToken = Annotated[str, StringConstraints(min_length=1, max_length=200), PRINTABLE]
ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=128), PRINTABLE]
Channel = Annotated[
    str,
    Matching(
        r"[a-z0-9][a-z0-9_.-]{0,63}",
        "a channel code (lower-case letters, digits, '.', '_', '-'; up to 64)",
    ),
]
Sku = Annotated[
    str,
    Matching(
        r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", "a SKU (letters, digits, '.', '_', '-')"
    ),
]
Email = Annotated[
    str,
    StringConstraints(max_length=254),
    Matching(
        r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+",
        "an email address",
    ),
]
Country = Annotated[
    str, Matching(r"[A-Z]{2}", "an ISO 3166-1 alpha-2 country code such as DE")
]
Phone = Annotated[str, Matching(r"\+?[0-9 ()-]{5,32}", "a phone number")]
DecimalString = Annotated[
    str, Matching(r"\d{1,12}(\.\d{1,4})?", "a decimal amount such as '19.99'")
]


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class Contract(BaseModel):
    """Base of inbound contracts: unknown fields and control characters refused."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _printable(cls, value: Any) -> Any:
        if isinstance(value, str) and _CONTROL.search(value):
            raise ValueError("control characters are not allowed")
        return value


# Inbound contracts validate strictly; the values the workflows carry do not,
# so that tightening a rule later never stops a running order from replaying.


class Customer(BaseModel):
    email: str
    name: str
    phone: str | None = None


class Address(BaseModel):
    country: str
    city: str
    postal_code: str
    line1: str
    line2: str | None = None
    region: str | None = None


class PaymentDetails(BaseModel):
    method: str
    token: str | None = None


class CustomerIn(Contract):
    email: Email
    name: Text
    phone: Phone | None = None


class AddressIn(Contract):
    country: Country = Field(description="ISO 3166-1 alpha-2 country code, e.g. DE")
    city: Text
    postal_code: PostalCode
    line1: Text
    line2: Text | None = None
    region: Text | None = None


class OrderLineIn(Contract):
    sku: Sku
    quantity: int = Field(ge=1, le=10_000)
    unit_price: DecimalString | None = Field(
        default=None,
        description="price the channel sold at, e.g. '19.99'; else the catalogue's",
    )


class PaymentMethod(StrEnum):
    CARD = "card"
    LINK = "link"
    COD = "cod"


class PaymentIn(Contract):
    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"method": {"const": "card"}}},
            "then": {
                "required": ["token"],
                "properties": {"token": {"type": "string"}},
            },
            "else": {"properties": {"token": {"type": "null"}}},
        }
    )

    method: PaymentMethod = Field(
        description="card: authorized now, captured when shipped; link: the "
        "customer pays a payment link before the order goes on; cod: cash on "
        "delivery, collected by the carrier"
    )
    token: CardToken | None = Field(
        default=None, description="the card token, for method card only"
    )

    @model_validator(mode="after")
    def _token_for_cards_only(self) -> "PaymentIn":
        if self.method == PaymentMethod.CARD and self.token is None:
            raise ValueError("a card payment needs a token")
        if self.method != PaymentMethod.CARD and self.token is not None:
            raise ValueError(f"a {self.method} payment takes no token")
        return self


class OutOfStockPolicy(StrEnum):
    """What a channel's orders do when no warehouse can ship them."""

    REJECT = "reject"
    BACKORDER = "backorder"
    ASK_CUSTOMER = "ask_customer"


class LostParcelPolicy(StrEnum):
    """What happens to the goods of a parcel the carrier lost or sent back."""

    RESHIP = "reship"
    REFUND = "refund"


class OrderPolicy(BaseModel):
    """The channel's rules for one order, fixed when the order is taken in."""

    out_of_stock: OutOfStockPolicy = OutOfStockPolicy.REJECT
    backorder_seconds: float = 14 * 86_400
    ask_customer_seconds: float = 3 * 86_400
    payment_link_seconds: float = 86_400
    max_shipments: int = 3
    warehouses: list[str] | None = None
    lost_parcel: LostParcelPolicy = LostParcelPolicy.RESHIP
    late_after_seconds: float = 3 * 86_400
    # Returns: how long after the last delivery, which reasons staff review
    # first, how long the goods may take to come back, whether the delivery
    # charge is refunded, when an exchange's replacement leaves.
    return_window_seconds: float = 14 * 86_400
    return_review_reasons: list[ReturnReason] = []
    return_goods_seconds: float = 30 * 86_400
    refund_delivery: RefundDelivery = RefundDelivery.FULL_RETURN
    exchange_ships: ExchangeShipping = ExchangeShipping.ON_RECEIPT


class DeliveryChoiceIn(Contract):
    """The delivery option the customer chose from a quote."""

    option: str = Field(
        min_length=3,
        max_length=80,
        pattern=r"^[a-z0-9_-]{1,32}:[a-z_]{1,32}$",
        description="an option's id from POST /v1/delivery/quotes, e.g. "
        "'sandbox:standard'; priced again when the order is created",
    )


class OrderCreate(Contract):
    """Body of `POST /v1/orders`."""

    channel: Channel
    external_id: ExternalId | None = None
    customer: CustomerIn
    shipping_address: AddressIn
    lines: list[OrderLineIn] = Field(min_length=1, max_length=100)
    currency: Currency
    payment: PaymentIn
    delivery: DeliveryChoiceIn | None = Field(
        default=None,
        description="the delivery option chosen; absent: the channel charges "
        "delivery itself and the order ships standard with the default carrier",
    )


class OrderLine(BaseModel):
    line: int
    sku: str
    name: str
    quantity: int
    unit_price_minor: int
    total_minor: int
    cancelled_quantity: int = 0


class CancelReason(StrEnum):
    CUSTOMER_REQUEST = "customer_request"
    OUT_OF_STOCK = "out_of_stock"
    PAYMENT_ISSUE = "payment_issue"
    FRAUD_SUSPECTED = "fraud_suspected"
    DUPLICATE = "duplicate"
    OTHER = "other"
    # Set by the order itself, never by a caller.
    PAYMENT_EXPIRED = "payment_expired"


class Cancellation(BaseModel):
    reason: CancelReason
    note: str | None = None
    actor: str
    at: datetime


class Hold(BaseModel):
    reason: str
    actor: str
    at: datetime
    resume_status: "OrderStatus"


class PaymentLinkInfo(BaseModel):
    url: str
    expires_at: datetime


class PlaceOrder(BaseModel):
    """Input of `OrderWorkflow`: a validated, priced order."""

    order_id: str
    number: str
    channel: str
    external_id: str | None
    customer: Customer
    shipping_address: Address
    currency: str
    lines: list[OrderLine]
    subtotal_minor: int
    shipping_minor: int
    total_minor: int
    payment: PaymentDetails
    placed_at: datetime
    policy: OrderPolicy = OrderPolicy()
    created_by: str | None = None
    delivery: DeliveryChoice | None = None
    # A replacement order: the order and return it exchanges goods for.
    exchange: ExchangeOf | None = None


class OrderState(BaseModel):
    """Everything known about one order: the workflow's query answer."""

    order_id: str
    number: str
    channel: str
    external_id: str | None
    status: OrderStatus
    payment_status: PaymentStatus
    payment_method: str
    failure_reason: FailureReason | None = None
    failure_detail: str | None = None
    customer: Customer
    shipping_address: Address
    currency: str
    lines: list[OrderLine]
    subtotal_minor: int
    shipping_minor: int
    total_minor: int
    authorized_minor: int = 0
    captured_minor: int = 0
    refunded_minor: int = 0
    shipments: list[ShipmentState] = []
    cancellation: Cancellation | None = None
    hold: Hold | None = None
    payment_link: PaymentLinkInfo | None = None
    delivery: DeliveryChoice | None = None
    returns: list[ReturnState] = []
    # Returns are accepted until then (set when the last parcel is delivered).
    return_window_ends: datetime | None = None
    # The number of the order whose returned goods pay for this one.
    replaces: str | None = None
    created_at: datetime
    updated_at: datetime

    @property
    def shipped(self) -> bool:
        """A shipment has left: the order can no longer be cancelled."""
        return any(shipment.has_left for shipment in self.shipments)

    def delivered_units(self) -> dict[int, int]:
        """Units per line that reached the customer."""
        units: dict[int, int] = {}
        for shipment in self.shipments:
            if shipment.status == ShipmentStatus.DELIVERED:
                for item in shipment.lines:
                    units[item.line] = units.get(item.line, 0) + item.quantity
        return units

    def returnable_units(self) -> dict[int, int]:
        """Delivered units per line that no return holds yet."""
        units = self.delivered_units()
        for opened in self.returns:
            # A return whose replacement was placed keeps its units, even
            # expired: the replacement may have left already.
            exchanged = opened.exchange is not None and opened.exchange.order_id
            if opened.status in LIVE_RETURN_STATUSES or exchanged:
                for item in opened.lines:
                    units[item.line] = units.get(item.line, 0) - item.quantity
        return units

    @property
    def picking_started(self) -> bool:
        return any(
            shipment.status not in (ShipmentStatus.PENDING, ShipmentStatus.CANCELLED)
            for shipment in self.shipments
        )

    @classmethod
    def received(cls, order: PlaceOrder) -> "OrderState":
        return cls(
            order_id=order.order_id,
            number=order.number,
            channel=order.channel,
            external_id=order.external_id,
            status=OrderStatus.RECEIVED,
            payment_status=PaymentStatus.PENDING,
            payment_method=order.payment.method,
            customer=order.customer,
            shipping_address=order.shipping_address,
            currency=order.currency,
            lines=order.lines,
            subtotal_minor=order.subtotal_minor,
            shipping_minor=order.shipping_minor,
            total_minor=order.total_minor,
            delivery=order.delivery,
            replaces=None if order.exchange is None else order.exchange.order_number,
            created_at=order.placed_at,
            updated_at=order.placed_at,
        )


class OrderEventIn(BaseModel):
    """Input of `record_order_event`: one timeline entry and the status it sets."""

    order_id: str
    event_id: str
    at: datetime
    type: str
    message: str
    actor: str = "system"
    status: OrderStatus | None = None
    payment_status: PaymentStatus | None = None
    failure_reason: FailureReason | None = None
    failure_detail: str | None = None
    cancel_reason: CancelReason | None = None
    cancel_note: str | None = None
    hold_reason: str | None = None
    hold_cleared: bool = False
    data: dict[str, Any] = {}


class OrderChanged(BaseModel):
    """Input of `record_order_change`: new lines, totals or address, and why."""

    order_id: str
    lines: list[OrderLine]
    subtotal_minor: int
    shipping_minor: int
    total_minor: int
    shipping_address: Address
    event_id: str
    at: datetime
    type: str
    message: str
    actor: str
    data: dict[str, Any] = {}


def workflow_id_for(order_id: str) -> str:
    """The id of the order's workflow, derived from the order id."""
    return f"order-{order_id}"


# An order's workflow, or a shipment or return workflow under it.
_ORDER_WORKFLOW_ID = re.compile(r"order-(.+?)(?:-(?:shipment|return)-[^-]+)?")


def order_id_of(workflow_id: str) -> str | None:
    """The order a workflow belongs to, from its id; None for other workflows."""
    match = _ORDER_WORKFLOW_ID.fullmatch(workflow_id)
    return match.group(1) if match else None
