"""Catalogue: products with their prices and available stock."""

from typing import Generic, TypeVar

from pydantic import BaseModel

from models.money import Money

T = TypeVar("T")


class Product(BaseModel):
    sku: str
    name: str
    category: str
    weight_grams: int
    prices: list[Money]
    available: int


class Page(BaseModel, Generic[T]):
    """One page of a list; pass `next_cursor` back as `cursor` for the next."""

    items: list[T]
    next_cursor: str | None = None
