"""The order broker's rules, one at a time, on made-up stock."""

from models.broker import SourcingPlan, WarehouseProfile, plan_sourcing
from models.inventory import Destination, StockLine

BER = WarehouseProfile(code="BER", country="DE", region="BE", priority=1)
MUC = WarehouseProfile(code="MUC", country="DE", region="BY", priority=2)
AMS = WarehouseProfile(code="AMS", country="NL", priority=3)
ALL = [BER, MUC, AMS]
TO_MUNICH = Destination(country="DE", region="BY")
TO_PARIS = Destination(country="FR")


def lines(*quantities: tuple[str, int]) -> list[StockLine]:
    return [
        StockLine(line=i, sku=sku, quantity=qty)
        for i, (sku, qty) in enumerate(quantities, 1)
    ]


def shipped(plan: SourcingPlan | None) -> dict[str, dict[str, int]]:
    assert plan is not None
    return {
        a.warehouse: {line.sku: line.quantity for line in a.lines}
        for a in plan.allocations
    }


def test_one_warehouse_with_everything_beats_a_nearer_split() -> None:
    stock = {"BER": {"A": 5, "B": 5}, "MUC": {"A": 5}, "AMS": {}}

    plan = plan_sourcing(lines(("A", 1), ("B", 1)), stock, ALL, TO_MUNICH, 3)

    assert shipped(plan) == {"BER": {"A": 1, "B": 1}}
    assert plan is not None and plan.reason.startswith("BER has every line")


def test_the_nearest_warehouse_ships_when_several_have_everything() -> None:
    stock = {"BER": {"A": 5}, "MUC": {"A": 5}, "AMS": {"A": 5}}

    plan = plan_sourcing(lines(("A", 2)), stock, ALL, TO_MUNICH, 3)

    assert shipped(plan) == {"MUC": {"A": 2}}
    assert plan is not None
    assert plan.reason == (
        "MUC has every line; chosen over shipping from BER: nearer to DE (BY)"
    )


def test_priority_decides_between_warehouses_as_near() -> None:
    stock = {"BER": {"A": 5}, "MUC": {"A": 5}, "AMS": {"A": 5}}

    plan = plan_sourcing(lines(("A", 2)), stock, ALL, TO_PARIS, 3)

    assert shipped(plan) == {"BER": {"A": 2}}
    assert plan is not None and "higher priority" in plan.reason


def test_lines_split_across_the_fewest_warehouses() -> None:
    stock = {"BER": {"A": 5}, "MUC": {"B": 5}, "AMS": {"A": 5, "C": 5}}

    plan = plan_sourcing(lines(("A", 1), ("B", 1), ("C", 1)), stock, ALL, TO_MUNICH, 3)

    # MUC + AMS covers everything in two shipments; BER would make three.
    assert shipped(plan) == {"MUC": {"B": 1}, "AMS": {"A": 1, "C": 1}}
    assert plan is not None and "2 shipments" in plan.reason


def test_a_line_is_split_only_when_no_warehouse_has_all_its_units() -> None:
    stock = {"BER": {"A": 3}, "MUC": {"A": 2}, "AMS": {}}

    plan = plan_sourcing(lines(("A", 5)), stock, ALL, TO_MUNICH, 3)

    assert shipped(plan) == {"MUC": {"A": 2}, "BER": {"A": 3}}


def test_no_plan_needs_more_shipments_than_allowed() -> None:
    stock = {"BER": {"A": 5}, "MUC": {"B": 5}, "AMS": {"C": 5}}
    wanted = lines(("A", 1), ("B", 1), ("C", 1))

    assert plan_sourcing(wanted, stock, ALL, TO_MUNICH, 2) is None
    assert len(shipped(plan_sourcing(wanted, stock, ALL, TO_MUNICH, 3))) == 3


def test_warehouses_left_out_never_ship() -> None:
    stock = {"BER": {"A": 5}, "MUC": {"A": 5}, "AMS": {"A": 5}}

    plan = plan_sourcing(lines(("A", 1)), stock, [AMS], TO_MUNICH, 3)

    assert shipped(plan) == {"AMS": {"A": 1}}


def test_not_enough_stock_anywhere_is_no_plan() -> None:
    stock = {"BER": {"A": 1}, "MUC": {"A": 1}, "AMS": {"A": 1}}

    assert plan_sourcing(lines(("A", 4)), stock, ALL, TO_MUNICH, 3) is None
