"""A compensation that fails for good does not stop the others.

Workflow-level test with fake activities registered under the real names: the
order fails after its payment was authorized, voiding fails for good, and the
stock must still be released and the failure written on the timeline.
"""

import uuid

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from models.inventory import ReleaseStock, Reservation, ReserveStock, StockReleased
from models.orders import FailureReason, OrderEventIn, OrderStatus, PlaceOrder
from models.payments import Authorization, AuthorizePayment, Voided, VoidPayment
from tests.helpers import finished, place_order
from workflows.orders import OrderWorkflow
from workflows.shipping import ShipmentWorkflow


class Fakes:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.events: list[str] = []

    @activity.defn(name="record_order")
    async def record_order(self, order: PlaceOrder) -> None:
        self.calls.append("record_order")

    @activity.defn(name="reserve_stock")
    async def reserve_stock(self, request: ReserveStock) -> Reservation:
        self.calls.append("reserve_stock")
        return Reservation(warehouse="W", lines=request.lines)

    @activity.defn(name="authorize_payment")
    async def authorize_payment(self, request: AuthorizePayment) -> Authorization:
        self.calls.append("authorize_payment")
        return Authorization(
            payment_id=str(uuid.uuid4()),
            provider="fake",
            provider_ref="ref",
            amount_minor=request.amount_minor,
        )

    @activity.defn(name="record_order_event")
    async def record_order_event(self, event: OrderEventIn) -> None:
        self.events.append(event.type)
        if event.type == "order.confirmed":
            raise ApplicationError("refused", type="DataRefused", non_retryable=True)

    @activity.defn(name="void_payment")
    async def void_payment(self, request: VoidPayment) -> Voided:
        self.calls.append("void_payment")
        raise ApplicationError(
            "gateway lost it", type="DataRefused", non_retryable=True
        )

    @activity.defn(name="release_stock")
    async def release_stock(self, request: ReleaseStock) -> StockReleased:
        self.calls.append("release_stock")
        return StockReleased(units=1)


async def test_failed_compensation_does_not_stop_the_others(client: Client) -> None:
    fakes = Fakes()
    queue = f"fakes-{uuid.uuid4().hex[:8]}"
    order = place_order([("S", 1)])
    async with Worker(
        client,
        task_queue=queue,
        workflows=[OrderWorkflow, ShipmentWorkflow],
        activities=[
            fakes.record_order,
            fakes.reserve_stock,
            fakes.authorize_payment,
            fakes.record_order_event,
            fakes.void_payment,
            fakes.release_stock,
        ],
    ):
        state = await finished(
            await client.start_workflow(
                OrderWorkflow.run, order, id=f"order-{order.order_id}", task_queue=queue
            )
        )

    assert state.status == OrderStatus.FAILED
    assert state.failure_reason == FailureReason.PROCESSING_ERROR
    assert fakes.calls[-2:] == ["void_payment", "release_stock"]
    assert fakes.events[-2:] == ["order.compensation_failed", "order.failed"]
