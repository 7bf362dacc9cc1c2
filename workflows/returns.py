"""ReturnWorkflow: goods coming back, from the RMA to the refund; a child of
its order.

The order decides what each return refunds (it alone knows what was captured
and what other returns took), so the money stays right however many returns
run at once: the return reports that its goods were inspected, the order
answers with a settlement, and the return makes that one refund.
"""

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from models.inventory import StockLine
    from models.payments import Refunded, RefundPayment
    from models.returns import (
        CancelReturnLabel,
        Disposition,
        ExchangePlaced,
        ReceiveReturn,
        RestockReturn,
        ReturnEventIn,
        ReturnLabel,
        ReturnLabelRequest,
        ReturnState,
        ReturnStatus,
        Review,
        ReviewReturn,
        Settlement,
        StartReturn,
    )
    from workflows.steps import run_step


def _refuse(rule: str, message: str) -> None:
    raise ApplicationError(message, type=rule, non_retryable=True)


@workflow.defn
class ReturnWorkflow:
    @workflow.init
    def __init__(self, request: StartReturn) -> None:
        self._request = request
        self._return = request.state.model_copy(deep=True)
        self._review: Review | None = None
        self._received: ReceiveReturn | None = None
        self._settlement: Settlement | None = None
        # The goods are overdue and the label is being cancelled.
        self._expiring = False

    @workflow.run
    async def run(self, request: StartReturn) -> ReturnState:
        if self._return.status == ReturnStatus.PENDING_REVIEW:
            if not await self._reviewed():
                return self._return
        await self._authorize()
        if self._return.exchange is not None:
            await self._exchange_placed()
        if not await self._goods_arrived():
            return self._return
        await self._inspect()
        await self._refund()
        return self._return

    @workflow.query
    def state(self) -> ReturnState:
        return self._return

    # What staff and the order tell the return.

    @workflow.update
    async def approve(self, review: ReviewReturn) -> ReturnState:
        """Support staff accept a return that needed review."""
        return await self._decide(review, approved=True)

    @approve.validator
    def _check_approve(self, review: ReviewReturn) -> None:
        self._check_review()

    @workflow.update
    async def reject(self, review: ReviewReturn) -> ReturnState:
        """Support staff refuse a return that needed review, with a reason."""
        return await self._decide(review, approved=False)

    @reject.validator
    def _check_reject(self, review: ReviewReturn) -> None:
        self._check_review()
        if not review.note:
            _refuse("reason-required", "a rejected return needs a reason")

    @workflow.update
    async def receive(self, receipt: ReceiveReturn) -> ReturnState:
        """The warehouse counted and inspected the goods that came back."""
        self._received = self._received or receipt
        await workflow.wait_condition(
            lambda: self._return.status != ReturnStatus.AWAITING_GOODS
        )
        return self._return

    @receive.validator
    def _check_receive(self, receipt: ReceiveReturn) -> None:
        if (
            self._return.status != ReturnStatus.AWAITING_GOODS
            or self._received
            or self._expiring
        ):
            _refuse("return-not-awaiting-goods", f"the return is {self._return.status}")
        asked = {line.line: line.quantity for line in self._return.lines}
        counted: dict[int, int] = {}
        for item in receipt.lines:
            if item.line not in asked:
                _refuse("invalid-lines", f"the return has no line {item.line}")
            counted[item.line] = counted.get(item.line, 0) + item.quantity
        for line, units in counted.items():
            if units > asked[line]:
                _refuse(
                    "invalid-lines",
                    f"line {line}: {units} units inspected, {asked[line]} returned",
                )

    @workflow.signal
    def exchange_placed(self, placed: ExchangePlaced) -> None:
        """The order placed the exchange's replacement order."""
        exchange = self._return.exchange
        if exchange is not None and exchange.order_id is None:
            exchange.order_id = placed.order_id
            exchange.order_number = placed.order_number

    @workflow.signal
    def settle(self, settlement: Settlement) -> None:
        """The order's answer to the inspection: what to refund."""
        self._settlement = self._settlement or settlement

    def _check_review(self) -> None:
        if self._return.status != ReturnStatus.PENDING_REVIEW or self._review:
            _refuse("return-not-in-review", f"the return is {self._return.status}")

    async def _decide(self, review: ReviewReturn, *, approved: bool) -> ReturnState:
        self._review = self._review or Review(
            approved=approved, actor=review.actor, note=review.note, at=workflow.now()
        )
        await workflow.wait_condition(
            lambda: self._return.status != ReturnStatus.PENDING_REVIEW
        )
        return self._return

    # Steps.

    async def _reviewed(self) -> bool:
        """Wait for staff to approve or reject; True if approved."""
        try:
            await workflow.wait_condition(
                lambda: self._review is not None,
                timeout=timedelta(seconds=self._request.review_seconds),
            )
        except TimeoutError:
            self._return.status = ReturnStatus.EXPIRED
            await self._record("return.expired", "nobody reviewed the return in time")
            return False
        assert self._review is not None
        self._return.review = self._review
        if not self._review.approved:
            self._return.status = ReturnStatus.REJECTED
            await self._record(
                "return.rejected",
                f"return {self._return.rma} rejected: {self._review.note}",
                self._review.actor,
            )
            return False
        await self._record(
            "return.approved",
            f"return {self._return.rma} approved"
            + (f": {self._review.note}" if self._review.note else ""),
            self._review.actor,
        )
        return True

    async def _authorize(self) -> None:
        """The RMA holds; the carrier issues a label to send the goods back."""
        label = await run_step(
            "issue_return_label",
            ReturnLabelRequest(
                order_id=self._return.order_id,
                state=self._return,
                country=self._request.country,
                postal_code=self._request.postal_code,
            ),
            ReturnLabel,
            summary="return label",
        )
        self._return.label = label
        self._return.status = ReturnStatus.AWAITING_GOODS
        self._return.goods_due_at = workflow.now() + timedelta(
            seconds=self._request.goods_seconds
        )
        await self._record(
            "return.authorized",
            f"return {self._return.rma} authorized: send the goods to "
            f"{self._return.warehouse} with {label.carrier} label "
            f"{label.tracking_number}",
        )

    async def _exchange_placed(self) -> None:
        """The order places the replacement once the return is authorized."""
        exchange = self._return.exchange
        assert exchange is not None
        await workflow.wait_condition(lambda: exchange.order_id is not None)
        await self._record(
            "return.exchange_placed",
            f"return {self._return.rma}: replacement order {exchange.order_number}",
        )

    async def _goods_arrived(self) -> bool:
        """Wait for the warehouse's receipt until the goods are due."""
        try:
            await workflow.wait_condition(
                lambda: self._received is not None,
                timeout=timedelta(seconds=self._request.goods_seconds),
            )
        except TimeoutError:
            self._expiring = True
            label = self._return.label
            assert label is not None
            await run_step(
                "cancel_return_label",
                CancelReturnLabel(order_id=self._return.order_id, label=label),
                type(None),
                summary="cancel return label",
            )
            self._return.status = ReturnStatus.EXPIRED
            await self._record(
                "return.expired",
                f"return {self._return.rma}: no goods arrived in time, nothing "
                "refunded",
            )
            return False
        return True

    async def _inspect(self) -> None:
        receipt = self._received
        assert receipt is not None
        ret = self._return
        ret.received_warehouse = receipt.warehouse or ret.warehouse
        ret.received_at = workflow.now()
        ret.inspection = receipt.lines
        skus = {line.line: line.sku for line in ret.lines}
        restock = [
            StockLine(line=item.line, sku=skus[item.line], quantity=item.quantity)
            for item in receipt.lines
            if item.outcome == Disposition.RESTOCK
        ]
        if restock:
            await run_step(
                "restock_return",
                RestockReturn(
                    order_id=ret.order_id,
                    return_id=ret.return_id,
                    rma=ret.rma,
                    warehouse=ret.received_warehouse,
                    lines=restock,
                    event_id=str(workflow.uuid4()),
                    at=workflow.now(),
                    actor=receipt.actor,
                ),
                type(None),
                summary="restock returned units",
            )
        ret.status = ReturnStatus.RECEIVED
        counts = dict.fromkeys(Disposition, 0)
        for item in receipt.lines:
            counts[item.outcome] += item.quantity
        await self._record(
            "return.received",
            f"return {ret.rma} received in {ret.received_warehouse}: "
            + ", ".join(
                f"{units} {outcome.replace('_', ' ')}"
                for outcome, units in counts.items()
                if units
            ),
            receipt.actor,
        )

    async def _refund(self) -> None:
        """Refund what the order settled on, once, then close."""
        await workflow.wait_condition(lambda: self._settlement is not None)
        settlement = self._settlement
        assert settlement is not None
        ret = self._return
        if settlement.amount_minor > 0 and settlement.payment_id is not None:
            await run_step(
                "refund_payment",
                RefundPayment(
                    order_id=ret.order_id,
                    payment_id=settlement.payment_id,
                    amount_minor=settlement.amount_minor,
                    currency=ret.currency,
                    idempotency_key=f"{ret.order_id}:return:{ret.return_id}:refund",
                    event_id=str(workflow.uuid4()),
                    at=workflow.now(),
                    reason=f"return {ret.rma}",
                ),
                Refunded,
                summary="refund return",
            )
            ret.refund_minor = settlement.amount_minor
            ret.delivery_refund_minor = settlement.delivery_minor
        if ret.exchange is not None:
            ret.exchange.difference_minor = settlement.difference_minor
        ret.status = ReturnStatus.CLOSED
        ret.closed_at = workflow.now()
        await self._record(
            "return.closed",
            f"return {ret.rma} closed"
            + ("" if ret.refund_minor else " with nothing to refund"),
        )

    async def _record(
        self, event_type: str, message: str, actor: str = "system"
    ) -> None:
        await run_step(
            "record_return",
            ReturnEventIn(
                state=self._return,
                event_id=str(workflow.uuid4()),
                at=workflow.now(),
                type=event_type,
                message=message,
                actor=actor,
            ),
            type(None),
            summary=event_type,
        )
        parent = workflow.info().parent
        if parent is not None:
            await workflow.get_external_workflow_handle(
                parent.workflow_id, run_id=parent.run_id
            ).signal("return_progress", self._return)
