"""Payments: authorize, capture and void through a gateway, recorded once each.

The gateway is a small Protocol; `SandboxGateway` is the built-in one used by
default and in tests. Every call carries an idempotency key derived from the
order and the step, so a retry after a lost response never charges twice, and
the payment_events row with that key is written once.

Gateway errors:

    GatewayError
    ├── CardDeclined        the issuer said no: not retried, the order fails
    └── GatewayUnavailable  network trouble or a timeout: retried by Temporal
"""

import hashlib
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Row, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from db.orders import Order, append_event
from db.payments import Payment, PaymentEvent, PaymentEventKind
from models.errors import FailureType
from models.money import format_minor
from models.orders import PaymentStatus
from models.payments import (
    Authorization,
    AuthorizePayment,
    Captured,
    CapturePayment,
    Voided,
    VoidPayment,
)

_PAYMENT_IDS = uuid.UUID("6f1c7a52-52f4-4d8e-9b8e-3f0b7f1e2a10")


class GatewayError(Exception):
    """Base of everything a payment gateway can raise."""


class CardDeclined(GatewayError):
    pass


class GatewayUnavailable(GatewayError):
    pass


@dataclass(frozen=True)
class GatewayResult:
    reference: str


class PaymentGateway(Protocol):
    name: str

    async def authorize(
        self, *, token: str, amount_minor: int, currency: str, idempotency_key: str
    ) -> GatewayResult: ...

    async def capture(
        self, *, reference: str, amount_minor: int, currency: str, idempotency_key: str
    ) -> GatewayResult: ...

    async def void(self, *, reference: str, idempotency_key: str) -> GatewayResult: ...


class SandboxGateway:
    """A gateway that needs no network, with magic card tokens for testing.

    - `tok_decline`: the card is declined.
    - `tok_flaky`: the first call fails before charging, the second charges but
      its answer is lost; the gateway's idempotency keys make the third call
      return the charge made by the second.
    - anything else: approved.
    """

    name = "sandbox"

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.charges: dict[str, str] = {}

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

    async def capture(
        self, *, reference: str, amount_minor: int, currency: str, idempotency_key: str
    ) -> GatewayResult:
        self.calls[idempotency_key] += 1
        return GatewayResult(_reference("capt", idempotency_key))

    async def void(self, *, reference: str, idempotency_key: str) -> GatewayResult:
        self.calls[idempotency_key] += 1
        return GatewayResult(_reference("void", idempotency_key))

    def charges_for(self, order_id: str) -> int:
        """How many authorizations the sandbox made for an order, whatever the key."""
        return sum(1 for key in self.charges if key.startswith(f"{order_id}:"))


def _reference(prefix: str, idempotency_key: str) -> str:
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:20]
    return f"sbx_{prefix}_{digest}"


def payment_id_for(idempotency_key: str) -> str:
    return str(uuid.uuid5(_PAYMENT_IDS, idempotency_key))


async def _record_event(
    conn: AsyncConnection,
    *,
    payment_id: str,
    order_id: str,
    kind: PaymentEventKind,
    amount_minor: int,
    currency: str,
    idempotency_key: str,
    reference: str | None,
    detail: str | None = None,
) -> bool:
    """Insert a money movement; False when its idempotency key is already there."""
    inserted = await conn.execute(
        insert(PaymentEvent)
        .values(
            payment_id=payment_id,
            order_id=order_id,
            kind=kind,
            amount_minor=amount_minor,
            currency=currency,
            idempotency_key=idempotency_key,
            provider_ref=reference,
            detail=detail,
        )
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(PaymentEvent.id)
    )
    return inserted.first() is not None


async def _load_payment(conn: AsyncConnection, payment_id: str) -> Row[Any]:
    return (
        await conn.execute(select(Payment.__table__).where(Payment.id == payment_id))
    ).one()


async def _update_order(
    conn: AsyncConnection, order_id: str, status: PaymentStatus, **amounts: int
) -> None:
    """Mirror the payment's status and amounts onto the order's read model."""
    await conn.execute(
        update(Order)
        .where(Order.id == order_id)
        .values(payment_status=status, **amounts)
    )


