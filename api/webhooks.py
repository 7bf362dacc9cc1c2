"""Webhooks from payment providers, verified, turned into signals.

Signatures are checked by api.webhook_signatures. The sandbox gateway's
payment links are paid through `/v1/sandbox/payment-links/{id}/pay`, which
sends itself exactly such a signed webhook.
"""

import json
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Header, Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from temporalio.service import RPCError, RPCStatusCode

from api.access import AnyCaller
from api.deps import Services, ServicesDep
from api.errors import FieldError, Problem, ProblemDetails, field_path
from api.webhook_signatures import SIGNATURE_HEADER, verify_delivery
from db.payments import Payment
from models.money import format_minor, to_minor
from models.order_actions import PaymentNotification
from models.orders import PaymentStatus, workflow_id_for
from models.signatures import sign
from workers.logs import bind_order
from workflows.orders import OrderWorkflow

logger = logging.getLogger(__name__)

router = APIRouter(tags=["webhooks"])

M = TypeVar("M", bound=BaseModel)
LinkId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,128}$")]


class PaymentWebhook(BaseModel):
    """What a provider tells about a payment link."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=128, description="the event's id")
    type: Literal["payment_link.paid", "payment_link.failed"]
    link_id: str = Field(min_length=1, max_length=128)
    amount: str
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    occurred_at: datetime
    detail: str | None = Field(default=None, max_length=500)


class WebhookAccepted(BaseModel):
    status: Literal["accepted", "ignored", "duplicate"]


@router.post(
    "/webhooks/payments/{provider}",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        401: {"model": ProblemDetails, "description": "Bad signature"},
        404: {"model": ProblemDetails, "description": "Unknown provider or link"},
    },
)
async def receive_payment_webhook(
    provider: Annotated[str, Path(pattern=r"^[a-z0-9_-]{1,32}$")],
    request: Request,
    services: ServicesDep,
    signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None,
) -> WebhookAccepted:
    """A payment provider's signed report on a payment link."""
    return await _accept(services, provider, await request.body(), signature)


async def _accept(
    services: Services, provider: str, body: bytes, signature: str | None
) -> WebhookAccepted:
    if provider != services.settings.payment_gateway:
        raise Problem(404, "provider-not-found", "Unknown payment provider", provider)
    if not await verify_delivery(services, provider, signature, body):
        logger.warning("payment webhook replayed from %s, ignored", provider)
        return WebhookAccepted(status="duplicate")
    event = parse_webhook(PaymentWebhook, body)
    async with services.engine.connect() as conn:
        payment = (
            await conn.execute(
                select(Payment.order_id).where(
                    Payment.provider == provider, Payment.provider_ref == event.link_id
                )
            )
        ).first()
    if payment is None:
        raise Problem(
            404, "payment-link-not-found", "Unknown payment link", event.link_id
        )
    try:
        amount_minor = to_minor(event.amount, event.currency)
    except ValueError as error:
        raise Problem(
            422,
            "validation-error",
            "The webhook is not valid",
            errors=[FieldError(field="amount", message=str(error))],
        ) from None
    notification = PaymentNotification(
        event_id=event.id,
        link_id=event.link_id,
        kind="paid" if event.type == "payment_link.paid" else "failed",
        amount_minor=amount_minor,
        currency=event.currency,
        at=event.occurred_at,
        detail=event.detail,
    )
    bind_order(str(payment.order_id))
    handle = services.temporal.get_workflow_handle_for(
        OrderWorkflow.run, workflow_id_for(str(payment.order_id))
    )
    try:
        await handle.signal(OrderWorkflow.payment_notification, notification)
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        # The order has ended (for example the link expired and it cancelled
        # itself): acknowledge, so the provider stops retrying, and say so.
        logger.warning(
            "order %s: payment webhook %s for a closed order ignored",
            payment.order_id,
            event.id,
        )
        return WebhookAccepted(status="ignored")
    logger.info(
        "order %s: payment webhook %s (%s) accepted",
        payment.order_id,
        event.id,
        event.type,
    )
    return WebhookAccepted(status="accepted")


def parse_webhook(model: type[M], body: bytes) -> M:
    """A webhook's body as `model`, or 422 naming the fields that are wrong."""
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        raise Problem(
            422,
            "validation-error",
            "The webhook is not valid",
            errors=[
                FieldError(field=field_path(item["loc"]), message=item["msg"])
                for item in error.errors()
            ],
        ) from None


class SandboxLink(BaseModel):
    link_id: str
    order_id: str
    amount: str
    currency: str
    status: str
    pay: str


_UNKNOWN_LINK: dict[int | str, dict[str, Any]] = {
    404: {"model": ProblemDetails, "description": "Unknown payment link"}
}


@router.get(
    "/sandbox/payment-links/{link_id}", tags=["sandbox"], responses=_UNKNOWN_LINK
)
async def show_sandbox_link(
    link_id: LinkId, services: ServicesDep, caller: AnyCaller
) -> SandboxLink:
    """What the sandbox provider's payment page would show."""
    payment = await _sandbox_payment(services, link_id)
    return SandboxLink(
        link_id=link_id,
        order_id=str(payment.order_id),
        amount=format_minor(payment.authorized_minor, payment.currency),
        currency=payment.currency,
        status=payment.status,
        pay=f"POST {services.settings.api_url}/v1/sandbox/payment-links/{link_id}/pay",
    )


@router.post(
    "/sandbox/payment-links/{link_id}/pay",
    tags=["sandbox"],
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        **_UNKNOWN_LINK,
        409: {"model": ProblemDetails, "description": "The link is not payable"},
    },
)
async def pay_sandbox_link(
    link_id: LinkId,
    services: ServicesDep,
    caller: AnyCaller,
    response: Response,
    outcome: Annotated[Literal["paid", "failed"], Query()] = "paid",
) -> WebhookAccepted:
    """Pay (or fail to pay) a sandbox payment link, as a customer would.

    The sandbox provider then sends its signed webhook, which takes the same
    path as a real provider's.
    """
    payment = await _sandbox_payment(services, link_id)
    if payment.status != PaymentStatus.PENDING:
        raise Problem(
            409,
            "link-not-payable",
            "Payment link not payable",
            f"it is {payment.status}",
        )
    body = json.dumps(
        {
            "id": f"evt_{uuid.uuid4().hex}",
            "type": f"payment_link.{outcome}",
            "link_id": link_id,
            "amount": format_minor(payment.authorized_minor, payment.currency),
            "currency": payment.currency,
            "occurred_at": datetime.now(UTC).isoformat(),
            "detail": None if outcome == "paid" else "card declined (sandbox)",
        }
    ).encode()
    secret = services.settings.webhook_secrets[services.settings.payment_gateway]
    signature = sign(secret.get_secret_value(), int(time.time()), body)
    return await _accept(services, services.settings.payment_gateway, body, signature)


async def _sandbox_payment(services: Services, link_id: str) -> "Payment":
    if services.settings.payment_gateway != "sandbox":
        raise Problem(
            404, "not-found", "Not found", "the sandbox gateway is not in use"
        )
    async with services.engine.connect() as conn:
        row = (
            await conn.execute(
                select(Payment.__table__).where(
                    Payment.provider == "sandbox", Payment.provider_ref == link_id
                )
            )
        ).first()
    if row is None:
        raise Problem(404, "payment-link-not-found", "Unknown payment link", link_id)
    return row  # type: ignore[return-value]
