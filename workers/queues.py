"""Task queues: the order workflows on one, each domain's activities on its own.

Workflows name the activity they call, never a queue; the worker that runs
them routes each activity to its domain's queue (see `ActivityRouting`), so
the queue names live in settings and a renamed queue takes effect for
running orders at their next step. Any worker process can poll any subset
of the queues (`oms worker --queues payments`), so payment calls can run
near the payment network and scale on their own.
"""

from enum import StrEnum


class Domain(StrEnum):
    """A group of activities that scales and fails apart from the others."""

    # The workflows, and the activities that write the order's read model.
    ORDERS = "orders"
    INVENTORY = "inventory"
    PAYMENTS = "payments"
    SHIPPING = "shipping"
    RETURNS = "returns"
    # Messages to customers, and (in the same processes) outbound webhooks.
    NOTIFICATIONS = "notifications"


def parse_domains(text: str) -> frozenset[Domain]:
    """`orders,payments` as domains; raises ValueError naming the unknown ones."""
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - {domain.value for domain in Domain})
    if unknown or not names:
        raise ValueError(
            f"unknown queue {', '.join(unknown) or '(none given)'}; choose from "
            f"{', '.join(domain.value for domain in Domain)}"
        )
    return frozenset(Domain(name) for name in names)
