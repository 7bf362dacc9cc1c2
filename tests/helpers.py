"""Builders and probes shared by the tests."""

import asyncio
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from sqlalchemy import func, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy

from db.catalog import Product, ProductPrice
from db.inventory import Reservation, StockLevel
from db.migrate import upgrade
from db.orders import OrderEvent
from db.payments import Payment, PaymentEvent
from models.order_actions import CancelOrder, HoldOrder, LineQuantity, ReleaseOrder
from models.orders import (
    Address,
    CancelReason,
    Customer,
    OrderLine,
    OrderPolicy,
    OrderState,
    OrderStatus,
    PaymentDetails,
    PlaceOrder,
    workflow_id_for,
)
from models.shipping import ShipmentStatus
from tests.gates import GatedGateway
from workflows.orders import OrderWorkflow
from workflows.shipping import ShipmentWorkflow

T = TypeVar("T")

RESULT_TIMEOUT = 60.0


async def add_product(
    engine: AsyncEngine,
    stock: dict[str, int] | None = None,
    *,
    price_minor: int = 1000,
    currency: str = "EUR",
    weight_grams: int = 200,
) -> str:
    """A product with a unique SKU, a price and stock per warehouse."""
    sku = f"T-{uuid.uuid4().hex[:10].upper()}"
    async with engine.begin() as conn:
        await conn.execute(
            insert(Product).values(
                sku=sku, name=f"test {sku}", category="test", weight_grams=weight_grams
            )
        )
        await conn.execute(
            insert(ProductPrice).values(
                sku=sku, currency=currency, amount_minor=price_minor
            )
        )
        for warehouse, units in (stock or {}).items():
            await conn.execute(
                insert(StockLevel).values(sku=sku, warehouse=warehouse, on_hand=units)
            )
    return sku


def order_body(*skus: str, token: str = "tok_visa", **overrides: Any) -> dict[str, Any]:
    """A valid `POST /v1/orders` body: one unit of each SKU."""
    body: dict[str, Any] = {
        "channel": "test",
        "customer": {"email": "ada@example.com", "name": "Ada Lovelace"},
        "shipping_address": {
            "country": "DE",
            "city": "Berlin",
            "postal_code": "10115",
            "line1": "Invalidenstr. 1",
        },
        "lines": [{"sku": sku, "quantity": 1} for sku in skus],
        "currency": "EUR",
        "payment": {"method": "card", "token": token},
    }
    body.update(overrides)
    return body


def place_order(
    lines: list[tuple[str, int]],
    *,
    token: str | None = "tok_visa",
    price_minor: int = 1000,
    method: str = "card",
    postal_code: str = "10115",
    policy: OrderPolicy | None = None,
) -> PlaceOrder:
    """A priced order as the API would hand it to the workflow.

    Unless the policy says otherwise the return window is empty, so a
    delivered order completes at once."""
    policy = policy or OrderPolicy()
    if "return_window_seconds" not in policy.model_fields_set:
        policy = policy.model_copy(update={"return_window_seconds": 0})
    order_lines = [
        OrderLine(
            line=i,
            sku=sku,
            name=f"test {sku}",
            quantity=quantity,
            unit_price_minor=price_minor,
            total_minor=price_minor * quantity,
        )
        for i, (sku, quantity) in enumerate(lines, start=1)
    ]
    total = sum(line.total_minor for line in order_lines)
    order_id = str(uuid.uuid4())
    return PlaceOrder(
        order_id=order_id,
        number=f"T-{order_id[:8].upper()}",
        channel="test",
        external_id=None,
        customer=Customer(email="ada@example.com", name="Ada Lovelace"),
        shipping_address=Address(
            country="DE",
            city="Berlin",
            postal_code=postal_code,
            line1="Invalidenstr. 1",
        ),
        currency="EUR",
        lines=order_lines,
        subtotal_minor=total,
        shipping_minor=0,
        total_minor=total,
        payment=PaymentDetails(
            method=method, token=token if method == "card" else None
        ),
        placed_at=datetime.now(UTC),
        policy=policy,
    )


async def start_order(
    client: Client, order: PlaceOrder, task_queue: str
) -> WorkflowHandle[OrderWorkflow, OrderState]:
    return await client.start_workflow(
        OrderWorkflow.run,
        order,
        id=workflow_id_for(order.order_id),
        task_queue=task_queue,
    )


async def finished(handle: WorkflowHandle[Any, T]) -> T:
    """The workflow's result, failing the test if it takes too long."""
    return await asyncio.wait_for(handle.result(), RESULT_TIMEOUT)


async def until_query(
    handle: WorkflowHandle[Any, Any],
    query: Callable[[Any], Any],
    holds: Callable[[Any], bool],
    timeout: float = RESULT_TIMEOUT,
) -> Any:
    """Query after every new history event until `holds(answer)`; return it.

    The wait is the server's long poll on the workflow's history, so the test
    wakes exactly when the workflow moves, never on a guessed delay.
    """

    async def poll() -> Any:
        answer = await handle.query(query)
        if holds(answer):
            return answer
        async for _ in handle.fetch_history_events(wait_new_event=True):
            answer = await handle.query(query)
            if holds(answer):
                return answer
        raise AssertionError(f"workflow closed before the condition held: {answer}")

    return await asyncio.wait_for(poll(), timeout)


