"""Returns as the API takes them in and shows them."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.money import Money
from models.order_actions import Note
from models.orders import Contract, Sku
from models.returns import (
    Disposition,
    ReturnLabel,
    ReturnReason,
    ReturnState,
    ReturnStatus,
    Review,
)


class ReturnLineIn(Contract):
    line: int = Field(ge=1, description="the order line's number")
    quantity: int = Field(ge=1, le=10_000)


class ReplacementIn(Contract):
    sku: Sku
    quantity: int = Field(ge=1, le=10_000)


class ReturnRequest(Contract):
    """Body of `POST /v1/orders/{id}/returns`."""

    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"reason": {"const": "other"}}},
            "then": {"required": ["note"]},
        }
    )

    lines: list[ReturnLineIn] = Field(min_length=1, max_length=100)
    reason: ReturnReason
    note: Note | None = Field(default=None, description="required when reason is other")
    replacement: list[ReplacementIn] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="an exchange: what the customer wants instead, priced from "
        "the catalogue; the difference is charged or refunded",
    )

    @model_validator(mode="after")
    def _note_for_other(self) -> "ReturnRequest":
        if self.reason == ReturnReason.OTHER and self.note is None:
            raise ValueError("a return for reason other needs a note")
        return self


class ApproveRequest(Contract):
    """Body of `POST /v1/returns/{id}/approve`."""

    note: Note | None = None


class RejectRequest(Contract):
    """Body of `POST /v1/returns/{id}/reject`."""

    reason: Note


class InspectedLineIn(Contract):
    line: int = Field(ge=1, description="the return line's order line number")
    quantity: int = Field(ge=1, le=10_000)
    outcome: Disposition = Field(
        description="restock: back on the shelf, refunded; write_off: not "
        "sellable, refunded; refuse: not accepted, not refunded"
    )


class ReceivedRequest(Contract):
    """Body of `POST /v1/returns/{id}/received`: what came back, inspected."""

    warehouse: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,32}$",
        description="where the goods arrived; the warehouse they were sent to "
        "when absent",
    )
    lines: list[InspectedLineIn] = Field(
        min_length=1,
        max_length=200,
        description="units per line and outcome; units that did not arrive "
        "are left out (and not refunded)",
    )


class ReturnLinePublic(BaseModel):
    line: int
    sku: str
    name: str
    quantity: int
    unit_price: Money


class ReplacementPublic(BaseModel):
    sku: str
    name: str
    quantity: int
    unit_price: Money


class ExchangePublic(BaseModel):
    lines: list[ReplacementPublic]
    order_id: str | None
    order_number: str | None
    difference: Money | None = Field(
        description="charged on top (positive) or given back (negative)"
    )


class ReturnPublic(BaseModel):
    """A return as the API shows it."""

    id: str
    rma: str
    order_id: str
    order_number: str
    channel: str
    status: ReturnStatus
    reason: ReturnReason
    note: str | None
    lines: list[ReturnLinePublic]
    warehouse: str
    received_warehouse: str | None
    label: ReturnLabel | None
    review: Review | None
    inspection: list[InspectedLineIn]
    exchange: ExchangePublic | None
    refund: Money
    delivery_refund: Money
    opened_by: str
    opened_at: datetime
    goods_due_at: datetime | None
    received_at: datetime | None
    closed_at: datetime | None

    @classmethod
    def of(cls, state: ReturnState) -> "ReturnPublic":
        def money(minor: int) -> Money:
            return Money.of(minor, state.currency)

        exchange = state.exchange
        return cls(
            id=state.return_id,
            rma=state.rma,
            order_id=state.order_id,
            order_number=state.order_number,
            channel=state.channel,
            status=state.status,
            reason=state.reason,
            note=state.note,
            lines=[
                ReturnLinePublic(
                    line=line.line,
                    sku=line.sku,
                    name=line.name,
                    quantity=line.quantity,
                    unit_price=money(line.unit_price_minor),
                )
                for line in state.lines
            ],
            warehouse=state.warehouse,
            received_warehouse=state.received_warehouse,
            label=state.label,
            review=state.review,
            inspection=[
                InspectedLineIn.model_validate(item.model_dump())
                for item in state.inspection
            ],
            exchange=(
                None
                if exchange is None
                else ExchangePublic(
                    lines=[
                        ReplacementPublic(
                            sku=line.sku,
                            name=line.name,
                            quantity=line.quantity,
                            unit_price=money(line.unit_price_minor),
                        )
                        for line in exchange.lines
                    ],
                    order_id=exchange.order_id,
                    order_number=exchange.order_number,
                    difference=(
                        None
                        if exchange.difference_minor is None
                        else money(exchange.difference_minor)
                    ),
                )
            ),
            refund=money(state.refund_minor),
            delivery_refund=money(state.delivery_refund_minor),
            opened_by=state.opened_by,
            opened_at=state.opened_at,
            goods_due_at=state.goods_due_at,
            received_at=state.received_at,
            closed_at=state.closed_at,
        )
