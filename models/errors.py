"""Stable names of business failures.

Activities raise `ApplicationError(type=...)` with one of these names; the
workflows branch on them and the API maps them to problem+json types.
"""

from enum import StrEnum


class FailureType(StrEnum):
    OUT_OF_STOCK = "OutOfStock"
    PAYMENT_DECLINED = "PaymentDeclined"
    DATA_REFUSED = "DataRefused"
