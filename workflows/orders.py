"""OrderWorkflow: one order from received to completed, or undone.

`run` reads as the business process. What people ask of a running order
(cancel, amend, hold, release) arrives as updates; each is checked against
models.rules when it arrives and queued, and the process carries it out
between two steps or while it waits, so a request never runs alongside a step
and always sees the order as it is.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from models.errors import FailureType
    from models.inventory import (
        Allocation,
        Destination,
        OrderRef,
        ReleaseLines,
        ReleaseStock,
        Reservation,
        ReserveStock,
        StockHeld,
        StockLine,
        StockReleased,
    )
    from models.order_actions import (
        AmendLine,
        AmendOrder,
        CancelOrder,
        HoldOrder,
        LineQuantity,
        PaymentNotification,
        ReleaseOrder,
        Restock,
    )
    from models.orders import (
        Cancellation,
        CancelReason,
        FailureReason,
        Hold,
        LostParcelPolicy,
        OrderChanged,
        OrderEventIn,
        OrderLine,
        OrderState,
        OrderStatus,
        OutOfStockPolicy,
        PlaceOrder,
    )
    from models.returns import ExchangeGoods, OpenReturn, ReturnState
    from models.rules import (
        ORDER_TRANSITIONS,
        Action,
        Refusal,
        refusal,
        transition_allowed,
    )
    from models.shipping import (
        FulfilShipment,
        ServiceLevel,
        ShipmentLine,
        ShipmentState,
        ShipmentStatus,
    )
    from workflows.order_payment import (
        REFUND,
        LinkExpired,
        OrderPayment,
        PaymentRefused,
    )
    from workflows.order_returns import OrderReturns
    from workflows.saga import Compensations
    from workflows.shipping import ShipmentWorkflow
    from workflows.steps import LOCAL_PATCH, run_step

R = TypeVar("R")
Request = CancelOrder | AmendOrder | HoldOrder | ReleaseOrder | OpenReturn
_Run = tuple[ShipmentState, workflow.ChildWorkflowHandle[Any, ShipmentState]]
_GONE = (ShipmentStatus.LOST, ShipmentStatus.RETURNED)


def _all_done(runs: list[_Run]) -> bool:
    return all(child.done() for _, child in runs)


RELEASE_STOCK = "release stock"


class OrderFailed(Exception):
    """The order cannot go on; what was done so far must be undone."""

    def __init__(self, reason: FailureReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class OrderCancelled(Exception):
    """Somebody (or the order's own timeout) cancelled the whole order."""

    def __init__(self, request: CancelOrder, pending: "_Pending | None" = None) -> None:
        super().__init__(request.reason)
        self.request = request
        self.pending = pending


class _Refused(Exception):
    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.refusal = Refusal(rule, message)


@dataclass
class _Pending:
    action: Action
    request: Request
    done: bool = False
    refusal: Refusal | None = None


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


def _refuse(rule: Refusal | None) -> None:
    if rule is not None:
        raise ApplicationError(rule.message, type=rule.rule, non_retryable=True)


@workflow.defn
class OrderWorkflow:
    @workflow.init
    def __init__(self, order: PlaceOrder) -> None:
        self.order = order
        self.state = OrderState.received(order)
        self.undo = Compensations(f"order {order.order_id}")
        self.undo_reason = "order not fulfilled"
        self._payment = OrderPayment(self)
        self._returns = OrderReturns(self, self._payment)
        self._requests: list[_Pending] = []
        self._serving: _Pending | None = None
        self._ending = False
        self._reservation: Reservation | None = None
        self._restocked = False
        self._awaiting_stock = False
        self._shipment_runs: list[workflow.ChildWorkflowHandle[Any, ShipmentState]] = []
        self._returned_goods: ExchangeGoods | None = None

    @workflow.run
    async def run(self, order: PlaceOrder) -> OrderState:
        try:
            await self.call("record_order", order, type(None), summary="record order")
            await self._checkpoint()
            await self._source()
            await self._checkpoint()
            await self._pay()
            await self._checkpoint()
            await self.set_status(
                OrderStatus.CONFIRMED, "order.confirmed", "stock reserved and paid"
            )
            await self._await_returned_goods()
            await self._fulfil()
            if workflow.patched("return-window"):
                # Delivered: the customer has the goods, so a failure from
                # now on gives no money back; only returns do.
                self.undo.discard(REFUND)
                self.undo.discard(RELEASE_STOCK)
                await self._returns.window()
            await self.set_status(OrderStatus.COMPLETED, "order.completed", "done")
        except OrderCancelled as cancelled:
            await self._end_cancelled(cancelled.request, cancelled.pending)
        except (OrderFailed, ActivityError, ChildWorkflowError) as error:
            await self._end_failed(_as_order_failure(error))
        except asyncio.CancelledError:
            await self._end_cancelled_by_temporal()
            raise
        finally:
            await self._close_requests()
        return self.state

    # What people and systems can ask of the order.

    @workflow.query(name="state")
    def current_state(self) -> OrderState:
        return self.state

    @workflow.update
    async def cancel(self, request: CancelOrder) -> OrderState:
        """Cancel the order, or some units of some lines, and undo what was done."""
        return await self._submit(Action.CANCEL, request)

    @cancel.validator
    def _check_cancel(self, request: CancelOrder) -> None:
        _refuse(refusal(Action.CANCEL, self.state))
        if request.lines is not None:
            try:
                self._units_to_cancel(request.lines)
            except _Refused as refused:
                _refuse(refused.refusal)

    @workflow.update
    async def amend(self, request: AmendOrder) -> OrderState:
        """Change the address or the lines, until picking starts."""
        return await self._submit(Action.AMEND, request)

    @amend.validator
    def _check_amend(self, request: AmendOrder) -> None:
        _refuse(refusal(Action.AMEND, self.state))

    @workflow.update
    async def hold(self, request: HoldOrder) -> OrderState:
        """Stop the order before its next step until it is released."""
        return await self._submit(Action.HOLD, request)

    @hold.validator
    def _check_hold(self, request: HoldOrder) -> None:
        _refuse(refusal(Action.HOLD, self.state))

    @workflow.update
    async def release(self, request: ReleaseOrder) -> OrderState:
        """Let a held order go on where it stopped."""
        return await self._submit(Action.RELEASE, request)

    @release.validator
    def _check_release(self, request: ReleaseOrder) -> None:
        _refuse(refusal(Action.RELEASE, self.state))

    @workflow.update
    async def request_return(self, request: OpenReturn) -> ReturnState:
        """Open a return for delivered units, within the return window."""
        await self._submit(Action.RETURN, request)
        return self._returns.opened(request.return_id)

    @request_return.validator
    def _check_return(self, request: OpenReturn) -> None:
        _refuse(self._returns.refusal(request))

    @workflow.signal
    def return_progress(self, ret: ReturnState) -> None:
        """A return's child workflow reports each step it completes."""
        self._returns.progress(ret)

    @workflow.signal
    def exchange_goods(self, goods: ExchangeGoods) -> None:
        """A replacement order hears whether the returned goods came back."""
        self._returned_goods = self._returned_goods or goods

    @workflow.signal
    def shipment_progress(self, shipment: ShipmentState) -> None:
        """The shipment's child workflow reports each step it completes."""
        self.state.shipments = [
            shipment if known.shipment_id == shipment.shipment_id else known
            for known in self.state.shipments
        ]
        self.state.updated_at = workflow.now()

    @workflow.signal
    def payment_notification(self, notification: PaymentNotification) -> None:
        """The payment provider's webhook, about the order's payment link."""
        self._payment.notify(notification)

    @workflow.signal
    def restocked(self, restock: Restock) -> None:
        """Stock of some of the order's SKUs arrived: try to reserve again."""
        self._restocked = True

    # Steps, in the order the business runs them.

    async def _source(self) -> None:
        """Reserve every line in one warehouse, or wait by the channel's policy."""
        self.undo.add(RELEASE_STOCK, self._release_stock)
        try:
            self._reservation = await self._reserve()
            return
        except OrderFailed as failure:
            if (
                failure.reason != FailureReason.OUT_OF_STOCK
                or self.order.policy.out_of_stock == OutOfStockPolicy.REJECT
            ):
                self.undo.discard(RELEASE_STOCK)
                raise
        await self._await_stock()

    async def _await_stock(self) -> None:
        policy = self.order.policy
        backorder = policy.out_of_stock == OutOfStockPolicy.BACKORDER
        seconds = policy.backorder_seconds if backorder else policy.ask_customer_seconds
        until = workflow.now() + timedelta(seconds=seconds)
        waiting_for = (
            "stock (backordered)" if backorder else "the customer to amend or cancel"
        )
        self._awaiting_stock = True
        await self.set_status(
            OrderStatus.AWAITING_STOCK,
            "order.awaiting_stock",
            f"not in stock: waiting for {waiting_for} until "
            f"{until.isoformat(timespec='seconds')}",
        )
        # Stock counted in while this status was being recorded sent no signal
        # (the read model did not show the order waiting yet): look once more.
        self._restocked = True
        while self._reservation is None:
            woke = await self.wait_for(
                lambda: self._restocked or self._reservation is not None, until
            )
            if self._reservation is not None:
                break
            if not woke:
                raise OrderCancelled(
                    CancelOrder(
                        reason=CancelReason.OUT_OF_STOCK,
                        note=(
                            "backorder expired"
                            if backorder
                            else "no amendment or cancel before the deadline"
                        ),
                        actor="system",
                    )
                )
            self._restocked = False
            try:
                self._reservation = await self._reserve()
            except OrderFailed as failure:
                if failure.reason != FailureReason.OUT_OF_STOCK:
                    raise

    async def _reserve(self) -> Reservation:
        return await self.call(
            "reserve_stock",
            self._reserve_request(self.state.lines),
            Reservation,
            summary="reserve stock",
        )

    async def _release_stock(self) -> None:
        request = ReleaseStock(
            order_id=self.order.order_id,
            event_id=self.event_id(),
            at=workflow.now(),
            reason=self.undo_reason,
        )
        await self.call(
            "release_stock", request, StockReleased, summary="release stock"
        )

    async def _pay(self) -> None:
        try:
            await self._payment.take()
        except LinkExpired:
            raise OrderCancelled(
                CancelOrder(
                    reason=CancelReason.PAYMENT_EXPIRED,
                    note="the payment link expired unpaid",
                    actor="system",
                )
            ) from None

    async def _await_returned_goods(self) -> None:
        """A replacement order that ships on receipt waits for the goods of
        its return; if they never come back it is cancelled."""
        exchange = self.order.exchange
        if exchange is None or not exchange.wait_for_goods:
            return
        await self.note(
            "exchange.waiting",
            f"reserved; ships once the goods of return {exchange.rma} are back",
        )
        await self.wait_for(lambda: self._returned_goods is not None, None)
        goods = self._returned_goods
        assert goods is not None
        if not goods.received:
            raise OrderCancelled(
                CancelOrder(
                    reason=CancelReason.OTHER, note=goods.message, actor="system"
                )
            )
        await self.note("exchange.goods_back", goods.message)
        await self._checkpoint()

    async def _fulfil(self) -> None:
        if workflow.patched("split-shipments"):
            await self._fulfil_split()
        else:
            await self._fulfil_single()

    async def _fulfil_split(self) -> None:
        """Ship what each warehouse holds as its own parcel, charged as it leaves;
        done when every parcel is delivered."""
        assert self._reservation is not None
        allocations = self._reservation.shipments
        if workflow.patched(LOCAL_PATCH):
            # In fulfilment before any parcel's first news, so the timeline
            # reads in order.
            shipments = [self._new_shipment(a.warehouse, a.lines) for a in allocations]
            await self._in_fulfilment(shipments)
            runs = [(s, await self._start_shipment(s)) for s in shipments]
        else:
            runs = await self._dispatch(allocations)
            await self._in_fulfilment([shipment for shipment, _ in runs])
        charged: set[str] = set()
        resourced: set[str] = set()
        while True:
            await self.wait_for(partial(self._news, runs, charged, resourced), None)
            for shipment, _ in list(runs):
                current = self._shipment(shipment.shipment_id)
                if current.short and shipment.shipment_id not in resourced:
                    resourced.add(shipment.shipment_id)
                    if not current.lines:  # nothing found: this parcel never leaves
                        runs = [run for run in runs if run[0] is not shipment]
                    runs += await self._resource(current)
            for shipment, _ in runs:
                current = self._shipment(shipment.shipment_id)
                if current.has_left and shipment.shipment_id not in charged:
                    charged.add(shipment.shipment_id)
                    await self._charge(current, last=len(charged) == len(runs))
            if len(charged) == len(runs):
                break
            stopped = {
                s.shipment_id
                for s, child in runs
                if child.done() and not self._shipment(s.shipment_id).has_left
            }
            if stopped and all(s.shipment_id in charged | stopped for s, _ in runs):
                # Stopped for a cancel: ship what the order still holds anew.
                for shipment, child in runs:
                    if shipment.shipment_id in stopped:
                        self.shipment_progress(await child)
                held = await self.call(
                    "held_stock",
                    OrderRef(order_id=self.order.order_id),
                    StockHeld,
                    summary="held stock",
                )
                runs = [r for r in runs if r[0].shipment_id in charged]
                runs += await self._dispatch(held.allocations)
        # Requests still get their answer while the parcels travel.
        replaced: set[str] = set()
        while True:
            await self.wait_for(partial(_all_done, runs), None)
            for _, child in runs:
                self.shipment_progress(await child)
            gone = [
                self._shipment(s.shipment_id)
                for s, _ in runs
                if self._shipment(s.shipment_id).status in _GONE
                and s.shipment_id not in replaced
            ]
            if not gone:
                break
            for shipment in gone:
                replaced.add(shipment.shipment_id)
                runs += await self._replace_parcel(shipment)
        await self._payment.on_delivered()
        await self.set_status(
            OrderStatus.DELIVERED, "order.delivered", "every shipment delivered"
        )

    async def _replace_parcel(self, shipment: ShipmentState) -> list[_Run]:
        """A parcel lost or sent back: ship its goods again, or refund them,
        as the channel's policy says (refund when no warehouse has them)."""
        goods = [
            StockLine(line=line.line, sku=line.sku, quantity=line.quantity)
            for line in shipment.lines
        ]
        if self.order.policy.lost_parcel == LostParcelPolicy.RESHIP:
            try:
                again = await self.call(
                    "reserve_more",
                    self._reserve_request_for(goods),
                    Reservation,
                    summary="reserve a replacement parcel",
                )
            except OrderFailed as failure:
                if failure.reason != FailureReason.OUT_OF_STOCK:
                    raise
            else:
                await self.note(
                    "order.parcel_replaced",
                    f"shipment {shipment.number} is {shipment.status}: its goods "
                    "ship again, free of charge",
                )
                return await self._dispatch(again.shipments)
        await self._refund_parcel(shipment)
        return []

    async def _refund_parcel(self, shipment: ShipmentState) -> None:
        prices = {line.line: line.unit_price_minor for line in self.state.lines}
        amount = sum(prices[line.line] * line.quantity for line in shipment.lines)
        units = {line.line: line.quantity for line in shipment.lines}
        lines = [
            line.model_copy(
                update={
                    "quantity": line.quantity - units.get(line.line, 0),
                    "cancelled_quantity": line.cancelled_quantity
                    + units.get(line.line, 0),
                    "total_minor": line.unit_price_minor
                    * (line.quantity - units.get(line.line, 0)),
                }
            )
            for line in self.state.lines
        ]
        reason = f"shipment {shipment.number} {shipment.status}"
        await self._payment.refund_captured(amount, reason)
        await self._change(
            lines,
            "order.parcel_refunded",
            f"{reason}: its goods are refunded",
            "system",
            {"shipment": shipment.number, "units": units},
        )

    async def _in_fulfilment(self, shipments: list[ShipmentState]) -> None:
        await self.set_status(
            OrderStatus.IN_FULFILMENT,
            "order.in_fulfilment",
            "; ".join(
                f"shipment {shipment.number} goes out from {shipment.warehouse}"
                for shipment in shipments
            ),
        )

    async def _dispatch(self, allocations: list[Allocation]) -> list[_Run]:
        shipments = [self._new_shipment(a.warehouse, a.lines) for a in allocations]
        return [
            (shipment, await self._start_shipment(shipment)) for shipment in shipments
        ]

    def _news(self, runs: list[_Run], charged: set[str], resourced: set[str]) -> bool:
        """A parcel came up short or left (and is not dealt with yet), or none
        is still in the warehouse."""
        for shipment, _ in runs:
            current = self._shipment(shipment.shipment_id)
            if current.short and shipment.shipment_id not in resourced:
                return True
            if current.has_left and shipment.shipment_id not in charged:
                return True
        return all(self._left_or_ended(s, child) for s, child in runs)

    async def _resource(self, shipment: ShipmentState) -> list[_Run]:
        """Units the pickers did not find: ship them from another warehouse, or
        cancel them, with the money for them given back."""
        missing = [
            StockLine(line=line.line, sku=line.sku, quantity=line.quantity)
            for line in shipment.short
        ]
        request = self._reserve_request_for(missing).model_copy(
            update={"exclude": [shipment.warehouse]}
        )
        try:
            more = await self.call(
                "reserve_more", request, Reservation, summary="source the missing units"
            )
        except OrderFailed as failure:
            if failure.reason != FailureReason.OUT_OF_STOCK:
                raise
            await self._drop_missing(shipment, missing)
            return []
        return await self._dispatch(more.shipments)

    async def _drop_missing(
        self, shipment: ShipmentState, missing: list[StockLine]
    ) -> None:
        cancel = CancelOrder(
            reason=CancelReason.OUT_OF_STOCK,
            note=f"not found in {shipment.warehouse}, nor anywhere else",
            actor="system",
        )
        await self._cancel_lines(
            cancel, {line.line: line.quantity for line in missing}, release=False
        )
        if not any(line.quantity for line in self.state.lines):
            raise OrderCancelled(cancel)

    async def _charge(self, shipment: ShipmentState, last: bool) -> None:
        """Capture the parcel's goods, with the delivery charge on the first."""
        state = self.state
        prices = {line.line: line.unit_price_minor for line in state.lines}
        goods = sum(prices[line.line] * line.quantity for line in shipment.lines)
        first = state.captured_minor == 0
        amount = (
            state.total_minor - state.captured_minor
            if last
            else goods + (state.shipping_minor if first else 0)
        )
        await self._payment.on_shipment_left(shipment.number, amount, last)

    async def _fulfil_single(self) -> None:
        """Ship the order; capture when it leaves; done when it is delivered."""
        shipment = self._plan_shipment()
        await self.set_status(
            OrderStatus.IN_FULFILMENT,
            "order.in_fulfilment",
            f"shipment {shipment.number} goes out from {shipment.warehouse}",
        )
        child = await self._start_shipment(shipment)
        while True:
            await self.wait_for(partial(self._left_or_ended, shipment, child), None)
            if self._shipment(shipment.shipment_id).has_left:
                break
            # Stopped for a partial cancel: ship what is left in a new parcel.
            self.shipment_progress(await child)
            shipment = self._plan_shipment()
            child = await self._start_shipment(shipment)
        await self._payment.on_shipped()
        # Requests still get their answer while the parcel travels.
        await self.wait_for(child.done, None)
        self.shipment_progress(await child)
        await self._payment.on_delivered()
        await self.set_status(
            OrderStatus.DELIVERED, "order.delivered", "every shipment delivered"
        )

    # Carrying out requests.

    async def _submit(self, action: Action, request: Request) -> OrderState:
        pending = _Pending(action, request)
        self._requests.append(pending)
        await workflow.wait_condition(lambda: pending.done)
        _refuse(pending.refusal)
        return self.state

    async def _serve(self) -> None:
        while self._requests:
            pending = self._requests.pop(0)
            self._serving = pending
            pending.refusal = refusal(pending.action, self.state)
            if pending.refusal is None:
                try:
                    await self._carry_out(pending)
                except _Refused as refused:
                    pending.refusal = refused.refusal
                except OrderCancelled:
                    # Answered once the cancellation has run (_end_cancelled).
                    raise
            pending.done = True
            self._serving = None

    async def _carry_out(self, pending: _Pending) -> None:
        request = pending.request
        if isinstance(request, CancelOrder):
            await self._cancel(request, pending)
        elif isinstance(request, AmendOrder):
            await self._amend(request)
        elif isinstance(request, HoldOrder):
            await self._hold(request)
        elif isinstance(request, OpenReturn):
            refused = await self._returns.open(request)
            if refused is not None:
                raise _Refused(refused.rule, refused.message)
        else:
            await self._release(request)

    async def _close_requests(self) -> None:
        # A request the process was carrying out when the order ended (say, a
        # step failed for good) is answered like the ones still queued.
        if self._serving is not None and not self._serving.done:
            self._requests.insert(0, self._serving)
        for pending in self._requests:
            pending.refusal = Refusal(
                "order-closed", f"the order is {self.state.status}"
            )
            pending.done = True
        self._requests.clear()
        await workflow.wait_condition(workflow.all_handlers_finished)

    async def _checkpoint(self) -> None:
        """Between two steps: carry out requests, and stay here while on hold."""
        await self._serve()
        while self.state.status == OrderStatus.ON_HOLD:
            await workflow.wait_condition(lambda: bool(self._requests))
            await self._serve()

    async def wait_for(self, ready: Callable[[], bool], until: datetime | None) -> bool:
        """Wait until `ready()` or `until`, carrying out requests meanwhile."""
        while True:
            await self._serve()
            if ready():
                return True
            remaining = None if until is None else until - workflow.now()
            if remaining is not None and remaining <= timedelta(0):
                return False
            try:
                await workflow.wait_condition(
                    lambda: ready() or bool(self._requests), timeout=remaining
                )
            except TimeoutError:
                return ready()

    async def _cancel(self, request: CancelOrder, pending: _Pending) -> None:
        units = self._units_to_cancel(request.lines) if request.lines else None
        everything = units is None or all(
            units.get(line.line, 0) == line.quantity for line in self.state.lines
        )
        if not await self._stop_shipments():
            raise _Refused("shipment-already-left", "a shipment has left the warehouse")
        if everything:
            raise OrderCancelled(request, pending)
        assert units is not None
        await self._cancel_lines(request, units)

    async def _cancel_lines(
        self, request: CancelOrder, units: dict[int, int], *, release: bool = True
    ) -> None:
        reason = f"{request.reason}" + (f": {request.note}" if request.note else "")
        if self._reservation is not None and release:
            await self.call(
                "release_lines",
                ReleaseLines(
                    order_id=self.order.order_id,
                    lines=[
                        StockLine(
                            line=line.line, sku=line.sku, quantity=units[line.line]
                        )
                        for line in self.state.lines
                        if units.get(line.line)
                    ],
                    event_id=self.event_id(),
                    at=workflow.now(),
                    reason=f"lines cancelled ({reason})",
                ),
                StockReleased,
                summary="release cancelled lines",
            )
        lines = [
            line.model_copy(
                update={
                    "quantity": line.quantity - units.get(line.line, 0),
                    "cancelled_quantity": line.cancelled_quantity
                    + units.get(line.line, 0),
                    "total_minor": line.unit_price_minor
                    * (line.quantity - units.get(line.line, 0)),
                }
            )
            for line in self.state.lines
        ]
        total = sum(line.total_minor for line in lines) + self.state.shipping_minor
        await self._payment.commit(None, total, f"lines cancelled ({reason})")
        cancelled = sum(units.values())
        await self._change(
            lines,
            "order.lines_cancelled",
            f"{cancelled} units cancelled by {request.actor}: {reason}",
            request.actor,
            {"reason": request.reason, "note": request.note, "units": units},
        )
        if self._reservation is not None:
            self._reservation = self._reservation.model_copy(
                update={"lines": self._stock_lines()}
            )
        elif self._awaiting_stock:
            # Fewer units may fit in a warehouse now: try again.
            self._restocked = True

    async def _amend(self, request: AmendOrder) -> None:
        if self._active_shipments():
            raise _Refused("picking-started", "the warehouse has started picking")
        lines = self.state.lines
        changes = []
        if request.lines is not None:
            lines = self._priced(request.lines)
            changes.append("lines")
            await self._apply_lines(lines)
        if request.shipping_address is not None:
            self.state.shipping_address = request.shipping_address
            changes.append("shipping address")
        await self._change(
            lines,
            "order.amended",
            f"{' and '.join(changes)} amended by {request.actor}",
            request.actor,
            {"changed": changes},
        )

    async def _apply_lines(self, lines: list[OrderLine]) -> None:
        """Re-reserve and re-authorize for new lines; all of it or nothing."""
        total = sum(line.total_minor for line in lines) + self.state.shipping_minor
        refused = self._payment.refuses_total(total)
        if refused:
            raise _Refused("payment-link-paid", refused)
        try:
            prepared = await self._payment.prepare_increase(total)
        except PaymentRefused as error:
            raise _Refused("payment-declined", str(error)) from None
        if self._reservation is not None or self._awaiting_stock:
            try:
                self._reservation = await self.call(
                    "replace_reservation",
                    self._reserve_request(lines),
                    Reservation,
                    summary="re-reserve stock",
                )
            except OrderFailed as failure:
                await self._payment.abandon(prepared)
                raise _Refused("out-of-stock", failure.detail) from None
        await self._payment.commit(prepared, total, "order amended")

    async def _hold(self, request: HoldOrder) -> None:
        live = self._live_shipment_runs()
        for _, child in live:
            await child.signal(ShipmentWorkflow.hold)
        # Wait for each shipment to take the hold, or to say it is leaving.
        await workflow.wait_condition(
            lambda: all(
                child.done()
                or self._shipment(shipment.shipment_id).held
                or self._shipment(shipment.shipment_id).has_left
                for shipment, child in live
            )
        )
        if self.state.shipped:
            for _, child in self._live_shipment_runs():
                await child.signal(ShipmentWorkflow.release)
            raise _Refused("shipment-already-left", "a shipment has left the warehouse")
        self.state.hold = Hold(
            reason=request.reason,
            actor=request.actor,
            at=workflow.now(),
            resume_status=self.state.status,
        )
        await self.set_status(
            OrderStatus.ON_HOLD,
            "order.held",
            f"held by {request.actor}: {request.reason}",
            actor=request.actor,
            hold_reason=request.reason,
        )

    async def _release(self, request: ReleaseOrder) -> None:
        hold = self.state.hold
        assert hold is not None
        self.state.hold = None
        for _, child in self._live_shipment_runs():
            await child.signal(ShipmentWorkflow.release)
        await self.set_status(
            hold.resume_status,
            "order.released",
            f"released by {request.actor}, back to {hold.resume_status}",
            actor=request.actor,
            hold_cleared=True,
        )

    # How the order ends.

    async def _end_cancelled(
        self, request: CancelOrder, pending: _Pending | None
    ) -> None:
        self._ending = True
        self.state.cancellation = Cancellation(
            reason=request.reason,
            note=request.note,
            actor=request.actor,
            at=workflow.now(),
        )
        self.state.hold = None
        self.undo_reason = f"order cancelled ({request.reason})"
        await self._undo_all()
        note = f": {request.note}" if request.note else ""
        await self.set_status(
            OrderStatus.CANCELLED,
            "order.cancelled",
            f"cancelled by {request.actor}, {request.reason}{note}",
            actor=request.actor,
            cancel_reason=request.reason,
            cancel_note=request.note,
        )
        if pending is not None:
            pending.done = True

    async def _undo_all(self) -> None:
        for step in await self.undo.run():
            await self.note(
                "order.compensation_failed",
                f"could not {step}: it needs a person to finish it",
            )

    async def _end_failed(self, failure: OrderFailed) -> None:
        self._ending = True
        self.state.failure_reason = failure.reason
        self.state.failure_detail = failure.detail
        self.undo_reason = failure.reason
        await self._undo_all()
        workflow.logger.info(
            "order %s failed: %s (%s)",
            self.order.order_id,
            failure.reason,
            failure.detail,
        )
        await self.set_status(
            OrderStatus.FAILED,
            "order.failed",
            f"order failed: {failure.reason}: {failure.detail}",
            failure_reason=failure.reason,
            failure_detail=failure.detail,
        )

    async def _end_cancelled_by_temporal(self) -> None:
        # Cancelled from outside the OMS (Temporal UI or CLI): stop the
        # shipments, undo what was done, record it, and end as cancelled.
        self._ending = True
        self.undo_reason = "order cancelled through Temporal"
        for run in self._shipment_runs:
            if not run.done():
                run.cancel()
                try:
                    await run
                except (ChildWorkflowError, asyncio.CancelledError):
                    pass
        await self._undo_all()
        await self.set_status(
            OrderStatus.CANCELLED,
            "order.cancelled",
            "order cancelled through Temporal, without an OMS reason",
        )

    # Shipments.

    def _plan_shipment(self) -> ShipmentState:
        assert self._reservation is not None
        return self._new_shipment(self._reservation.warehouse, self._stock_lines())

    def _new_shipment(self, warehouse: str, lines: list[StockLine]) -> ShipmentState:
        shipment = ShipmentState(
            shipment_id=str(workflow.uuid4()),
            number=f"{self.order.number}-{len(self.state.shipments) + 1}",
            warehouse=warehouse,
            lines=[
                ShipmentLine(line=line.line, sku=line.sku, quantity=line.quantity)
                for line in lines
            ],
        )
        self.state.shipments.append(shipment)
        return shipment

    async def _start_shipment(
        self, shipment: ShipmentState
    ) -> workflow.ChildWorkflowHandle[Any, ShipmentState]:
        address = self.state.shipping_address
        # Every parcel goes with the carrier and service the customer chose.
        delivery = self.order.delivery
        child = await workflow.start_child_workflow(
            ShipmentWorkflow.run,
            FulfilShipment(
                order_id=self.order.order_id,
                order_number=self.order.number,
                shipment=shipment,
                country=address.country,
                postal_code=address.postal_code,
                late_after_seconds=self.order.policy.late_after_seconds,
                carrier=None if delivery is None else delivery.carrier,
                service_level=(
                    ServiceLevel.STANDARD
                    if delivery is None
                    else delivery.service_level
                ),
            ),
            id=f"{workflow.info().workflow_id}-shipment-{shipment.number}",
            static_summary=f"shipment {shipment.number} from {shipment.warehouse}",
        )
        self._shipment_runs.append(child)
        if self.state.status == OrderStatus.ON_HOLD:
            await child.signal(ShipmentWorkflow.hold)
        return child

    def _live_shipment_runs(
        self,
    ) -> list[tuple[ShipmentState, workflow.ChildWorkflowHandle[Any, ShipmentState]]]:
        return [
            (shipment, run)
            for shipment, run in zip(
                self.state.shipments, self._shipment_runs, strict=True
            )
            if not run.done()
        ]

    def _active_shipments(self) -> bool:
        return bool(self._live_shipment_runs())

    async def _stop_shipments(self) -> bool:
        """Stop every shipment that has not left; False if one has left already."""
        live = self._live_shipment_runs()
        for _, child in live:
            await child.signal(ShipmentWorkflow.stop)
        await workflow.wait_condition(
            lambda: all(
                child.done() or self._shipment(shipment.shipment_id).has_left
                for shipment, child in live
            )
        )
        return not self.state.shipped

    def _left_or_ended(
        self,
        shipment: ShipmentState,
        child: workflow.ChildWorkflowHandle[Any, ShipmentState],
    ) -> bool:
        return self._shipment(shipment.shipment_id).has_left or child.done()

    def _shipment(self, shipment_id: str) -> ShipmentState:
        return next(s for s in self.state.shipments if s.shipment_id == shipment_id)

    # Plumbing.

    def _units_to_cancel(self, lines: list[LineQuantity]) -> dict[int, int]:
        """Units per line number; refuses unknown lines and too many units."""
        open_units = {line.line: line.quantity for line in self.state.lines}
        units: dict[int, int] = {}
        for item in lines:
            if item.line not in open_units:
                raise _Refused("invalid-lines", f"the order has no line {item.line}")
            units[item.line] = units.get(item.line, 0) + item.quantity
            if units[item.line] > open_units[item.line]:
                raise _Refused(
                    "invalid-lines",
                    f"line {item.line} has {open_units[item.line]} units left",
                )
        return units

    def _priced(self, wanted: list[AmendLine]) -> list[OrderLine]:
        ordered = {line.sku: line for line in self.state.lines}
        next_line = max((line.line for line in self.state.lines), default=0) + 1
        lines = []
        for item in wanted:
            known = ordered.get(item.sku)
            price = item.unit_price_minor
            if price is None:
                price = (
                    known.unit_price_minor
                    if known is not None
                    else item.catalogue_price_minor
                )
            if price is None:
                raise _Refused("no-price", f"{item.sku} has no price")
            if known is None:
                number, next_line = next_line, next_line + 1
            else:
                number = known.line
            lines.append(
                OrderLine(
                    line=number,
                    sku=item.sku,
                    name=item.name,
                    quantity=item.quantity,
                    unit_price_minor=price,
                    total_minor=price * item.quantity,
                    cancelled_quantity=known.cancelled_quantity if known else 0,
                )
            )
        return sorted(lines, key=lambda line: line.line)

    def _reserve_request(self, lines: list[OrderLine]) -> ReserveStock:
        return self._reserve_request_for(self._stock_lines(lines))

    def _reserve_request_for(self, lines: list[StockLine]) -> ReserveStock:
        address = self.state.shipping_address
        policy = self.order.policy
        return ReserveStock(
            order_id=self.order.order_id,
            lines=lines,
            event_id=self.event_id(),
            at=workflow.now(),
            destination=Destination(country=address.country, region=address.region),
            max_shipments=policy.max_shipments,
            warehouses=policy.warehouses,
        )

    def _stock_lines(self, lines: list[OrderLine] | None = None) -> list[StockLine]:
        return [
            StockLine(line=line.line, sku=line.sku, quantity=line.quantity)
            for line in (self.state.lines if lines is None else lines)
            if line.quantity > 0
        ]

    async def _change(
        self,
        lines: list[OrderLine],
        event_type: str,
        message: str,
        actor: str,
        data: dict[str, Any],
    ) -> None:
        state = self.state
        state.lines = lines
        state.subtotal_minor = sum(line.total_minor for line in lines)
        state.total_minor = state.subtotal_minor + state.shipping_minor
        state.updated_at = workflow.now()
        await self.call(
            "record_order_change",
            OrderChanged(
                order_id=state.order_id,
                lines=lines,
                subtotal_minor=state.subtotal_minor,
                shipping_minor=state.shipping_minor,
                total_minor=state.total_minor,
                shipping_address=state.shipping_address,
                event_id=self.event_id(),
                at=workflow.now(),
                type=event_type,
                message=message,
                actor=actor,
                data=data,
            ),
            type(None),
            summary=event_type,
        )

    async def set_status(
        self,
        status: OrderStatus,
        event_type: str,
        message: str,
        *,
        actor: str = "system",
        **fields: Any,
    ) -> None:
        """Move the order to `status` and record it on the timeline."""
        if not transition_allowed(ORDER_TRANSITIONS, self.state.status, status):
            workflow.logger.error(
                "order %s: %s -> %s is not an allowed transition",
                self.order.order_id,
                self.state.status,
                status,
            )
        if status == OrderStatus.DELIVERED:
            # Returns are taken from the moment the order shows delivered.
            self._returns.open_window()
        self.state.status = status
        self.state.updated_at = workflow.now()
        event = OrderEventIn(
            order_id=self.order.order_id,
            event_id=self.event_id(),
            at=workflow.now(),
            type=event_type,
            message=message,
            actor=actor,
            status=status,
            payment_status=self.state.payment_status,
            **fields,
        )
        await self.call("record_order_event", event, type(None), summary=event_type)
        workflow.logger.info("order %s is %s", self.order.order_id, status)

    async def note(self, event_type: str, message: str) -> None:
        """Add to the timeline without changing the status."""
        await self.call(
            "record_order_event",
            OrderEventIn(
                order_id=self.order.order_id,
                event_id=self.event_id(),
                at=workflow.now(),
                type=event_type,
                message=message,
            ),
            type(None),
            summary=event_type,
        )

    async def call(
        self, activity: str, arg: BaseModel, result_type: type[R], *, summary: str
    ) -> R:
        try:
            result = await run_step(activity, arg, result_type, summary=summary)
        except ActivityError as error:
            failure = _business_failure(error)
            if failure is None:
                raise
            raise failure from error
        # A cancel from Temporal that arrived while the step ran waited for it
        # to finish (so what undoes it sees all it did); act on it now.
        if workflow.cancellation_reason() is not None and not self._ending:
            raise asyncio.CancelledError
        return result

    def event_id(self) -> str:
        return str(workflow.uuid4())
