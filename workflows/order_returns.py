"""The order's side of returns: the return window, opening returns, the money
each one moves and the replacement orders of exchanges.

Every return is a child `ReturnWorkflow`; the order settles each return's
money itself, one at a time, so the refunds of all returns together never
exceed what was captured. A replacement order is an order of its own (a child
that outlives this one), paid with the returned goods: it is placed once the
return is authorized and told when the goods are back, or that they never
will be.
"""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.orders import (
        OrderLine,
        OrderState,
        OrderStatus,
        OutOfStockPolicy,
        PaymentDetails,
        PlaceOrder,
        workflow_id_for,
    )
    from models.returns import (
        EXCHANGE,
        Exchange,
        ExchangeGoods,
        ExchangeOf,
        ExchangePlaced,
        ExchangeShipping,
        OpenReturn,
        Owed,
        RefundDelivery,
        ReturnEventIn,
        ReturnLedger,
        ReturnLine,
        ReturnState,
        ReturnStatus,
        Settlement,
        StartReturn,
    )
    from models.rules import Refusal, return_refusal
    from models.shipping import ShipmentStatus
    from workflows.returns import ReturnWorkflow

R = TypeVar("R")


class Payments(Protocol):
    def refund_target(self) -> str | None: ...

    def refunded(self, amount_minor: int) -> None: ...

    def can_charge(self) -> bool: ...

    async def charge(self, amount_minor: int, key: str, purpose: str) -> None: ...


class Process(Protocol):
    """What the returns need from the order workflow."""

    order: PlaceOrder
    state: OrderState

    async def call(
        self, activity: str, arg: BaseModel, result_type: type[R], *, summary: str
    ) -> R: ...

    async def wait_for(
        self, ready: Callable[[], bool], until: datetime | None
    ) -> bool: ...

    async def note(self, event_type: str, message: str) -> None: ...

    def event_id(self) -> str: ...


class _Replacement:
    """A placed replacement order and whether it has heard about the goods."""

    def __init__(
        self, order: PlaceOrder, handle: workflow.ChildWorkflowHandle[Any, Any]
    ):
        self.order = order
        self.handle = handle
        self.told = False

    def went_ahead(self) -> bool:
        """False if the replacement order ended without shipping (it failed,
        for example when its stock was gone)."""
        if not self.handle.done():
            return True
        try:
            ended = self.handle.result()
        except Exception:
            return False
        return isinstance(ended, OrderState) and ended.status not in (
            OrderStatus.CANCELLED,
            OrderStatus.FAILED,
        )

    @property
    def waits(self) -> bool:
        return self.order.exchange is not None and self.order.exchange.wait_for_goods

    async def tell(self, received: bool, message: str) -> None:
        if self.told or self.handle.done():
            return
        self.told = True
        try:
            await self.handle.signal(
                "exchange_goods", ExchangeGoods(received=received, message=message)
            )
        except Exception:
            # It ended meanwhile: there is nobody left to tell.
            workflow.logger.warning(
                "order %s: replacement %s ended before hearing about its goods",
                self.order.exchange.order_id if self.order.exchange else "?",
                self.order.number,
            )


