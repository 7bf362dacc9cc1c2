"""Refunds never exceed what was captured, however returns interleave.

A state machine opens returns within the rules (`return_refusal`), inspects
them with any outcome, settles them through the order's `ReturnLedger`,
charges exchange differences (or fails to) and makes the refunds, in every
order hypothesis can think of. After every step the money must hold.
"""

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
)

from models.orders import (
    Address,
    Customer,
    OrderLine,
    OrderState,
    OrderStatus,
    PaymentStatus,
)
from models.returns import (
    LIVE_RETURN_STATUSES,
    Disposition,
    InspectedLine,
    Owed,
    ReturnedQuantity,
    ReturnLedger,
    ReturnLine,
    ReturnReason,
    ReturnState,
    ReturnStatus,
)
from models.rules import return_refusal
from models.shipping import ShipmentLine, ShipmentState, ShipmentStatus

NOW = datetime(2030, 1, 1, tzinfo=UTC)


class ReturnMoney(RuleBasedStateMachine):
    opened = Bundle("opened")
    received = Bundle("received")
    settled = Bundle("settled")

    @initialize(
        units=st.lists(st.integers(1, 4), min_size=1, max_size=3),
        prices=st.lists(st.integers(1, 5_000), min_size=3, max_size=3),
        shipping=st.integers(0, 1_000),
        refunded_share=st.floats(0, 1),
    )
    def delivered_order(
        self, units: list[int], prices: list[int], shipping: int, refunded_share: float
    ) -> None:
        lines = [
            OrderLine(
                line=n,
                sku=f"S{n}",
                name="s",
                quantity=q,
                unit_price_minor=prices[n - 1],
                total_minor=q * prices[n - 1],
            )
            for n, q in enumerate(units, start=1)
        ]
        total = sum(line.total_minor for line in lines) + shipping
        self.state = OrderState(
            order_id=str(uuid.uuid4()),
            number="SO-1",
            channel="web",
            external_id=None,
            status=OrderStatus.DELIVERED,
            payment_status=PaymentStatus.CAPTURED,
            payment_method="card",
            customer=Customer(email="a@b.c", name="A"),
            shipping_address=Address(
                country="DE", city="B", postal_code="1", line1="x"
            ),
            currency="EUR",
            lines=lines,
            subtotal_minor=total - shipping,
            shipping_minor=shipping,
            total_minor=total,
            authorized_minor=total,
            captured_minor=total,
            # Given back before any return (a lost parcel, a goodwill refund).
            refunded_minor=int(total * refunded_share),
            shipments=[
                ShipmentState(
                    shipment_id="1",
                    number="SO-1-1",
                    warehouse="W",
                    status=ShipmentStatus.DELIVERED,
                    lines=[
                        ShipmentLine(
                            line=line.line, sku=line.sku, quantity=line.quantity
                        )
                        for line in lines
                    ],
                )
            ],
            return_window_ends=NOW + timedelta(days=14),
            created_at=NOW,
            updated_at=NOW,
        )
        self.ledger = ReturnLedger()
        self.credits: dict[str, int | None] = {}
        self.refunds: dict[str, int] = {}

    @rule(
        target=opened,
        line=st.integers(1, 3),
        quantity=st.integers(1, 5),
        credit=st.none() | st.integers(0, 20_000),
    )
    def open_return(self, line: int, quantity: int, credit: int | None) -> str:
        asked = [ReturnedQuantity(line=line, quantity=quantity)]
        refused = return_refusal(self.state, asked, NOW)
        prices = {item.line: item.unit_price_minor for item in self.state.lines}
        if refused is not None:
            return ""
        return_id = str(uuid.uuid4())
        self.state.returns.append(
            ReturnState(
                return_id=return_id,
                number=len(self.state.returns) + 1,
                rma="RMA",
                order_id=self.state.order_id,
                order_number="SO-1",
                channel="web",
                currency="EUR",
                status=ReturnStatus.AWAITING_GOODS,
                reason=ReturnReason.CHANGED_MIND,
                lines=[
                    ReturnLine(
                        line=line,
                        sku=f"S{line}",
                        name="s",
                        quantity=quantity,
                        unit_price_minor=prices[line],
                    )
                ],
                warehouse="W",
                opened_by="ann",
                opened_at=NOW,
            )
        )
        self.credits[return_id] = credit
        return return_id

    @rule(return_id=consumes(opened))
    def goods_never_come(self, return_id: str) -> None:
        if ret := self._find(return_id):
            ret.status = ReturnStatus.EXPIRED

    @rule(
        target=received,
        return_id=consumes(opened),
        outcomes=st.lists(st.sampled_from(list(Disposition)), min_size=1, max_size=5),
    )
    def inspect(self, return_id: str, outcomes: list[Disposition]) -> str:
        ret = self._find(return_id)
        if ret is None:
            return ""
        line = ret.lines[0]
        ret.inspection = [
            InspectedLine(line=line.line, quantity=1, outcome=outcome)
            for outcome in outcomes[: line.quantity]
        ]
        ret.status = ReturnStatus.RECEIVED
        return return_id

    @rule(
        target=settled,
        return_id=consumes(received),
        delivery=st.integers(0, 1_000),
        charge_succeeds=st.booleans(),
    )
    def settle(self, return_id: str, delivery: int, charge_succeeds: bool) -> str:
        ret = self._find(return_id)
        if ret is None:
            return ""
        delivery = min(delivery, self.state.shipping_minor)
        owed = self._settle(ret, self.credits[return_id], delivery)
        if owed.charge_minor:
            if charge_succeeds:
                self.state.captured_minor += owed.charge_minor
            else:  # the replacement is cancelled; the goods are refunded
                owed = self._settle(ret, None, delivery)
        self.refunds[return_id] = owed.goods_minor + owed.delivery_minor
        assert owed.goods_minor <= ret.accepted_value_minor()
        return return_id

    @rule(return_id=consumes(settled))
    def refund_made(self, return_id: str) -> None:
        ret = self._find(return_id)
        if ret is None:
            return
        ret.status = ReturnStatus.CLOSED
        self.state.refunded_minor += self.refunds[return_id]
        self.ledger.closed(return_id)

    @invariant()
    def refunds_never_exceed_the_captured_money(self) -> None:
        if not hasattr(self, "state"):
            return
        promised = sum(self.ledger.promised.values())
        assert 0 <= self.state.refunded_minor
        assert self.state.refunded_minor + promised <= self.state.captured_minor

    @invariant()
    def no_unit_comes_back_twice(self) -> None:
        if not hasattr(self, "state"):
            return
        returned: dict[int, int] = {}
        for ret in self.state.returns:
            if ret.status in LIVE_RETURN_STATUSES:
                for item in ret.lines:
                    returned[item.line] = returned.get(item.line, 0) + item.quantity
        for line in self.state.lines:
            assert returned.get(line.line, 0) <= line.quantity

    def _settle(self, ret: ReturnState, credit: int | None, delivery: int) -> Owed:
        return self.ledger.settle(
            ret.return_id,
            captured_minor=self.state.captured_minor,
            refunded_minor=self.state.refunded_minor,
            accepted_minor=ret.accepted_value_minor(),
            credit_minor=credit,
            delivery_minor=delivery,
        )

    def _find(self, return_id: str) -> ReturnState | None:
        return next((r for r in self.state.returns if r.return_id == return_id), None)


ReturnMoney.TestCase.settings = settings(max_examples=300, stateful_step_count=30)
test_refunds_never_exceed_what_was_captured = ReturnMoney.TestCase
