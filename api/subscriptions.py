"""Outbound webhooks: subscriptions, and the log of deliveries to inspect and
replay. What is delivered, and how, is in workers/outbox.py.

Admins manage every subscription; an integrator manages its own, which only
ever receive its channel's orders. Others cannot see them: a subscription
holds a secret and a customer-facing URL.
"""

import secrets
import uuid
from typing import Annotated, Any

import httpx
import idna
from fastapi import APIRouter, Path, Query, Response, status
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from api.access import Caller, Creator
from api.deps import ConnectionDep, ServicesDep
from api.errors import Problem, ProblemDetails, invalid, not_found
from db.outbox import Delivery, OutboxEvent, Subscription
from models.catalog import Page
from models.outbox import (
    EVENT_TYPES,
    DeliveryPublic,
    DeliveryStatus,
    EventCatalogue,
    SubscriptionCreated,
    SubscriptionIn,
    SubscriptionPatch,
    SubscriptionPublic,
)
from models.rules import Role
from workers.codec import seal_text
from workers.outbox import LEASE_MARGIN_SECONDS, PrivateAddress, public_only, resolve
from workers.settings import Settings

router = APIRouter(tags=["outbound webhooks"])

SubscriptionId = Annotated[uuid.UUID, Path(description="the subscription's id")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ProblemDetails, "description": "No such subscription"}
}
DELIVERY_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ProblemDetails, "description": "No such delivery"}
}


def _public(row: Any) -> SubscriptionPublic:
    return SubscriptionPublic(
        id=str(row.id),
        url=row.url,
        event_types=list(row.event_types),
        description=row.description,
        channel=row.channel,
        active=row.active,
        failures=row.failures,
        retry_at=row.retry_at,
        last_error=row.last_error,
        created_by=row.created_by,
        created_at=row.created_at,
    )


def _own(caller: Caller) -> Any:
    """The subscriptions the caller manages."""
    if caller.role == Role.INTEGRATOR:
        return Subscription.channel == caller.channel
    return Subscription.id.is_not(None)


async def _subscription(conn: AsyncConnection, caller: Caller, id: uuid.UUID) -> Any:
    row = (
        await conn.execute(
            select(Subscription).where(Subscription.id == str(id), _own(caller))
        )
    ).first()
    if row is None:
        raise not_found("subscription", str(id))
    return row


async def _deliverable(url: str, settings: Settings) -> str:
    """The URL, if a delivery can be addressed to it: its host an address or
    a valid internationalised name, and (unless OMS_WEBHOOK_PRIVATE_NETWORKS)
    not one of our own network's addresses. Else a 422 naming the field."""
    try:
        target = httpx.URL(url)
        host = target.host
        # Plain ASCII names (a_service.internal too) are sent as they are;
        # internationalised ones must encode.
        if not host.isascii() or "xn--" in host:
            idna.decode(host)
    except (idna.IDNAError, UnicodeError, httpx.InvalidURL):
        raise invalid("url", "no request can be sent there") from None
    if not settings.webhook_private_networks:
        try:
            addresses = await resolve(host, target.port or 443)
        except OSError:
            return url  # not resolvable now: checked again at each delivery
        try:
            public_only(addresses)
        except PrivateAddress as refused:
            raise invalid("url", str(refused)) from None
    return url


@router.get("/webhooks/events")
async def list_event_types(caller: Creator) -> EventCatalogue:
    """The event types a subscription can ask for."""
    return EventCatalogue(event_types=sorted(EVENT_TYPES))


