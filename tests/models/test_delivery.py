"""Delivery pricing rules on the sandbox carriers' rate cards."""

from datetime import date

from activities.carriers import EXPRESS_RATES, POST_RATES
from models.delivery import (
    DeliveryOption,
    DeliveryRules,
    RateCard,
    add_working_days,
    delivery_options,
    rates,
)
from models.shipping import ServiceLevel

MONDAY = date(2026, 12, 7)
FRIDAY = date(2026, 12, 4)
NEVER_FREE = DeliveryRules(free_standard_over_minor=None, handling_days=1)


def options(
    country: str,
    weight_grams: int,
    goods_minor: int = 1000,
    rules: DeliveryRules = NEVER_FREE,
    cards: tuple[RateCard, ...] = (POST_RATES, EXPRESS_RATES),
    currency: str = "EUR",
) -> dict[str, DeliveryOption]:
    found = []
    for card in cards:
        found += rates(card, country, weight_grams)
    return {
        option.id: option
        for option in delivery_options(
            found,
            goods_minor=goods_minor,
            currency=currency,
            rules=rules,
            today=MONDAY,
        )
    }


def prices(offered: dict[str, DeliveryOption]) -> dict[str, str]:
    return {key: option.price.amount for key, option in offered.items()}


def test_each_carrier_prices_by_zone() -> None:
    assert prices(options("DE", 1000)) == {
        "sandbox:standard": "4.90",
        "sandbox-express:standard": "6.90",
        "sandbox-express:express": "14.90",
    }
    assert prices(options("PL", 1000)) == {
        "sandbox:standard": "9.50",
        "sandbox-express:standard": "11.90",
        "sandbox-express:express": "24.90",
    }


def test_heavier_parcels_fall_into_dearer_bands() -> None:
    light = options("DE", 2000)["sandbox:standard"]
    heavier = options("DE", 2001)["sandbox:standard"]

    assert (light.price.amount, heavier.price.amount) == ("4.90", "6.90")


def test_a_parcel_too_heavy_for_every_band_is_not_offered() -> None:
    assert "sandbox:standard" in options("US", 20_000)
    assert options("US", 20_001) == {}


def test_a_carrier_that_does_not_serve_a_country_offers_nothing_there() -> None:
    assert list(options("US", 1000)) == ["sandbox:standard"]


def test_standard_delivery_is_free_from_the_threshold_but_express_never() -> None:
    rules = DeliveryRules(free_standard_over_minor=5000)

    below = options("DE", 1000, goods_minor=4999, rules=rules)
    at = options("DE", 1000, goods_minor=5000, rules=rules)

    assert not below["sandbox:standard"].free
    assert below["sandbox:standard"].price.amount == "4.90"
    assert at["sandbox:standard"].free
    assert at["sandbox:standard"].price.amount == "0.00"
    assert at["sandbox:standard"].list_price.amount == "4.90"
    assert at["sandbox-express:standard"].price.amount == "0.00"
    assert at["sandbox-express:express"].price.amount == "14.90"
    assert not at["sandbox-express:express"].free


def test_options_come_cheapest_first() -> None:
    rules = DeliveryRules(free_standard_over_minor=5000)

    ordered = list(options("DE", 1000, goods_minor=9000, rules=rules))

    # Both standard services are free; the faster one comes first.
    assert ordered == [
        "sandbox-express:standard",
        "sandbox:standard",
        "sandbox-express:express",
    ]


def test_rates_in_another_currency_are_not_offered() -> None:
    assert options("DE", 1000, currency="GBP") == {}


def test_estimated_delivery_counts_handling_and_transit_in_working_days() -> None:
    offered = options("DE", 1000, rules=DeliveryRules(handling_days=1))

    # Monday + 1 handling + 2 transit days; express: + 1 + 0.
    assert offered["sandbox:standard"].estimated_delivery == date(2026, 12, 10)
    assert offered["sandbox:standard"].working_days == 3
    assert offered["sandbox-express:express"].estimated_delivery == date(2026, 12, 8)
    assert offered["sandbox-express:express"].service_level == ServiceLevel.EXPRESS


def test_working_days_skip_the_weekend() -> None:
    assert add_working_days(FRIDAY, 1) == MONDAY
    assert add_working_days(FRIDAY, 0) == FRIDAY
    assert add_working_days(date(2026, 12, 5), 0) == MONDAY  # a Saturday
    assert add_working_days(MONDAY, 5) == date(2026, 12, 14)
