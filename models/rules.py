"""What may happen to an order and when: transitions and guards, as data.

The workflow's update validators and the API read this module alone. A
refused action names the rule that refused it; the API answers 409 with that
name as the problem type, and an order's view lists the actions its current
state allows, so a client never has to guess.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from models.orders import TERMINAL_STATUSES, OrderState, OrderStatus, PaymentStatus
from models.returns import ReturnedQuantity
from models.shipping import ShipmentStatus

StatusT = TypeVar("StatusT", OrderStatus, PaymentStatus, ShipmentStatus)


class Action(StrEnum):
    CANCEL = "cancel"
    AMEND = "amend"
    HOLD = "hold"
    RELEASE = "release"
    RETURN = "return"


class Role(StrEnum):
    """Who acts; API keys carry one (enforced once keys exist)."""

    INTEGRATOR = "integrator"
    SUPPORT = "support"
    WAREHOUSE = "warehouse"
    ADMIN = "admin"
    VIEWER = "viewer"


Ord = OrderStatus
ORDER_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    Ord.RECEIVED: frozenset(
        {Ord.AWAITING_STOCK, Ord.AWAITING_PAYMENT, Ord.CONFIRMED, Ord.ON_HOLD}
        | {Ord.CANCELLED, Ord.FAILED}
    ),
    Ord.AWAITING_STOCK: frozenset(
        {Ord.AWAITING_PAYMENT, Ord.CONFIRMED, Ord.ON_HOLD, Ord.CANCELLED, Ord.FAILED}
    ),
    Ord.AWAITING_PAYMENT: frozenset(
        {Ord.CONFIRMED, Ord.ON_HOLD, Ord.CANCELLED, Ord.FAILED}
    ),
    Ord.ON_HOLD: frozenset(
        {Ord.RECEIVED, Ord.AWAITING_STOCK, Ord.AWAITING_PAYMENT, Ord.CONFIRMED}
        | {Ord.IN_FULFILMENT, Ord.CANCELLED, Ord.FAILED}
    ),
    Ord.CONFIRMED: frozenset(
        {Ord.IN_FULFILMENT, Ord.ON_HOLD, Ord.CANCELLED, Ord.FAILED}
    ),
    Ord.IN_FULFILMENT: frozenset(
        {Ord.DELIVERED, Ord.ON_HOLD, Ord.CANCELLED, Ord.FAILED}
    ),
    Ord.DELIVERED: frozenset({Ord.COMPLETED}),
    Ord.COMPLETED: frozenset(),
    Ord.CANCELLED: frozenset(),
    Ord.FAILED: frozenset(),
}

P = PaymentStatus
PAYMENT_TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    # A payment link is paid in one go; cash on delivery is collected at once.
    P.PENDING: frozenset({P.AUTHORIZED, P.CAPTURED, P.DECLINED, P.EXPIRED, P.VOIDED}),
    # An amendment re-authorizes: authorized stays authorized.
    P.AUTHORIZED: frozenset({P.AUTHORIZED, P.PARTIALLY_CAPTURED, P.CAPTURED, P.VOIDED}),
    P.PARTIALLY_CAPTURED: frozenset({P.CAPTURED, P.PARTIALLY_REFUNDED, P.REFUNDED}),
    P.CAPTURED: frozenset({P.PARTIALLY_REFUNDED, P.REFUNDED}),
    P.PARTIALLY_REFUNDED: frozenset({P.PARTIALLY_REFUNDED, P.REFUNDED}),
    P.REFUNDED: frozenset(),
    P.VOIDED: frozenset(),
    P.DECLINED: frozenset(),
    P.EXPIRED: frozenset(),
}

S = ShipmentStatus
SHIPMENT_TRANSITIONS: dict[ShipmentStatus, frozenset[ShipmentStatus]] = {
    S.PENDING: frozenset({S.PICKING, S.CANCELLED}),
    S.PICKING: frozenset({S.PICKING, S.PICKED, S.CANCELLED}),
    S.PICKED: frozenset({S.PACKED, S.CANCELLED}),
    S.PACKED: frozenset({S.SHIPPED, S.CANCELLED}),
    S.SHIPPED: frozenset({S.DELIVERED, S.LOST, S.RETURNED}),
    S.DELIVERED: frozenset(),
    S.CANCELLED: frozenset(),
    S.LOST: frozenset(),
    S.RETURNED: frozenset(),
}


@dataclass(frozen=True)
class Guard:
    """One reason to refuse an action; `rule` is its stable name."""

    rule: str
    refuses: Callable[[OrderState], bool]
    message: Callable[[OrderState], str]


@dataclass(frozen=True)
class ActionRule:
    roles: frozenset[Role]
    guards: tuple[Guard, ...]
    needs: str


@dataclass(frozen=True)
class Refusal:
    rule: str
    message: str


CLOSED = Guard(
    "order-closed",
    lambda s: s.status in TERMINAL_STATUSES,
    lambda s: f"the order is {s.status}",
)
SHIPMENT_LEFT = Guard(
    "shipment-already-left",
    lambda s: s.shipped,
    lambda s: "a shipment of the order has left the warehouse",
)
PICKING_STARTED = Guard(
    "picking-started",
    lambda s: s.picking_started,
    lambda s: "the warehouse has started picking the order",
)
DELIVERED = Guard(
    "order-delivered",
    lambda s: s.status == OrderStatus.DELIVERED,
    lambda s: "the order was delivered",
)
ON_HOLD = Guard(
    "order-on-hold",
    lambda s: s.status == OrderStatus.ON_HOLD,
    lambda s: "the order is on hold already",
)
NOT_ON_HOLD = Guard(
    "order-not-on-hold",
    lambda s: s.status != OrderStatus.ON_HOLD,
    lambda s: f"the order is {s.status}, not on hold",
)

REPLACEMENT = Guard(
    "replacement-order",
    lambda s: s.replaces is not None,
    lambda s: (
        f"the order replaces goods returned from order {s.replaces}; "
        "it changes only through that return"
    ),
)
WINDOW_CLOSED = Guard(
    "return-window-closed",
    lambda s: (
        s.status == OrderStatus.COMPLETED
        or (s.status == OrderStatus.DELIVERED and s.return_window_ends is None)
    ),
    lambda s: "the order's return window has closed",
)
NOT_DELIVERED = Guard(
    "order-not-delivered",
    lambda s: s.status != OrderStatus.DELIVERED,
    lambda s: f"the order is {s.status}; only delivered goods can be returned",
)

STAFF = frozenset({Role.SUPPORT, Role.ADMIN})
ACTIONS: dict[Action, ActionRule] = {
    Action.CANCEL: ActionRule(
        roles=STAFF | {Role.INTEGRATOR},
        guards=(CLOSED, DELIVERED, SHIPMENT_LEFT, REPLACEMENT),
        needs="a reason code; a note when the reason is `other`; optionally lines",
    ),
    Action.AMEND: ActionRule(
        roles=STAFF | {Role.INTEGRATOR},
        guards=(CLOSED, DELIVERED, SHIPMENT_LEFT, PICKING_STARTED, REPLACEMENT),
        needs="a new shipping address, or the order's lines as they should be",
    ),
    Action.HOLD: ActionRule(
        roles=STAFF,
        guards=(CLOSED, DELIVERED, SHIPMENT_LEFT, ON_HOLD),
        needs="a reason",
    ),
    Action.RELEASE: ActionRule(roles=STAFF, guards=(NOT_ON_HOLD,), needs="nothing"),
    Action.RETURN: ActionRule(
        roles=STAFF | {Role.INTEGRATOR},
        guards=(WINDOW_CLOSED, NOT_DELIVERED, REPLACEMENT),
        needs="delivered lines and quantities, a reason code; optionally "
        "replacement SKUs for an exchange",
    ),
}


def refusal(action: Action, state: OrderState) -> Refusal | None:
    """Why `action` is not allowed on the order now, or None if it is."""
    for guard in ACTIONS[action].guards:
        if guard.refuses(state):
            return Refusal(guard.rule, guard.message(state))
    return None


def return_refusal(
    state: OrderState, lines: Sequence[ReturnedQuantity], now: datetime
) -> Refusal | None:
    """Why these units cannot be returned now, or None if they can: only
    within the window, only delivered units no other return holds."""
    refused = refusal(Action.RETURN, state)
    if refused is not None:
        return refused
    ends = state.return_window_ends
    if ends is None or now > ends:
        return Refusal("return-window-closed", "the order's return window has closed")
    known = {line.line for line in state.lines}
    asked: dict[int, int] = {}
    for item in lines:
        if item.line not in known:
            return Refusal("invalid-lines", f"the order has no line {item.line}")
        asked[item.line] = asked.get(item.line, 0) + item.quantity
    returnable = state.returnable_units()
    for line, units in sorted(asked.items()):
        left = max(returnable.get(line, 0), 0)
        if units > left:
            return Refusal(
                "return-exceeds-delivered",
                f"line {line}: {units} units asked, {left} delivered and not "
                "returned yet",
            )
    return None


def allowed_actions(state: OrderState) -> list[str]:
    return [action.value for action in Action if refusal(action, state) is None]


def transition_allowed(
    table: dict[StatusT, frozenset[StatusT]], old: StatusT, new: StatusT
) -> bool:
    return old == new or new in table[old]
