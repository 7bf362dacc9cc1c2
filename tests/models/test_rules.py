"""The rules table: what each state allows, and that it holds together."""

from datetime import UTC, datetime

import pytest

from models.orders import (
    TERMINAL_STATUSES,
    Address,
    Customer,
    OrderLine,
    OrderState,
    OrderStatus,
    PaymentStatus,
)
from models.rules import (
    ACTIONS,
    ORDER_TRANSITIONS,
    PAYMENT_TRANSITIONS,
    SHIPMENT_TRANSITIONS,
    Action,
    allowed_actions,
    refusal,
)
from models.shipping import ShipmentState, ShipmentStatus


def order(status: OrderStatus, *shipments: ShipmentStatus) -> OrderState:
    now = datetime.now(UTC)
    return OrderState(
        order_id="o",
        number="SO-1",
        channel="web",
        external_id=None,
        status=status,
        payment_status=PaymentStatus.AUTHORIZED,
        payment_method="card",
        customer=Customer(email="a@b.c", name="A"),
        shipping_address=Address(country="DE", city="B", postal_code="1", line1="x"),
        currency="EUR",
        lines=[
            OrderLine(
                line=1, sku="S", name="s", quantity=1, unit_price_minor=1, total_minor=1
            )
        ],
        subtotal_minor=1,
        shipping_minor=0,
        total_minor=1,
        shipments=[
            ShipmentState(
                shipment_id=str(i), number=str(i), warehouse="W", status=s, lines=[]
            )
            for i, s in enumerate(shipments)
        ],
        created_at=now,
        updated_at=now,
    )


@pytest.mark.parametrize(
    ("state", "allowed"),
    [
        (order(OrderStatus.RECEIVED), ["cancel", "amend", "hold"]),
        (order(OrderStatus.AWAITING_STOCK), ["cancel", "amend", "hold"]),
        (order(OrderStatus.ON_HOLD), ["cancel", "amend", "release"]),
        (
            order(OrderStatus.IN_FULFILMENT, ShipmentStatus.PICKING),
            ["cancel", "hold"],
        ),
        (order(OrderStatus.IN_FULFILMENT, ShipmentStatus.SHIPPED), []),
        (order(OrderStatus.DELIVERED, ShipmentStatus.DELIVERED), []),
        (
            order(OrderStatus.DELIVERED, ShipmentStatus.DELIVERED).model_copy(
                update={"return_window_ends": datetime(2030, 1, 1, tzinfo=UTC)}
            ),
            ["return"],
        ),
        (
            order(OrderStatus.RECEIVED).model_copy(update={"replaces": "SO-1"}),
            ["hold"],
        ),
        (order(OrderStatus.CANCELLED), []),
        (order(OrderStatus.COMPLETED, ShipmentStatus.DELIVERED), []),
    ],
)
def test_allowed_actions_follow_the_state(
    state: OrderState, allowed: list[str]
) -> None:
    assert allowed_actions(state) == allowed


def rule_of(action: Action, state: OrderState) -> str | None:
    refused = refusal(action, state)
    return None if refused is None else refused.rule


def test_refusals_name_their_rule() -> None:
    shipped = order(OrderStatus.IN_FULFILMENT, ShipmentStatus.SHIPPED)
    picking = order(OrderStatus.IN_FULFILMENT, ShipmentStatus.PICKING)

    assert rule_of(Action.CANCEL, shipped) == "shipment-already-left"
    assert rule_of(Action.AMEND, picking) == "picking-started"
    assert rule_of(Action.RELEASE, picking) == "order-not-on-hold"
    assert rule_of(Action.CANCEL, order(OrderStatus.FAILED)) == "order-closed"
    assert rule_of(Action.CANCEL, picking) is None


def test_every_status_has_its_transitions_and_closed_ones_lead_nowhere() -> None:
    assert set(ORDER_TRANSITIONS) == set(OrderStatus)
    assert set(PAYMENT_TRANSITIONS) == set(PaymentStatus)
    assert set(SHIPMENT_TRANSITIONS) == set(ShipmentStatus)
    for status in TERMINAL_STATUSES:
        assert ORDER_TRANSITIONS[status] == frozenset()
    for targets in ORDER_TRANSITIONS.values():
        assert targets <= set(OrderStatus)


def test_every_action_says_who_may_do_it_and_what_it_needs() -> None:
    assert set(ACTIONS) == set(Action)
    for rule in ACTIONS.values():
        assert rule.roles and rule.needs
