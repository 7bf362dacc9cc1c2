"""Reports computed in SQL over the read model.

What counts, for every report on sales:
- an order counts from the moment it was placed (`orders.created_at`, in the
  report's time zone) unless it is `cancelled` or `failed`;
- a line's `quantity` is what is left after cancellations (cancelled units are
  in `cancelled_quantity`), and its `total_minor` is that quantity's value, so
  revenue is the goods as sold, without delivery charges, before refunds;
- returns count unless they were rejected or expired (the goods never came
  back); their units are the units the customer asked to return.

Money is summed per currency and never across currencies.
"""

from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import Result, text
from sqlalchemy.ext.asyncio import AsyncConnection

from models.money import Money
from models.reports import (
    PERIODS,
    CancellationRow,
    LeadTimeRow,
    ReturnRateRow,
    ReturnReasonRow,
    SalesGrouping,
    SalesRow,
    SlowMoverRow,
    StockRow,
    TopSellerRow,
)

NOT_SALES = "('cancelled', 'failed')"
RETURNS_LEFT_OUT = "('rejected', 'expired')"


@dataclass(frozen=True)
class Window:
    """Days `start` to `end`, both included, as seen in time zone `tz`."""

    start: date
    end: date
    tz: str

    def params(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "tz": self.tz}


def _within(column: str) -> str:
    """`column` (a timestamptz) falls in the window; uses an index on it."""
    return (
        f"{column} >= (CAST(:start AS date)::timestamp "
        "AT TIME ZONE CAST(:tz AS text)) "
        f"AND {column} < ((CAST(:end AS date) + 1)::timestamp "
        "AT TIME ZONE CAST(:tz AS text))"
    )


ModelT = TypeVar("ModelT", bound=BaseModel)


def _models(
    model: type[ModelT], rows: Result[Any], money: tuple[str, ...] = ()
) -> list[ModelT]:
    """Rows whose columns are named as `model`'s fields; the `money` columns
    are minor units of the row's `currency`."""
    found = []
    for row in rows:
        fields = dict(row._mapping)
        for name in money:
            fields[name] = Money.of(fields[name], fields["currency"])
        found.append(model.model_validate(fields))
    return found


def _rounded(value: str, digits: int) -> str:
    return f"round(({value})::numeric, {digits})::float8"


_ORDER_KEYS = {
    SalesGrouping.CHANNEL: "o.channel",
    SalesGrouping.REGION: "coalesce(o.shipping_address ->> 'country', '')",
}


# Revenue / orders in minor units, halves rounded up.
_AVERAGE = (
    "round(sum({revenue})::numeric / count({orders}))::bigint AS average_order_value"
)


def sales_sql(grouping: SalesGrouping) -> str:
    counted = f"{_within('o.created_at')} AND o.status NOT IN {NOT_SALES}"
    if grouping == SalesGrouping.CATEGORY:
        # An order with lines of several categories counts once in each.
        return f"""
            SELECT coalesce(p.category, 'uncategorised') AS "group", o.currency,
                   count(DISTINCT o.id) AS orders,
                   sum(l.quantity)::bigint AS units,
                   sum(l.total_minor)::bigint AS revenue,
                   {_AVERAGE.format(revenue="l.total_minor", orders="DISTINCT o.id")}
            FROM orders o
            JOIN order_lines l ON l.order_id = o.id
            LEFT JOIN products p ON p.sku = l.sku
            WHERE {counted} AND l.quantity > 0
            GROUP BY 1, 2
            ORDER BY 1, 2
        """
    # Each order carries its units and the value of its lines (subtotal), so
    # these groupings read the orders alone, not their lines.
    if grouping not in PERIODS:
        return f"""
            SELECT {_ORDER_KEYS[grouping]} AS "group", o.currency,
                   count(*) AS orders, sum(o.units)::bigint AS units,
                   sum(o.subtotal_minor)::bigint AS revenue,
                   {_AVERAGE.format(revenue="o.subtotal_minor", orders="*")}
            FROM orders o WHERE {counted}
            GROUP BY 1, 2
            ORDER BY 1, 2
        """
    # Days first (a cheap key per order), then weeks or months from the days.
    return f"""
        SELECT to_char(date_trunc('{grouping.value}', day), 'YYYY-MM-DD')
                   AS "group",
               currency, sum(orders)::bigint AS orders,
               sum(units)::bigint AS units, sum(revenue)::bigint AS revenue,
               round(sum(revenue) / sum(orders))::bigint AS average_order_value
        FROM (
            SELECT (o.created_at AT TIME ZONE CAST(:tz AS text))::date AS day,
                   o.currency, count(*) AS orders, sum(o.units) AS units,
                   sum(o.subtotal_minor) AS revenue
            FROM orders o WHERE {counted}
            GROUP BY 1, 2
        ) days
        GROUP BY 1, 2
        ORDER BY 1, 2
    """


