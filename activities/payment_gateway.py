"""The payment gateway seam: a small Protocol and the built-in sandbox.

A real provider is one more class implementing `PaymentGateway`, chosen by
settings. Every call carries an idempotency key, so a retry after a lost
answer never moves money twice.

Gateway errors:

    GatewayError
    ├── CardDeclined        the issuer said no: final, the order fails
    └── GatewayUnavailable  network trouble or a timeout: retried
"""

import hashlib
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class GatewayError(Exception):
    """Base of everything a payment gateway can raise."""


class CardDeclined(GatewayError):
    pass


class GatewayUnavailable(GatewayError):
    pass


@dataclass(frozen=True)
class GatewayResult:
    reference: str


@dataclass(frozen=True)
class LinkResult:
    link_id: str
    url: str


class PaymentGateway(Protocol):
    name: str

    async def authorize(
        self, *, token: str, amount_minor: int, currency: str, idempotency_key: str
    ) -> GatewayResult: ...

    async def find_authorization(self, idempotency_key: str) -> str | None:
        """The reference of an authorization made with this key, if any."""
        ...

    async def capture(
        self, *, reference: str, amount_minor: int, currency: str, idempotency_key: str
    ) -> GatewayResult: ...

    async def void(
        self, *, reference: str, amount_minor: int | None, idempotency_key: str
    ) -> GatewayResult:
        """Release an authorization, or only `amount_minor` of it."""
        ...

    async def refund(
        self, *, reference: str, amount_minor: int, currency: str, idempotency_key: str
    ) -> GatewayResult: ...

    async def create_link(
        self,
        *,
        amount_minor: int,
        currency: str,
        expires_at: datetime,
        idempotency_key: str,
    ) -> LinkResult: ...

    async def expire_link(self, *, link_id: str) -> None: ...


def _reference(prefix: str, idempotency_key: str) -> str:
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:20]
    return f"sbx_{prefix}_{digest}"


class SandboxGateway:
    """A gateway that needs no network, with magic card tokens for testing.

    - `tok_decline`: the card is declined.
    - `tok_flaky`: the first call fails before charging, the second charges but
      its answer is lost; the idempotency key makes the third call return the
      charge the second one made.
    - anything else: approved.

    Payment links are paid through the API's sandbox endpoint, which sends the
    provider's signed webhook (see api/webhooks.py).
    """

    name = "sandbox"

    def __init__(self, link_base_url: str = "http://127.0.0.1:8000") -> None:
        self._link_base_url = link_base_url.rstrip("/")
        self.calls: Counter[str] = Counter()
        self.charges: dict[str, str] = {}
        self.voided: Counter[str] = Counter()
        self.refunded: Counter[str] = Counter()
        self.expired_links: set[str] = set()

    async def authorize(
        self, *, token: str, amount_minor: int, currency: str, idempotency_key: str
    ) -> GatewayResult:
        self.calls[idempotency_key] += 1
        if token == "tok_decline":
            raise CardDeclined(
                "card declined by the issuer (sandbox token tok_decline)"
            )
        if token == "tok_flaky" and self.calls[idempotency_key] == 1:
            raise GatewayUnavailable("sandbox gateway unavailable (tok_flaky)")
        reference = self.charges.setdefault(
            idempotency_key, _reference("auth", idempotency_key)
        )
        if token == "tok_flaky" and self.calls[idempotency_key] == 2:
            raise GatewayUnavailable("sandbox gateway timed out after charging")
        return GatewayResult(reference)

    async def find_authorization(self, idempotency_key: str) -> str | None:
        return self.charges.get(idempotency_key)

    async def capture(
        self, *, reference: str, amount_minor: int, currency: str, idempotency_key: str
    ) -> GatewayResult:
        self.calls[idempotency_key] += 1
        return GatewayResult(_reference("capt", idempotency_key))

    async def void(
        self, *, reference: str, amount_minor: int | None, idempotency_key: str
    ) -> GatewayResult:
        self.calls[idempotency_key] += 1
        if self.calls[idempotency_key] == 1:
            self.voided[reference] += 1
        return GatewayResult(_reference("void", idempotency_key))

    async def refund(
        self, *, reference: str, amount_minor: int, currency: str, idempotency_key: str
    ) -> GatewayResult:
        self.calls[idempotency_key] += 1
        if self.calls[idempotency_key] == 1:
            self.refunded[reference] += amount_minor
        return GatewayResult(_reference("rfnd", idempotency_key))

    async def create_link(
        self,
        *,
        amount_minor: int,
        currency: str,
        expires_at: datetime,
        idempotency_key: str,
    ) -> LinkResult:
        self.calls[idempotency_key] += 1
        link_id = _reference("link", idempotency_key)
        return LinkResult(
            link_id, f"{self._link_base_url}/v1/sandbox/payment-links/{link_id}"
        )

    async def expire_link(self, *, link_id: str) -> None:
        self.expired_links.add(link_id)

    def charges_for(self, order_id: str) -> int:
        """How many authorizations the sandbox made for an order, whatever the key."""
        return sum(1 for key in self.charges if key.startswith(f"{order_id}:"))
