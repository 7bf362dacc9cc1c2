"""Stock: reservation messages and the inventory views."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator


class StockLine(BaseModel):
    line: int
    sku: str
    quantity: int


class Destination(BaseModel):
    country: str
    region: str | None = None


class ReserveStock(BaseModel):
    order_id: str
    lines: list[StockLine]
    event_id: str
    at: datetime
    # Where it goes and the channel's limits, for the broker.
    destination: Destination | None = None
    max_shipments: int = 1
    warehouses: list[str] | None = None
    exclude: list[str] = []


class Allocation(BaseModel):
    """Units of the order's lines that one warehouse ships: one shipment."""

    warehouse: str
    lines: list[StockLine]


class Reservation(BaseModel):
    """What the order holds. `warehouse` and `lines`: the first allocation and
    every line, as orders placed before the broker read them."""

    warehouse: str
    lines: list[StockLine]
    allocations: list[Allocation] = []
    reason: str | None = None

    @property
    def shipments(self) -> list[Allocation]:
        return self.allocations or [
            Allocation(warehouse=self.warehouse, lines=self.lines)
        ]


class WriteOffShort(BaseModel):
    """A short pick: `lines` are the units not found in `warehouse`."""

    order_id: str
    shipment_number: str
    warehouse: str
    lines: list[StockLine]
    actor: str
    event_id: str
    at: datetime


class StockHeld(BaseModel):
    """`held_stock`: what the order holds now, per warehouse."""

    allocations: list[Allocation]


class OrderRef(BaseModel):
    order_id: str


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
    safety_stock: int = Field(0, description="kept back, never promised")
    available: int = Field(description="on hand - reserved - safety stock")


class SkuInventory(BaseModel):
    """`GET /v1/inventory/{sku}`: stock per warehouse and in total."""

    sku: str
    name: str
    on_hand: int
    reserved: int
    available: int = Field(
        description="available to promise: every warehouse's available units"
    )
    warehouses: list[WarehouseStock]


class ReleaseLines(BaseModel):
    """Release some units of some lines (a partial cancel)."""

    order_id: str
    lines: list[StockLine]
    event_id: str
    at: datetime
    reason: str


class StockAdjustment(BaseModel):
    """Body of `POST /v1/inventory/{sku}/adjust`: a counted change of on-hand."""

    model_config = ConfigDict(extra="forbid")

    warehouse: str = Field(min_length=1, max_length=32)
    delta: int = Field(
        ge=-1_000_000,
        le=1_000_000,
        description="units added (+) or removed (-); never 0",
        json_schema_extra={"not": {"const": 0}},
    )
    reason: str = Field(min_length=1, max_length=200)

    @field_validator("delta")
    @classmethod
    def _not_zero(cls, delta: int) -> int:
        if delta == 0:
            raise ValueError("a stock adjustment changes something: delta is not 0")
        return delta
