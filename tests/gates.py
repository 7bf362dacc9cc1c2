"""The sandbox gateway and carrier, with gates a test can hold shut.

A gate makes one call wait inside the provider until the test opens it, so a
test can act at an exact moment of an order (a cancel while the card is being
authorized, while the parcel is being handed to the carrier) without sleeping.
"""

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

from activities.carriers import (
    POST_RATES,
    CarrierBooking,
    CarrierTracking,
    SandboxCarrier,
)
from activities.payment_gateway import CardDeclined, GatewayResult, SandboxGateway
from models.delivery import RateCard
from models.shipping import ServiceLevel


@dataclass
class Gate:
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    async def pass_through(self) -> None:
        self.entered.set()
        await self.opened.wait()


class GatedGateway(SandboxGateway):
    """Authorizations with a gated token wait until the test opens the gate.

    Tokens in `decline_after_first` are approved once, then declined (a card
    that cannot take an amendment's higher total).
    """

    def __init__(self) -> None:
        super().__init__()
        self.gates: dict[str, Gate] = {}
        self.decline_after_first: set[str] = set()
        self._approved: set[str] = set()

    def gate(self, token: str) -> Gate:
        return self.gates.setdefault(token, Gate())

    async def authorize(
        self, *, token: str, amount_minor: int, currency: str, idempotency_key: str
    ) -> GatewayResult:
        if token in self.gates:
            await self.gates[token].pass_through()
        if token in self.decline_after_first:
            if token in self._approved and idempotency_key not in self.charges:
                raise CardDeclined("over the card's limit (test gateway)")
            self._approved.add(token)
        return await super().authorize(
            token=token,
            amount_minor=amount_minor,
            currency=currency,
            idempotency_key=idempotency_key,
        )


class GatedCarrier(SandboxCarrier):
    """Parcels to a gated postal code wait at their hand-over to the carrier
    (or, with a booking gate, at their booking) until the test opens it."""

    def __init__(
        self,
        transit_seconds: float,
        rate_card: RateCard = POST_RATES,
        tracking_prefix: str = "SBX",
    ) -> None:
        super().__init__(transit_seconds, rate_card, tracking_prefix)
        self.gates: dict[str, Gate] = {}
        self.booking_gates: dict[str, Gate] = {}
        self._postal_codes: dict[str, str] = {}
        # Parcels to these postal codes move only by webhook: asked, the
        # carrier has no news.
        self.silent: set[str] = set()
        self._silent_parcels: set[str] = set()

    def gate(self, postal_code: str) -> Gate:
        return self.gates.setdefault(postal_code, Gate())

    def booking_gate(self, postal_code: str) -> Gate:
        return self.booking_gates.setdefault(postal_code, Gate())

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
        if postal_code in self.booking_gates:
            await self.booking_gates[postal_code].pass_through()
        booking = await super().book(
            shipment_number=shipment_number,
            package_code=package_code,
            weight_grams=weight_grams,
            country=country,
            postal_code=postal_code,
            service_level=service_level,
            idempotency_key=idempotency_key,
        )
        self._postal_codes[booking.tracking_number] = postal_code
        if postal_code in self.silent:
            self._silent_parcels.add(booking.tracking_number)
        return booking

    async def hand_over(self, *, tracking_number: str) -> None:
        postal_code = self._postal_codes.get(tracking_number)
        if postal_code in self.gates:
            await self.gates[postal_code].pass_through()
        await super().hand_over(tracking_number=tracking_number)

    async def track(
        self, *, tracking_number: str, shipped_at: datetime
    ) -> CarrierTracking:
        if tracking_number in self._silent_parcels:
            return CarrierTracking(False, None, "no news", 3600.0)
        return await super().track(
            tracking_number=tracking_number, shipped_at=shipped_at
        )
