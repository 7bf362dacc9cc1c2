"""Cursor paging: a cursor is the (created_at, id) of the last item seen."""

import base64
import binascii
import uuid
from datetime import datetime

from api.errors import Problem


def encode_cursor(created_at: datetime, item_id: str) -> str:
    raw = f"{created_at.isoformat()}|{item_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, item_id = raw.split("|")
        return datetime.fromisoformat(created_at), str(uuid.UUID(item_id))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Problem(
            422, "invalid-cursor", "Invalid cursor", "pass back a next_cursor unchanged"
        ) from None
