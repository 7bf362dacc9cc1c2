"""Catalogue tables: products and their prices per currency."""

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, created_at_column


class Product(Base):
    __tablename__ = "products"

    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(64), index=True)
    weight_grams: Mapped[int]
    created_at: Mapped[datetime] = created_at_column()


class ProductPrice(Base):
    __tablename__ = "product_prices"
    __table_args__ = (CheckConstraint("amount_minor >= 0", name="amount_not_negative"),)

    sku: Mapped[str] = mapped_column(
        ForeignKey("products.sku", ondelete="CASCADE"), primary_key=True
    )
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
