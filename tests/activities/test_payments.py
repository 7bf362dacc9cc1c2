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
from models.payments import AuthorizePayment, CapturePayment
from tests.helpers import payment_events_of


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
