"""Returns: what a customer sends back, what the warehouse finds, what is refunded.

A return lives in its own child workflow of the order:

    pending_review -> awaiting_goods -> received -> closed
           |                 |
        rejected          expired

`pending_review` only for reasons the channel wants staff to look at;
`received` once the warehouse has counted and inspected the goods, until the
order has settled the money; `closed` with the refund made.
"""

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from models.inventory import StockLine


class ReturnReason(StrEnum):
    DAMAGED = "damaged"
    WRONG_ITEM = "wrong_item"
    NOT_AS_DESCRIBED = "not_as_described"
    CHANGED_MIND = "changed_mind"
    SIZE_OR_FIT = "size_or_fit"
    OTHER = "other"


class ReturnStatus(StrEnum):
    PENDING_REVIEW = "pending_review"
    AWAITING_GOODS = "awaiting_goods"
    RECEIVED = "received"
    CLOSED = "closed"
    REJECTED = "rejected"
    EXPIRED = "expired"


# Returns that still hold their units (nobody may return them again).
LIVE_RETURN_STATUSES = frozenset(
    {
        ReturnStatus.PENDING_REVIEW,
        ReturnStatus.AWAITING_GOODS,
        ReturnStatus.RECEIVED,
        ReturnStatus.CLOSED,
    }
)
OPEN_RETURN_STATUSES = frozenset(
    {ReturnStatus.PENDING_REVIEW, ReturnStatus.AWAITING_GOODS, ReturnStatus.RECEIVED}
)


class Disposition(StrEnum):
    """What the warehouse does with returned units after inspection."""

    RESTOCK = "restock"  # accepted, back on the shelf: refunded
    WRITE_OFF = "write_off"  # accepted, not sellable: refunded
    REFUSE = "refuse"  # not accepted (not as the customer said): not refunded


ACCEPTED = frozenset({Disposition.RESTOCK, Disposition.WRITE_OFF})


class RefundDelivery(StrEnum):
    """When a return gives the delivery charge back too."""

    NEVER = "never"
    # Once every delivered unit has come back and been accepted.
    FULL_RETURN = "full_return"


class ExchangeShipping(StrEnum):
    """When a replacement leaves: after the return arrives, or at once."""

    ON_RECEIPT = "on_receipt"
    AT_ONCE = "at_once"


class ReturnLine(BaseModel):
    line: int
    sku: str
    name: str
    quantity: int
    unit_price_minor: int


class InspectedLine(BaseModel):
    line: int = Field(ge=1)
    quantity: int = Field(ge=1, le=10_000)
    outcome: Disposition


class ReplacementLine(BaseModel):
    """A unit the customer wants instead, priced when the return was opened."""

    sku: str
    name: str
    quantity: int
    unit_price_minor: int


# The payment method of a replacement order: paid with the returned goods.
EXCHANGE = "exchange"


class Exchange(BaseModel):
    lines: list[ReplacementLine]
    # The replacement order, once placed.
    order_id: str | None = None
    order_number: str | None = None
    # What the customer paid on top (> 0) or got back (< 0) for it, once settled.
    difference_minor: int | None = None

    @property
    def value_minor(self) -> int:
        return sum(line.unit_price_minor * line.quantity for line in self.lines)


class ReturnLabel(BaseModel):
    carrier: str
    tracking_number: str
    label_ref: str


class Review(BaseModel):
    approved: bool
    actor: str
    note: str | None = None
    at: datetime


class ReturnState(BaseModel):
    """Everything known about one return: the child workflow's query answer."""

    return_id: str
    # The order's first, second... return.
    number: int
    rma: str
    order_id: str
    order_number: str
    channel: str
    currency: str
    status: ReturnStatus
    reason: ReturnReason
    note: str | None = None
    lines: list[ReturnLine]
    # Where the goods are to go (the warehouse that shipped them), and where
    # they arrived.
    warehouse: str
    received_warehouse: str | None = None
    label: ReturnLabel | None = None
    review: Review | None = None
    inspection: list[InspectedLine] = []
    exchange: Exchange | None = None
    refund_minor: int = 0
    delivery_refund_minor: int = 0
    opened_by: str
    opened_at: datetime
    goods_due_at: datetime | None = None
    received_at: datetime | None = None
    closed_at: datetime | None = None

    @property
    def workflow_id(self) -> str:
        return f"order-{self.order_id}-return-{self.number}"

    @property
    def open(self) -> bool:
        return self.status in OPEN_RETURN_STATUSES

    def accepted_units(self) -> dict[int, int]:
        units: dict[int, int] = {}
        for item in self.inspection:
            if item.outcome in ACCEPTED:
                units[item.line] = units.get(item.line, 0) + item.quantity
        return units

    def accepted_value_minor(self) -> int:
        prices = {line.line: line.unit_price_minor for line in self.lines}
        return sum(
            prices[line] * units for line, units in self.accepted_units().items()
        )


