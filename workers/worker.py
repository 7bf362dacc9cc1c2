"""The Temporal worker: the order workflows and each domain's activities, one
worker per task queue, any subset of them in one process."""

import asyncio
import functools
import logging
import signal
from collections.abc import Callable, Collection, Coroutine
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import Worker

from activities.carriers import Carrier, sandbox_carriers
from activities.inventory import InventoryActivities
from activities.notifications import NotificationActivities, Notifier
from activities.orders import OrderActivities
from activities.payment_gateway import PaymentGateway, SandboxGateway
from activities.payments import PaymentActivities
from activities.returns import ReturnActivities
from activities.shipping import ShippingActivities
from db.engine import create_engine
from workers.interceptors import ActivityRouting, RefusedDataIsFinal
from workers.metrics import OrdersByStatus
from workers.outbox import WebhookDispatcher
from workers.queues import Domain
from workers.settings import Settings
from workers.temporal import connect, metrics_runtime
from workers.tracing import tracer_provider, tracing_interceptors
from workflows.orders import OrderWorkflow
from workflows.returns import ReturnWorkflow
from workflows.shipping import ShipmentWorkflow

logger = logging.getLogger(__name__)

WORKFLOWS = [OrderWorkflow, ShipmentWorkflow, ReturnWorkflow]


def activities_by_domain(
    engine: AsyncEngine,
    settings: Settings,
    *,
    gateway: PaymentGateway | None = None,
    carriers: list[Carrier] | None = None,
    notifier: Notifier | None = None,
) -> dict[Domain, list[Callable[..., Any]]]:
    """Every activity by its domain, wired to the database and the providers
    (the sandbox ones unless others are given)."""
    notifications = NotificationActivities(engine, notifier)
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
    return {
        Domain.ORDERS: [
            orders.record_order,
            orders.record_order_event,
            orders.record_order_change,
        ],
        Domain.INVENTORY: [
            inventory.reserve_stock,
            inventory.held_stock,
            inventory.reserve_more,
            inventory.write_off_short,
            inventory.replace_reservation,
            inventory.release_stock,
            inventory.release_lines,
        ],
        Domain.PAYMENTS: [
            payments.authorize_payment,
            payments.capture_payment,
            payments.void_payment,
            payments.refund_payment,
            payments.create_payment_link,
            payments.record_link_payment,
            payments.expire_payment_link,
        ],
        Domain.SHIPPING: [
            shipping.start_picking,
            shipping.record_shipment_event,
            shipping.pack_shipment,
            shipping.book_shipment,
            shipping.cancel_booking,
            shipping.ship_shipment,
            shipping.track_shipment,
        ],
        Domain.RETURNS: [
            returns.record_return,
            returns.place_exchange,
            returns.issue_return_label,
            returns.cancel_return_label,
            returns.restock_return,
        ],
        Domain.NOTIFICATIONS: [notifications.notify_customer],
    }


def activities(
    engine: AsyncEngine, settings: Settings, **providers: Any
) -> list[Callable[..., Any]]:
    """Every activity of every domain."""
    grouped = activities_by_domain(engine, settings, **providers)
    return [function for functions in grouped.values() for function in functions]


class WorkerGroup:
    """The workers of one process, one per task queue, started and stopped
    together; leaving the block drains them all at once. Services (such as
    the webhook dispatcher) run beside them and are cancelled first."""

    def __init__(
        self,
        workers: list[Worker],
        services: list[Callable[[], Coroutine[Any, Any, None]]] | None = None,
    ) -> None:
        self.workers = workers
        self.services = services or []
        self._running: list[asyncio.Task[None]] = []

    @property
    def task_queues(self) -> list[str]:
        return [worker.task_queue for worker in self.workers]

    async def __aenter__(self) -> "WorkerGroup":
        started: list[Worker] = []
        try:
            for worker in self.workers:
                await worker.__aenter__()
                started.append(worker)
        except BaseException:
            await asyncio.gather(*(w.__aexit__(None, None, None) for w in started))
            raise
        self._running = [asyncio.create_task(service()) for service in self.services]
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        for task in self._running:
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        await asyncio.gather(*(w.__aexit__(*exc_info) for w in self.workers))


def build_workers(
    client: Client,
    engine: AsyncEngine,
    settings: Settings,
    *,
    domains: Collection[Domain] = tuple(Domain),
    gateway: PaymentGateway | None = None,
    carriers: list[Carrier] | None = None,
    notifier: Notifier | None = None,
) -> WorkerGroup:
    """Workers for the task queues of `domains` (all unless told), with the
    sandbox gateway and carriers unless others are given.

    Domains that share a queue name share one worker. The workflows' worker
    also runs every activity: steps scheduled on the workflows' queue before
    the domains had queues of their own still find a worker there. The
    process that serves notifications also delivers outbound webhooks.
    """
    grouped = activities_by_domain(
        engine, settings, gateway=gateway, carriers=carriers, notifier=notifier
    )
    routes = {
        function.__name__: settings.task_queue(domain)
        for domain, functions in grouped.items()
        for function in functions
    }
    by_queue: dict[str, list[Domain]] = {}
    for domain in Domain:
        if domain in domains:
            by_queue.setdefault(settings.task_queue(domain), []).append(domain)
    workers = []
    for queue, queue_domains in by_queue.items():
        runs_workflows = Domain.ORDERS in queue_domains
        served = Domain if runs_workflows else queue_domains
        workers.append(
            Worker(
                client,
                task_queue=queue,
                graceful_shutdown_timeout=timedelta(
                    seconds=settings.worker_shutdown_seconds
                ),
                interceptors=[RefusedDataIsFinal(), ActivityRouting(routes)],
                workflows=WORKFLOWS if runs_workflows else [],
                activities=[f for domain in served for f in grouped[domain]],
            )
        )
    services: list[Callable[[], Coroutine[Any, Any, None]]] = []
    if Domain.NOTIFICATIONS in domains:
        services.append(WebhookDispatcher(engine, settings).run)
    return WorkerGroup(workers, services)


async def run_worker(
    settings: Settings, domains: Collection[Domain] = tuple(Domain)
) -> None:
    """Run until SIGINT or SIGTERM, then finish the tasks in hand and stop."""
    metrics = settings.worker_metrics_address
    runtime = metrics_runtime(metrics) if metrics else None
    tracing = tracer_provider(settings, "oms-worker")
    engine = create_engine(settings.database_url)
    client = await connect(
        settings,
        wait_seconds=30,
        runtime=runtime,
        interceptors=tracing_interceptors(tracing),
    )
    workers = build_workers(client, engine, settings, domains=domains)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    logger.info(
        "worker polling task queues %s on %s",
        ", ".join(workers.task_queues),
        settings.temporal_address,
    )
    if runtime is not None:
        logger.info("worker metrics at http://%s/metrics", metrics)
        if Domain.ORDERS in domains:
            orders = OrdersByStatus(engine, runtime.metric_meter)
            workers.services.append(
                functools.partial(orders.run, settings.orders_gauge_seconds)
            )
    try:
        async with workers:
            await stop.wait()
            logger.info(
                "worker stopping: activities in hand get %ss to finish",
                settings.worker_shutdown_seconds,
            )
    finally:
        await engine.dispose()
        if tracing is not None:
            tracing.shutdown()
    logger.info("worker stopped")
