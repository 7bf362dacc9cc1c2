"""What support staff and integrators do to a running order.

Each action has an API body (validated strictly, caller's words) and a
workflow update input (what the workflow acts on, with who asked).
"""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from models.orders import (
    PRINTABLE,
    Address,
    AddressIn,
    CancelReason,
    Contract,
    OrderLineIn,
    Text,
)

Note = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=500),
    PRINTABLE,
]
CallerCancelReason = Literal[
    "customer_request",
    "out_of_stock",
    "payment_issue",
    "fraud_suspected",
    "duplicate",
    "other",
]


class LineQuantity(BaseModel):
    line: int = Field(ge=1)
    quantity: int = Field(ge=1, le=10_000)


class CancelRequest(Contract):
    """Body of `POST /v1/orders/{id}/cancel`."""

    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"reason": {"const": "other"}}},
            "then": {"required": ["note"]},
        }
    )

    reason: CallerCancelReason
    note: Note | None = Field(default=None, description="required when reason is other")
    lines: list[LineQuantity] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="cancel only these quantities of these lines; all when absent",
    )

    @model_validator(mode="after")
    def _note_for_other(self) -> "CancelRequest":
        if self.reason == "other" and self.note is None:
            raise ValueError("a cancel for reason other needs a note")
        return self


class CancelOrder(BaseModel):
    """Update `cancel` of the order workflow."""

    reason: CancelReason
    note: str | None = None
    lines: list[LineQuantity] | None = None
    actor: str


class AmendRequest(Contract):
    """Body of `POST /v1/orders/{id}/amend`: what changes, the rest stays."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [{"required": ["shipping_address"]}, {"required": ["lines"]}]
        }
    )

    shipping_address: AddressIn | None = None
    lines: list[OrderLineIn] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="the order's lines as they should be: quantities changed, "
        "lines added or left out; a SKU already ordered keeps its price",
    )

    @model_validator(mode="after")
    def _something_changes(self) -> "AmendRequest":
        if self.shipping_address is None and self.lines is None:
            raise ValueError("an amendment needs shipping_address or lines")
        return self


class AmendLine(BaseModel):
    """One line as it should be; the workflow keeps an ordered SKU's price."""

    sku: str
    name: str
    quantity: int
    unit_price_minor: int | None = None
    catalogue_price_minor: int | None = None


class AmendOrder(BaseModel):
    """Update `amend`: a new address and/or the lines as they should be."""

    shipping_address: Address | None = None
    lines: list[AmendLine] | None = None
    actor: str


class HoldRequest(Contract):
    """Body of `POST /v1/orders/{id}/hold`."""

    reason: Text


class HoldOrder(BaseModel):
    reason: str
    actor: str


class ReleaseOrder(BaseModel):
    actor: str


class PaymentNotification(BaseModel):
    """Signal from the payment provider's webhook about a payment link."""

    event_id: str
    link_id: str | None = None
    kind: Literal["paid", "failed"]
    amount_minor: int
    currency: str
    at: datetime
    detail: str | None = None


class Restock(BaseModel):
    """Signal to an order waiting for stock: these SKUs were restocked."""

    skus: list[str]
