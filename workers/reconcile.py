"""`oms reconcile`: check the invariants that stock, money and the read model
must keep, over the whole database, and say what disagrees.

- stock: reserved units equal the live reservations, on hand never below
  reserved (the database refuses that too);
- money: each payment's totals equal the sum of its movements, at most one
  authorization per payment, the read model's money equals the payments',
  a finished order holds no authorization, and what was captured from a
  card equals the value that shipped (delivery included, once);
- workflows: for a sample of orders, the read model says what the order's
  workflow says.

Nothing here writes; an empty report means everything agrees.
"""

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from models.orders import workflow_id_for
from workflows.orders import OrderWorkflow

logger = logging.getLogger(__name__)

FINISHED = ("completed", "cancelled", "failed")


@dataclass(frozen=True)
class Disagreement:
    check: str
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"{self.check:<10} {self.subject}: {self.detail}"


STOCK = text(
    """
    SELECT coalesce(s.sku, r.sku) AS sku, coalesce(s.warehouse, r.warehouse) AS wh,
           s.on_hand, coalesce(s.reserved, 0) AS reserved, coalesce(r.live, 0) AS live
    FROM stock_levels s
    FULL JOIN (
        SELECT sku, warehouse, sum(quantity) AS live FROM reservations
        WHERE state = 'reserved' GROUP BY sku, warehouse
    ) r ON r.sku = s.sku AND r.warehouse = s.warehouse
    WHERE coalesce(s.reserved, 0) <> coalesce(r.live, 0)
       OR s.on_hand < coalesce(s.reserved, 0) OR s.on_hand IS NULL
    ORDER BY 1, 2
    """
)

PAYMENT_TOTALS = text(
    """
    SELECT * FROM (
        SELECT p.id, p.order_id, p.captured_minor, p.refunded_minor,
               p.voided_minor,
               coalesce(sum(e.amount_minor) FILTER (WHERE e.kind = 'capture'), 0)
                   AS captures,
               coalesce(sum(e.amount_minor) FILTER (WHERE e.kind = 'refund'), 0)
                   AS refunds,
               coalesce(sum(e.amount_minor) FILTER (WHERE e.kind = 'void'), 0)
                   AS voids,
               count(e.id) FILTER (WHERE e.kind = 'authorize') AS authorizations
        FROM payments p LEFT JOIN payment_events e ON e.payment_id = p.id
        GROUP BY p.id
    ) totals
    WHERE captured_minor <> captures OR refunded_minor <> refunds
       OR voided_minor <> voids OR authorizations > 1
    ORDER BY order_id
    """
)

ORDER_MONEY = text(
    """
    SELECT o.id, o.number, o.status, o.captured_minor, o.refunded_minor,
           coalesce(sum(p.captured_minor), 0), coalesce(sum(p.refunded_minor), 0),
           coalesce(sum(p.authorized_minor - p.captured_minor - p.voided_minor)
                    FILTER (WHERE p.method = 'card'), 0) AS held
    FROM orders o LEFT JOIN payments p ON p.order_id = o.id
    GROUP BY o.id
    HAVING o.captured_minor <> coalesce(sum(p.captured_minor), 0)
        OR o.refunded_minor <> coalesce(sum(p.refunded_minor), 0)
        OR (o.status IN ('completed', 'cancelled', 'failed')
            AND coalesce(sum(p.authorized_minor - p.captured_minor - p.voided_minor)
                         FILTER (WHERE p.method = 'card'), 0) <> 0)
    ORDER BY o.number
    """
)

# What left the warehouses and was kept, priced as the order sold it (a
# replacement for a lost parcel is not sold twice, a refunded one not at
# all), with the delivery charge once if anything left; against what was
# captured for it less what was refunded. Orders with returns or exchanges
# move money after delivery and are left out.
SHIPPED_VALUE = text(
    """
    WITH shipped_lines AS (
        SELECT r.order_id, r.line, sum(r.quantity) AS units
        FROM reservations r WHERE r.state = 'shipped'
        GROUP BY r.order_id, r.line
    ), shipped AS (
        SELECT s.order_id,
               sum(least(s.units, l.quantity) * l.unit_price_minor) AS goods
        FROM shipped_lines s
        JOIN order_lines l ON l.order_id = s.order_id AND l.line = s.line
        GROUP BY s.order_id
    ), captured AS (
        SELECT order_id,
               coalesce(sum(amount_minor) FILTER (WHERE kind = 'capture'), 0)
               - coalesce(sum(amount_minor) FILTER (WHERE kind = 'refund'), 0)
               AS amount
        FROM payment_events GROUP BY order_id
    ), expected AS (
        SELECT o.id, o.number, o.status,
               coalesce(s.goods, 0)
               + CASE WHEN s.goods > 0 THEN o.shipping_minor ELSE 0 END AS shipped,
               coalesce(c.amount, 0) AS captured
        FROM orders o
        LEFT JOIN shipped s ON s.order_id = o.id
        LEFT JOIN captured c ON c.order_id = o.id
        WHERE o.payment_method = 'card'
          AND o.status IN ('completed', 'delivered', 'cancelled', 'failed')
          AND NOT EXISTS (SELECT 1 FROM returns t WHERE t.order_id = o.id)
    )
    SELECT * FROM expected WHERE shipped <> captured
    ORDER BY number
    """
)


