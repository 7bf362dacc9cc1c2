"""Bulk exports of orders: one NDJSON object per order, or CSV per order line."""

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel

from models.money import Money
from models.order_views import OrderLinePublic
from models.orders import Address


class ExportFormat(StrEnum):
    CSV = "csv"
    NDJSON = "ndjson"


MEDIA_TYPES = {
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.NDJSON: "application/x-ndjson",
}


class ExportedOrder(BaseModel):
    """One line of an NDJSON export."""

    id: str
    number: str
    channel: str
    external_id: str | None
    status: str
    payment_status: str
    payment_method: str
    customer_id: str
    customer_email: str
    customer_name: str
    customer_phone: str | None
    shipping_address: Address
    currency: str
    subtotal: Money
    shipping: Money
    total: Money
    captured: Money
    refunded: Money
    cancel_reason: str | None
    created_at: datetime
    updated_at: datetime
    lines: list[OrderLinePublic]


# A CSV export has one row per order line: the order's columns repeat on each.
CSV_COLUMNS = [
    "order_id",
    "number",
    "channel",
    "external_id",
    "created_at",
    "updated_at",
    "status",
    "payment_status",
    "payment_method",
    "customer_id",
    "customer_email",
    "customer_name",
    "customer_phone",
    "ship_country",
    "ship_city",
    "ship_postal_code",
    "currency",
    "order_subtotal",
    "order_shipping",
    "order_total",
    "captured",
    "refunded",
    "cancel_reason",
    "line",
    "sku",
    "name",
    "quantity",
    "cancelled_quantity",
    "unit_price",
    "line_total",
]


def csv_rows(order: ExportedOrder) -> list[list[str]]:
    """The CSV rows of one order, in `CSV_COLUMNS` order; amounts are decimal
    strings in the order's currency."""
    address = order.shipping_address
    head = [
        order.id,
        order.number,
        order.channel,
        order.external_id or "",
        order.created_at.isoformat(),
        order.updated_at.isoformat(),
        order.status,
        order.payment_status,
        order.payment_method,
        order.customer_id,
        order.customer_email,
        order.customer_name,
        order.customer_phone or "",
        address.country,
        address.city,
        address.postal_code,
        order.currency,
        order.subtotal.amount,
        order.shipping.amount,
        order.total.amount,
        order.captured.amount,
        order.refunded.amount,
        order.cancel_reason or "",
    ]
    return [
        [
            *head,
            str(line.line),
            line.sku,
            line.name,
            str(line.quantity),
            str(line.cancelled_quantity),
            line.unit_price.amount,
            line.total.amount,
        ]
        for line in order.lines
    ]
