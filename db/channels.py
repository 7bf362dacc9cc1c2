"""Sales channels and the rules each one's orders follow."""

from datetime import datetime

from sqlalchemy import CheckConstraint, String
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, created_at_column


class Channel(Base):
    """A channel's policies; orders from unknown channels get the defaults."""

    __tablename__ = "channels"
    __table_args__ = (
        CheckConstraint(
            "out_of_stock_policy IN ('reject', 'backorder', 'ask_customer')",
            name="out_of_stock_policy_known",
        ),
        CheckConstraint(
            "backorder_seconds > 0 AND ask_customer_seconds > 0 "
            "AND payment_link_seconds > 0",
            name="timeouts_positive",
        ),
        CheckConstraint("max_shipments >= 1", name="max_shipments_positive"),
    )

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    out_of_stock_policy: Mapped[str] = mapped_column(String(16), default="reject")
    backorder_seconds: Mapped[float] = mapped_column(default=14 * 86_400)
    ask_customer_seconds: Mapped[float] = mapped_column(default=3 * 86_400)
    payment_link_seconds: Mapped[float] = mapped_column(default=86_400)
    # The warehouses that may ship this channel's orders (NULL: all of them),
    # and how many shipments one order may be split into.
    warehouses: Mapped[list[str] | None] = mapped_column(ARRAY(String(32)))
    max_shipments: Mapped[int] = mapped_column(server_default="3")
    # Returns (NULL: the defaults from settings): the window after delivery,
    # the reasons staff review first, how long the goods may take to arrive,
    # whether a full return refunds delivery, when an exchange ships.
    return_window_seconds: Mapped[float | None]
    return_review_reasons: Mapped[list[str] | None] = mapped_column(ARRAY(String(32)))
    return_goods_seconds: Mapped[float | None]
    refund_delivery: Mapped[str | None] = mapped_column(String(16))
    exchange_ships: Mapped[str | None] = mapped_column(String(16))
    # The language of the channel's customer messages (templates fall back
    # to English).
    language: Mapped[str] = mapped_column(String(8), server_default="en")
    created_at: Mapped[datetime] = created_at_column()
