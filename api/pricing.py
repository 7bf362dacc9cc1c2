"""Pricing of order lines and the rules a channel's orders follow.

Shared by order intake, amendments and delivery quotes.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from api.errors import FieldError, Problem
from db.catalog import Product, ProductPrice
from db.channels import Channel
from models.money import to_minor
from models.orders import OrderLineIn, OrderPolicy

# Bound on any amount, so totals stay far inside PostgreSQL's bigint.
MAX_AMOUNT_MINOR = 10**15


@dataclass(frozen=True)
class QuotedLine:
    """A requested line with its catalogue name and the prices it could have."""

    sku: str
    name: str
    quantity: int
    explicit_minor: int | None
    catalogue_minor: int | None


async def quote_lines(
    conn: AsyncConnection,
    lines: Sequence[OrderLineIn],
    currency: str,
    *,
    require_price: bool,
    field: str = "lines",
) -> list[QuotedLine]:
    """Look the lines' SKUs up in the catalogue and parse the channel's prices.

    Unknown SKUs answer 404; unparsable, missing (when `require_price`) or
    oversized prices answer 422, each naming its field (`field` is the
    request's name for the list).
    """
    skus = {line.sku for line in lines}
    rows = await conn.execute(
        select(Product.sku, Product.name, ProductPrice.amount_minor)
        .outerjoin(
            ProductPrice,
            (ProductPrice.sku == Product.sku) & (ProductPrice.currency == currency),
        )
        .where(Product.sku.in_(skus))
    )
    catalogue = {row.sku: row for row in rows}
    unknown = [
        FieldError(field=f"{field}[{i}].sku", message=f"unknown SKU {line.sku!r}")
        for i, line in enumerate(lines)
        if line.sku not in catalogue
    ]
    if unknown:
        raise Problem(
            404,
            "sku-not-found",
            "Unknown SKU",
            ", ".join(sorted(skus - catalogue.keys())),
            errors=unknown,
        )

    quoted, errors = [], []
    for i, line in enumerate(lines):
        price_field = f"{field}[{i}].unit_price"
        product = catalogue[line.sku]
        try:
            explicit = (
                None if line.unit_price is None else to_minor(line.unit_price, currency)
            )
        except ValueError as error:
            errors.append(FieldError(field=price_field, message=str(error)))
            continue
        price = explicit if explicit is not None else product.amount_minor
        if price is None and require_price:
            errors.append(
                FieldError(
                    field=price_field,
                    message=f"{line.sku} has no catalogue price in {currency}; "
                    "send unit_price",
                )
            )
            continue
        if price is not None and price * line.quantity > MAX_AMOUNT_MINOR:
            errors.append(
                FieldError(
                    field=price_field,
                    message="the line's total is beyond what the system accepts",
                )
            )
            continue
        quoted.append(
            QuotedLine(
                line.sku, product.name, line.quantity, explicit, product.amount_minor
            )
        )
    total = sum(
        (q.explicit_minor or q.catalogue_minor or 0) * q.quantity for q in quoted
    )
    if not errors and total > MAX_AMOUNT_MINOR:
        errors.append(
            FieldError(
                field="lines", message="the order's total is beyond what it accepts"
            )
        )
    if errors:
        raise Problem(
            422,
            "validation-error",
            "The request is not valid",
            errors=errors,
            detail="invalid fields: " + ", ".join(e.field for e in errors),
        )
    return quoted


async def channel_policy(
    conn: AsyncConnection, channel: str, defaults: OrderPolicy
) -> OrderPolicy:
    """The channel's rules for its orders; `defaults` for unknown channels."""
    row = (
        await conn.execute(select(Channel.__table__).where(Channel.code == channel))
    ).first()
    if row is None:
        return defaults
    own = {
        "return_window_seconds": row.return_window_seconds,
        "return_review_reasons": row.return_review_reasons,
        "return_goods_seconds": row.return_goods_seconds,
        "refund_delivery": row.refund_delivery,
        "exchange_ships": row.exchange_ships,
    }
    return OrderPolicy.model_validate(
        {
            **defaults.model_dump(),
            "out_of_stock": row.out_of_stock_policy,
            "backorder_seconds": row.backorder_seconds,
            "ask_customer_seconds": row.ask_customer_seconds,
            "payment_link_seconds": row.payment_link_seconds,
            "max_shipments": row.max_shipments,
            "warehouses": row.warehouses,
            # Return rules the channel leaves empty come from the defaults.
            **{name: value for name, value in own.items() if value is not None},
        }
    )
