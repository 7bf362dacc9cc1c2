"""Replay: today's workflow code must replay the histories of earlier orders.

`histories/` keeps histories recorded from real runs: `skeleton_*` from the
first version of the order workflow, `before-split-shipments_saga_*` from
the version that shipped every order as one parcel,
`before-book-at-packing_saga_*` from shipments that booked their carrier only
as they left, `before-return-window_saga_*` from orders that completed on
delivery, `saga_*` from representative orders of the current one (happy
path, split across two warehouses, decline, cancel at several stages,
amendment, payment link paid and expired, cash on delivery, partial cancel,
short pick, lost parcel, express delivery, a return for an exchange with its
return and replacement order). A change to
workflow code that would make a running order take a different path fails
here; guard it with `workflow.patched` instead (see the README).

Record fresh `saga_*` histories after such a guarded change with
`pytest tests/workflows/test_replay.py --record-histories`.
"""

import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.worker import Interceptor, Replayer

from models.order_actions import (
    AmendLine,
    AmendOrder,
    HoldOrder,
    LineQuantity,
    PaymentNotification,
)
from models.orders import (
    OrderPolicy,
    OrderState,
    OrderStatus,
    PlaceOrder,
    workflow_id_for,
)
from models.returns import (
    Disposition,
    InspectedLine,
    OpenReturn,
    ReceiveReturn,
    ReplacementLine,
    ReturnedQuantity,
    ReturnReason,
)
from models.shipping import (
    CarrierEvent,
    DeliveryChoice,
    PackConfirmation,
    PickConfirmation,
    ServiceLevel,
    ShipmentLine,
    ShipmentStatus,
)
from tests.conftest import CODEC_KEYS, FIRST, MANUAL, SECOND, MakeProduct
from tests.gates import GatedCarrier, GatedGateway
from tests.helpers import (
    Handle,
    cancel,
    finished,
    gated_token,
    place_order,
    release,
    shipment_handle,
    start_held_after_payment,
    start_on_hold,
    start_order,
    until_query,
    until_shipment,
    until_status,
)
from workers.codec import data_converter
from workers.interceptors import ActivityRouting
from workers.settings import Settings
from workers.worker import WORKFLOWS, WorkerGroup
from workflows.orders import OrderWorkflow
from workflows.returns import ReturnWorkflow
from workflows.shipping import ShipmentWorkflow
from workflows.steps import POLICIES

HISTORIES = Path(__file__).parent / "histories"


def order_suffix() -> str:
    return uuid.uuid4().hex[:8]


Scenario = Callable[[], Awaitable[tuple[PlaceOrder, Handle]]]


def replayer(*interceptors: Interceptor) -> Replayer:
    # Histories recorded before payloads were encrypted replay as they are, and
    # those recorded on one task queue replay with every domain on its own
    # (the queue of a step is not part of what replay compares).
    routes = {name: f"elsewhere-{name}" for name in POLICIES}
    return Replayer(
        workflows=WORKFLOWS,
        data_converter=data_converter(CODEC_KEYS, "test-1"),
        interceptors=[*interceptors, ActivityRouting(routes)],
    )


@pytest.mark.parametrize(
    "path", sorted(HISTORIES.glob("*.json")), ids=lambda path: path.stem
)
async def test_saved_history_replays(path: Path) -> None:
    saved = json.loads(path.read_text())
    history = WorkflowHistory.from_json(saved["workflow_id"], saved["history"])

    await replayer().replay_workflow(history)


async def test_saved_histories_replay_with_tracing_on() -> None:
    # A worker with a collector configured runs the tracing interceptor too.
    tracing = replayer(TracingInterceptor(TracerProvider().get_tracer("replay")))

    for path in sorted(HISTORIES.glob("*.json")):
        saved = json.loads(path.read_text())
        await tracing.replay_workflow(
            WorkflowHistory.from_json(saved["workflow_id"], saved["history"])
        )


