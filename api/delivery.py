"""Delivery quotes: what each carrier's services cost for a basket and an address.

Used by `POST /v1/delivery/quotes` and by order intake, which prices the
option the customer chose the same way (the client never sets the price).
Express services are offered only when warehouses that can ship express hold
the whole basket.
"""

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from activities.carriers import Carrier, DeliveryPricing
from activities.shipping import PACKAGING_GRAMS
from api.access import Caller, allow
from api.deps import ConnectionDep, ServicesDep
from api.errors import FieldError, Problem, ProblemDetails
from api.pricing import channel_policy, quote_lines
from db.catalog import Product
from db.inventory import StockLevel, Warehouse
from models.delivery import (
    CarrierRate,
    DeliveryChoice,
    DeliveryRules,
    Quote,
    QuoteRequest,
    ServiceLevel,
    delivery_options,
)
from models.money import Money, to_minor
from models.orders import OrderPolicy
from models.rules import Role

logger = logging.getLogger(__name__)

router = APIRouter(tags=["delivery"])

Quoter = Annotated[Caller, Depends(allow(Role.INTEGRATOR, Role.SUPPORT, Role.ADMIN))]


@dataclass(frozen=True)
class Basket:
    skus: dict[str, int]
    goods_minor: int
    currency: str
    country: str
    # Warehouses the order may ship from (None: any).
    warehouses: list[str] | None

    @classmethod
    def of(
        cls,
        lines: Iterable[tuple[str, int, int]],
        currency: str,
        country: str,
        policy: OrderPolicy,
    ) -> "Basket":
        """A basket from (SKU, quantity, unit price) triples."""
        skus: dict[str, int] = {}
        goods = 0
        for sku, quantity, unit_minor in lines:
            skus[sku] = skus.get(sku, 0) + quantity
            goods += unit_minor * quantity
        return cls(skus, goods, currency, country, policy.warehouses)


async def express_warehouses(conn: AsyncConnection, basket: Basket) -> list[str] | None:
    """Warehouses that ship express and hold the whole basket between them;
    None when they cannot."""
    query = select(Warehouse.code).where(Warehouse.express, Warehouse.ships_parcels)
    if basket.warehouses is not None:
        query = query.where(Warehouse.code.in_(basket.warehouses))
    codes = list((await conn.execute(query)).scalars())
    if not codes:
        return None
    available = dict(
        (
            await conn.execute(
                select(
                    StockLevel.sku,
                    func.sum(
                        StockLevel.on_hand
                        - StockLevel.reserved
                        - StockLevel.safety_stock
                    ),
                )
                .where(StockLevel.warehouse.in_(codes))
                .where(StockLevel.sku.in_(basket.skus))
                .group_by(StockLevel.sku)
            )
        ).all()
    )
    if any(available.get(sku, 0) < qty for sku, qty in basket.skus.items()):
        return None
    return codes


async def basket_weight(conn: AsyncConnection, skus: dict[str, int]) -> int:
    weights = dict(
        (
            await conn.execute(
                select(Product.sku, Product.weight_grams).where(Product.sku.in_(skus))
            )
        ).all()
    )
    return PACKAGING_GRAMS + sum(weights.get(sku, 0) * qty for sku, qty in skus.items())


async def quote_basket(
    conn: AsyncConnection,
    carriers: Sequence[Carrier],
    basket: Basket,
    rules: DeliveryRules,
) -> tuple[Quote, list[str] | None]:
    """The basket's delivery options, and the warehouses express would use."""
    weight = await basket_weight(conn, basket.skus)
    carrier_rates: list[CarrierRate] = []
    for carrier in carriers:
        carrier_rates += await carrier.quote(
            country=basket.country, weight_grams=weight
        )
    express = await express_warehouses(conn, basket)
    if express is None:
        carrier_rates = [
            rate for rate in carrier_rates if rate.service_level != ServiceLevel.EXPRESS
        ]
    options = delivery_options(
        carrier_rates,
        goods_minor=basket.goods_minor,
        currency=basket.currency,
        rules=rules,
        today=datetime.now(UTC).date(),
    )
    return (
        Quote(
            weight_grams=weight,
            goods=Money.of(basket.goods_minor, basket.currency),
            options=options,
        ),
        express,
    )


async def choose_delivery(
    conn: AsyncConnection,
    pricing: DeliveryPricing,
    basket: Basket,
    option: str,
    policy: OrderPolicy,
) -> tuple[DeliveryChoice, OrderPolicy]:
    """Price the chosen option for the order; express keeps it to express
    warehouses. 422 when the option is not offered for this basket."""
    rules = pricing.rules(basket.currency)
    quote, express = await quote_basket(conn, pricing.carriers, basket, rules)
    chosen = next((o for o in quote.options if o.id == option), None)
    if chosen is None:
        offered = ", ".join(o.id for o in quote.options) or "none"
        raise Problem(
            422,
            "delivery-option-unavailable",
            "Delivery option not available",
            f"{option!r} is not offered for this basket and address; "
            f"offered: {offered}",
            errors=[
                FieldError(
                    field="delivery.option", message=f"not offered; offered: {offered}"
                )
            ],
        )
    if chosen.service_level == ServiceLevel.EXPRESS:
        policy = policy.model_copy(update={"warehouses": express})
    return (
        DeliveryChoice(
            carrier=chosen.carrier,
            service_level=chosen.service_level,
            option=chosen.id,
            price_minor=to_minor(chosen.price.amount, chosen.price.currency),
            estimated_delivery=chosen.estimated_delivery,
        ),
        policy,
    )


@router.post(
    "/delivery/quotes",
    responses={
        404: {"model": ProblemDetails, "description": "Unknown SKU"},
        403: {"model": ProblemDetails, "description": "Another channel's basket"},
    },
)
async def quote_delivery(
    body: QuoteRequest, services: ServicesDep, conn: ConnectionDep, caller: Quoter
) -> Quote:
    """Delivery options for a basket and an address, cheapest first.

    Pass an option's `id` as `delivery.option` when creating the order: the
    order is charged that option's price, computed again at creation.
    """
    if not caller.sees(body.channel):
        raise Problem(
            403,
            "channel-not-allowed",
            "Not allowed",
            f"key {caller.name} quotes for channel {caller.channel} only",
        )
    lines = await quote_lines(conn, body.lines, body.currency, require_price=False)
    policy = await channel_policy(conn, body.channel, services.settings.order_defaults)
    basket = Basket.of(
        (
            (line.sku, line.quantity, line.explicit_minor or line.catalogue_minor or 0)
            for line in lines
        ),
        body.currency,
        body.destination.country,
        policy,
    )
    pricing = services.delivery_pricing
    quote, _ = await quote_basket(
        conn, pricing.carriers, basket, pricing.rules(body.currency)
    )
    return quote