class OrderReturns:
    def __init__(self, process: Process, payments: Payments) -> None:
        self._p = process
        self._payments = payments
        self._runs: dict[str, workflow.ChildWorkflowHandle[Any, ReturnState]] = {}
        self._replacements: dict[str, _Replacement] = {}
        self._settled: set[str] = set()
        self._closed: set[str] = set()
        self._ledger = ReturnLedger()
        self._delivery_refunded = False

    def refusal(self, request: OpenReturn) -> Refusal | None:
        """Why the return cannot be opened now (None for a repeated request)."""
        if self._find(request.return_id) is not None:
            return None
        refused = return_refusal(self._p.state, request.lines, workflow.now())
        if refused is not None or not request.replacement:
            return refused
        prices = {line.line: line.unit_price_minor for line in self._p.state.lines}
        returned = sum(prices[item.line] * item.quantity for item in request.lines)
        wanted = sum(
            line.unit_price_minor * line.quantity for line in request.replacement
        )
        if wanted > returned and not self._payments.can_charge():
            return Refusal(
                "exchange-needs-card",
                "the replacement costs more than the returned goods; only an "
                "order paid by card can be charged the difference",
            )
        return None

    def opened(self, return_id: str) -> ReturnState:
        found = self._find(return_id)
        assert found is not None
        return found

    def progress(self, reported: ReturnState) -> None:
        """A return's child workflow reports each step it completes."""
        state = self._p.state
        state.returns = [
            reported if known.return_id == reported.return_id else known
            for known in state.returns
        ]
        state.updated_at = workflow.now()
        if (
            reported.status == ReturnStatus.CLOSED
            and reported.return_id not in self._closed
        ):
            self._closed.add(reported.return_id)
            self._ledger.closed(reported.return_id)
            if reported.refund_minor:
                self._payments.refunded(reported.refund_minor)

    async def open(self, request: OpenReturn) -> Refusal | None:
        """Open the return (once per id) and start its workflow."""
        if self._find(request.return_id) is not None:
            return None
        refused = self.refusal(request)
        if refused is not None:
            return refused
        state, order = self._p.state, self._p.order
        policy = order.policy
        by_line = {line.line: line for line in state.lines}
        number = len(state.returns) + 1
        opened = ReturnState(
            return_id=request.return_id,
            number=number,
            rma=f"RMA-{order.number}-{number}",
            order_id=order.order_id,
            order_number=order.number,
            channel=order.channel,
            currency=order.currency,
            status=(
                ReturnStatus.PENDING_REVIEW
                if request.reason in policy.return_review_reasons
                else ReturnStatus.AWAITING_GOODS
            ),
            reason=request.reason,
            note=request.note,
            lines=[
                ReturnLine(
                    line=item.line,
                    sku=by_line[item.line].sku,
                    name=by_line[item.line].name,
                    quantity=item.quantity,
                    unit_price_minor=by_line[item.line].unit_price_minor,
                )
                for item in request.lines
            ],
            warehouse=self._shipped_from(request.lines[0].line),
            exchange=(
                None if not request.replacement else Exchange(lines=request.replacement)
            ),
            opened_by=request.actor,
            opened_at=workflow.now(),
        )
        await self._p.call(
            "record_return",
            ReturnEventIn(
                state=opened,
                event_id=self._p.event_id(),
                at=workflow.now(),
                type="return.opened",
                message=_opened_message(opened),
                actor=request.actor,
            ),
            type(None),
            summary="record return",
        )
        state.returns.append(opened)
        address = state.shipping_address
        self._runs[opened.return_id] = await workflow.start_child_workflow(
            ReturnWorkflow.run,
            StartReturn(
                state=opened,
                country=address.country,
                postal_code=address.postal_code,
                review_seconds=policy.return_goods_seconds,
                goods_seconds=policy.return_goods_seconds,
            ),
            id=opened.workflow_id,
            static_summary=f"return {opened.rma}",
        )
        return None

    def open_window(self) -> None:
        """The last parcel was delivered: returns are taken from now on."""
        if self._p.state.return_window_ends is None:
            self._p.state.return_window_ends = workflow.now() + timedelta(
                seconds=self._p.order.policy.return_window_seconds
            )

    async def window(self) -> None:
        """Returns are taken until the window closes; then wait for the open
        ones to end. Meanwhile place replacements, settle inspected returns
        and tell replacements whose goods will never come."""
        self.open_window()
        ends = self._p.state.return_window_ends
        assert ends is not None
        while True:
            until = ends if workflow.now() < ends else None
            await self._p.wait_for(self._news, until)
            while (authorized := self._unplaced()) is not None:
                await self._place(authorized)
            while (inspected := self._unsettled()) is not None:
                await self._settle(inspected)
            while (lapsed := self._unreturned()) is not None:
                await self._goods_never_came(lapsed)
            if workflow.now() >= ends and not self._open():
                break
        for child in self._runs.values():
            self.progress(await child)

    def _news(self) -> bool:
        return (
            self._unplaced() is not None
            or self._unsettled() is not None
            or self._unreturned() is not None
            or (
                workflow.now() >= (self._p.state.return_window_ends or workflow.now())
                and not self._open()
            )
        )

    def _open(self) -> bool:
        return any(
            ret.open or not self._runs[ret.return_id].done()
            for ret in self._p.state.returns
            if ret.return_id in self._runs
        )

    def _unplaced(self) -> ReturnState | None:
        """An exchange whose return is authorized and has no replacement yet."""
        return next(
            (
                ret
                for ret in self._p.state.returns
                if ret.exchange is not None
                and ret.status in (ReturnStatus.AWAITING_GOODS, ReturnStatus.RECEIVED)
                and ret.return_id not in self._replacements
            ),
            None,
        )

    def _unsettled(self) -> ReturnState | None:
        return next(
            (
                ret
                for ret in self._p.state.returns
                if ret.status == ReturnStatus.RECEIVED
                and ret.return_id not in self._settled
            ),
            None,
        )

    def _unreturned(self) -> ReturnState | None:
        """An expired return whose replacement has not heard of it yet."""
        return next(
            (
                ret
                for ret in self._p.state.returns
                if ret.status == ReturnStatus.EXPIRED
                and ret.return_id in self._replacements
                and not self._replacements[ret.return_id].told
            ),
            None,
        )

    async def _place(self, ret: ReturnState) -> None:
        """Place the replacement order: reserved at once, paid with the goods."""
        assert ret.exchange is not None
        order, state = self._p.order, self._p.state
        lines = [
            OrderLine(
                line=number,
                sku=wanted.sku,
                name=wanted.name,
                quantity=wanted.quantity,
                unit_price_minor=wanted.unit_price_minor,
                total_minor=wanted.unit_price_minor * wanted.quantity,
            )
            for number, wanted in enumerate(ret.exchange.lines, start=1)
        ]
        value = sum(line.total_minor for line in lines)
        waits = order.policy.exchange_ships == ExchangeShipping.ON_RECEIPT
        draft = PlaceOrder(
            order_id=str(workflow.uuid4()),
            number="",
            channel=order.channel,
            external_id=f"exchange:{ret.return_id}",
            customer=state.customer,
            shipping_address=state.shipping_address,
            currency=order.currency,
            lines=lines,
            subtotal_minor=value,
            shipping_minor=0,
            total_minor=value,
            payment=PaymentDetails(method=EXCHANGE),
            placed_at=workflow.now(),
            # A replacement never waits for stock: without it, it fails at
            # once and the returned goods are refunded instead.
            policy=order.policy.model_copy(
                update={"out_of_stock": OutOfStockPolicy.REJECT}
            ),
            created_by=ret.opened_by,
            exchange=ExchangeOf(
                order_id=order.order_id,
                order_number=order.number,
                return_id=ret.return_id,
                rma=ret.rma,
                wait_for_goods=waits,
            ),
        )
        placed = await self._p.call(
            "place_exchange", draft, PlaceOrder, summary="place replacement order"
        )
        handle = await workflow.start_child_workflow(
            "OrderWorkflow",
            placed,
            result_type=OrderState,
            id=workflow_id_for(placed.order_id),
            parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            static_summary=f"order {placed.number}: exchange for {ret.rma}",
        )
        self._replacements[ret.return_id] = _Replacement(placed, handle)
        await self._p.note(
            "exchange.placed",
            f"replacement order {placed.number} placed for return {ret.rma}, "
            + ("shipping once the goods are back" if waits else "shipping at once"),
        )
        await self._runs[ret.return_id].signal(
            ReturnWorkflow.exchange_placed,
            ExchangePlaced(order_id=placed.order_id, order_number=placed.number),
        )

    async def _settle(self, ret: ReturnState) -> None:
        """The money of an inspected return: its accepted units, less what a
        replacement is worth (charged if it is worth more), the delivery
        charge when everything delivered has come back, never more than is
        left of what was captured."""
        state = self._p.state
        self._settled.add(ret.return_id)
        replacement = self._replacements.get(ret.return_id)
        credit = None
        if replacement is not None:
            refused = replacement.waits and not _all_accepted(ret)
            if refused:
                # Not everything came back as it should: no exchange.
                await replacement.tell(
                    False, f"not every unit of return {ret.rma} was accepted"
                )
            if replacement.went_ahead() and not refused:
                credit = replacement.order.total_minor
            else:
                await self._p.note(
                    "exchange.failed",
                    f"replacement {replacement.order.number} did not go ahead: "
                    f"the goods of return {ret.rma} are refunded instead",
                )
        delivery = 0
        if (
            self._p.order.policy.refund_delivery == RefundDelivery.FULL_RETURN
            and not self._delivery_refunded
            and self._everything_back(ret)
        ):
            delivery = state.shipping_minor
            self._delivery_refunded = True

        def owed(credit: int | None) -> Owed:
            return self._ledger.settle(
                ret.return_id,
                captured_minor=state.captured_minor,
                refunded_minor=state.refunded_minor,
                accepted_minor=ret.accepted_value_minor(),
                credit_minor=credit,
                delivery_minor=delivery,
            )

        money = owed(credit)
        if replacement is not None and money.charge_minor > 0:
            if not await self._charge(ret, money.charge_minor):
                if replacement.waits:
                    # The replacement has not left: cancel it, refund the goods.
                    await replacement.tell(
                        False, f"the difference for return {ret.rma} was declined"
                    )
                    money = owed(None)
                else:
                    await self._p.note(
                        "exchange.unpaid",
                        f"replacement {replacement.order.number} shipped, but the "
                        f"difference for return {ret.rma} could not be charged",
                    )
        if replacement is not None and not replacement.told:
            await replacement.tell(True, f"the goods of return {ret.rma} are back")
        await self._runs[ret.return_id].signal(
            ReturnWorkflow.settle,
            Settlement(
                payment_id=self._payments.refund_target(),
                goods_minor=money.goods_minor,
                delivery_minor=money.delivery_minor,
                difference_minor=money.difference_minor,
            ),
        )

    async def _charge(self, ret: ReturnState, amount_minor: int) -> bool:
        if not self._payments.can_charge():
            return False
        try:
            await self._payments.charge(
                amount_minor,
                f"{self._p.order.order_id}:exchange:{ret.return_id}",
                f"the exchange of return {ret.rma}",
            )
        except Exception:
            # Declined, or refused for good: the order itself goes on.
            workflow.logger.warning(
                "order %s: the difference for return %s could not be charged",
                self._p.order.order_id,
                ret.rma,
            )
            return False
        return True

    async def _goods_never_came(self, ret: ReturnState) -> None:
        replacement = self._replacements[ret.return_id]
        if replacement.waits:
            await replacement.tell(
                False, f"the goods of return {ret.rma} never came back"
            )
            return
        replacement.told = True
        await self._p.note(
            "exchange.unpaid",
            f"replacement {replacement.order.number} shipped at once, but the "
            f"goods of return {ret.rma} never came back",
        )

    def _everything_back(self, inspected: ReturnState) -> bool:
        """Every delivered unit was returned and accepted (with this return)."""
        accepted: dict[int, int] = {}
        for ret in self._p.state.returns:
            if ret.return_id in self._settled or ret is inspected:
                for line, units in ret.accepted_units().items():
                    accepted[line] = accepted.get(line, 0) + units
        delivered = self._p.state.delivered_units()
        return bool(delivered) and all(
            accepted.get(line, 0) >= units for line, units in delivered.items()
        )

    def _shipped_from(self, line: int) -> str:
        """The warehouse that shipped the line's units (its goods go back there)."""
        for shipment in self._p.state.shipments:
            if shipment.status == ShipmentStatus.DELIVERED and any(
                item.line == line for item in shipment.lines
            ):
                return shipment.warehouse
        return self._p.state.shipments[0].warehouse

    def _find(self, return_id: str) -> ReturnState | None:
        return next(
            (r for r in self._p.state.returns if r.return_id == return_id), None
        )


def _all_accepted(ret: ReturnState) -> bool:
    """Every unit the return announced arrived and was accepted."""
    accepted = ret.accepted_units()
    return all(accepted.get(line.line, 0) >= line.quantity for line in ret.lines)


def _opened_message(opened: ReturnState) -> str:
    units = ", ".join(f"{line.quantity} x {line.sku}" for line in opened.lines)
    review = opened.status == ReturnStatus.PENDING_REVIEW
    exchange = "" if opened.exchange is None else ", exchange"
    return (
        f"return {opened.rma} opened for {units}: "
        f"{opened.reason.replace('_', ' ')}{exchange}"
        + (" (needs review)" if review else "")
    )
