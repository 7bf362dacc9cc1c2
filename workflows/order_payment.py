"""How an order is paid: by card, by payment link, or in cash on delivery.

Each method registers what undoes it before it acts, so a cancel at any moment
voids, closes or refunds exactly what was done, and no more.

    card  authorize now, capture when the parcel leaves
    link  send a payment link, wait for the provider's webhook until it expires
    cod   nothing to authorize; the carrier collects the cash on delivery
"""

from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Protocol, TypeVar

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.order_actions import PaymentNotification
    from models.orders import (
        OrderState,
        OrderStatus,
        PaymentLinkInfo,
        PaymentMethod,
        PaymentStatus,
        PlaceOrder,
    )
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
    from models.returns import EXCHANGE
    from workflows.saga import Compensations

R = TypeVar("R")

VOID = "void authorization"
CLOSE_LINK = "close payment link"
REFUND = "refund payment"


class LinkExpired(Exception):
    """Nobody paid the payment link before it expired."""


class PaymentRefused(Exception):
    """The provider refused the money an amendment needs."""


class Process(Protocol):
    """What the payment steps need from the order workflow."""

    order: PlaceOrder
    state: OrderState
    undo: Compensations
    undo_reason: str

    async def call(
        self, activity: str, arg: BaseModel, result_type: type[R], *, summary: str
    ) -> R: ...

    async def wait_for(self, ready: Callable[[], bool], until: datetime) -> bool: ...

    async def set_status(
        self, status: OrderStatus, event_type: str, message: str
    ) -> None: ...

    async def note(self, event_type: str, message: str) -> None: ...

    def event_id(self) -> str: ...


