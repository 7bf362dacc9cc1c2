"""Payments on PostgreSQL with the sandbox gateway: once per idempotency key."""

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.payment_gateway import GatewayUnavailable, SandboxGateway
from activities.payments import PaymentActivities
from models.errors import FailureType
from models.payments import (
    AuthorizePayment,
    CapturePayment,
    CreatePaymentLink,
    RecordLinkPayment,
    RefundPayment,
    VoidPayment,
    payment_id_for,
)
from tests.helpers import payment_events_of, payments_of


def authorize_request(order_id: str, token: str = "tok_visa") -> AuthorizePayment:
    return AuthorizePayment(
        order_id=order_id,
        method="card",
        token=token,
        amount_minor=4999,
        currency="EUR",
        idempotency_key=f"{order_id}:authorize",
        event_id=str(uuid.uuid4()),
        at=datetime.now(UTC),
    )


async def test_authorize_twice_records_one_authorization(engine: AsyncEngine) -> None:
    gateway = SandboxGateway()
    payments = PaymentActivities(engine, gateway)
    order_id = str(uuid.uuid4())

    first = await ActivityEnvironment().run(
        payments.authorize_payment, authorize_request(order_id)
    )
    again = await ActivityEnvironment().run(
        payments.authorize_payment, authorize_request(order_id)
    )

    assert first == again
    assert await payment_events_of(engine, order_id) == [("authorize", 4999)]


async def test_capture_twice_captures_once(engine: AsyncEngine) -> None:
    payments = PaymentActivities(engine, SandboxGateway())
    order_id = str(uuid.uuid4())
    authorization = await ActivityEnvironment().run(
        payments.authorize_payment, authorize_request(order_id)
    )
    capture = CapturePayment(
        order_id=order_id,
        payment_id=authorization.payment_id,
        amount_minor=4999,
        currency="EUR",
        idempotency_key=f"{order_id}:capture:1",
        event_id=str(uuid.uuid4()),
        at=datetime.now(UTC),
    )

    first = await ActivityEnvironment().run(payments.capture_payment, capture)
    again = await ActivityEnvironment().run(payments.capture_payment, capture)

    assert first.captured_minor == again.captured_minor == 4999
    assert await payment_events_of(engine, order_id) == [
        ("authorize", 4999),
        ("capture", 4999),
    ]


async def test_declined_card_is_a_final_failure(engine: AsyncEngine) -> None:
    payments = PaymentActivities(engine, SandboxGateway())
    order_id = str(uuid.uuid4())

    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(
            payments.authorize_payment, authorize_request(order_id, "tok_decline")
        )

    assert raised.value.type == FailureType.PAYMENT_DECLINED
    assert raised.value.non_retryable
    assert await payment_events_of(engine, order_id) == [("decline", 4999)]


async def test_flaky_gateway_fails_transiently_then_answers(
    engine: AsyncEngine,
) -> None:
    gateway = SandboxGateway()
    payments = PaymentActivities(engine, gateway)
    order_id = str(uuid.uuid4())
    request = authorize_request(order_id, "tok_flaky")

    for _ in range(2):
        with pytest.raises(GatewayUnavailable):
            await ActivityEnvironment().run(payments.authorize_payment, request)
    await ActivityEnvironment().run(payments.authorize_payment, request)

    assert gateway.charges_for(order_id) == 1
    assert await payment_events_of(engine, order_id) == [("authorize", 4999)]


async def test_partial_void_twice_releases_the_part_once(engine: AsyncEngine) -> None:
    payments = PaymentActivities(engine, SandboxGateway())
    order_id = str(uuid.uuid4())
    authorization = await ActivityEnvironment().run(
        payments.authorize_payment, authorize_request(order_id)
    )
    void = VoidPayment(
        order_id=order_id,
        payment_id=authorization.payment_id,
        idempotency_key=f"{order_id}:void:part",
        event_id=str(uuid.uuid4()),
        at=datetime.now(UTC),
        reason="one line cancelled",
        amount_minor=999,
    )

    await ActivityEnvironment().run(payments.void_payment, void)
    await ActivityEnvironment().run(payments.void_payment, void)

    [payment] = await payments_of(engine, order_id)
    assert (payment["status"], payment["voided_minor"]) == ("authorized", 999)
    assert await payment_events_of(engine, order_id) == [
        ("authorize", 4999),
        ("void", 999),
    ]


async def test_void_finds_an_authorization_whose_answer_was_lost(
    engine: AsyncEngine,
) -> None:
    gateway = SandboxGateway()
    payments = PaymentActivities(engine, gateway)
    order_id = str(uuid.uuid4())
    key = f"{order_id}:authorize"
    # The gateway charged, the worker died before recording it.
    await gateway.authorize(
        token="tok_visa", amount_minor=4999, currency="EUR", idempotency_key=key
    )

    await ActivityEnvironment().run(
        payments.void_payment,
        VoidPayment(
            order_id=order_id,
            payment_id=payment_id_for(key),
            idempotency_key=f"{order_id}:void",
            event_id=str(uuid.uuid4()),
            at=datetime.now(UTC),
            reason="order cancelled",
            authorization_key=key,
            currency="EUR",
            authorized_minor=4999,
        ),
    )

    [payment] = await payments_of(engine, order_id)
    assert payment["status"] == "voided"
    assert gateway.voided[gateway.charges[key]] == 1


async def test_refund_twice_refunds_once(engine: AsyncEngine) -> None:
    gateway = SandboxGateway()
    payments = PaymentActivities(engine, gateway)
    order_id = str(uuid.uuid4())
    link = await ActivityEnvironment().run(
        payments.create_payment_link,
        CreatePaymentLink(
            order_id=order_id,
            amount_minor=3000,
            currency="EUR",
            idempotency_key=f"{order_id}:link",
            expires_at=datetime.now(UTC),
            event_id=str(uuid.uuid4()),
            at=datetime.now(UTC),
        ),
    )
    await ActivityEnvironment().run(
        payments.record_link_payment,
        RecordLinkPayment(
            order_id=order_id,
            payment_id=link.payment_id,
            amount_minor=3000,
            currency="EUR",
            notification_id="evt_1",
            event_id=str(uuid.uuid4()),
            at=datetime.now(UTC),
        ),
    )
    refund = RefundPayment(
        order_id=order_id,
        payment_id=link.payment_id,
        amount_minor=1000,
        currency="EUR",
        idempotency_key=f"{order_id}:refund:1",
        event_id=str(uuid.uuid4()),
        at=datetime.now(UTC),
        reason="one line cancelled",
    )

    await ActivityEnvironment().run(payments.refund_payment, refund)
    await ActivityEnvironment().run(payments.refund_payment, refund)

    [payment] = await payments_of(engine, order_id)
    assert (payment["status"], payment["refunded_minor"]) == (
        "partially_refunded",
        1000,
    )
    assert gateway.refunded[link.link_id] == 1000
    assert await payment_events_of(engine, order_id) == [
        ("capture", 3000),
        ("refund", 1000),
    ]
