"""Carriers: quote, book, cancel a booking, track.

`Carrier` is the small Protocol a real carrier's client implements. Two
sandbox carriers are built in, with their own rate cards and speeds, and
without a network: they book parcels at once and report them delivered a
configurable time after they left (unless a webhook said otherwise first).
"""

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from models.delivery import (
    CarrierRate,
    DeliveryRules,
    RateCard,
    Service,
    ServiceLevel,
    WeightBand,
    ZoneRates,
    rates,
)


@dataclass(frozen=True)
class CarrierBooking:
    tracking_number: str
    label_ref: str
    check_after_seconds: float


@dataclass(frozen=True)
class CarrierTracking:
    delivered: bool
    delivered_at: datetime | None
    description: str
    check_after_seconds: float


class Carrier(Protocol):
    name: str

    async def quote(self, *, country: str, weight_grams: int) -> list[CarrierRate]:
        """What each service costs for one parcel of this weight to this country."""
        ...

    async def book(
        self,
        *,
        shipment_number: str,
        package_code: str,
        weight_grams: int,
        country: str,
        postal_code: str,
        service_level: ServiceLevel,
        idempotency_key: str,
    ) -> CarrierBooking:
        """Book the parcel; the same idempotency key books it once."""
        ...

    async def cancel(self, *, tracking_number: str) -> None:
        """Cancel a booking whose parcel never left; cancelling twice is fine."""
        ...

    async def hand_over(self, *, tracking_number: str) -> None:
        """The booked parcel leaves with the carrier (its collection is
        confirmed); confirming twice is fine."""
        ...

    async def track(
        self, *, tracking_number: str, shipped_at: datetime
    ) -> CarrierTracking: ...


def _bands(*prices: tuple[int, int]) -> list[WeightBand]:
    return [WeightBand(max_grams=grams, price_minor=price) for grams, price in prices]


_CORE_EU = ("AT", "BE", "DE", "DK", "FR", "LU", "NL")
_REST_EU = "BG CY CZ EE ES FI GR HR HU IE IT LT LV MT PL PT RO SE SI SK".split()

# Sandbox Post: cheap, standard service only, everywhere.
POST_RATES = RateCard(
    carrier="sandbox",
    name="Sandbox Post",
    currency="EUR",
    countries={**dict.fromkeys(_CORE_EU, "core"), **dict.fromkeys(_REST_EU, "eu")},
    other_zone="world",
    services=[
        Service(
            level=ServiceLevel.STANDARD,
            zones=[
                ZoneRates(
                    zone="core",
                    transit_days=2,
                    bands=_bands((2000, 490), (5000, 690), (10000, 990), (31500, 1690)),
                ),
                ZoneRates(
                    zone="eu",
                    transit_days=4,
                    bands=_bands(
                        (2000, 950), (5000, 1350), (10000, 1850), (31500, 2900)
                    ),
                ),
                ZoneRates(
                    zone="world",
                    transit_days=8,
                    bands=_bands((2000, 1990), (5000, 3200), (20000, 4900)),
                ),
            ],
        )
    ],
)

# Sandbox Express: dearer and faster, standard and express, Europe only.
EXPRESS_RATES = RateCard(
    carrier="sandbox-express",
    name="Sandbox Express",
    currency="EUR",
    countries={**dict.fromkeys(_CORE_EU, "core"), **dict.fromkeys(_REST_EU, "eu")},
    services=[
        Service(
            level=ServiceLevel.STANDARD,
            zones=[
                ZoneRates(
                    zone="core",
                    transit_days=1,
                    bands=_bands((5000, 690), (31500, 1290)),
                ),
                ZoneRates(
                    zone="eu",
                    transit_days=3,
                    bands=_bands((5000, 1190), (31500, 2290)),
                ),
            ],
        ),
        Service(
            level=ServiceLevel.EXPRESS,
            zones=[
                ZoneRates(
                    zone="core",
                    transit_days=0,
                    bands=_bands((5000, 1490), (31500, 2490)),
                ),
                ZoneRates(
                    zone="eu",
                    transit_days=1,
                    bands=_bands((5000, 2490), (31500, 3990)),
                ),
            ],
        ),
    ],
)


class SandboxCarrier:
    """Books at once; delivers every parcel `transit_seconds` after booking."""

    def __init__(
        self,
        transit_seconds: float,
        rate_card: RateCard = POST_RATES,
        tracking_prefix: str = "SBX",
    ) -> None:
        self.name = rate_card.carrier
        self.rate_card = rate_card
        self._transit = timedelta(seconds=transit_seconds)
        self._prefix = tracking_prefix
        # What happened to the sandbox's bookings, for tests to look at.
        self.cancelled: set[str] = set()
        self.handed_over: set[str] = set()

    async def quote(self, *, country: str, weight_grams: int) -> list[CarrierRate]:
        return rates(self.rate_card, country, weight_grams)

    async def book(
        self,
        *,
        shipment_number: str,
        package_code: str,
        weight_grams: int,
        country: str,
        postal_code: str,
        service_level: ServiceLevel,
        idempotency_key: str,
    ) -> CarrierBooking:
        digest = hashlib.sha256(f"{self.name}:{idempotency_key}".encode()).hexdigest()
        number = int(digest[:12], 16) % 10**12
        return CarrierBooking(
            tracking_number=f"{self._prefix}{number:012d}",
            label_ref=f"label-{self.name}-{digest[12:24]}",
            check_after_seconds=self._check_after(self._transit),
        )

    async def cancel(self, *, tracking_number: str) -> None:
        self.cancelled.add(tracking_number)

    async def hand_over(self, *, tracking_number: str) -> None:
        self.handed_over.add(tracking_number)

    async def track(
        self, *, tracking_number: str, shipped_at: datetime
    ) -> CarrierTracking:
        arrival = shipped_at + self._transit
        now = datetime.now(UTC)
        if now >= arrival:
            return CarrierTracking(True, arrival, "delivered to the recipient", 60.0)
        return CarrierTracking(
            False, None, "in transit", self._check_after(arrival - now)
        )

    @staticmethod
    def _check_after(wait: timedelta) -> float:
        return max(wait.total_seconds(), 0.05)


def sandbox_carriers(transit_seconds: float) -> list[Carrier]:
    """The built-in carriers; express parcels travel in half the time."""
    return [
        SandboxCarrier(transit_seconds, POST_RATES),
        SandboxCarrier(transit_seconds / 2, EXPRESS_RATES, tracking_prefix="SBE"),
    ]


@dataclass(frozen=True)
class DeliveryPricing:
    """What delivery is priced with: the carriers (the first the default) and
    the shop's rules per currency."""

    carriers: Sequence[Carrier]
    rules: Callable[[str], DeliveryRules]
