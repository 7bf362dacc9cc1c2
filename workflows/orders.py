"""OrderWorkflow: one order from received to completed, or failed and undone."""

import asyncio
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from models.errors import FailureType
    from models.inventory import (
        ReleaseStock,
        Reservation,
        ReserveStock,
        StockLine,
        StockReleased,
    )
    from models.orders import (
        FailureReason,
        OrderEventIn,
        OrderState,
        OrderStatus,
        PaymentStatus,
        PlaceOrder,
    )
    from models.payments import (
        Authorization,
        AuthorizePayment,
        Captured,
        CapturePayment,
        Voided,
        VoidPayment,
    )
    from models.shipping import FulfilShipment, ShipmentLine, ShipmentState
    from workflows.saga import Compensations
    from workflows.shipping import ShipmentWorkflow
    from workflows.steps import run_step

R = TypeVar("R")


class OrderFailed(Exception):
    """The order cannot go on; what was done so far must be undone."""

    def __init__(self, reason: FailureReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


_FAILURES = {
    FailureType.OUT_OF_STOCK: FailureReason.OUT_OF_STOCK,
    FailureType.PAYMENT_DECLINED: FailureReason.PAYMENT_DECLINED,
}


def _business_failure(error: ActivityError) -> OrderFailed | None:
    cause = error.cause
    if isinstance(cause, ApplicationError) and cause.type in _FAILURES:
        return OrderFailed(_FAILURES[FailureType(cause.type)], cause.message)
    return None


def _as_order_failure(
    error: OrderFailed | ActivityError | ChildWorkflowError,
) -> OrderFailed:
    if isinstance(error, OrderFailed):
        return error
    # A step failed for good for a reason that is not a business rule: undo
    # the order rather than leave stock and money held by a stuck workflow.
    cause = error.cause or error
    return OrderFailed(FailureReason.PROCESSING_ERROR, str(cause))


@workflow.defn
class OrderWorkflow:
    @workflow.init
    def __init__(self, order: PlaceOrder) -> None:
        self._order = order
        self._state = OrderState.received(order)
        self._undo_reason = "order not fulfilled"
        self._shipment_runs: list[workflow.ChildWorkflowHandle[Any, ShipmentState]] = []

    @workflow.run
    async def run(self, order: PlaceOrder) -> OrderState:
        compensations = Compensations()
        try:
            await self._call("record_order", order, type(None), summary="record order")
            reservation = await self._reserve_stock()
            compensations.add("release stock", self._release_stock)
            authorization = await self._authorize_payment()
            compensations.add("void authorization", lambda: self._void(authorization))
            await self._set_status(
                OrderStatus.CONFIRMED, "order.confirmed", "stock reserved and paid"
            )
            shipment = self._plan_shipment(reservation)
            await self._fulfil(shipment, authorization, compensations)
            await self._set_status(OrderStatus.COMPLETED, "order.completed", "done")
        except (OrderFailed, ActivityError, ChildWorkflowError) as error:
            failure = _as_order_failure(error)
            self._state.failure_reason = failure.reason
            self._state.failure_detail = failure.detail
            self._undo_reason = failure.reason
            await compensations.run()
            await self._fail(failure)
        except asyncio.CancelledError:
            # Cancelled from outside the OMS (Temporal UI or CLI): stop the
            # shipments, undo what was done, record it, and end as cancelled.
            self._undo_reason = "order cancelled through Temporal"
            await self._cancel_shipments()
            await compensations.run()
            await self._set_status(
                OrderStatus.CANCELLED,
                "order.cancelled",
                "order cancelled through Temporal, without an OMS reason",
            )
            raise
        return self._state

    @workflow.query
    def state(self) -> OrderState:
        return self._state

    @workflow.signal
    def shipment_progress(self, shipment: ShipmentState) -> None:
        """The shipment's child workflow reports each step it completes."""
        self._state.shipments = [
            shipment if known.shipment_id == shipment.shipment_id else known
            for known in self._state.shipments
        ]
        self._state.updated_at = workflow.now()

    # Steps, in the order the business runs them.

    async def _reserve_stock(self) -> Reservation:
        request = ReserveStock(
            order_id=self._order.order_id,
            lines=[
                StockLine(line=line.line, sku=line.sku, quantity=line.quantity)
                for line in self._order.lines
            ],
            event_id=self._event_id(),
            at=workflow.now(),
        )
        return await self._call(
            "reserve_stock", request, Reservation, summary="reserve stock"
        )

    async def _release_stock(self) -> None:
        request = ReleaseStock(
            order_id=self._order.order_id,
            event_id=self._event_id(),
            at=workflow.now(),
            reason=self._undo_reason,
        )
        await self._call(
            "release_stock", request, StockReleased, summary="release stock"
        )

    async def _authorize_payment(self) -> Authorization:
        order = self._order
        request = AuthorizePayment(
            order_id=order.order_id,
            method=order.payment.method,
            token=order.payment.token,
            amount_minor=order.total_minor,
            currency=order.currency,
            idempotency_key=f"{order.order_id}:authorize",
            event_id=self._event_id(),
            at=workflow.now(),
        )
        try:
            authorization = await self._call(
                "authorize_payment", request, Authorization, summary="authorize payment"
            )
        except OrderFailed:
            self._state.payment_status = PaymentStatus.DECLINED
            raise
        self._state.payment_status = PaymentStatus.AUTHORIZED
        self._state.authorized_minor = authorization.amount_minor
        return authorization

    async def _void(self, authorization: Authorization) -> None:
        request = VoidPayment(
            order_id=self._order.order_id,
            payment_id=authorization.payment_id,
            idempotency_key=f"{self._order.order_id}:void",
            event_id=self._event_id(),
            at=workflow.now(),
            reason=self._undo_reason,
        )
        await self._call("void_payment", request, Voided, summary="void authorization")
        self._state.payment_status = PaymentStatus.VOIDED

    def _plan_shipment(self, reservation: Reservation) -> ShipmentState:
        shipment = ShipmentState(
            shipment_id=str(workflow.uuid4()),
            number=f"{self._order.number}-1",
            warehouse=reservation.warehouse,
            lines=[
                ShipmentLine(line=line.line, sku=line.sku, quantity=line.quantity)
                for line in reservation.lines
            ],
        )
        self._state.shipments.append(shipment)
        return shipment

    async def _fulfil(
        self,
        shipment: ShipmentState,
        authorization: Authorization,
        compensations: Compensations,
    ) -> None:
        await self._set_status(
            OrderStatus.IN_FULFILMENT,
            "order.in_fulfilment",
            f"shipment {shipment.number} goes out from {shipment.warehouse}",
        )
        address = self._order.shipping_address
        child = await workflow.start_child_workflow(
            ShipmentWorkflow.run,
            FulfilShipment(
                order_id=self._order.order_id,
                order_number=self._order.number,
                shipment=shipment,
                country=address.country,
                postal_code=address.postal_code,
            ),
            id=f"{workflow.info().workflow_id}-shipment-{shipment.number}",
            static_summary=f"shipment {shipment.number} from {shipment.warehouse}",
        )
        self._shipment_runs.append(child)
        # Money is taken when the goods leave, not before.
        await workflow.wait_condition(
            lambda: self._shipment(shipment.shipment_id).has_left or child.done()
        )
        if self._shipment(shipment.shipment_id).has_left:
            compensations.discard("void authorization")
            await self._capture(authorization, self._state.total_minor)
        self.shipment_progress(await child)
        await self._set_status(
            OrderStatus.DELIVERED, "order.delivered", "every shipment delivered"
        )

    async def _cancel_shipments(self) -> None:
        for run in self._shipment_runs:
            if not run.done():
                run.cancel()
                try:
                    await run
                except (ChildWorkflowError, asyncio.CancelledError):
                    pass

    async def _capture(self, authorization: Authorization, amount_minor: int) -> None:
        request = CapturePayment(
            order_id=self._order.order_id,
            payment_id=authorization.payment_id,
            amount_minor=amount_minor,
            currency=self._order.currency,
            idempotency_key=f"{self._order.order_id}:capture:1",
            event_id=self._event_id(),
            at=workflow.now(),
        )
        captured = await self._call(
            "capture_payment", request, Captured, summary="capture payment"
        )
        self._state.captured_minor = captured.captured_minor
        self._state.payment_status = (
            PaymentStatus.CAPTURED
            if captured.captured_minor >= self._state.authorized_minor
            else PaymentStatus.PARTIALLY_CAPTURED
        )

    async def _fail(self, failure: OrderFailed) -> None:
        workflow.logger.info(
            "order %s failed: %s (%s)",
            self._order.order_id,
            failure.reason,
            failure.detail,
        )
        await self._set_status(
            OrderStatus.FAILED,
            "order.failed",
            f"order failed: {failure.reason}: {failure.detail}",
            failure_reason=failure.reason,
            failure_detail=failure.detail,
        )

    # Plumbing.

    async def _set_status(
        self,
        status: OrderStatus,
        event_type: str,
        message: str,
        *,
        failure_reason: FailureReason | None = None,
        failure_detail: str | None = None,
    ) -> None:
        self._state.status = status
        self._state.updated_at = workflow.now()
        event = OrderEventIn(
            order_id=self._order.order_id,
            event_id=self._event_id(),
            at=workflow.now(),
            type=event_type,
            message=message,
            status=status,
            payment_status=self._state.payment_status,
            failure_reason=failure_reason,
            failure_detail=failure_detail,
        )
        await self._call("record_order_event", event, type(None), summary=event_type)
        workflow.logger.info("order %s is %s", self._order.order_id, status)

    async def _call(
        self, activity: str, arg: BaseModel, result_type: type[R], *, summary: str
    ) -> R:
        try:
            return await run_step(activity, arg, result_type, summary=summary)
        except ActivityError as error:
            failure = _business_failure(error)
            if failure is None:
                raise
            raise failure from error

    def _event_id(self) -> str:
        return str(workflow.uuid4())

    def _shipment(self, shipment_id: str) -> ShipmentState:
        return next(s for s in self._state.shipments if s.shipment_id == shipment_id)
