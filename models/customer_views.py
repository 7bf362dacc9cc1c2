"""Customers as the API shows them: the card and the lookup's rows."""

from datetime import datetime

from pydantic import BaseModel, Field

from models.money import Money
from models.order_views import OrderSummary
from models.orders import Address


class CustomerValue(BaseModel):
    """What a customer's orders in one currency came to."""

    currency: str
    orders: int = Field(description="orders placed in this currency")
    ordered: Money = Field(
        description="total of the orders in this currency that were neither "
        "cancelled nor failed"
    )
    captured: Money = Field(description="money taken for them")
    refunded: Money = Field(description="money given back (cancellations, returns)")
    lifetime_value: Money = Field(
        description="captured minus refunded: the money the customer left with us"
    )


class ReturnRate(BaseModel):
    delivered_orders: int = Field(description="orders delivered (or completed)")
    returned_orders: int = Field(
        description="of those, orders with a return that was not rejected or expired"
    )
    rate: str | None = Field(
        description="returned_orders / delivered_orders as a decimal string with "
        "four places, e.g. '0.2500'; null when nothing was delivered yet",
        examples=["0.2500"],
    )


class CustomerSummary(BaseModel):
    """A customer as a lookup lists them."""

    id: str
    email: str
    name: str
    phone: str | None = Field(
        description="the latest phone number given, '+' and digits only"
    )
    first_order_at: datetime
    last_order_at: datetime
    url: str = Field(description="the customer's card")


class CustomerCard(BaseModel):
    """A customer: contact, addresses, recent orders, value and returns."""

    id: str
    email: str
    name: str = Field(description="the name on the latest order")
    phone: str | None = Field(
        description="the latest phone number given, '+' and digits only"
    )
    addresses: list[Address] = Field(
        description="every shipping address seen, each once, in the order "
        "first recorded"
    )
    first_order_at: datetime
    last_order_at: datetime
    order_count: int
    recent_orders: list[OrderSummary] = Field(description="newest first")
    orders_url: str = Field(description="all the customer's orders, cursor-paged")
    value: list[CustomerValue] = Field(
        description="per currency, by currency code; currencies are never added up"
    )
    returns: ReturnRate
    created_at: datetime
    updated_at: datetime
