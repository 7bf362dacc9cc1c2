"""Demo catalogue for `oms dev` and `oms seed`: three warehouses, eleven SKUs."""

import logging
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from db.catalog import Product, ProductPrice
from db.channels import Channel
from db.engine import create_engine
from db.inventory import StockLevel, Warehouse

logger = logging.getLogger(__name__)

WAREHOUSES: list[dict[str, Any]] = [
    {
        "code": "BER",
        "name": "Berlin fulfilment centre",
        "country": "DE",
        "priority": 1,
        "express": True,
    },
    {"code": "AMS", "name": "Amsterdam store", "country": "NL", "priority": 2},
    # Staff confirm picking and packing here (see the README's warehouse work).
    {
        "code": "HAM",
        "name": "Hamburg store",
        "country": "DE",
        "priority": 3,
        "confirmation": "manual",
    },
]

# sku, name, category, weight in grams, EUR price in cents, stock per warehouse
PRODUCTS: list[tuple[str, str, str, int, int, dict[str, int]]] = [
    (
        "TSHIRT-BLK-M",
        "T-shirt, black, M",
        "apparel",
        180,
        1999,
        {"BER": 120, "AMS": 40},
    ),
    ("TSHIRT-WHT-L", "T-shirt, white, L", "apparel", 190, 1999, {"BER": 80, "AMS": 25}),
    ("HOODIE-GRY-M", "Hoodie, grey, M", "apparel", 520, 4999, {"BER": 35, "AMS": 10}),
    (
        "SNEAKER-42",
        "Running sneaker, size 42",
        "footwear",
        780,
        8950,
        {"BER": 20, "AMS": 6},
    ),
    ("MUG-CERAMIC", "Ceramic mug, 350 ml", "home", 340, 1250, {"BER": 200, "AMS": 60}),
    ("LAMP-DESK", "Desk lamp, LED", "home", 1400, 3900, {"BER": 15, "AMS": 5}),
    ("HEADPHONES-BT", "Bluetooth headphones", "electronics", 260, 7990, {"BER": 30}),
    (
        "CHARGER-65W",
        "USB-C charger, 65 W",
        "electronics",
        160,
        3490,
        {"BER": 50, "AMS": 20},
    ),
    (
        "NOTEBOOK-A5",
        "Notebook, A5, dotted",
        "stationery",
        220,
        990,
        {"BER": 300, "AMS": 100},
    ),
    ("BACKPACK-20L", "Backpack, 20 l", "accessories", 900, 6900, {"BER": 2, "AMS": 1}),
    ("POSTER-A2", "Poster, A2, harbour", "home", 300, 1490, {"HAM": 25}),
]

# Channels and what their orders do when stock runs out.
CHANNELS: list[dict[str, Any]] = [
    {"code": "web", "name": "Own web shop", "out_of_stock_policy": "reject"},
    {
        "code": "marketplace",
        "name": "Marketplace bridge",
        "out_of_stock_policy": "backorder",
        "backorder_seconds": 14 * 86_400,
        # Staff look at these returns before a label is issued.
        "return_review_reasons": ["damaged", "not_as_described"],
    },
    {
        "code": "callcentre",
        "name": "Call centre",
        "out_of_stock_policy": "ask_customer",
        "ask_customer_seconds": 3 * 86_400,
    },
]

# Prices in other currencies, as a factor of the EUR price (rounded to cents).
CURRENCY_FACTORS = {"EUR": 1.0, "USD": 1.1, "GBP": 0.86}


async def seed_if_empty(engine: AsyncEngine) -> bool:
    """Load the demo catalogue unless products exist already; True when it did."""
    async with engine.begin() as conn:
        if not (await conn.execute(select(func.count()).select_from(Channel))).scalar():
            await conn.execute(
                insert(Channel).on_conflict_do_nothing(),
                [
                    {
                        "backorder_seconds": 14 * 86_400,
                        "ask_customer_seconds": 3 * 86_400,
                        "payment_link_seconds": 86_400,
                        **channel,
                    }
                    for channel in CHANNELS
                ],
            )
        count = (await conn.execute(select(func.count()).select_from(Product))).scalar()
        if count:
            logger.info("catalogue has %s products, demo data not loaded", count)
            return False
        await conn.execute(
            insert(Warehouse).on_conflict_do_nothing(),
            [{"express": False, "confirmation": "automatic", **w} for w in WAREHOUSES],
        )
        await conn.execute(
            insert(Product).on_conflict_do_nothing(),
            [
                {"sku": sku, "name": name, "category": category, "weight_grams": grams}
                for sku, name, category, grams, *_ in PRODUCTS
            ],
        )
        await conn.execute(
            insert(ProductPrice).on_conflict_do_nothing(),
            [
                {
                    "sku": sku,
                    "currency": currency,
                    "amount_minor": round(cents * factor),
                }
                for sku, _, _, _, cents, *_ in PRODUCTS
                for currency, factor in CURRENCY_FACTORS.items()
            ],
        )
        await conn.execute(
            insert(StockLevel).on_conflict_do_nothing(),
            [
                {"sku": sku, "warehouse": warehouse, "on_hand": on_hand}
                for sku, *_, stock in PRODUCTS
                for warehouse, on_hand in stock.items()
            ],
        )
    logger.info(
        "loaded the demo catalogue: %s warehouses, %s products",
        len(WAREHOUSES),
        len(PRODUCTS),
    )
    return True


async def seed_database(database_url: str) -> bool:
    """`seed_if_empty` on the database at `database_url`."""
    engine = create_engine(database_url, pool_size=1)
    try:
        return await seed_if_empty(engine)
    finally:
        await engine.dispose()
