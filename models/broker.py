"""The order broker: which warehouses ship which units of an order.

Pure and deterministic, so it is tested without a database and its reasons
read the same on every run. The rules, in order:

1. ship complete from one warehouse if one has every line;
2. otherwise as few shipments as possible, never more than `max_shipments`;
3. among plans with as many shipments, the warehouses nearest the delivery
   address (same region, then same country, then elsewhere);
4. then the warehouses' priority (lower first), then their codes.

Within a plan each line ships whole from the nearest warehouse of the plan
that has all its units, and is split across the plan's warehouses only when
none has.
"""

from collections.abc import Sequence
from itertools import combinations

from pydantic import BaseModel

from models.inventory import Allocation, Destination, StockLine


class WarehouseProfile(BaseModel):
    """What the broker knows of a warehouse that may ship the order."""

    code: str
    country: str
    region: str | None = None
    priority: int = 100


class SourcingPlan(BaseModel):
    allocations: list[Allocation]
    reason: str


Stock = dict[str, dict[str, int]]  # warehouse -> sku -> units available


def distance(warehouse: WarehouseProfile, to: Destination) -> int:
    """0: same region; 1: same country; 2: another country."""
    if warehouse.country != to.country:
        return 2
    if to.region and warehouse.region and warehouse.region == to.region:
        return 0
    return 1


def plan_sourcing(
    lines: Sequence[StockLine],
    stock: Stock,
    warehouses: Sequence[WarehouseProfile],
    to: Destination,
    max_shipments: int,
) -> SourcingPlan | None:
    """The best plan within the rules, or None if stock cannot cover the lines."""
    ranked = sorted(
        (w for w in warehouses if any(stock.get(w.code, {}).values())),
        key=lambda w: (distance(w, to), w.priority, w.code),
    )
    for size in range(1, min(max_shipments, len(ranked)) + 1):
        plans = [
            (chosen, allocations)
            for chosen in combinations(ranked, size)
            if (allocations := _allocate(lines, stock, chosen)) is not None
        ]
        if plans:
            plans.sort(key=lambda plan: _rank(plan[0], to))
            chosen, allocations = plans[0]
            runner_up = plans[1][0] if len(plans) > 1 else None
            return SourcingPlan(
                allocations=allocations, reason=_reason(chosen, runner_up, to)
            )
    return None


def _allocate(
    lines: Sequence[StockLine],
    stock: Stock,
    chosen: tuple[WarehouseProfile, ...],
) -> list[Allocation] | None:
    left = {w.code: dict(stock.get(w.code, {})) for w in chosen}
    taken: dict[str, list[StockLine]] = {w.code: [] for w in chosen}
    for line in lines:
        whole = next(
            (w for w in chosen if left[w.code].get(line.sku, 0) >= line.quantity), None
        )
        sources = [whole] if whole is not None else list(chosen)
        needed = line.quantity
        for warehouse in sources:
            units = min(needed, left[warehouse.code].get(line.sku, 0))
            if units:
                left[warehouse.code][line.sku] -= units
                taken[warehouse.code].append(
                    StockLine(line=line.line, sku=line.sku, quantity=units)
                )
                needed -= units
        if needed:
            return None
    if any(not shipped for shipped in taken.values()):
        return None  # a smaller plan does it
    return [Allocation(warehouse=w.code, lines=taken[w.code]) for w in chosen]


def _rank(
    chosen: tuple[WarehouseProfile, ...], to: Destination
) -> tuple[int, int, list[str]]:
    return (
        sum(distance(w, to) for w in chosen),
        sum(w.priority for w in chosen),
        [w.code for w in chosen],
    )


def _reason(
    chosen: tuple[WarehouseProfile, ...],
    runner_up: tuple[WarehouseProfile, ...] | None,
    to: Destination,
) -> str:
    codes = " and ".join(w.code for w in chosen)
    if len(chosen) == 1:
        reason = f"{codes} has every line"
    else:
        reason = (
            f"no warehouse has every line: {len(chosen)} shipments, from {codes}, "
            "the fewest possible"
        )
    if runner_up is None:
        return reason
    other = " and ".join(w.code for w in runner_up)
    (near, priority, _), (other_near, other_priority, _) = (
        _rank(chosen, to),
        _rank(runner_up, to),
    )
    where = to.country + (f" ({to.region})" if to.region else "")
    if near < other_near:
        why = f"nearer to {where}"
    elif priority < other_priority:
        why = f"as near to {where}, higher priority"
    else:
        why = "as near and of the same priority, first by code"
    return f"{reason}; chosen over shipping from {other}: {why}"