class OpenReturn(BaseModel):
    """Update `request_return` of the order workflow."""

    return_id: str
    lines: list["ReturnedQuantity"]
    reason: ReturnReason
    note: str | None = None
    replacement: list[ReplacementLine] | None = None
    actor: str


class ReturnedQuantity(BaseModel):
    line: int = Field(ge=1)
    quantity: int = Field(ge=1, le=10_000)


class StartReturn(BaseModel):
    """Input of `ReturnWorkflow`."""

    state: ReturnState
    country: str
    postal_code: str
    # Without a decision by then, a review or the goods expire.
    review_seconds: float
    goods_seconds: float


class ReviewReturn(BaseModel):
    """Update `approve` or `reject` of the return workflow."""

    actor: str
    note: str | None = None


class ReceiveReturn(BaseModel):
    """Update `receive`: the goods arrived at a warehouse and were inspected."""

    actor: str
    warehouse: str | None = None
    lines: list[InspectedLine]


class Settlement(BaseModel):
    """Signal from the order to its return: what to refund, from which payment."""

    payment_id: str | None
    goods_minor: int
    delivery_minor: int = 0
    # An exchange: what the replacement cost beyond (> 0) or below (< 0) the
    # accepted goods; a positive difference the order has charged already.
    difference_minor: int | None = None

    @property
    def amount_minor(self) -> int:
        return self.goods_minor + self.delivery_minor


class ExchangePlaced(BaseModel):
    """Signal from the order to its return: the replacement order exists."""

    order_id: str
    order_number: str


class ExchangeOf(BaseModel):
    """On a replacement order: the order and return whose goods pay for it."""

    order_id: str
    order_number: str
    return_id: str
    rma: str
    # Ship only once the returned goods are in (else at once).
    wait_for_goods: bool


class ExchangeGoods(BaseModel):
    """Signal to a replacement order: the returned goods came, or never will."""

    received: bool
    message: str


class ReturnEventIn(BaseModel):
    """Input of `record_return`: the return as it is now and its timeline entry."""

    state: ReturnState
    event_id: str
    at: datetime
    type: str
    message: str
    actor: str = "system"


class ReturnLabelRequest(BaseModel):
    order_id: str
    state: ReturnState
    country: str
    postal_code: str


class CancelReturnLabel(BaseModel):
    order_id: str
    label: ReturnLabel


class RestockReturn(BaseModel):
    """Input of `restock_return`: accepted units back on the shelf, once."""

    order_id: str
    return_id: str
    rma: str
    warehouse: str
    lines: list[StockLine]
    event_id: str
    at: datetime
    actor: str


OpenReturn.model_rebuild()


class Owed(BaseModel):
    """What settling one inspected return moves: refunds and a charge."""

    goods_minor: int
    delivery_minor: int
    # An exchange whose replacement is worth more than the accepted goods.
    charge_minor: int
    # Replacement value minus accepted value (None without an exchange).
    difference_minor: int | None


def settle_return(
    *,
    accepted_minor: int,
    credit_minor: int | None,
    delivery_minor: int,
    left_minor: int,
) -> Owed:
    """The money of one inspected return.

    `accepted_minor` is the value of the accepted units, `credit_minor` what
    an exchange's replacement is worth (it is paid with those units),
    `delivery_minor` the delivery charge due back by policy and `left_minor`
    what is left of the captured money after every earlier refund and every
    refund promised to other returns. Refunds never exceed `left_minor`; a
    replacement worth more than the goods is charged, never refunded.
    """
    credit = credit_minor or 0
    owed = accepted_minor - credit
    left = max(left_minor, 0)
    goods = min(max(owed, 0), left)
    delivery = min(max(delivery_minor, 0), left - goods)
    return Owed(
        goods_minor=goods,
        delivery_minor=delivery,
        charge_minor=max(-owed, 0),
        difference_minor=None if credit_minor is None else credit - accepted_minor,
    )


class ReturnLedger(BaseModel):
    """The money of an order's returns: refunds settled but not made yet.

    The order settles one inspected return at a time against what is left of
    its captured money after every refund made and every refund promised, so
    however the returns of an order interleave, their refunds together never
    exceed what was captured.
    """

    promised: dict[str, int] = {}

    def left_minor(self, captured_minor: int, refunded_minor: int) -> int:
        return captured_minor - refunded_minor - sum(self.promised.values())

    def settle(
        self,
        return_id: str,
        *,
        captured_minor: int,
        refunded_minor: int,
        accepted_minor: int,
        credit_minor: int | None,
        delivery_minor: int,
    ) -> Owed:
        owed = settle_return(
            accepted_minor=accepted_minor,
            credit_minor=credit_minor,
            delivery_minor=delivery_minor,
            left_minor=self.left_minor(captured_minor, refunded_minor),
        )
        self.promised[return_id] = owed.goods_minor + owed.delivery_minor
        return owed

    def closed(self, return_id: str) -> None:
        """The return made its refund (or had none): nothing is promised."""
        self.promised.pop(return_id, None)
