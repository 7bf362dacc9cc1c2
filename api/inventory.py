"""Inventory: stock per SKU and warehouse."""

from fastapi import APIRouter, Path
from sqlalchemy import select

from api.deps import ConnectionDep
from api.errors import ProblemDetails, not_found
from db.catalog import Product
from db.inventory import StockLevel, Warehouse
from models.inventory import SkuInventory, WarehouseStock

router = APIRouter(tags=["inventory"])


@router.get(
    "/inventory/{sku}",
    responses={404: {"model": ProblemDetails, "description": "Unknown SKU"}},
)
async def get_inventory(
    conn: ConnectionDep,
    sku: str = Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"),
) -> SkuInventory:
    """On hand, reserved and available units of one SKU in every warehouse."""
    name = (
        await conn.execute(select(Product.name).where(Product.sku == sku))
    ).scalar_one_or_none()
    if name is None:
        raise not_found("sku", sku)
    rows = await conn.execute(
        select(StockLevel.warehouse, StockLevel.on_hand, StockLevel.reserved)
        .join(Warehouse, Warehouse.code == StockLevel.warehouse)
        .where(StockLevel.sku == sku)
        .order_by(Warehouse.priority, Warehouse.code)
    )
    levels = [
        WarehouseStock(
            warehouse=row.warehouse,
            on_hand=row.on_hand,
            reserved=row.reserved,
            available=row.on_hand - row.reserved,
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
