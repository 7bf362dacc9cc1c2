"""The Temporal worker: every workflow and activity of the OMS on one queue."""

import asyncio
import logging
import signal
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import Worker

from activities.carriers import Carrier, sandbox_carriers
from activities.inventory import InventoryActivities
from activities.orders import OrderActivities
from activities.payment_gateway import PaymentGateway, SandboxGateway
from activities.payments import PaymentActivities
from activities.returns import ReturnActivities
from activities.shipping import ShippingActivities
from db.engine import create_engine
from workers.interceptors import RefusedDataIsFinal
from workers.settings import Settings
from workers.temporal import connect
from workflows.orders import OrderWorkflow
from workflows.returns import ReturnWorkflow
from workflows.shipping import ShipmentWorkflow

logger = logging.getLogger(__name__)

WORKFLOWS = [OrderWorkflow, ShipmentWorkflow, ReturnWorkflow]

# On SIGTERM, activities in hand get this long to finish before they are
# cancelled (and retried elsewhere).
SHUTDOWN_GRACE = timedelta(seconds=10)


def activities(
    engine: AsyncEngine,
    settings: Settings,
    *,
    gateway: PaymentGateway | None = None,
    carriers: list[Carrier] | None = None,
) -> list[Callable[..., Any]]:
    """Every activity, wired to the database and the sandbox providers by default."""
    orders = OrderActivities(engine)
    inventory = InventoryActivities(engine)
    payments = PaymentActivities(engine, gateway or SandboxGateway(settings.api_url))
    carriers = carriers or sandbox_carriers(settings.sandbox_transit_seconds)
    returns = ReturnActivities(engine, carriers)
    shipping = ShippingActivities(
        engine,
        carriers,
        pick_seconds=settings.sandbox_pick_seconds,
        pack_seconds=settings.sandbox_pack_seconds,
    )
    return [
        orders.record_order,
        orders.record_order_event,
        orders.record_order_change,
        inventory.reserve_stock,
        inventory.held_stock,
        inventory.reserve_more,
        inventory.write_off_short,
        inventory.replace_reservation,
        inventory.release_stock,
        inventory.release_lines,
        payments.authorize_payment,
        payments.capture_payment,
        payments.void_payment,
        payments.refund_payment,
        payments.create_payment_link,
        payments.record_link_payment,
        payments.expire_payment_link,
        shipping.start_picking,
        shipping.record_shipment_event,
        shipping.pack_shipment,
        shipping.book_shipment,
        shipping.cancel_booking,
        shipping.ship_shipment,
        shipping.track_shipment,
        returns.record_return,
        returns.place_exchange,
        returns.issue_return_label,
        returns.cancel_return_label,
        returns.restock_return,
    ]


def build_worker(
    client: Client,
    engine: AsyncEngine,
    settings: Settings,
    *,
    gateway: PaymentGateway | None = None,
    carriers: list[Carrier] | None = None,
) -> Worker:
    """A worker with the sandbox gateway and carriers unless others are given."""
    return Worker(
        client,
        task_queue=settings.temporal_task_queue,
        graceful_shutdown_timeout=SHUTDOWN_GRACE,
        interceptors=[RefusedDataIsFinal()],
        workflows=WORKFLOWS,
        activities=activities(engine, settings, gateway=gateway, carriers=carriers),
    )


async def run_worker(settings: Settings) -> None:
    """Run until SIGINT or SIGTERM, then finish the tasks in hand and stop."""
    engine = create_engine(settings.database_url)
    client = await connect(settings, wait_seconds=30)
    worker = build_worker(client, engine, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    logger.info(
        "worker polling task queue %s on %s",
        settings.temporal_task_queue,
        settings.temporal_address,
    )
    try:
        async with worker:
            await stop.wait()
            logger.info("worker stopping")
    finally:
        await engine.dispose()
    logger.info("worker stopped")