async def sales(
    conn: AsyncConnection, window: Window, grouping: SalesGrouping
) -> list[SalesRow]:
    rows = await conn.execute(text(sales_sql(grouping)), window.params())
    return _models(SalesRow, rows, ("revenue", "average_order_value"))


async def top_sellers(
    conn: AsyncConnection, window: Window, limit: int
) -> list[TopSellerRow]:
    rows = await conn.execute(
        text(f"""
            WITH sold AS (
                SELECT l.sku, o.currency, count(DISTINCT o.id) AS orders,
                       sum(l.quantity)::bigint AS units,
                       sum(l.total_minor)::bigint AS revenue
                FROM orders o JOIN order_lines l ON l.order_id = o.id
                WHERE {_within("o.created_at")} AND o.status NOT IN {NOT_SALES}
                  AND l.quantity > 0
                GROUP BY l.sku, o.currency
            ), ranked AS (
                SELECT sku, row_number() OVER (ORDER BY sum(units) DESC, sku) AS rank
                FROM sold GROUP BY sku
                ORDER BY rank LIMIT :limit
            )
            SELECT r.rank, s.sku, coalesce(p.name, s.sku) AS name,
                   coalesce(p.category, 'uncategorised') AS category,
                   s.currency, s.orders, s.units, s.revenue
            FROM ranked r JOIN sold s USING (sku)
            LEFT JOIN products p ON p.sku = s.sku
            ORDER BY r.rank, s.currency
        """),
        window.params() | {"limit": limit},
    )
    return _models(TopSellerRow, rows, ("revenue",))


# SKUs in stock that sold nothing in the last :days days, or so little that
# their stock lasts :cover_days or more at that rate.
SLOW_MOVERS_SQL = f"""
WITH stock AS (
    SELECT sku, sum(on_hand - reserved) AS stock
    FROM stock_levels GROUP BY sku
    HAVING sum(on_hand - reserved) > 0
), sold AS (
    SELECT l.sku, sum(l.quantity) AS units
    FROM orders o JOIN order_lines l ON l.order_id = o.id
    WHERE o.created_at >= now() - make_interval(days => :days)
      AND o.status NOT IN {NOT_SALES}
    GROUP BY l.sku
)
SELECT st.sku, p.name, p.category, st.stock,
       coalesce(sd.units, 0) AS units_sold,
       {_rounded("coalesce(sd.units, 0)::numeric / :days", 3)} AS units_per_day,
       {_rounded("st.stock::numeric * :days / nullif(sd.units, 0)", 1)}
           AS days_of_cover
FROM stock st
JOIN products p ON p.sku = st.sku
LEFT JOIN sold sd ON sd.sku = st.sku
WHERE coalesce(sd.units, 0) = 0
   OR st.stock::float8 * :days / sd.units >= :cover_days
ORDER BY days_of_cover DESC NULLS FIRST, st.stock DESC, st.sku
LIMIT :limit
"""


async def slow_movers(
    conn: AsyncConnection, days: int, cover_days: int, limit: int
) -> list[SlowMoverRow]:
    rows = await conn.execute(
        text(SLOW_MOVERS_SQL),
        {"days": days, "cover_days": cover_days, "limit": limit},
    )
    return _models(SlowMoverRow, rows)


async def stock(
    conn: AsyncConnection,
    *,
    low_stock_units: int,
    warehouse: str | None,
    low_only: bool,
    limit: int,
) -> list[StockRow]:
    available = "greatest(s.on_hand - s.reserved - s.safety_stock, 0)"
    rows = await conn.execute(
        text(f"""
            SELECT s.warehouse, s.sku, p.name, p.category, s.on_hand, s.reserved,
                   s.safety_stock, {available} AS available,
                   {available} <= :threshold AS low_stock
            FROM stock_levels s JOIN products p ON p.sku = s.sku
            WHERE (CAST(:warehouse AS text) IS NULL OR s.warehouse = :warehouse)
              AND (NOT :low_only OR {available} <= :threshold)
            ORDER BY s.warehouse, s.sku
            LIMIT :limit
        """),
        {
            "warehouse": warehouse,
            "low_only": low_only,
            "threshold": low_stock_units,
            "limit": limit,
        },
    )
    return _models(StockRow, rows)