@router.post(
    "/webhooks/subscriptions",
    status_code=status.HTTP_201_CREATED,
    responses={403: {"model": ProblemDetails, "description": "Another channel"}},
)
async def create_subscription(
    body: SubscriptionIn, services: ServicesDep, caller: Creator
) -> SubscriptionCreated:
    """Subscribe a URL to order events. Each delivery is a POST of the event
    as JSON, with headers `OMS-Event-Id` (stable: the same event always has
    the same id), `OMS-Event-Type`, `OMS-Delivery-Attempt` and
    `OMS-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
    "<t>.<body>")>`. Answer 2xx to acknowledge it; anything else is retried
    with exponential back-off. One order's events arrive in the order they
    happened. The secret is shown only in this answer."""
    channel = body.channel
    if caller.role == Role.INTEGRATOR:
        if channel not in (None, caller.channel):
            raise Problem(
                403,
                "forbidden",
                "Not allowed",
                f"an integrator of {caller.channel} subscribes to its own orders only",
            )
        channel = caller.channel
    url = await _deliverable(str(body.url), services.settings)
    secret = "whsec_" + secrets.token_urlsafe(32)
    subscription_id = uuid.uuid4()
    async with services.engine.begin() as conn:
        await conn.execute(
            insert(Subscription).values(
                id=str(subscription_id),
                url=url,
                description=body.description,
                event_types=body.event_types,
                channel=channel,
                secret=seal_text(
                    services.settings.codec_secrets,
                    services.settings.codec_key_id,
                    secret,
                    str(subscription_id),
                ),
                created_by=caller.actor,
            )
        )
        row = await _subscription(conn, caller, subscription_id)
    return SubscriptionCreated(**_public(row).model_dump(), secret=secret)


@router.get("/webhooks/subscriptions")
async def list_subscriptions(
    conn: ConnectionDep, caller: Creator
) -> list[SubscriptionPublic]:
    """The subscriptions the caller manages, oldest first."""
    rows = await conn.execute(
        select(Subscription).where(_own(caller)).order_by(Subscription.created_at)
    )
    return [_public(row) for row in rows]


@router.get("/webhooks/subscriptions/{subscription_id}", responses=NOT_FOUND)
async def get_subscription(
    subscription_id: SubscriptionId, conn: ConnectionDep, caller: Creator
) -> SubscriptionPublic:
    return _public(await _subscription(conn, caller, subscription_id))


@router.patch("/webhooks/subscriptions/{subscription_id}", responses=NOT_FOUND)
async def update_subscription(
    subscription_id: SubscriptionId,
    body: SubscriptionPatch,
    services: ServicesDep,
    caller: Creator,
) -> SubscriptionPublic:
    """Change the URL or the event types, or pause (`active: false`) and
    resume deliveries. Resuming also ends a back-off: delivery starts again
    at once."""
    changes: dict[str, Any] = body.model_dump(exclude_unset=True, exclude_none=True)
    if "url" in changes:
        changes["url"] = await _deliverable(str(changes["url"]), services.settings)
    if changes.get("active") is True or "url" in changes:
        changes.update(failures=0, retry_at=None)
    async with services.engine.begin() as conn:
        await _subscription(conn, caller, subscription_id)
        if changes:
            await conn.execute(
                update(Subscription)
                .where(Subscription.id == str(subscription_id))
                .values(**changes)
            )
        if "failures" in changes:
            # Events waiting out the back-off are due now; one being sent
            # (tried within its lease) is left to finish.
            lease = services.settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS
            await conn.execute(
                update(Delivery)
                .where(
                    Delivery.subscription_id == str(subscription_id),
                    Delivery.status == "pending",
                    Delivery.next_attempt_at > func.now(),
                    Delivery.last_attempt_at
                    < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, lease),
                )
                .values(next_attempt_at=func.now())
            )
        return _public(await _subscription(conn, caller, subscription_id))


