"""Payments: every movement of money recorded once, through a gateway.

Each activity calls the gateway with an idempotency key derived from the order
and the step, then writes the payment and its payment_events row (unique by
that key) and mirrors the amounts onto the order's read model, in one
transaction. Running an activity twice moves and records money once.
"""

from typing import Any

from sqlalchemy import Row, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.payment_gateway import (
    CardDeclined,
    GatewayResult,
    GatewayUnavailable,
    PaymentGateway,
)
from db.orders import Order, append_event
from db.payments import Payment, PaymentEvent, PaymentEventKind
from models.errors import FailureType
from models.money import format_minor
from models.orders import PaymentMethod, PaymentStatus
from models.payments import (
    Authorization,
    AuthorizePayment,
    Captured,
    CapturePayment,
    CreatePaymentLink,
    ExpirePaymentLink,
    PaymentLink,
    RecordLinkPayment,
    Refunded,
    RefundPayment,
    Voided,
    VoidPayment,
    payment_id_for,
)

CASH = "cash"


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


async def _load_payment(conn: AsyncConnection, payment_id: str) -> Row[Any] | None:
    return (
        await conn.execute(select(Payment.__table__).where(Payment.id == payment_id))
    ).first()


async def _update_order(
    conn: AsyncConnection, order_id: str, status: PaymentStatus | None
) -> None:
    """Mirror the order's payments onto its read model: totals over all of them."""
    live = Payment.status.not_in([PaymentStatus.DECLINED, PaymentStatus.EXPIRED])
    totals = (
        await conn.execute(
            select(
                func.coalesce(
                    func.sum(Payment.authorized_minor - Payment.voided_minor), 0
                ),
                func.coalesce(func.sum(Payment.captured_minor), 0),
                func.coalesce(func.sum(Payment.refunded_minor), 0),
            ).where(Payment.order_id == order_id, live)
        )
    ).one()
    values: dict[str, Any] = {
        "authorized_minor": totals[0],
        "captured_minor": totals[1],
        "refunded_minor": totals[2],
    }
    if status is not None:
        values["payment_status"] = status
    await conn.execute(update(Order).where(Order.id == order_id).values(**values))


async def _insert_payment(conn: AsyncConnection, **values: Any) -> None:
    await conn.execute(
        insert(Payment).values(**values).on_conflict_do_nothing(index_elements=["id"])
    )