async def cancellations(conn: AsyncConnection, window: Window) -> list[CancellationRow]:
    """Orders placed in the window and cancelled whole, by reason."""
    rows = await conn.execute(
        text(f"""
            SELECT coalesce(o.cancel_reason, 'unspecified') AS reason, o.currency,
                   count(*) AS orders, sum(o.total_minor)::bigint AS value
            FROM orders o
            WHERE {_within("o.created_at")} AND o.status = 'cancelled'
            GROUP BY 1, 2
            ORDER BY orders DESC, reason, currency
        """),
        window.params(),
    )
    return _models(CancellationRow, rows, ("value",))


# The units of one return, from the lines the workflow reported.
_RETURN_LINES = "jsonb_array_elements(r.state -> 'lines')"


async def return_reasons(
    conn: AsyncConnection, window: Window
) -> list[ReturnReasonRow]:
    """Returns opened in the window, by reason."""
    rows = await conn.execute(
        text(f"""
            SELECT r.reason, r.currency, count(*) AS returns,
                   sum(u.units)::bigint AS units,
                   sum(r.refund_minor)::bigint AS refunded
            FROM returns r
            CROSS JOIN LATERAL (
                SELECT coalesce(sum((x ->> 'quantity')::int), 0) AS units
                FROM {_RETURN_LINES} x
            ) u
            WHERE {_within("r.created_at")} AND r.status NOT IN {RETURNS_LEFT_OUT}
            GROUP BY 1, 2
            ORDER BY returns DESC, reason, currency
        """),
        window.params(),
    )
    return _models(ReturnReasonRow, rows, ("refunded",))


async def return_rates(
    conn: AsyncConnection, window: Window, limit: int
) -> list[ReturnRateRow]:
    """Per SKU, of the units sold in orders placed in the window, how many
    came back (in returns of those same orders, whenever opened)."""
    counted = f"{_within('o.created_at')} AND o.status NOT IN {NOT_SALES}"
    rows = await conn.execute(
        text(f"""
            WITH sold AS (
                SELECT l.sku, sum(l.quantity) AS units
                FROM orders o JOIN order_lines l ON l.order_id = o.id
                WHERE {counted}
                GROUP BY l.sku
            ), returned AS (
                SELECT x ->> 'sku' AS sku, sum((x ->> 'quantity')::int) AS units
                FROM orders o
                JOIN returns r ON r.order_id = o.id
                CROSS JOIN LATERAL {_RETURN_LINES} x
                WHERE {counted} AND r.status NOT IN {RETURNS_LEFT_OUT}
                GROUP BY 1
            )
            SELECT s.sku, coalesce(p.name, s.sku) AS name, s.units AS units_sold,
                   coalesce(rt.units, 0) AS units_returned,
                   {_rounded("coalesce(rt.units, 0)::numeric / s.units", 4)}
                       AS return_rate
            FROM sold s
            LEFT JOIN returned rt ON rt.sku = s.sku
            LEFT JOIN products p ON p.sku = s.sku
            WHERE s.units > 0
            ORDER BY return_rate DESC, units_sold DESC, s.sku
            LIMIT :limit
        """),
        window.params() | {"limit": limit},
    )
    return _models(ReturnRateRow, rows)


def _hours_percentile(fraction: float, since: str, until: str) -> str:
    hours = (
        f"percentile_cont({fraction}) WITHIN GROUP "
        f"(ORDER BY extract(epoch FROM {until} - {since})) / 3600"
    )
    return _rounded(hours, 2)


async def lead_times(conn: AsyncConnection, window: Window) -> list[LeadTimeRow]:
    """Shipments that left in the window: hours from order to hand-over, and
    from hand-over to delivery (for those delivered), per warehouse and carrier."""
    ordered, shipped, delivered = "o.created_at", "s.shipped_at", "s.delivered_at"
    rows = await conn.execute(
        text(f"""
            SELECT s.warehouse, coalesce(s.carrier, 'none') AS carrier,
                   count(*) AS shipments,
                   {_hours_percentile(0.5, ordered, shipped)}
                       AS order_to_ship_p50_hours,
                   {_hours_percentile(0.9, ordered, shipped)}
                       AS order_to_ship_p90_hours,
                   count(s.delivered_at) AS delivered,
                   {_hours_percentile(0.5, shipped, delivered)}
                       AS ship_to_delivery_p50_hours,
                   {_hours_percentile(0.9, shipped, delivered)}
                       AS ship_to_delivery_p90_hours
            FROM shipments s JOIN orders o ON o.id = s.order_id
            WHERE {_within("s.shipped_at")}
            GROUP BY 1, 2
            ORDER BY 1, 2
        """),
        window.params(),
    )
    return _models(LeadTimeRow, rows)