@router.delete(
    "/webhooks/subscriptions/{subscription_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=NOT_FOUND,
)
async def delete_subscription(
    subscription_id: SubscriptionId, services: ServicesDep, caller: Creator
) -> Response:
    """Stop and forget a subscription, with its deliveries."""
    async with services.engine.begin() as conn:
        await _subscription(conn, caller, subscription_id)
        await conn.execute(
            delete(Subscription).where(Subscription.id == str(subscription_id))
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _delivery_query(caller: Caller) -> Any:
    return (
        select(
            Delivery,
            OutboxEvent.event_id.label("event_uuid"),
            OutboxEvent.type.label("event_type"),
            OutboxEvent.payload,
        )
        .join(OutboxEvent, OutboxEvent.id == Delivery.event_id)
        .join(Subscription, Subscription.id == Delivery.subscription_id)
        .where(_own(caller))
    )


def _delivery(row: Any, *, payload: bool = False) -> DeliveryPublic:
    return DeliveryPublic(
        id=row.id,
        subscription_id=str(row.subscription_id),
        event_id=str(row.event_uuid),
        event_type=row.event_type,
        order_id=str(row.order_id),
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
        last_attempt_at=row.last_attempt_at,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        delivered_at=row.delivered_at,
        created_at=row.created_at,
        payload=row.payload if payload else None,
    )


@router.get("/webhooks/deliveries")
async def list_deliveries(
    conn: ConnectionDep,
    caller: Creator,
    subscription_id: uuid.UUID | None = None,
    status: DeliveryStatus | None = None,
    event_type: Annotated[str | None, Query(max_length=64)] = None,
    order_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        int | None, Query(ge=1, description="next_cursor of the previous page")
    ] = None,
) -> Page[DeliveryPublic]:
    """The delivery log, newest first: every event queued for a subscriber,
    whether it was acknowledged, how often it was tried and what the
    subscriber last answered."""
    query = _delivery_query(caller).order_by(Delivery.id.desc())
    if subscription_id is not None:
        query = query.where(Delivery.subscription_id == str(subscription_id))
    if status is not None:
        query = query.where(Delivery.status == status)
    if event_type is not None:
        query = query.where(OutboxEvent.type == event_type)
    if order_id is not None:
        query = query.where(Delivery.order_id == str(order_id))
    if cursor is not None:
        query = query.where(Delivery.id < cursor)
    rows = (await conn.execute(query.limit(limit + 1))).all()
    items = [_delivery(row) for row in rows[:limit]]
    more = len(rows) > limit
    return Page(items=items, next_cursor=str(items[-1].id) if more else None)


@router.get("/webhooks/deliveries/{delivery_id}", responses=DELIVERY_NOT_FOUND)
async def get_delivery(
    delivery_id: Annotated[int, Path(ge=1)], conn: ConnectionDep, caller: Creator
) -> DeliveryPublic:
    """One delivery, with the event's body as it is sent."""
    row = (
        await conn.execute(_delivery_query(caller).where(Delivery.id == delivery_id))
    ).first()
    if row is None:
        raise not_found("delivery", str(delivery_id))
    return _delivery(row, payload=True)


@router.post(
    "/webhooks/deliveries/{delivery_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        **DELIVERY_NOT_FOUND,
        409: {"model": ProblemDetails, "description": "Still pending"},
    },
)
async def replay_delivery(
    delivery_id: Annotated[int, Path(ge=1)], services: ServicesDep, caller: Creator
) -> DeliveryPublic:
    """Send an event again: a failed one after the subscriber is fixed, or a
    delivered one the subscriber lost. It goes out with the same event id and
    a fresh count of attempts, after any earlier pending event of its order."""
    async with services.engine.begin() as conn:
        row = (
            await conn.execute(
                _delivery_query(caller)
                .where(Delivery.id == delivery_id)
                .with_for_update(of=Delivery)
            )
        ).first()
        if row is None:
            raise not_found("delivery", str(delivery_id))
        if row.status == "pending":
            # It is waiting or being sent now: a replay would send it twice.
            raise Problem(
                409,
                "delivery-pending",
                "The delivery is still pending",
                f"delivery {delivery_id} has not been delivered or given up "
                "yet; it is sent when due",
            )
        await conn.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id)
            .values(status="pending", attempts=0, next_attempt_at=func.now())
        )
        replayed = (
            await conn.execute(
                _delivery_query(caller).where(Delivery.id == delivery_id)
            )
        ).one()
    return _delivery(replayed)
