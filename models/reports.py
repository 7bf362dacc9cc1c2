"""Reports for managers: sales, stock, cancellations, returns and lead times.

Every amount is per currency: a row carries one `currency` and its money in
that currency only, so figures in different currencies are never added up.
"""

from datetime import date
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from models.money import Money


class SalesGrouping(StrEnum):
    CHANNEL = "channel"
    REGION = "region"
    CATEGORY = "category"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


# Groupings by a period of the calendar, in the report's time zone.
PERIODS = frozenset({SalesGrouping.DAY, SalesGrouping.WEEK, SalesGrouping.MONTH})


class Period(BaseModel):
    """The days a report covers, both included, in the time zone `tz`."""

    model_config = ConfigDict(populate_by_name=True)

    from_: date = Field(alias="from")
    to: date
    tz: str


class SalesRow(BaseModel):
    group: str = Field(
        description="the channel, the shipping country, the category, or the "
        "first day of the day, week (a Monday) or month"
    )
    currency: str
    orders: int
    units: int
    revenue: Money
    average_order_value: Money


class SalesReport(BaseModel):
    period: Period
    group_by: SalesGrouping
    rows: list[SalesRow]


class TopSellerRow(BaseModel):
    rank: int = Field(description="by units sold in every currency together")
    sku: str
    name: str
    category: str
    currency: str
    orders: int
    units: int
    revenue: Money


class TopSellersReport(BaseModel):
    period: Period
    rows: list[TopSellerRow]


class SlowMoverRow(BaseModel):
    sku: str
    name: str
    category: str
    stock: int = Field(description="on hand minus reserved, in every warehouse")
    units_sold: int = Field(description="in the last `days` days")
    units_per_day: float
    days_of_cover: float | None = Field(
        description="stock / units_per_day; null when nothing sold (no end in sight)"
    )


class SlowMoversReport(BaseModel):
    days: int
    cover_days: int
    rows: list[SlowMoverRow]


class StockRow(BaseModel):
    warehouse: str
    sku: str
    name: str
    category: str
    on_hand: int
    reserved: int
    safety_stock: int
    available: int = Field(description="on hand - reserved - safety stock, >= 0")
    low_stock: bool = Field(description="available <= low_stock_units")


class StockReport(BaseModel):
    low_stock_units: int
    rows: list[StockRow]


class CancellationRow(BaseModel):
    reason: str
    currency: str
    orders: int
    value: Money


class CancellationsReport(BaseModel):
    period: Period
    rows: list[CancellationRow]


class ReturnReasonRow(BaseModel):
    reason: str
    currency: str
    returns: int
    units: int
    refunded: Money


class ReturnReasonsReport(BaseModel):
    period: Period
    rows: list[ReturnReasonRow]


class ReturnRateRow(BaseModel):
    sku: str
    name: str
    units_sold: int
    units_returned: int
    return_rate: float = Field(description="units_returned / units_sold, 0 to 1")


class ReturnRatesReport(BaseModel):
    period: Period
    rows: list[ReturnRateRow]


class LeadTimeRow(BaseModel):
    warehouse: str
    carrier: str
    shipments: int
    order_to_ship_p50_hours: float
    order_to_ship_p90_hours: float
    delivered: int
    ship_to_delivery_p50_hours: float | None
    ship_to_delivery_p90_hours: float | None


class LeadTimesReport(BaseModel):
    period: Period
    rows: list[LeadTimeRow]
