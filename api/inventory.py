"""Inventory: stock per SKU and warehouse, and counted adjustments."""

import logging
from typing import Annotated

from fastapi import APIRouter, Path
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio.service import RPCError

from api.access import Admin, AnyCaller
from api.deps import ConnectionDep, Services, ServicesDep
from api.errors import Problem, ProblemDetails, not_found
from db.catalog import Product
from db.inventory import StockLevel, StockMovement, Warehouse
from db.orders import Order, OrderLine
from models.inventory import SkuInventory, StockAdjustment, WarehouseStock
from models.order_actions import Restock
from models.orders import OrderStatus, workflow_id_for
from workflows.orders import OrderWorkflow

logger = logging.getLogger(__name__)

router = APIRouter(tags=["inventory"])

SkuPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
# Orders that can take restocked units; each is told, oldest first.
WAITING = (OrderStatus.AWAITING_STOCK, OrderStatus.ON_HOLD)
MAX_TOLD = 1000


@router.get(
    "/inventory/{sku}",
    responses={404: {"model": ProblemDetails, "description": "Unknown SKU"}},
)
async def get_inventory(
    conn: ConnectionDep, sku: SkuPath, caller: AnyCaller
) -> SkuInventory:
    """On hand, reserved and available units of one SKU in every warehouse."""
    return await _inventory(conn, sku)


@router.post(
    "/inventory/{sku}/adjust",
    responses={
        404: {"model": ProblemDetails, "description": "Unknown SKU or warehouse"},
        409: {"model": ProblemDetails, "description": "Fewer units than reserved"},
    },
)
async def adjust_inventory(
    sku: SkuPath, body: StockAdjustment, services: ServicesDep, caller: Admin
) -> SkuInventory:
    """Count units in or out of a warehouse; orders waiting for them are told."""
    async with services.engine.begin() as conn:
        await _known(conn, sku, body.warehouse)
        level = (
            await conn.execute(
                select(StockLevel.on_hand, StockLevel.reserved)
                .where(StockLevel.sku == sku, StockLevel.warehouse == body.warehouse)
                .with_for_update()
            )
        ).first()
        on_hand, reserved = (0, 0) if level is None else (level.on_hand, level.reserved)
        after = on_hand + body.delta
        if after < reserved:
            raise Problem(
                409,
                "below-reserved",
                "Adjustment refused",
                f"{body.warehouse} holds {on_hand} units of {sku}, {reserved} of them "
                f"reserved for orders; it cannot go to {after}",
            )
        await conn.execute(
            insert(StockLevel)
            .values(sku=sku, warehouse=body.warehouse, on_hand=after)
            .on_conflict_do_update(
                index_elements=["sku", "warehouse"], set_={"on_hand": after}
            )
        )
        await conn.execute(
            insert(StockMovement).values(
                sku=sku,
                warehouse=body.warehouse,
                delta=body.delta,
                on_hand_after=after,
                reason=body.reason,
                actor=caller.actor,
            )
        )
        inventory = await _inventory(conn, sku)
    logger.info(
        "stock of %s in %s adjusted by %+d to %s by %s: %s",
        sku,
        body.warehouse,
        body.delta,
        after,
        caller.actor,
        body.reason,
    )
    if body.delta > 0:
        await _tell_waiting_orders(services, sku)
    return inventory


async def _known(conn: AsyncConnection, sku: str, warehouse: str) -> None:
    if (
        await conn.execute(select(Product.sku).where(Product.sku == sku))
    ).first() is None:
        raise not_found("sku", sku)
    found = await conn.execute(
        select(Warehouse.code).where(Warehouse.code == warehouse)
    )
    if found.first() is None:
        raise not_found("warehouse", warehouse)


async def _tell_waiting_orders(services: Services, sku: str) -> None:
    async with services.engine.connect() as conn:
        order_ids = (
            await conn.execute(
                select(Order.id)
                .where(
                    Order.status.in_(WAITING),
                    Order.id.in_(
                        select(OrderLine.order_id).where(OrderLine.sku == sku)
                    ),
                )
                .order_by(Order.created_at)
                .limit(MAX_TOLD)
            )
        ).scalars()
    for order_id in order_ids:
        handle = services.temporal.get_workflow_handle_for(
            OrderWorkflow.run, workflow_id_for(order_id)
        )
        try:
            await handle.signal(OrderWorkflow.restocked, Restock(skus=[sku]))
        except RPCError as error:
            logger.warning(
                "order %s: restock signal failed: %s",
                order_id,
                error,
                extra={"order_id": str(order_id)},
            )


async def _inventory(conn: AsyncConnection, sku: str) -> SkuInventory:
    name = (
        await conn.execute(select(Product.name).where(Product.sku == sku))
    ).scalar_one_or_none()
    if name is None:
        raise not_found("sku", sku)
    rows = await conn.execute(
        select(
            StockLevel.warehouse,
            StockLevel.on_hand,
            StockLevel.reserved,
            StockLevel.safety_stock,
        )
        .join(Warehouse, Warehouse.code == StockLevel.warehouse)
        .where(StockLevel.sku == sku)
        .order_by(Warehouse.priority, Warehouse.code)
    )
    levels = [
        WarehouseStock(
            warehouse=row.warehouse,
            on_hand=row.on_hand,
            reserved=row.reserved,
            safety_stock=row.safety_stock,
            available=max(0, row.on_hand - row.reserved - row.safety_stock),
        )
        for row in rows
    ]
    return SkuInventory(
        sku=sku,
        name=name,
        on_hand=sum(level.on_hand for level in levels),
        reserved=sum(level.reserved for level in levels),
        available=sum(level.available for level in levels),
        warehouses=levels,
    )
