"""Webhooks from carriers: tracking events, verified, signalled to the parcel.

Signatures are checked by api.webhook_signatures with the carrier's secret
(`OMS_WEBHOOK_SECRETS`, by carrier name). The sandbox carriers' events are
sent by hand through `/v1/sandbox/parcels/{tracking number}/events`, which
signs and delivers exactly such a webhook from the parcel's carrier.
"""

import json
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, Path, Request, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from temporalio.service import RPCError, RPCStatusCode

from api.access import AnyCaller
from api.deps import Services, ServicesDep
from api.errors import Problem, ProblemDetails
from api.webhook_signatures import SIGNATURE_HEADER, verify_delivery
from api.webhooks import WebhookAccepted, parse_webhook
from db.shipping import Shipment
from models.orders import workflow_id_for
from models.shipping import CarrierEvent, CarrierEventKind
from models.signatures import sign
from workers.logs import bind_order
from workflows.shipping import ShipmentWorkflow

logger = logging.getLogger(__name__)

router = APIRouter(tags=["webhooks"])

TrackingNumber = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class CarrierWebhook(BaseModel):
    """What a carrier tells about a parcel."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=128, description="the event's id")
    tracking_number: str = Field(min_length=1, max_length=64)
    type: CarrierEventKind
    occurred_at: datetime
    description: str | None = Field(default=None, max_length=500)


class SandboxParcelEvent(BaseModel):
    """Body of `POST /v1/sandbox/parcels/{tracking_number}/events`."""

    model_config = ConfigDict(extra="forbid")

    type: CarrierEventKind
    description: str | None = Field(default=None, max_length=500)


@router.post(
    "/webhooks/carriers/{carrier}",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        401: {"model": ProblemDetails, "description": "Bad signature"},
        404: {"model": ProblemDetails, "description": "Unknown carrier or parcel"},
    },
)
async def receive_carrier_webhook(
    carrier: Annotated[str, Path(pattern=r"^[a-z0-9_-]{1,32}$")],
    request: Request,
    services: ServicesDep,
    signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None,
) -> WebhookAccepted:
    """A carrier's signed tracking event for one of our parcels."""
    return await _accept(services, carrier, await request.body(), signature)


@router.post(
    "/sandbox/parcels/{tracking_number}/events",
    tags=["sandbox"],
    status_code=status.HTTP_202_ACCEPTED,
    responses={404: {"model": ProblemDetails, "description": "Unknown parcel"}},
)
async def send_sandbox_parcel_event(
    tracking_number: TrackingNumber,
    body: SandboxParcelEvent,
    services: ServicesDep,
    caller: AnyCaller,
) -> WebhookAccepted:
    """Move a sandbox parcel as its carrier would: in transit, delivered, lost...

    The sandbox carrier then sends its signed webhook, which takes the same
    path as a real carrier's.
    """
    async with services.engine.connect() as conn:
        carrier = (
            await conn.execute(
                select(Shipment.carrier).where(
                    Shipment.tracking_number == tracking_number
                )
            )
        ).scalar_one_or_none()
    sandboxes = {c.name for c in services.delivery_pricing.carriers}
    secret = services.settings.webhook_secrets.get(carrier or "")
    if carrier not in sandboxes or secret is None:
        raise Problem(
            404,
            "parcel-not-found",
            "Unknown parcel",
            f"no parcel of a sandbox carrier has tracking number {tracking_number}",
        )
    payload = json.dumps(
        {
            "id": f"evt_{uuid.uuid4().hex}",
            "tracking_number": tracking_number,
            "type": body.type,
            "occurred_at": datetime.now(UTC).isoformat(),
            "description": body.description,
        }
    ).encode()
    signature = sign(secret.get_secret_value(), int(time.time()), payload)
    return await _accept(services, carrier, payload, signature)


async def _accept(
    services: Services, carrier: str, body: bytes, signature: str | None
) -> WebhookAccepted:
    if not await verify_delivery(services, carrier, signature, body):
        logger.warning("carrier webhook replayed from %s, ignored", carrier)
        return WebhookAccepted(status="duplicate")
    event = parse_webhook(CarrierWebhook, body)
    async with services.engine.connect() as conn:
        parcel = (
            await conn.execute(
                select(Shipment.order_id, Shipment.number).where(
                    Shipment.carrier == carrier,
                    Shipment.tracking_number == event.tracking_number,
                )
            )
        ).first()
    if parcel is None:
        raise Problem(404, "parcel-not-found", "Unknown parcel", event.tracking_number)
    workflow_id = f"{workflow_id_for(str(parcel.order_id))}-shipment-{parcel.number}"
    bind_order(str(parcel.order_id), workflow_id)
    handle = services.temporal.get_workflow_handle_for(
        ShipmentWorkflow.run, workflow_id
    )
    try:
        await handle.signal(
            ShipmentWorkflow.carrier_event,
            CarrierEvent(
                event_id=event.id,
                kind=event.type,
                at=event.occurred_at,
                description=event.description,
            ),
        )
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        # The parcel's journey is over (delivered, lost): acknowledge, so the
        # carrier stops retrying, and say so.
        logger.warning("parcel %s: %s after its end ignored", parcel.number, event.type)
        return WebhookAccepted(status="ignored")
    logger.info("parcel %s: %s (%s)", parcel.number, event.type, event.id)
    return WebhookAccepted(status="accepted")
