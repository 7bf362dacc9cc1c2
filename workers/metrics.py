"""Business metrics the worker adds to the Temporal SDK's own, on the same
Prometheus endpoint: how many orders are in each status, by channel."""

import asyncio
import logging

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.common import MetricGauge, MetricMeter

from db.orders import Order

logger = logging.getLogger(__name__)

ORDERS_GAUGE = "oms_orders"

Labels = tuple[str, str]


class OrdersByStatus:
    """The `oms_orders{status, channel}` gauge, set from the read model.

    Every worker that runs the order workflows reports the same figures;
    aggregate them with `max`, not `sum`.
    """

    def __init__(self, engine: AsyncEngine, meter: MetricMeter) -> None:
        self.engine = engine
        self.gauge: MetricGauge = meter.create_gauge(
            ORDERS_GAUGE, "orders in the read model by status and channel"
        )
        self._reported: set[Labels] = set()

    async def report(self) -> dict[Labels, int]:
        """Count the orders now and set the gauge; return the counts."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(Order.status, Order.channel, func.count()).group_by(
                    Order.status, Order.channel
                )
            )
            counts: dict[Labels, int] = {
                (status, channel): count for status, channel, count in rows
            }
        # A status that emptied reads 0 rather than its last count.
        for labels in self._reported - counts.keys():
            counts[labels] = 0
        for (status, channel), count in counts.items():
            self.gauge.set(count, {"status": status, "channel": channel})
        self._reported = set(counts)
        return counts

    async def run(self, every_seconds: float) -> None:
        """Report every `every_seconds` until cancelled; a failed count is
        logged and tried again at the next turn."""
        while True:
            try:
                await self.report()
            except Exception as error:  # the next turn may succeed
                logger.warning("counting orders by status failed: %s", error)
            await asyncio.sleep(every_seconds)
