"""Catalogue: products with prices and the stock available to sell."""

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import func, select

from api.access import AnyCaller
from api.deps import ConnectionDep
from db.catalog import Product as ProductRow
from db.catalog import ProductPrice
from db.inventory import StockLevel
from models.catalog import Page, Product
from models.money import Money

router = APIRouter(tags=["catalogue"])


@router.get("/products")
async def list_products(
    conn: ConnectionDep,
    caller: AnyCaller,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None,
        Query(
            pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="last SKU seen"
        ),
    ] = None,
) -> Page[Product]:
    """The catalogue with prices and available stock, by SKU."""
    available = (
        select(
            StockLevel.sku,
            func.sum(
                func.greatest(
                    StockLevel.on_hand - StockLevel.reserved - StockLevel.safety_stock,
                    0,
                )
            ).label("available"),
        )
        .group_by(StockLevel.sku)
        .subquery()
    )
    query = (
        select(
            ProductRow.sku,
            ProductRow.name,
            ProductRow.category,
            ProductRow.weight_grams,
            func.coalesce(available.c.available, 0).label("available"),
        )
        .outerjoin(available, available.c.sku == ProductRow.sku)
        .order_by(ProductRow.sku)
        .limit(limit + 1)
    )
    if cursor:
        query = query.where(ProductRow.sku > cursor)
    rows = (await conn.execute(query)).all()
    page, more = rows[:limit], len(rows) > limit
    prices: dict[str, list[Money]] = {}
    if page:
        price_rows = await conn.execute(
            select(ProductPrice)
            .where(ProductPrice.sku.in_([row.sku for row in page]))
            .order_by(ProductPrice.sku, ProductPrice.currency)
        )
        for price in price_rows:
            prices.setdefault(price.sku, []).append(
                Money.of(price.amount_minor, price.currency)
            )
    return Page(
        items=[
            Product(
                sku=row.sku,
                name=row.name,
                category=row.category,
                weight_grams=row.weight_grams,
                prices=prices.get(row.sku, []),
                available=int(row.available),
            )
            for row in page
        ],
        next_cursor=page[-1].sku if more else None,
    )
