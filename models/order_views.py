"""Orders as the API shows them."""

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field

from models.customers import customer_id_for, customer_url
from models.money import Money
from models.orders import (
    Address,
    Cancellation,
    Customer,
    FailureReason,
    Hold,
    OrderState,
    OrderStatus,
    PaymentLinkInfo,
    PaymentStatus,
)
from models.return_views import ReturnPublic
from models.rules import allowed_actions
from models.shipping import ServiceLevel, ShipmentState


class OrderLinePublic(BaseModel):
    line: int
    sku: str
    name: str
    quantity: int
    cancelled_quantity: int
    unit_price: Money
    total: Money


class Totals(BaseModel):
    subtotal: Money
    shipping: Money
    total: Money


class DeliveryPublic(BaseModel):
    """The delivery option the order was placed with, and what it cost."""

    option: str
    carrier: str
    service_level: ServiceLevel
    price: Money
    estimated_delivery: date


class PaymentPublic(BaseModel):
    method: str
    status: PaymentStatus
    authorized: Money
    captured: Money
    refunded: Money
    link: PaymentLinkInfo | None = None


class OrderPublic(BaseModel):
    """An order as the API shows it."""

    id: str
    number: str
    channel: str
    external_id: str | None
    status: OrderStatus
    failure_reason: FailureReason | None
    failure_detail: str | None
    customer: Customer
    customer_id: str = Field(description="the customer's card: see customer_url")
    customer_url: str
    shipping_address: Address
    currency: str
    lines: list[OrderLinePublic]
    totals: Totals
    delivery: DeliveryPublic | None
    payment: PaymentPublic
    shipments: list[ShipmentState]
    returns: list[ReturnPublic]
    return_window_ends: datetime | None
    replaces: str | None = Field(
        default=None,
        description="the order whose returned goods pay for this one (an exchange)",
    )
    cancellation: Cancellation | None
    hold: Hold | None
    allowed_actions: list[str]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, state: OrderState) -> "OrderPublic":
        def money(minor: int) -> Money:
            return Money.of(minor, state.currency)

        customer_id = customer_id_for(state.customer.email)
        return cls(
            id=state.order_id,
            number=state.number,
            channel=state.channel,
            external_id=state.external_id,
            status=state.status,
            failure_reason=state.failure_reason,
            failure_detail=state.failure_detail,
            customer=state.customer,
            customer_id=customer_id,
            customer_url=customer_url(customer_id),
            shipping_address=state.shipping_address,
            currency=state.currency,
            lines=[
                OrderLinePublic(
                    line=line.line,
                    sku=line.sku,
                    name=line.name,
                    quantity=line.quantity,
                    cancelled_quantity=line.cancelled_quantity,
                    unit_price=money(line.unit_price_minor),
                    total=money(line.total_minor),
                )
                for line in state.lines
            ],
            totals=Totals(
                subtotal=money(state.subtotal_minor),
                shipping=money(state.shipping_minor),
                total=money(state.total_minor),
            ),
            delivery=(
                None
                if state.delivery is None
                else DeliveryPublic(
                    option=state.delivery.option,
                    carrier=state.delivery.carrier,
                    service_level=state.delivery.service_level,
                    price=money(state.delivery.price_minor),
                    estimated_delivery=state.delivery.estimated_delivery,
                )
            ),
            payment=PaymentPublic(
                method=state.payment_method,
                status=state.payment_status,
                authorized=money(state.authorized_minor),
                captured=money(state.captured_minor),
                refunded=money(state.refunded_minor),
                link=state.payment_link,
            ),
            shipments=state.shipments,
            returns=[ReturnPublic.of(ret) for ret in state.returns],
            return_window_ends=state.return_window_ends,
            replaces=state.replaces,
            cancellation=state.cancellation,
            hold=state.hold,
            allowed_actions=allowed_actions(state),
            created_at=state.created_at,
            updated_at=state.updated_at,
        )


class OrderSummary(BaseModel):
    """One row of `GET /v1/orders`."""

    id: str
    number: str
    channel: str
    external_id: str | None
    status: OrderStatus
    payment_status: PaymentStatus
    failure_reason: FailureReason | None
    customer_email: str
    customer_id: str
    customer_url: str
    total: Money
    created_at: datetime
    updated_at: datetime


class TimelineEntry(BaseModel):
    at: datetime
    type: str
    actor: str
    message: str
    data: dict[str, Any]
