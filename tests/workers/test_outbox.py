"""The outbox keeps what a subscriber may still need and forgets the rest."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from db.outbox import Delivery, OutboxEvent, Subscription
from workers.outbox import PrivateAddress, WebhookDispatcher, public_only, resolve
from workers.settings import Settings


async def _event(engine: AsyncEngine, age: timedelta) -> int:
    event_id = str(uuid.uuid4())
    async with engine.begin() as conn:
        return int(
            (
                await conn.execute(
                    insert(OutboxEvent)
                    .values(
                        event_id=event_id,
                        type="order.created",
                        order_id=str(uuid.uuid4()),
                        occurred_at=datetime.now(UTC) - age,
                        payload={"id": event_id},
                        created_at=datetime.now(UTC) - age,
                    )
                    .returning(OutboxEvent.id)
                )
            ).scalar_one()
        )


async def test_old_events_go_once_no_subscriber_waits_for_them(
    engine: AsyncEngine, settings: Settings
) -> None:
    # A paused subscription: no dispatcher sends it anything meanwhile.
    subscription = str(uuid.uuid4())
    async with engine.begin() as conn:
        await conn.execute(
            insert(Subscription).values(
                id=subscription,
                url="http://127.0.0.1:9/never",
                event_types=["*"],
                secret="whsec_test",
                active=False,
                created_by="test",
            )
        )
    old = timedelta(days=settings.outbox_retention_days + 1)
    delivered_long_ago = await _event(engine, old)
    still_pending = await _event(engine, old)
    delivered_lately = await _event(engine, timedelta(days=1))
    async with engine.begin() as conn:
        await conn.execute(
            insert(Delivery),
            [
                {
                    "subscription_id": subscription,
                    "event_id": event,
                    "order_id": str(uuid.uuid4()),
                    "status": status,
                }
                for event, status in [
                    (delivered_long_ago, "delivered"),
                    (still_pending, "pending"),
                    (delivered_lately, "delivered"),
                ]
            ],
        )

    # (The session's own dispatcher may prune at the same time: same outcome.)
    await WebhookDispatcher(engine, settings).prune_old_events()

    async with engine.connect() as conn:
        kept = set(
            (
                await conn.execute(
                    select(OutboxEvent.id).where(
                        OutboxEvent.id.in_(
                            [delivered_long_ago, still_pending, delivered_lately]
                        )
                    )
                )
            ).scalars()
        )
        log = set(
            (
                await conn.execute(
                    select(Delivery.event_id).where(
                        Delivery.subscription_id == subscription
                    )
                )
            ).scalars()
        )
    assert kept == {still_pending, delivered_lately}
    assert log == {still_pending, delivered_lately}


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "192.168.0.9", "169.254.169.254", "::1", "fd00::1"],
)
def test_our_own_networks_addresses_are_refused(address: str) -> None:
    with pytest.raises(PrivateAddress):
        public_only([address])


async def test_a_name_is_checked_by_what_it_resolves_to() -> None:
    public_only(["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
    assert set(await resolve("localhost", 80)) & {"127.0.0.1", "::1"}
    assert await resolve("10.0.0.1", 80) == ["10.0.0.1"]
