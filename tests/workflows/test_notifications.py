"""Customer notifications: the right messages in the channel's language, and
at most once per event even when a worker dies in the middle of sending."""

import asyncio
import uuid

import httpx
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from activities.notifications import Message, SandboxNotifier
from db.channels import Channel
from db.notifications import Notification, SandboxMessage
from db.orders import OrderEvent
from models.orders import workflow_id_for
from tests.conftest import FIRST, MakeProduct, own_queues
from tests.helpers import finished, order_body, place_order, start_order
from workers.settings import Settings
from workers.worker import build_workers
from workflows.orders import OrderWorkflow


async def _messages(engine: AsyncEngine, order_id: str) -> list[tuple[str, str, str]]:
    """(event type, medium, what was sent) per message the sandbox sent."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(Notification.event_type, SandboxMessage.medium, SandboxMessage.body)
            .join(Notification, Notification.id == SandboxMessage.notification_id)
            .where(Notification.order_id == order_id)
            .order_by(SandboxMessage.id)
        )
        return [(row.event_type, row.medium, row.body) for row in rows]


async def test_a_customer_hears_of_each_step_in_the_channels_language(
    api: httpx.AsyncClient,
    client: Client,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    channel = f"de-{uuid.uuid4().hex[:8]}"
    async with engine.begin() as conn:
        await conn.execute(
            insert(Channel).values(code=channel, name="shop", language="de")
        )
    sku = await make_product({FIRST: 2})
    body = order_body(sku, channel=channel)
    body["customer"]["phone"] = "+4930123456"
    order = (await api.post("/v1/orders", json=body)).json()
    handle = client.get_workflow_handle_for(
        OrderWorkflow.run, workflow_id_for(order["id"])
    )
    state = await finished(handle)

    sent = await _messages(engine, order["id"])
    assert [(event, medium) for event, medium, _ in sent] == [
        ("order.confirmed", "email"),
        ("shipment.shipped", "email"),
        ("shipment.shipped", "sms"),
        ("shipment.delivered", "email"),
    ]
    tracking = state.shipments[0].tracking_number
    assert tracking and tracking in sent[1][2] and tracking in sent[2][2]
    assert sent[0][2].startswith("Hallo Ada Lovelace")
    assert order["number"] in sent[0][2]
    async with engine.connect() as conn:
        subjects = (
            await conn.execute(
                select(
                    Notification.subject, Notification.recipient, Notification.status
                )
                .where(
                    Notification.order_id == order["id"], Notification.medium == "email"
                )
                .order_by(Notification.created_at)
            )
        ).all()
    assert subjects[0] == (
        f"Ihre Bestellung {order['number']} ist bestätigt",
        "ada@example.com",
        "sent",
    )
    # Support staff read the same log over the API, by order number.
    shown = (await api.get(f"/v1/orders/{order['number']}/notifications")).json()
    assert [(entry["event_type"], entry["medium"]) for entry in shown] == [
        (event, medium) for event, medium, _ in sent
    ]
    assert {entry["status"] for entry in shown} == {"sent"}
    assert shown[0]["subject"] == subjects[0][0]
    assert shown[0]["language"] == "de"


class DiesAfterSending(SandboxNotifier):
    """Sends the first message, then hangs as a worker that died before it
    could report the step done."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self.sent = asyncio.Event()

    async def send(self, notification_id: str, message: Message) -> str:
        reference = await super().send(notification_id, message)
        self.sent.set()
        await asyncio.Event().wait()
        return reference


async def test_a_message_is_not_sent_again_after_the_worker_dies_sending_it(
    client: Client,
    engine: AsyncEngine,
    settings: Settings,
    make_product: MakeProduct,
) -> None:
    own = settings.model_copy(
        update={
            **own_queues(f"notify-{uuid.uuid4().hex[:8]}"),
            "worker_shutdown_seconds": 0,
        }
    )
    sku = await make_product({FIRST: 1})
    order = place_order([(sku, 1)])
    dying = DiesAfterSending(engine)
    async with build_workers(client, engine, own, notifier=dying):
        handle = await start_order(client, order, own.temporal_task_queue)
        await asyncio.wait_for(dying.sent.wait(), 30)
    # The step was cut short with its message sent: the next worker retries it.
    async with build_workers(client, engine, own):
        state = await finished(handle)

    assert state.status == "completed"
    sent = await _messages(engine, order.order_id)
    assert [event for event, _, _ in sent] == [
        "order.confirmed",
        "shipment.shipped",
        "shipment.delivered",
    ]
    async with engine.connect() as conn:
        confirmed = (
            await conn.execute(
                select(Notification.status)
                .join(OrderEvent, OrderEvent.id == Notification.event_id)
                .where(
                    Notification.order_id == order.order_id,
                    OrderEvent.type == "order.confirmed",
                )
            )
        ).scalar_one()
    # Whether the provider took it is unknown, so it stays claimed, unsent twice.
    assert confirmed == "sending"
    history = [
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in (await handle.fetch_history()).events
        if event.HasField("activity_task_scheduled_event_attributes")
    ]
    assert "notify_customer" in history
