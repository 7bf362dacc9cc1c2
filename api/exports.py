"""Bulk export of orders, streamed from a server-side cursor.

The rows of orders and their lines are read in batches of `BATCH_ROWS` and
each batch is written out before the next is read, so memory stays flat
however many orders the range holds. An error after the first bytes were sent
can no longer become a problem+json answer: the server logs it and breaks
the connection off, so the client sees an incomplete response, never a short
one that looks whole.
"""

import csv
import io
import logging
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse
from sqlalchemy import Row, Select, select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.access import Reader
from api.deps import ServicesDep
from api.errors import invalid
from db.orders import Order, OrderLine
from models.exports import (
    CSV_COLUMNS,
    MEDIA_TYPES,
    ExportedOrder,
    ExportFormat,
    csv_rows,
)
from models.money import Money
from models.order_views import OrderLinePublic
from models.orders import Address
from models.spreadsheet import text_cell

logger = logging.getLogger(__name__)

router = APIRouter(tags=["exports"])

BATCH_ROWS = 1000
DESCRIPTION = """
Every order created in `[from, to)` (times without a zone are UTC), oldest
first, streamed as it is read.

- `ndjson` (`application/x-ndjson`, the default): one JSON object per order
  and line of text, with its lines nested and money as `{"amount",
  "currency"}`, like `GET /v1/orders/{id}`.
- `csv` (`text/csv`): a header, then one row per order line; the order's
  columns repeat on each of its rows, amounts are decimal strings in the
  row's `currency`.

`format` wins over the `Accept` header (`text/csv` or `application/x-ndjson`).
An integrator's key exports its own channel's orders only.
"""


@router.get(
    "/exports/orders",
    response_class=StreamingResponse,
    description=DESCRIPTION,
    responses={
        200: {
            "description": "The orders, streamed",
            "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
)
async def export_orders(
    services: ServicesDep,
    caller: Reader,
    from_: Annotated[datetime, Query(alias="from", description="inclusive")],
    to: Annotated[datetime, Query(description="exclusive")],
    format: ExportFormat | None = None,
    channel: Annotated[
        str | None, Query(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    ] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> StreamingResponse:
    """Orders created in a time range, with their lines, as NDJSON or CSV."""
    start, end = _utc(from_), _utc(to)
    if start >= end:
        raise invalid("to", "must be later than from", also="from")
    chosen = format or _from_accept(accept)
    query = _rows_query(start, end)
    if channel is not None:
        query = query.where(Order.channel == channel)
    if caller.channel is not None:
        query = query.where(Order.channel == caller.channel)
    encode = _csv if chosen == ExportFormat.CSV else _ndjson
    logger.info(
        "%s exports orders from %s to %s as %s", caller.name, start, end, chosen
    )
    return StreamingResponse(
        encode(_orders(services.engine, query)),
        media_type=MEDIA_TYPES[chosen],
        headers={
            "Content-Disposition": f'attachment; filename="orders.{chosen.value}"'
        },
    )


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _from_accept(accept: str | None) -> ExportFormat:
    if accept is not None and "text/csv" in accept:
        return ExportFormat.CSV
    return ExportFormat.NDJSON


def _rows_query(start: datetime, end: datetime) -> Select[*tuple[Any, ...]]:
    """One row per order line, grouped by order, oldest order first."""
    return (
        select(
            Order,
            OrderLine.line,
            OrderLine.sku,
            OrderLine.name.label("line_name"),
            OrderLine.quantity,
            OrderLine.cancelled_quantity,
            OrderLine.unit_price_minor,
            OrderLine.total_minor.label("line_total_minor"),
        )
        .join(OrderLine, OrderLine.order_id == Order.id)
        .where(Order.created_at >= start, Order.created_at < end)
        .order_by(Order.created_at, Order.id, OrderLine.line)
    )


async def _orders(
    engine: AsyncEngine, query: Select[Any]
) -> AsyncIterator[list[ExportedOrder]]:
    """The orders `query` selects, a batch of whole orders at a time."""
    current: list[Row[Any]] = []
    async with engine.connect() as conn:
        result = await conn.stream(query.execution_options(yield_per=BATCH_ROWS))
        async for partition in result.partitions():
            done: list[ExportedOrder] = []
            for row in partition:
                if current and current[0].id != row.id:
                    done.append(_exported(current))
                    current = []
                current.append(row)
            if done:
                yield done
    if current:
        yield [_exported(current)]


def _exported(rows: list[Row[Any]]) -> ExportedOrder:
    """One order from its rows (one per line)."""
    order = rows[0]

    def money(minor: int) -> Money:
        return Money.of(minor, order.currency)

    return ExportedOrder(
        id=order.id,
        number=order.number,
        channel=order.channel,
        external_id=order.external_id,
        status=order.status,
        payment_status=order.payment_status,
        payment_method=order.payment_method,
        customer_id=order.customer_id,
        customer_email=order.customer_email,
        customer_name=order.customer_name,
        customer_phone=order.customer_phone,
        shipping_address=Address.model_validate(order.shipping_address),
        currency=order.currency,
        subtotal=money(order.subtotal_minor),
        shipping=money(order.shipping_minor),
        total=money(order.total_minor),
        captured=money(order.captured_minor),
        refunded=money(order.refunded_minor),
        cancel_reason=order.cancel_reason,
        created_at=order.created_at,
        updated_at=order.updated_at,
        lines=[
            OrderLinePublic(
                line=row.line,
                sku=row.sku,
                name=row.line_name,
                quantity=row.quantity,
                cancelled_quantity=row.cancelled_quantity,
                unit_price=money(row.unit_price_minor),
                total=money(row.line_total_minor),
            )
            for row in rows
        ],
    )


async def _ndjson(batches: AsyncIterator[list[ExportedOrder]]) -> AsyncIterator[str]:
    async for orders in batches:
        yield "".join(order.model_dump_json() + "\n" for order in orders)


async def _csv(batches: AsyncIterator[list[ExportedOrder]]) -> AsyncIterator[str]:
    yield _csv_text([CSV_COLUMNS])
    async for orders in batches:
        yield _csv_text(row for order in orders for row in csv_rows(order))


def _csv_text(rows: Iterable[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows([text_cell(cell) for cell in row] for row in rows)
    return buffer.getvalue()