async def test_fresh_histories_replay_and_can_be_recorded(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    engine: AsyncEngine,
    gateway: GatedGateway,
    carrier: GatedCarrier,
    make_product: MakeProduct,
    request: pytest.FixtureRequest,
) -> None:
    queue = settings.temporal_task_queue
    automatic = await make_product({FIRST: 50})
    elsewhere = await make_product({SECOND: 50})
    manual = await make_product({MANUAL: 50})
    other_manual = await make_product({MANUAL: 50})

    async def plain(order: PlaceOrder) -> tuple[PlaceOrder, Handle]:
        return order, await start_order(client, order, queue)

    async def cancelled_on_hold() -> tuple[PlaceOrder, Handle]:
        order = place_order([(automatic, 1)])
        handle = await start_on_hold(client, order, queue)
        await cancel(handle)
        return order, handle

    async def cancelled_while_picking() -> tuple[PlaceOrder, Handle]:
        order = place_order([(manual, 2)])
        handle = await start_order(client, order, queue)
        await until_shipment(handle, ShipmentStatus.PICKING)
        await cancel(handle)
        return order, handle

    async def partly_cancelled_while_picking() -> tuple[PlaceOrder, Handle]:
        order = place_order([(manual, 1), (other_manual, 1)])
        handle = await start_order(client, order, queue)
        await until_shipment(handle, ShipmentStatus.PICKING)
        await cancel(handle, lines=[LineQuantity(line=1, quantity=1)])
        return order, handle

    async def short_picked() -> tuple[PlaceOrder, Handle]:
        order = place_order([(manual, 2)])
        handle = await start_order(client, order, queue)
        state = await until_shipment(handle, ShipmentStatus.PICKING)
        await shipment_handle(client, order, state).execute_update(
            ShipmentWorkflow.pick,
            PickConfirmation(
                actor="bo", found=[ShipmentLine(line=1, sku=manual, quantity=1)]
            ),
        )
        return order, handle

    async def parcel_lost() -> tuple[PlaceOrder, Handle]:
        silent = f"L{order_suffix()}"
        carrier.silent.add(silent)
        order = place_order([(elsewhere, 1)], postal_code=silent)
        handle = await start_order(client, order, queue)
        state = await until_shipment(handle, ShipmentStatus.SHIPPED)
        await shipment_handle(client, order, state).signal(
            ShipmentWorkflow.carrier_event,
            CarrierEvent(event_id="e1", kind="lost", at=datetime.now(UTC)),
        )
        return order, handle

    async def cancelled_after_packing() -> tuple[PlaceOrder, Handle]:
        order = place_order([(manual, 1)])
        handle = await start_order(client, order, queue)
        state = await until_shipment(handle, ShipmentStatus.PICKING)
        await handle.execute_update(
            OrderWorkflow.hold, HoldOrder(reason="address check", actor="ann")
        )
        parcel = shipment_handle(client, order, state)
        await parcel.signal(
            ShipmentWorkflow.confirm_picked, PickConfirmation(actor="bo")
        )
        await parcel.signal(
            ShipmentWorkflow.confirm_packed, PackConfirmation(actor="bo")
        )
        await until_query(
            handle,
            OrderWorkflow.current_state,
            lambda s: s.shipments[0].label_ref is not None,
        )
        await cancel(handle)
        return order, handle

    async def amended() -> tuple[PlaceOrder, Handle]:
        order = place_order([(automatic, 1)], token=gated_token())
        handle = await start_held_after_payment(client, order, queue, gateway)
        await handle.execute_update(
            OrderWorkflow.amend,
            AmendOrder(
                lines=[AmendLine(sku=automatic, name="a", quantity=3)], actor="ann"
            ),
        )
        await release(handle)
        return order, handle

    async def paid_by_link() -> tuple[PlaceOrder, Handle]:
        order = place_order([(automatic, 1)], method="link")
        handle = await start_order(client, order, queue)
        await until_status(handle, OrderStatus.AWAITING_PAYMENT)
        await handle.signal(
            OrderWorkflow.payment_notification,
            PaymentNotification(
                event_id=f"evt_{order.order_id}",
                kind="paid",
                amount_minor=order.total_minor,
                currency="EUR",
                at=datetime.now(UTC),
            ),
        )
        return order, handle

    async def returned_for_an_exchange() -> tuple[PlaceOrder, Handle]:
        # The window is short so the order ends; the return is opened at once.
        order = place_order(
            [(automatic, 2)], policy=OrderPolicy(return_window_seconds=10)
        )
        handle = await start_order(client, order, queue)
        await until_status(handle, OrderStatus.DELIVERED)
        opened = await handle.execute_update(
            OrderWorkflow.request_return,
            OpenReturn(
                return_id=str(uuid.uuid4()),
                lines=[ReturnedQuantity(line=1, quantity=2)],
                reason=ReturnReason.SIZE_OR_FIT,
                replacement=[
                    ReplacementLine(
                        sku=elsewhere, name="e", quantity=1, unit_price_minor=400
                    )
                ],
                actor="ann",
            ),
        )
        ret = client.get_workflow_handle_for(ReturnWorkflow.run, opened.workflow_id)
        await until_query(
            ret,
            ReturnWorkflow.state,
            lambda s: s.exchange is not None and s.exchange.order_id is not None,
        )
        await ret.execute_update(
            ReturnWorkflow.receive,
            ReceiveReturn(
                actor="bo",
                lines=[
                    InspectedLine(line=1, quantity=1, outcome=Disposition.RESTOCK),
                    InspectedLine(line=1, quantity=1, outcome=Disposition.WRITE_OFF),
                ],
            ),
        )
        return order, handle

    scenarios: dict[str, Scenario] = {
        "completed": lambda: plain(place_order([(automatic, 1)])),
        "split": lambda: plain(place_order([(automatic, 1), (elsewhere, 2)])),
        "declined": lambda: plain(place_order([(automatic, 1)], token="tok_decline")),
        "out_of_stock": lambda: plain(place_order([(automatic, 500)])),
        "cash_on_delivery": lambda: plain(place_order([(automatic, 1)], method="cod")),
        "link_expired": lambda: plain(
            place_order(
                [(automatic, 1)],
                method="link",
                policy=OrderPolicy(payment_link_seconds=0.5),
            )
        ),
        "cancelled_on_hold": cancelled_on_hold,
        "cancelled_while_picking": cancelled_while_picking,
        "partly_cancelled_while_picking": partly_cancelled_while_picking,
        "short_picked": short_picked,
        "parcel_lost": parcel_lost,
        "cancelled_after_packing": cancelled_after_packing,
        "express_delivery": lambda: plain(
            place_order([(automatic, 1)]).model_copy(
                update={
                    "delivery": DeliveryChoice(
                        carrier="sandbox-express",
                        service_level=ServiceLevel.EXPRESS,
                        option="sandbox-express:express",
                        price_minor=1490,
                        estimated_delivery=date(2026, 12, 8),
                    )
                }
            )
        ),
        "amended": amended,
        "paid_by_link": paid_by_link,
        "returned_for_an_exchange": returned_for_an_exchange,
    }
    histories: dict[str, WorkflowHistory] = {}
    for name, scenario in scenarios.items():
        order, handle = await scenario()
        state: OrderState = await _finish(client, order, handle)
        histories[f"saga_{name}"] = await handle.fetch_history()
        for shipment in state.shipments:
            child = client.get_workflow_handle(
                f"{workflow_id_for(order.order_id)}-shipment-{shipment.number}"
            )
            suffix = shipment.number.rsplit("-", 1)[-1]
            histories[f"saga_{name}_shipment_{suffix}"] = await child.fetch_history()
        for ret in state.returns:
            child = client.get_workflow_handle(ret.workflow_id)
            histories[f"saga_{name}_return_{ret.number}"] = await child.fetch_history()
            if ret.exchange is not None and ret.exchange.order_id is not None:
                replacement = client.get_workflow_handle_for(
                    OrderWorkflow.run, workflow_id_for(ret.exchange.order_id)
                )
                await finished(replacement)
                histories[
                    f"saga_{name}_replacement"
                ] = await replacement.fetch_history()

    for history in histories.values():
        await replayer().replay_workflow(history)

    if request.config.getoption("--record-histories"):
        HISTORIES.mkdir(exist_ok=True)
        for name, history in histories.items():
            saved = {
                "workflow_id": history.workflow_id,
                "history": json.loads(history.to_json()),
            }
            (HISTORIES / f"{name}.json").write_text(json.dumps(saved, indent=1) + "\n")


async def _finish(client: Client, order: PlaceOrder, handle: Handle) -> OrderState:
    """Let a scenario's order end, confirming manual picks along the way."""
    while True:
        state = await handle.query(OrderWorkflow.current_state)
        live = [
            s
            for s in state.shipments
            if s.status in (ShipmentStatus.PICKING, ShipmentStatus.PICKED)
        ]
        if state.status in ("completed", "cancelled", "failed") or not live:
            return await finished(handle)
        parcel = shipment_handle(client, order, state)
        await parcel.signal(
            ShipmentWorkflow.confirm_picked, PickConfirmation(actor="bo")
        )
        await parcel.signal(
            ShipmentWorkflow.confirm_packed, PackConfirmation(actor="bo")
        )
        await until_shipment(handle, ShipmentStatus.SHIPPED)
