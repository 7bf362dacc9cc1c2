"""Stock: reservation messages and the inventory views."""

from datetime import datetime

from pydantic import BaseModel


class StockLine(BaseModel):
    line: int
    sku: str
    quantity: int


class ReserveStock(BaseModel):
    order_id: str
    lines: list[StockLine]
    event_id: str
    at: datetime


class Reservation(BaseModel):
    warehouse: str
    lines: list[StockLine]


class ReleaseStock(BaseModel):
    order_id: str
    event_id: str
    at: datetime
    reason: str


class StockReleased(BaseModel):
    units: int


class WarehouseStock(BaseModel):
    warehouse: str
    on_hand: int
    reserved: int
    available: int


class SkuInventory(BaseModel):
    """`GET /v1/inventory/{sku}`: stock per warehouse and in total."""

    sku: str
    name: str
    on_hand: int
    reserved: int
    available: int
    warehouses: list[WarehouseStock]
