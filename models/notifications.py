"""Customer notifications: which order events a customer hears about, and the
text of each message per medium and language."""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel


class Medium(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    MESSENGER = "messenger"


class NotifyCustomer(BaseModel):
    """Input of `notify_customer`: the timeline event to tell the customer of."""

    order_id: str
    event_id: str
    event_type: str


class NotificationPublic(BaseModel):
    """A message to an order's customer, as the notifications log keeps it."""

    event_id: str
    event_type: str
    medium: Medium
    language: str
    recipient: str
    subject: str | None
    body: str
    status: Literal["sending", "sent", "failed"]
    provider_ref: str | None
    error: str | None
    created_at: datetime
    sent_at: datetime | None


@dataclass(frozen=True)
class Template:
    subject: str | None
    body: str


# Fields a template may use: name, number, channel, message (the timeline's
# own sentence), carrier, tracking, url, amount, rma.
TEMPLATES: dict[tuple[str, Medium], dict[str, Template]] = {
    ("order.confirmed", Medium.EMAIL): {
        "en": Template(
            "Your order {number} is confirmed",
            "Hello {name},\n\nthank you for your order {number}. We have "
            "reserved your items and will let you know when they ship.",
        ),
        "de": Template(
            "Ihre Bestellung {number} ist bestätigt",
            "Hallo {name},\n\nvielen Dank für Ihre Bestellung {number}. Ihre "
            "Artikel sind reserviert; wir melden uns, sobald sie versandt sind.",
        ),
    },
    ("payment.link_sent", Medium.EMAIL): {
        "en": Template(
            "Pay for your order {number}",
            "Hello {name},\n\nplease pay for your order {number} here: {url}",
        ),
        "de": Template(
            "Bezahlen Sie Ihre Bestellung {number}",
            "Hallo {name},\n\nbitte bezahlen Sie Ihre Bestellung {number} hier: {url}",
        ),
    },
    ("shipment.shipped", Medium.EMAIL): {
        "en": Template(
            "Your order {number} is on its way",
            "Hello {name},\n\na parcel of your order {number} has left our "
            "warehouse with {carrier}, tracking number {tracking}.",
        ),
        "de": Template(
            "Ihre Bestellung {number} ist unterwegs",
            "Hallo {name},\n\nein Paket Ihrer Bestellung {number} ist mit "
            "{carrier} unterwegs, Sendungsnummer {tracking}.",
        ),
    },
    ("shipment.shipped", Medium.SMS): {
        "en": Template(None, "Order {number} shipped with {carrier}: {tracking}"),
        "de": Template(None, "Bestellung {number} versandt mit {carrier}: {tracking}"),
    },
    ("shipment.delivered", Medium.EMAIL): {
        "en": Template(
            "Your parcel has arrived",
            "Hello {name},\n\na parcel of your order {number} was delivered.",
        ),
        "de": Template(
            "Ihr Paket ist angekommen",
            "Hallo {name},\n\nein Paket Ihrer Bestellung {number} wurde zugestellt.",
        ),
    },
    ("order.cancelled", Medium.EMAIL): {
        "en": Template(
            "Your order {number} is cancelled",
            "Hello {name},\n\nyour order {number} has been cancelled. Any "
            "payment taken is returned to you.",
        ),
        "de": Template(
            "Ihre Bestellung {number} wurde storniert",
            "Hallo {name},\n\nIhre Bestellung {number} wurde storniert. "
            "Bereits gezahlte Beträge erhalten Sie zurück.",
        ),
    },
    ("payment.refunded", Medium.EMAIL): {
        "en": Template(
            "Refund for your order {number}",
            "Hello {name},\n\nwe have refunded {amount} for your order {number}.",
        ),
        "de": Template(
            "Erstattung zu Ihrer Bestellung {number}",
            "Hallo {name},\n\nwir haben {amount} zu Ihrer Bestellung {number} "
            "erstattet.",
        ),
    },
    ("return.authorized", Medium.EMAIL): {
        "en": Template(
            "Your return {rma}",
            "Hello {name},\n\nyour return {rma} for order {number} is accepted. "
            "Please send the goods with the {carrier} label {tracking}.",
        ),
        "de": Template(
            "Ihre Rücksendung {rma}",
            "Hallo {name},\n\nIhre Rücksendung {rma} zur Bestellung {number} "
            "ist angenommen. Bitte senden Sie die Ware mit dem {carrier}-Etikett "
            "{tracking}.",
        ),
    },
}

NOTIFY_EVENTS = frozenset(event for event, _ in TEMPLATES)
DEFAULT_LANGUAGE = "en"


def templates_for(event_type: str, language: str) -> dict[Medium, Template]:
    """The messages for an event, by medium, in `language` or else English."""
    found: dict[Medium, Template] = {}
    for (event, medium), texts in TEMPLATES.items():
        if event == event_type:
            found[medium] = texts.get(language) or texts[DEFAULT_LANGUAGE]
    return found