class OrderPayment:
    def __init__(self, process: Process) -> None:
        self._p = process
        self._authorization: Authorization | None = None
        self._authorization_key = ""
        self._link: PaymentLink | None = None
        self._paid_link: PaymentLink | None = None
        self._links: dict[str, PaymentLink] = {}
        self._notifications: list[PaymentNotification] = []
        self._seen: set[str] = set()
        self._changes = 0

    @property
    def method(self) -> str:
        return self._p.order.payment.method

    # Taking the money.

    async def take(self) -> None:
        """Authorize the card, register the cash, or wait for the link's payment."""
        if self.method == EXCHANGE:
            # A replacement order: the returned goods pay for it.
            self._p.state.payment_status = PaymentStatus.CAPTURED
            exchange = self._p.order.exchange
            assert exchange is not None
            await self._p.note(
                "payment.exchange",
                f"paid with the goods of return {exchange.rma} of order "
                f"{exchange.order_number}",
            )
        elif self.method == PaymentMethod.LINK:
            await self._pay_by_link()
        else:
            key = f"{self._p.order.order_id}:authorize"
            self._authorization_key = key
            self._p.undo.add(VOID, self._void_current)
            try:
                self._authorization = await self._authorize(
                    key, self._p.state.total_minor
                )
            except Exception:
                self._p.undo.discard(VOID)
                raise

    async def _authorize(
        self, key: str, amount_minor: int, *, replacing: bool = False
    ) -> Authorization:
        state = self._p.state
        try:
            authorization = await self._p.call(
                "authorize_payment",
                AuthorizePayment(
                    order_id=state.order_id,
                    method=self.method,
                    token=self._p.order.payment.token,
                    amount_minor=amount_minor,
                    currency=state.currency,
                    idempotency_key=key,
                    event_id=self._p.event_id(),
                    at=workflow.now(),
                    replacing=replacing,
                ),
                Authorization,
                summary="authorize payment",
            )
        except Exception:
            if self.method == PaymentMethod.CARD:
                state.payment_status = PaymentStatus.DECLINED
            raise
        state.payment_status = (
            PaymentStatus.PENDING
            if self.method == PaymentMethod.COD
            else PaymentStatus.AUTHORIZED
        )
        state.authorized_minor = authorization.amount_minor
        return authorization

    async def _pay_by_link(self) -> None:
        self._p.undo.add(CLOSE_LINK, self._close_link)
        await self._send_link(self._p.state.total_minor)
        await self._p.set_status(
            OrderStatus.AWAITING_PAYMENT,
            "order.awaiting_payment",
            "waiting for the customer to pay the payment link",
        )
        while self._paid_link is None:
            link = self._link
            assert link is not None
            # Wake on a webhook, or when an amendment replaced the link (and
            # with it the deadline).
            arrived = await self._p.wait_for(
                partial(self._news_since, link), link.expires_at
            )
            if not arrived and self._link is link:
                raise LinkExpired
            while self._notifications and self._paid_link is None:
                await self._handle(self._notifications.pop(0))

    def _news_since(self, link: PaymentLink) -> bool:
        return bool(self._notifications) or self._link is not link

    async def _send_link(self, amount_minor: int) -> None:
        state = self._p.state
        self._changes += 1
        suffix = "" if self._changes == 1 else f":{self._changes}"
        expires_at = workflow.now() + timedelta(
            seconds=self._p.order.policy.payment_link_seconds
        )
        link = await self._p.call(
            "create_payment_link",
            CreatePaymentLink(
                order_id=state.order_id,
                amount_minor=amount_minor,
                currency=state.currency,
                idempotency_key=f"{state.order_id}:link{suffix}",
                expires_at=expires_at,
                event_id=self._p.event_id(),
                at=workflow.now(),
            ),
            PaymentLink,
            summary="send payment link",
        )
        self._link = link
        self._links[link.link_id] = link
        state.payment_link = PaymentLinkInfo(url=link.url, expires_at=expires_at)
        state.payment_status = PaymentStatus.PENDING
        state.authorized_minor = amount_minor

    async def _handle(self, notification: PaymentNotification) -> None:
        link = self._links.get(notification.link_id or "", self._link)
        assert link is not None
        if notification.kind == "failed":
            await self._p.note(
                "payment.link_attempt_failed",
                f"a payment attempt on the link failed: {notification.detail or ''}",
            )
            return
        captured = await self._p.call(
            "record_link_payment",
            RecordLinkPayment(
                order_id=self._p.state.order_id,
                payment_id=link.payment_id,
                amount_minor=notification.amount_minor,
                currency=notification.currency,
                notification_id=notification.event_id,
                event_id=self._p.event_id(),
                at=workflow.now(),
            ),
            Captured,
            summary="record link payment",
        )
        state = self._p.state
        if link is not self._link or notification.amount_minor != state.total_minor:
            # Paid on a link that an amendment replaced, or not the amount the
            # order needs: give the money back and keep waiting.
            await self._refund_link(
                link, notification.amount_minor, "paid a link no longer valid"
            )
            return
        self._paid_link = link
        self._p.state.payment_status = PaymentStatus.CAPTURED
        self._p.state.captured_minor = captured.captured_minor
        self._p.undo.discard(CLOSE_LINK)
        self._p.undo.add(REFUND, self._refund_all)

    def notify(self, notification: PaymentNotification) -> None:
        """A webhook reported on the link; each notification counts once."""
        if notification.event_id not in self._seen:
            self._seen.add(notification.event_id)
            self._notifications.append(notification)

    # Collecting it when the goods move.

    async def on_shipped(self) -> None:
        """A card is charged when the parcel leaves."""
        if self.method != PaymentMethod.CARD:
            return
        self._p.undo.discard(VOID)
        await self._capture(f"{self._p.state.order_id}:capture:1")

    async def on_shipment_left(
        self, number: str, amount_minor: int, last: bool
    ) -> None:
        """A card is charged for each parcel as it leaves.

        The authorization stays voidable until the last parcel has left, so
        an order that fails in between gives back what it did not charge.
        """
        if self.method != PaymentMethod.CARD:
            return
        if last:
            self._p.undo.discard(VOID)
        await self._capture(
            f"{self._p.state.order_id}:capture:{number}",
            amount_minor,
            purpose=f"shipment {number}",
        )

    async def on_delivered(self) -> None:
        """Cash is collected by the carrier at the door."""
        if self.method != PaymentMethod.COD:
            return
        self._p.undo.discard(VOID)
        await self._capture(f"{self._p.state.order_id}:capture:cod")

    async def _capture(
        self, key: str, amount_minor: int | None = None, purpose: str | None = None
    ) -> None:
        assert self._authorization is not None
        state = self._p.state
        captured = await self._p.call(
            "capture_payment",
            CapturePayment(
                order_id=state.order_id,
                payment_id=self._authorization.payment_id,
                amount_minor=state.total_minor
                if amount_minor is None
                else amount_minor,
                currency=state.currency,
                idempotency_key=key,
                event_id=self._p.event_id(),
                at=workflow.now(),
                purpose=purpose,
            ),
            Captured,
            summary="capture payment",
        )
        state.captured_minor = captured.captured_minor
        state.payment_status = (
            PaymentStatus.CAPTURED
            if captured.captured_minor >= state.authorized_minor
            else PaymentStatus.PARTIALLY_CAPTURED
        )

    # Changing the amount (amendments and partial cancels).

    async def prepare_increase(self, new_total_minor: int) -> Authorization | None:
        """Secure a larger amount before anything else changes.

        A card (or cash) gets a new authorization for the new total, the old
        one stays until the change is committed. Raises PaymentRefused.
        """
        if (
            self._authorization is None
            or new_total_minor <= self._p.state.authorized_minor
        ):
            return None
        self._changes += 1
        key = f"{self._p.state.order_id}:authorize:change-{self._changes}"
        try:
            return await self._authorize_replacement(key, new_total_minor)
        except Exception as error:
            raise PaymentRefused(str(error)) from error

    async def _authorize_replacement(
        self, key: str, amount_minor: int
    ) -> Authorization:
        state = self._p.state
        previous = state.authorized_minor, state.payment_status
        try:
            return await self._authorize(key, amount_minor, replacing=True)
        finally:
            state.authorized_minor, state.payment_status = previous

    async def abandon(self, prepared: Authorization | None) -> None:
        """The change did not happen: release the authorization made for it."""
        if prepared is not None:
            await self._void(prepared, reason="amendment refused", replaced=True)

    async def commit(
        self, prepared: Authorization | None, new_total_minor: int, reason: str
    ) -> None:
        """Make the payment match the order's new total."""
        state = self._p.state
        difference = state.authorized_minor - new_total_minor
        if prepared is not None:
            old = self._authorization
            assert old is not None
            self._authorization = prepared
            state.authorized_minor = prepared.amount_minor
            await self._void(old, reason=f"replaced: {reason}", replaced=True)
        elif self._paid_link is not None:
            kept = state.captured_minor - state.refunded_minor
            if kept > new_total_minor:
                await self._refund(kept - new_total_minor, reason)
        elif self._link is not None and difference != 0:
            await self._close_link(reason)
            await self._send_link(new_total_minor)
        elif self._authorization is not None and difference > 0:
            self._changes += 1
            await self._void(
                self._authorization,
                reason=reason,
                amount_minor=difference,
                key=f"{state.order_id}:void:change-{self._changes}",
            )
            state.authorized_minor = new_total_minor

    def refuses_total(self, new_total_minor: int) -> str | None:
        """Why the payment cannot follow the order to a new total, if it cannot."""
        if (
            self._paid_link is not None
            and new_total_minor > self._p.state.captured_minor
        ):
            return "the payment link was paid; the total can only go down"
        return None

    # What undoes it.

    async def _void_current(self) -> None:
        if self._authorization is None:
            # The authorization's answer never arrived: void it by its key.
            state = self._p.state
            await self._p.call(
                "void_payment",
                VoidPayment(
                    order_id=state.order_id,
                    payment_id=payment_id_for(self._authorization_key),
                    idempotency_key=f"{state.order_id}:void",
                    event_id=self._p.event_id(),
                    at=workflow.now(),
                    reason=self._p.undo_reason,
                    authorization_key=self._authorization_key,
                    currency=state.currency,
                    authorized_minor=state.total_minor,
                ),
                Voided,
                summary="void authorization",
            )
            return
        await self._void(self._authorization, reason=self._p.undo_reason)
        self._p.state.payment_status = PaymentStatus.VOIDED

    async def _void(
        self,
        authorization: Authorization,
        *,
        reason: str,
        amount_minor: int | None = None,
        replaced: bool = False,
        key: str | None = None,
    ) -> None:
        state = self._p.state
        first = authorization.payment_id == payment_id_for(
            f"{state.order_id}:authorize"
        )
        if key is None:
            key = (
                f"{state.order_id}:void"
                if first
                else f"{state.order_id}:void:{authorization.payment_id}"
            )
        await self._p.call(
            "void_payment",
            VoidPayment(
                order_id=state.order_id,
                payment_id=authorization.payment_id,
                idempotency_key=key,
                event_id=self._p.event_id(),
                at=workflow.now(),
                reason=reason,
                amount_minor=amount_minor,
                replaced=replaced,
            ),
            Voided,
            summary="void authorization",
        )

    async def _close_link(self, reason: str | None = None) -> None:
        if self._link is None:
            return
        await self._p.call(
            "expire_payment_link",
            ExpirePaymentLink(
                order_id=self._p.state.order_id,
                payment_id=self._link.payment_id,
                event_id=self._p.event_id(),
                at=workflow.now(),
                reason=reason or self._p.undo_reason,
            ),
            type(None),
            summary="close payment link",
        )
        self._p.state.payment_status = PaymentStatus.EXPIRED
        self._p.state.payment_link = None

    async def _refund_all(self) -> None:
        state = self._p.state
        await self._refund(
            state.captured_minor - state.refunded_minor, self._p.undo_reason
        )

    def refund_target(self) -> str | None:
        """The payment that money goes back to: the paid link, or the
        authorization the card (or the cash) was captured on."""
        if self._paid_link is not None:
            return self._paid_link.payment_id
        if self._authorization is not None:
            return self._authorization.payment_id
        return None

    def can_charge(self) -> bool:
        """The order's card can be charged again (it has a token)."""
        return self.method == PaymentMethod.CARD and bool(self._p.order.payment.token)

    async def charge(self, amount_minor: int, key: str, purpose: str) -> None:
        """Charge the order's card once more, for `purpose` (an exchange's
        difference): a new authorization, captured at once."""
        state = self._p.state
        authorization = await self._p.call(
            "authorize_payment",
            AuthorizePayment(
                order_id=state.order_id,
                method=self.method,
                token=self._p.order.payment.token,
                amount_minor=amount_minor,
                currency=state.currency,
                idempotency_key=f"{key}:authorize",
                event_id=self._p.event_id(),
                at=workflow.now(),
                replacing=True,
            ),
            Authorization,
            summary="authorize payment",
        )
        await self._p.call(
            "capture_payment",
            CapturePayment(
                order_id=state.order_id,
                payment_id=authorization.payment_id,
                amount_minor=amount_minor,
                currency=state.currency,
                idempotency_key=f"{key}:capture",
                event_id=self._p.event_id(),
                at=workflow.now(),
                purpose=purpose,
            ),
            Captured,
            summary="capture payment",
        )
        state.authorized_minor += amount_minor
        state.captured_minor += amount_minor

    def refunded(self, amount_minor: int) -> None:
        """A return gave `amount_minor` back (its own workflow refunded it)."""
        state = self._p.state
        state.refunded_minor += amount_minor
        state.payment_status = (
            PaymentStatus.REFUNDED
            if state.refunded_minor >= state.captured_minor
            else PaymentStatus.PARTIALLY_REFUNDED
        )

    async def refund_captured(self, amount_minor: int, reason: str) -> None:
        """Give back part of what was charged (a lost parcel's goods).

        Cash is collected at the door from the order's total, so a cash
        order has nothing to give back.
        """
        if self._paid_link is not None:
            await self._refund(amount_minor, reason)
        elif self.method == PaymentMethod.CARD and self._authorization is not None:
            await self._refund(amount_minor, reason, self._authorization.payment_id)

    async def _refund(
        self, amount_minor: int, reason: str, payment_id: str | None = None
    ) -> None:
        if payment_id is None:
            assert self._paid_link is not None
            payment_id = self._paid_link.payment_id
        refunded = await self._refund_payment(payment_id, amount_minor, reason)
        if refunded is None:
            return
        state = self._p.state
        state.refunded_minor = refunded.refunded_minor
        state.payment_status = (
            PaymentStatus.REFUNDED
            if refunded.refunded_minor >= state.captured_minor
            else PaymentStatus.PARTIALLY_REFUNDED
        )

    async def _refund_link(
        self, link: PaymentLink, amount_minor: int, reason: str
    ) -> Refunded | None:
        return await self._refund_payment(link.payment_id, amount_minor, reason)

    async def _refund_payment(
        self, payment_id: str, amount_minor: int, reason: str
    ) -> Refunded | None:
        if amount_minor <= 0:
            return None
        state = self._p.state
        self._changes += 1
        return await self._p.call(
            "refund_payment",
            RefundPayment(
                order_id=state.order_id,
                payment_id=payment_id,
                amount_minor=amount_minor,
                currency=state.currency,
                idempotency_key=f"{state.order_id}:refund:{self._changes}",
                event_id=self._p.event_id(),
                at=workflow.now(),
                reason=reason,
            ),
            Refunded,
            summary="refund payment",
        )