async def eventually(
    holds: Callable[[], Awaitable[bool]],
    timeout: float = RESULT_TIMEOUT,
    every: float = 0.05,
) -> None:
    """Ask `holds()` until it is true, failing the test after `timeout`.

    For state no workflow reports (the webhook dispatcher's deliveries, a
    metrics endpoint): each call is a query, and the timeout bounds the wait.
    """

    async def ask() -> None:
        while not await holds():
            await asyncio.sleep(every)

    await asyncio.wait_for(ask(), timeout)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def until_signalled(
    handle: WorkflowHandle[Any, Any], signal: str, timeout: float = RESULT_TIMEOUT
) -> None:
    """Wait until the workflow's history shows it received `signal`."""

    async def watch() -> None:
        async for event in handle.fetch_history_events(wait_new_event=True):
            signalled = event.workflow_execution_signaled_event_attributes
            if event.HasField("workflow_execution_signaled_event_attributes"):
                if signalled.signal_name == signal:
                    return
        raise AssertionError(f"workflow closed without receiving {signal!r}")

    await asyncio.wait_for(watch(), timeout)


async def stock_of(engine: AsyncEngine, sku: str) -> dict[str, tuple[int, int]]:
    """{warehouse: (on_hand, reserved)} for one SKU."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(StockLevel.warehouse, StockLevel.on_hand, StockLevel.reserved).where(
                StockLevel.sku == sku
            )
        )
        return {row.warehouse: (row.on_hand, row.reserved) for row in rows}


async def reservations_of(
    engine: AsyncEngine, order_id: str
) -> list[tuple[str, str, int, str]]:
    """[(sku, warehouse, quantity, state)] of one order, by line."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(
                Reservation.sku,
                Reservation.warehouse,
                Reservation.quantity,
                Reservation.state,
            )
            .where(Reservation.order_id == order_id)
            .order_by(Reservation.line)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


async def payment_events_of(
    engine: AsyncEngine, order_id: str
) -> list[tuple[str, int]]:
    """[(kind, amount_minor)] of one order, oldest first."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(PaymentEvent.kind, PaymentEvent.amount_minor)
            .where(PaymentEvent.order_id == order_id)
            .order_by(PaymentEvent.id)
        )
        return [(row.kind, row.amount_minor) for row in rows]


async def timeline_of(engine: AsyncEngine, order_id: str) -> list[str]:
    """The event types on an order's timeline, oldest first."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(OrderEvent.type)
            .where(OrderEvent.order_id == order_id)
            .order_by(OrderEvent.at, OrderEvent.seq)
        )
        return list(rows.scalars())


async def payments_of(engine: AsyncEngine, order_id: str) -> list[dict[str, Any]]:
    """The order's payments, oldest first, with their amounts and status."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(
                Payment.method,
                Payment.status,
                Payment.authorized_minor,
                Payment.captured_minor,
                Payment.voided_minor,
                Payment.refunded_minor,
            )
            .where(Payment.order_id == order_id)
            .order_by(Payment.created_at)
        )
        return [dict(row._mapping) for row in rows]


async def count_rows(engine: AsyncEngine, table: Any, **where: Any) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).select_from(table)
        for column, value in where.items():
            query = query.where(getattr(table.c, column) == value)
        return int((await conn.execute(query)).scalar_one())


# Driving an order to a given moment.

Handle = WorkflowHandle[OrderWorkflow, OrderState]


async def start_on_hold(client: Client, order: PlaceOrder, task_queue: str) -> Handle:
    """Start the order held before its first step (update-with-start)."""
    start = WithStartWorkflowOperation(
        OrderWorkflow.run,
        order,
        id=workflow_id_for(order.order_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
    )
    await client.execute_update_with_start_workflow(
        OrderWorkflow.hold,
        HoldOrder(reason="fraud review", actor="ann"),
        start_workflow_operation=start,
    )
    return await start.workflow_handle()


async def start_held_after_payment(
    client: Client, order: PlaceOrder, task_queue: str, gateway: GatedGateway
) -> Handle:
    """Start an order (with a gated card token) and hold it once authorized."""
    assert order.payment.token is not None
    gate = gateway.gate(order.payment.token)
    handle = await start_order(client, order, task_queue)
    await gate.entered.wait()
    holding = handle.execute_update(
        OrderWorkflow.hold, HoldOrder(reason="customer on the phone", actor="ann")
    )
    gate.opened.set()
    await holding
    return handle


def gated_token() -> str:
    return f"tok_gate_{uuid.uuid4().hex}"


async def cancel(
    handle: Handle,
    reason: CancelReason = CancelReason.CUSTOMER_REQUEST,
    lines: list[LineQuantity] | None = None,
) -> OrderState:
    return await handle.execute_update(
        OrderWorkflow.cancel, CancelOrder(reason=reason, lines=lines, actor="ann")
    )


async def release(handle: Handle) -> OrderState:
    return await handle.execute_update(OrderWorkflow.release, ReleaseOrder(actor="ann"))


async def until_status(handle: Handle, status: OrderStatus) -> OrderState:
    state: OrderState = await until_query(
        handle, OrderWorkflow.current_state, lambda s: s.status == status
    )
    return state


async def until_shipment(handle: Handle, status: ShipmentStatus) -> OrderState:
    state: OrderState = await until_query(
        handle,
        OrderWorkflow.current_state,
        lambda s: bool(s.shipments) and s.shipments[-1].status == status,
    )
    return state


def shipment_handle(
    client: Client, order: PlaceOrder, state: OrderState
) -> WorkflowHandle[ShipmentWorkflow, object]:
    return client.get_workflow_handle_for(
        ShipmentWorkflow.run,
        f"{workflow_id_for(order.order_id)}-shipment-{state.shipments[-1].number}",
    )


@contextmanager
def scratch_database(database_url: str) -> Iterator[str]:
    """A new empty database on the test server, migrated; dropped afterwards."""
    name = f"oms_scratch_{uuid.uuid4().hex[:8]}"
    admin = make_url(database_url).set(drivername="postgresql")
    with psycopg.connect(admin.render_as_string(False), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(database_url).set(database=name).render_as_string(False)
    try:
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(admin.render_as_string(False), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