async def check_database(engine: AsyncEngine) -> list[Disagreement]:
    """Every invariant that the database alone can tell."""
    found: list[Disagreement] = []
    async with engine.connect() as conn:
        for sku, warehouse, on_hand, reserved, live in await conn.execute(STOCK):
            found.append(
                Disagreement(
                    "stock",
                    f"{sku} at {warehouse}",
                    f"on hand {on_hand}, reserved {reserved}, live reservations {live}",
                )
            )
        for row in await conn.execute(PAYMENT_TOTALS):
            payment, order, captured, refunded, voided, *events = row
            captures, refunds, voids, authorizations = events
            found.append(
                Disagreement(
                    "payment",
                    f"{payment} of order {order}",
                    f"captured {captured} / movements {captures}, refunded "
                    f"{refunded} / {refunds}, voided {voided} / {voids}, "
                    f"{authorizations} authorizations",
                )
            )
        for row in await conn.execute(ORDER_MONEY):
            _, number, status, captured, refunded, paid, paid_back, held = row
            found.append(
                Disagreement(
                    "money",
                    f"order {number} ({status})",
                    f"read model captured {captured} refunded {refunded}; payments "
                    f"captured {paid} refunded {paid_back}; authorization still "
                    f"held {held}",
                )
            )
        for _, number, status, shipped, captured in await conn.execute(SHIPPED_VALUE):
            found.append(
                Disagreement(
                    "capture",
                    f"order {number} ({status})",
                    f"shipped value {shipped}, captured less refunded {captured}",
                )
            )
    return found


SAMPLE = text(
    "SELECT id, number, status, payment_status, captured_minor, refunded_minor "
    "FROM orders WHERE id = ANY(:ids)"
)


async def check_workflows(
    engine: AsyncEngine,
    client: Client,
    sample: int,
    *,
    seed: int | None = None,
    among: Sequence[str] | None = None,
) -> list[Disagreement]:
    """The read model against the workflows of up to `sample` orders, drawn
    from `among` (default: every order)."""
    if among is None:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT id FROM orders"))
            among = [str(order_id) for order_id in rows.scalars()]
    chosen = random.Random(seed).sample(list(among), min(sample, len(among)))
    found = []
    for order_id in chosen:
        disagreement = await _compare(engine, client, str(order_id))
        if disagreement is not None:
            # The read model trails a running workflow by a step: look again.
            await asyncio.sleep(1)
            disagreement = await _compare(engine, client, str(order_id))
        if disagreement is not None:
            found.append(disagreement)
    return found


async def _compare(
    engine: AsyncEngine, client: Client, order_id: str
) -> Disagreement | None:
    handle = client.get_workflow_handle_for(
        OrderWorkflow.run, workflow_id_for(order_id)
    )
    try:
        described = await handle.describe()
        if described.status == WorkflowExecutionStatus.COMPLETED:
            state = await handle.result()
        else:
            state = await asyncio.wait_for(
                handle.query(OrderWorkflow.current_state), 10
            )
    except (RPCError, TimeoutError) as error:
        return Disagreement("workflow", order_id, f"cannot be read: {error}")
    async with engine.connect() as conn:
        row = (await conn.execute(SAMPLE, {"ids": [order_id]})).one()
    _, number, status, payment_status, captured, refunded = row
    read = (status, payment_status, captured, refunded)
    truth = (
        state.status.value,
        state.payment_status.value,
        state.captured_minor,
        state.refunded_minor,
    )
    if read == truth:
        return None
    return Disagreement(
        "workflow",
        f"order {number}",
        f"read model (status, payment, captured, refunded) {read}, workflow {truth}",
    )


def report(found: Sequence[Disagreement]) -> str:
    if not found:
        return "reconcile: everything agrees"
    noun = "disagreement" if len(found) == 1 else "disagreements"
    lines = [f"reconcile: {len(found)} {noun}"]
    lines += [f"  {item}" for item in found]
    return "\n".join(lines)
