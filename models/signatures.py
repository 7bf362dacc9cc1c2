"""HMAC signatures of webhook bodies, one scheme both ways:

    t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>

Providers sign what they send us with it (`Webhook-Signature`), and we sign
what we send subscribers (`OMS-Signature`).
"""

import hashlib
import hmac


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value for a body."""
    digest = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return f"t={timestamp},v1={digest}"