class PaymentActivities:
    def __init__(self, engine: AsyncEngine, gateway: PaymentGateway) -> None:
        self._engine = engine
        self._gateway = gateway

    @activity.defn
    async def authorize_payment(self, request: AuthorizePayment) -> Authorization:
        """Authorize the order's total on the card; a decline is final."""
        payment_id = payment_id_for(request.idempotency_key)
        amount = format_minor(request.amount_minor, request.currency)
        try:
            result = await self._gateway.authorize(
                token=request.token,
                amount_minor=request.amount_minor,
                currency=request.currency,
                idempotency_key=request.idempotency_key,
            )
        except CardDeclined as declined:
            await self._record_outcome(request, payment_id, declined=str(declined))
            activity.logger.info("order %s: payment declined", request.order_id)
            raise ApplicationError(
                str(declined), type=FailureType.PAYMENT_DECLINED, non_retryable=True
            ) from declined
        except GatewayUnavailable:
            activity.logger.warning(
                "order %s: gateway unavailable on attempt %s, will retry",
                request.order_id,
                activity.info().attempt,
            )
            raise

        await self._record_outcome(request, payment_id, reference=result.reference)
        activity.logger.info(
            "order %s: %s %s authorized", request.order_id, amount, request.currency
        )
        return Authorization(
            payment_id=payment_id,
            provider=self._gateway.name,
            provider_ref=result.reference,
            amount_minor=request.amount_minor,
        )

    async def _record_outcome(
        self,
        request: AuthorizePayment,
        payment_id: str,
        *,
        reference: str | None = None,
        declined: str | None = None,
    ) -> None:
        """Store an authorization, or a decline with its reason, in one go."""
        status = PaymentStatus.DECLINED if declined else PaymentStatus.AUTHORIZED
        amount = format_minor(request.amount_minor, request.currency)
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(Payment)
                .values(
                    id=payment_id,
                    order_id=request.order_id,
                    method=request.method,
                    provider=self._gateway.name,
                    provider_ref=reference,
                    currency=request.currency,
                    status=status,
                    authorized_minor=0 if declined else request.amount_minor,
                )
                .on_conflict_do_nothing(index_elements=["id"])
            )
            await _record_event(
                conn,
                payment_id=payment_id,
                order_id=request.order_id,
                kind=PaymentEventKind.DECLINE
                if declined
                else PaymentEventKind.AUTHORIZE,
                amount_minor=request.amount_minor,
                currency=request.currency,
                idempotency_key=request.idempotency_key,
                reference=reference,
                detail=declined,
            )
            await _update_order(
                conn,
                request.order_id,
                status,
                authorized_minor=0 if declined else request.amount_minor,
            )
            await append_event(
                conn,
                order_id=request.order_id,
                event_id=request.event_id,
                at=request.at,
                type=f"payment.{status}",
                message=(
                    f"payment declined: {declined}"
                    if declined
                    else f"{amount} {request.currency} authorized on {request.method}"
                ),
                data={"amount": amount, "reference": reference, "reason": declined},
            )

    @activity.defn
    async def capture_payment(self, request: CapturePayment) -> Captured:
        """Capture part or all of an authorization, once per idempotency key."""
        async with self._engine.connect() as conn:
            payment = await _load_payment(conn, request.payment_id)
        result = await self._gateway.capture(
            reference=payment.provider_ref,
            amount_minor=request.amount_minor,
            currency=request.currency,
            idempotency_key=request.idempotency_key,
        )
        amount = format_minor(request.amount_minor, request.currency)
        async with self._engine.begin() as conn:
            if await _record_event(
                conn,
                payment_id=request.payment_id,
                order_id=request.order_id,
                kind=PaymentEventKind.CAPTURE,
                amount_minor=request.amount_minor,
                currency=request.currency,
                idempotency_key=request.idempotency_key,
                reference=result.reference,
            ):
                await conn.execute(
                    update(Payment)
                    .where(Payment.id == request.payment_id)
                    .values(
                        captured_minor=Payment.captured_minor + request.amount_minor
                    )
                )
            captured = await _load_payment(conn, request.payment_id)
            status = (
                PaymentStatus.CAPTURED
                if captured.captured_minor >= captured.authorized_minor
                else PaymentStatus.PARTIALLY_CAPTURED
            )
            await conn.execute(
                update(Payment)
                .where(Payment.id == request.payment_id)
                .values(status=status)
            )
            await _update_order(
                conn, request.order_id, status, captured_minor=captured.captured_minor
            )
            await append_event(
                conn,
                order_id=request.order_id,
                event_id=request.event_id,
                at=request.at,
                type="payment.captured",
                message=f"{amount} {request.currency} captured",
                data={"amount": amount, "reference": result.reference},
            )
        activity.logger.info(
            "order %s: %s %s captured", request.order_id, amount, request.currency
        )
        return Captured(
            captured_minor=captured.captured_minor, provider_ref=result.reference
        )

    @activity.defn
    async def void_payment(self, request: VoidPayment) -> Voided:
        """Cancel an authorization that will not be captured."""
        async with self._engine.connect() as conn:
            payment = await _load_payment(conn, request.payment_id)
        result = await self._gateway.void(
            reference=payment.provider_ref, idempotency_key=request.idempotency_key
        )
        async with self._engine.begin() as conn:
            await _record_event(
                conn,
                payment_id=request.payment_id,
                order_id=request.order_id,
                kind=PaymentEventKind.VOID,
                amount_minor=payment.authorized_minor - payment.captured_minor,
                currency=payment.currency,
                idempotency_key=request.idempotency_key,
                reference=result.reference,
                detail=request.reason,
            )
            await conn.execute(
                update(Payment)
                .where(Payment.id == request.payment_id)
                .values(status=PaymentStatus.VOIDED)
            )
            await _update_order(conn, request.order_id, PaymentStatus.VOIDED)
            await append_event(
                conn,
                order_id=request.order_id,
                event_id=request.event_id,
                at=request.at,
                type="payment.voided",
                message=f"authorization voided: {request.reason}",
                data={"reference": result.reference},
            )
        activity.logger.info("order %s: authorization voided", request.order_id)
        return Voided(provider_ref=result.reference)