class PaymentActivities:
    def __init__(self, engine: AsyncEngine, gateway: PaymentGateway) -> None:
        self._engine = engine
        self._gateway = gateway

    @activity.defn
    async def authorize_payment(self, request: AuthorizePayment) -> Authorization:
        """Authorize the amount on the card (a decline is final), or note cash."""
        payment_id = payment_id_for(request.idempotency_key)
        if request.method == PaymentMethod.COD:
            return await self._register_cash(request, payment_id)
        assert request.token is not None, "a card payment carries its token"
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
            "order %s: %s %s authorized",
            request.order_id,
            format_minor(request.amount_minor, request.currency),
            request.currency,
        )
        return Authorization(
            payment_id=payment_id,
            provider=self._gateway.name,
            provider_ref=result.reference,
            amount_minor=request.amount_minor,
        )

    async def _register_cash(
        self, request: AuthorizePayment, payment_id: str
    ) -> Authorization:
        amount = format_minor(request.amount_minor, request.currency)
        async with self._engine.begin() as conn:
            await _insert_payment(
                conn,
                id=payment_id,
                order_id=request.order_id,
                method=request.method,
                provider=CASH,
                currency=request.currency,
                status=PaymentStatus.PENDING,
                authorized_minor=request.amount_minor,
            )
            await _update_order(conn, request.order_id, PaymentStatus.PENDING)
            await append_event(
                conn,
                order_id=request.order_id,
                event_id=request.event_id,
                at=request.at,
                type="payment.cash_on_delivery",
                message=f"{amount} {request.currency} to collect on delivery",
                data={"amount": amount},
            )
        return Authorization(
            payment_id=payment_id,
            provider=CASH,
            provider_ref=None,
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
            await _insert_payment(
                conn,
                id=payment_id,
                order_id=request.order_id,
                method=request.method,
                provider=self._gateway.name,
                provider_ref=reference,
                currency=request.currency,
                status=status,
                authorized_minor=0 if declined else request.amount_minor,
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
                conn, request.order_id, None if request.replacing else status
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
        """Capture part or all of an authorization, or record cash collected."""
        async with self._engine.connect() as conn:
            payment = await _load_payment(conn, request.payment_id)
        assert payment is not None, "capture of a payment that was never recorded"
        reference = payment.provider_ref
        if payment.provider != CASH:
            result = await self._gateway.capture(
                reference=payment.provider_ref,
                amount_minor=request.amount_minor,
                currency=request.currency,
                idempotency_key=request.idempotency_key,
            )
            reference = result.reference
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
                reference=reference,
            ):
                await conn.execute(
                    update(Payment)
                    .where(Payment.id == request.payment_id)
                    .values(
                        captured_minor=Payment.captured_minor + request.amount_minor
                    )
                )
            captured = await _load_payment(conn, request.payment_id)
            assert captured is not None
            status = (
                PaymentStatus.CAPTURED
                if captured.captured_minor + captured.voided_minor
                >= captured.authorized_minor
                else PaymentStatus.PARTIALLY_CAPTURED
            )
            await conn.execute(
                update(Payment)
                .where(Payment.id == request.payment_id)
                .values(status=status)
            )
            await _update_order(conn, request.order_id, status)
            collected = "collected in cash" if payment.provider == CASH else "captured"
            await append_event(
                conn,
                order_id=request.order_id,
                event_id=request.event_id,
                at=request.at,
                type="payment.captured",
                message=f"{amount} {request.currency} {collected}"
                + (f" for {request.purpose}" if request.purpose else ""),
                data={"amount": amount, "reference": reference},
            )
        activity.logger.info(
            "order %s: %s %s %s", request.order_id, amount, request.currency, collected
        )
        return Captured(captured_minor=captured.captured_minor, provider_ref=reference)

    @activity.defn
    async def void_payment(self, request: VoidPayment) -> Voided:
        """Release an authorization, or part of it; nothing if none was made."""
        async with self._engine.connect() as conn:
            payment = await _load_payment(conn, request.payment_id)
        if payment is None:
            payment = await self._adopt_lost_authorization(request)
            if payment is None:
                return Voided(provider_ref=None)
        remaining = (
            payment.authorized_minor - payment.captured_minor - payment.voided_minor
        )
        amount = min(request.amount_minor or remaining, remaining)
        reference = payment.provider_ref
        if payment.provider != CASH:
            result = await self._gateway.void(
                reference=payment.provider_ref,
                amount_minor=request.amount_minor,
                idempotency_key=request.idempotency_key,
            )
            reference = result.reference
        async with self._engine.begin() as conn:
            if await _record_event(
                conn,
                payment_id=request.payment_id,
                order_id=request.order_id,
                kind=PaymentEventKind.VOID,
                amount_minor=amount,
                currency=payment.currency,
                idempotency_key=request.idempotency_key,
                reference=reference,
                detail=request.reason,
            ):
                await conn.execute(
                    update(Payment)
                    .where(Payment.id == request.payment_id)
                    .values(voided_minor=Payment.voided_minor + amount)
                )
            voided = await _load_payment(conn, request.payment_id)
            assert voided is not None
            status = None
            if voided.voided_minor >= voided.authorized_minor:
                status = PaymentStatus.VOIDED
                await conn.execute(
                    update(Payment)
                    .where(Payment.id == request.payment_id)
                    .values(status=status)
                )
            await _update_order(
                conn, request.order_id, None if request.replaced else status
            )
            shown = format_minor(amount, payment.currency)
            await append_event(
                conn,
                order_id=request.order_id,
                event_id=request.event_id,
                at=request.at,
                type="payment.voided",
                message=f"{shown} {payment.currency} released: {request.reason}",
                data={"amount": shown, "reference": reference},
            )
        activity.logger.info(
            "order %s: %s %s of the authorization released",
            request.order_id,
            shown,
            payment.currency,
        )
        return Voided(provider_ref=reference, voided_minor=amount)

    async def _adopt_lost_authorization(self, request: VoidPayment) -> Row[Any] | None:
        """Record an authorization the gateway made whose answer never arrived."""
        if request.authorization_key is None:
            return None
        reference = await self._gateway.find_authorization(request.authorization_key)
        if reference is None:
            return None
        assert request.currency is not None and request.authorized_minor is not None
        activity.logger.warning(
            "order %s: voiding an authorization known only to the gateway (%s)",
            request.order_id,
            reference,
        )
        async with self._engine.begin() as conn:
            await _insert_payment(
                conn,
                id=request.payment_id,
                order_id=request.order_id,
                method=PaymentMethod.CARD,
                provider=self._gateway.name,
                provider_ref=reference,
                currency=request.currency,
                status=PaymentStatus.AUTHORIZED,
                authorized_minor=request.authorized_minor,
            )
            return await _load_payment(conn, request.payment_id)

    @activity.defn
    async def refund_payment(self, request: RefundPayment) -> Refunded:
        """Give back captured money, all or part of it, once per key."""
        async with self._engine.connect() as conn:
            payment = await _load_payment(conn, request.payment_id)
        assert payment is not None, "refund of a payment that was never recorded"
        if payment.provider == CASH:
            # Cash was taken at the door: staff pay it back by bank transfer.
            result = GatewayResult(f"cash-refund:{request.idempotency_key}"[:128])
        else:
            result = await self._gateway.refund(
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
                kind=PaymentEventKind.REFUND,
                amount_minor=request.amount_minor,
                currency=request.currency,
                idempotency_key=request.idempotency_key,
                reference=result.reference,
                detail=request.reason,
            ):
                await conn.execute(
                    update(Payment)
                    .where(Payment.id == request.payment_id)
                    .values(
                        refunded_minor=Payment.refunded_minor + request.amount_minor
                    )
                )
            refunded = await _load_payment(conn, request.payment_id)
            assert refunded is not None
            status = (
                PaymentStatus.REFUNDED
                if refunded.refunded_minor >= refunded.captured_minor
                else PaymentStatus.PARTIALLY_REFUNDED
            )
            await conn.execute(
                update(Payment)
                .where(Payment.id == request.payment_id)
                .values(status=status)
            )
            await _update_order(conn, request.order_id, status)
            await append_event(
                conn,
                order_id=request.order_id,
                event_id=request.event_id,
                at=request.at,
                type="payment.refunded",
                message=f"{amount} {request.currency} refunded: {request.reason}",
                data={"amount": amount, "reference": result.reference},
            )
        activity.logger.info(
            "order %s: %s %s refunded", request.order_id, amount, request.currency
        )
        return Refunded(
            refunded_minor=refunded.refunded_minor, provider_ref=result.reference
        )

    @activity.defn
    async def create_payment_link(self, request: CreatePaymentLink) -> PaymentLink:
        """Ask the gateway for a payment link the customer pays before it expires."""
        payment_id = payment_id_for(request.idempotency_key)
        link = await self._gateway.create_link(
            amount_minor=request.amount_minor,
            currency=request.currency,
            expires_at=request.expires_at,
            idempotency_key=request.idempotency_key,
        )
        amount = format_minor(request.amount_minor, request.currency)
        async with self._engine.begin() as conn:
            await _insert_payment(
                conn,
                id=payment_id,
                order_id=request.order_id,
                method=PaymentMethod.LINK,
                provider=self._gateway.name,
                provider_ref=link.link_id,
                currency=request.currency,
                status=PaymentStatus.PENDING,
                authorized_minor=request.amount_minor,
            )
            await _update_order(conn, request.order_id, PaymentStatus.PENDING)
            await append_event(
                conn,
                order_id=request.order_id,
                event_id=request.event_id,
                at=request.at,
                type="payment.link_sent",
                message=(
                    f"payment link for {amount} {request.currency} sent, valid "
                    f"until {request.expires_at.isoformat(timespec='seconds')}"
                ),
                data={"url": link.url, "link_id": link.link_id},
            )
        activity.logger.info(
            "order %s: payment link %s sent", request.order_id, link.link_id
        )
        return PaymentLink(
            payment_id=payment_id,
            link_id=link.link_id,
            url=link.url,
            expires_at=request.expires_at,
        )

    @activity.defn
    async def record_link_payment(self, request: RecordLinkPayment) -> Captured:
        """The customer paid the link: the money is captured."""
        amount = format_minor(request.amount_minor, request.currency)
        async with self._engine.begin() as conn:
            payment = await _load_payment(conn, request.payment_id)
            assert payment is not None, "payment for a link that was never created"
            if await _record_event(
                conn,
                payment_id=request.payment_id,
                order_id=request.order_id,
                kind=PaymentEventKind.CAPTURE,
                amount_minor=request.amount_minor,
                currency=request.currency,
                idempotency_key=f"{request.order_id}:link:{request.notification_id}",
                reference=payment.provider_ref,
            ):
                await conn.execute(
                    update(Payment)
                    .where(Payment.id == request.payment_id)
                    .values(
                        captured_minor=Payment.captured_minor + request.amount_minor,
                        status=PaymentStatus.CAPTURED,
                    )
                )
            await _update_order(conn, request.order_id, PaymentStatus.CAPTURED)
            await append_event(
                conn,
                order_id=request.order_id,
                event_id=request.event_id,
                at=request.at,
                type="payment.link_paid",
                actor=f"provider:{payment.provider}",
                message=f"{amount} {request.currency} paid through the payment link",
                data={"amount": amount, "notification": request.notification_id},
            )
        activity.logger.info("order %s: payment link paid", request.order_id)
        return Captured(
            captured_minor=request.amount_minor, provider_ref=payment.provider_ref
        )

    @activity.defn
    async def expire_payment_link(self, request: ExpirePaymentLink) -> None:
        """Close a payment link that was not paid, so it can no longer be paid."""
        async with self._engine.connect() as conn:
            payment = await _load_payment(conn, request.payment_id)
        if payment is None or payment.status != PaymentStatus.PENDING:
            return
        await self._gateway.expire_link(link_id=payment.provider_ref)
        async with self._engine.begin() as conn:
            await conn.execute(
                update(Payment)
                .where(
                    Payment.id == request.payment_id,
                    Payment.status == PaymentStatus.PENDING,
                )
                .values(status=PaymentStatus.EXPIRED)
            )
            await _update_order(conn, request.order_id, PaymentStatus.EXPIRED)
            await append_event(
                conn,
                order_id=request.order_id,
                event_id=request.event_id,
                at=request.at,
                type="payment.link_closed",
                message=f"payment link closed: {request.reason}",
                data={"link_id": payment.provider_ref},
            )
        activity.logger.info(
            "order %s: payment link %s closed", request.order_id, payment.provider_ref
        )
