"""One verifier for every inbound webhook: HMAC, freshness, no replays.

A provider signs each delivery with its own secret (`OMS_WEBHOOK_SECRETS`):

    Webhook-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>

A signature that is missing, malformed, wrong (compared in constant time) or
further than `OMS_WEBHOOK_TOLERANCE_SECONDS` from now answers 401 and changes
nothing. A delivery whose signature was accepted before is a replay: it is
acknowledged and has no effect.
"""

import hmac
import re
import time

from sqlalchemy.dialects.postgresql import insert

from api.deps import Services
from api.errors import Problem
from db.access import WebhookDelivery
from models.signatures import sign

SIGNATURE_HEADER = "Webhook-Signature"
_SIGNATURE = re.compile(r"^t=(\d{1,12}),v1=([0-9a-f]{64})$")


def check_signature(
    secret: str, header: str | None, body: bytes, tolerance: int
) -> str:
    """The signature's digest if it is valid and fresh; else 401."""
    match = _SIGNATURE.match((header or "").strip())
    timestamp = int(match.group(1)) if match else 0
    given = match.group(2) if match else ""
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    fresh = abs(time.time() - timestamp) <= tolerance
    if not (match and fresh and hmac.compare_digest(expected.encode(), given.encode())):
        raise Problem(
            401,
            "invalid-signature",
            "Invalid webhook signature",
            f"{SIGNATURE_HEADER} is missing, wrong or older than {tolerance}s",
        )
    return given


async def verify_delivery(
    services: Services, provider: str, header: str | None, body: bytes
) -> bool:
    """Check a delivery's signature; True if it is new, False if a replay."""
    settings = services.settings
    secret = settings.webhook_secrets.get(provider)
    if secret is None:
        raise Problem(404, "provider-not-found", "Unknown webhook provider", provider)
    digest = check_signature(
        secret.get_secret_value(), header, body, settings.webhook_tolerance_seconds
    )
    async with services.engine.begin() as conn:
        recorded = await conn.execute(
            insert(WebhookDelivery)
            .values(provider=provider, signature=digest)
            .on_conflict_do_nothing()
            .returning(WebhookDelivery.signature)
        )
        return recorded.first() is not None
