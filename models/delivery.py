"""Delivery pricing: carriers' rate cards, the shop's rules, the options a
basket gets.

Pure functions over plain data, so the quote endpoint, order intake and the
tests price a basket the same way. A carrier's rate card says what a parcel
costs by zone and weight and how many working days it travels; the shop's
rules (`DeliveryRules`) add handling time and free delivery above an order
value.
"""

from datetime import date, timedelta
from decimal import Decimal

from pydantic import BaseModel, Field

from models.money import Currency, Money
from models.orders import Channel, Contract, Country, OrderLineIn, PostalCode
from models.shipping import DeliveryChoice, ServiceLevel

__all__ = ["DeliveryChoice", "ServiceLevel"]


class WeightBand(BaseModel):
    """Parcels up to `max_grams` cost `price_minor`."""

    max_grams: int = Field(gt=0)
    price_minor: int = Field(ge=0)


class ZoneRates(BaseModel):
    zone: str
    transit_days: int = Field(ge=0)
    bands: list[WeightBand] = Field(min_length=1)

    def price(self, weight_grams: int) -> int | None:
        """The first band the parcel fits in; None when it is too heavy."""
        for band in sorted(self.bands, key=lambda band: band.max_grams):
            if weight_grams <= band.max_grams:
                return band.price_minor
        return None


class Service(BaseModel):
    level: ServiceLevel
    zones: list[ZoneRates]

    def rates_for(self, zone: str) -> ZoneRates | None:
        return next((rates for rates in self.zones if rates.zone == zone), None)


class RateCard(BaseModel):
    """One carrier's prices: countries grouped into zones, services priced by
    zone and weight. Countries in no zone fall into `other_zone`."""

    carrier: str
    name: str
    currency: str
    countries: dict[str, str]
    other_zone: str | None = None
    services: list[Service]

    def zone(self, country: str) -> str | None:
        return self.countries.get(country, self.other_zone)


class CarrierRate(BaseModel):
    """What a carrier asks for one parcel with one service."""

    carrier: str
    carrier_name: str
    service_level: ServiceLevel
    zone: str
    price_minor: int
    currency: str
    transit_days: int


def rates(card: RateCard, country: str, weight_grams: int) -> list[CarrierRate]:
    """Every service of the card that takes this parcel to this country."""
    zone = card.zone(country)
    if zone is None:
        return []
    found = []
    for service in card.services:
        zone_rates = service.rates_for(zone)
        price = None if zone_rates is None else zone_rates.price(weight_grams)
        if zone_rates is None or price is None:
            continue
        found.append(
            CarrierRate(
                carrier=card.carrier,
                carrier_name=card.name,
                service_level=service.level,
                zone=zone,
                price_minor=price,
                currency=card.currency,
                transit_days=zone_rates.transit_days,
            )
        )
    return found


class DeliveryRules(BaseModel):
    """The shop's side of delivery prices."""

    # Standard delivery is free when the goods are worth at least this much
    # (minor units of the rate's currency); None: never free.
    free_standard_over_minor: int | None = 5000
    # Working days between the order and the parcel leaving.
    handling_days: int = Field(default=1, ge=0)


class DeliveryOption(BaseModel):
    """One way to deliver a basket, as the quote endpoint shows it."""

    id: str = Field(description="pass this as delivery.option when creating the order")
    carrier: str
    carrier_name: str
    service_level: ServiceLevel
    price: Money
    list_price: Money = Field(description="the carrier's price before free delivery")
    free: bool
    estimated_delivery: date
    working_days: int


def option_id(carrier: str, level: ServiceLevel) -> str:
    return f"{carrier}:{level}"


def add_working_days(start: date, days: int) -> date:
    """The date `days` working days (Monday to Friday) after `start`."""
    current = start
    while current.weekday() >= 5:
        current += timedelta(days=1)
    for _ in range(days):
        current += timedelta(days=1)
        while current.weekday() >= 5:
            current += timedelta(days=1)
    return current


def delivery_options(
    carrier_rates: list[CarrierRate],
    *,
    goods_minor: int,
    currency: str,
    rules: DeliveryRules,
    today: date,
) -> list[DeliveryOption]:
    """The options a basket worth `goods_minor` gets, cheapest first.

    Rates in another currency than the order's are left out: the shop does
    not convert delivery prices.
    """
    options = []
    for rate in carrier_rates:
        if rate.currency != currency:
            continue
        free = (
            rate.service_level == ServiceLevel.STANDARD
            and rules.free_standard_over_minor is not None
            and goods_minor >= rules.free_standard_over_minor
        )
        days = rules.handling_days + rate.transit_days
        options.append(
            DeliveryOption(
                id=option_id(rate.carrier, rate.service_level),
                carrier=rate.carrier,
                carrier_name=rate.carrier_name,
                service_level=rate.service_level,
                price=Money.of(0 if free else rate.price_minor, currency),
                list_price=Money.of(rate.price_minor, currency),
                free=free,
                estimated_delivery=add_working_days(today, days),
                working_days=days,
            )
        )
    return sorted(
        options,
        key=lambda option: (
            Decimal(option.price.amount),
            option.working_days,
            option.id,
        ),
    )


class DestinationIn(Contract):
    country: Country = Field(description="ISO 3166-1 alpha-2 country code, e.g. DE")
    postal_code: PostalCode
    region: str | None = Field(default=None, max_length=64)


class QuoteRequest(Contract):
    """Body of `POST /v1/delivery/quotes`."""

    channel: Channel
    currency: Currency
    destination: DestinationIn
    lines: list[OrderLineIn] = Field(min_length=1, max_length=100)


class Quote(BaseModel):
    weight_grams: int
    goods: Money
    options: list[DeliveryOption]
