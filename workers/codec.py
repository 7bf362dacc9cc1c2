"""Encrypt every Temporal payload, so histories carry no customer data in clear.

Payloads (workflow and activity inputs and results, signals, updates, queries,
and failure messages) are sealed with AES-256-GCM before they leave the
process. The key id travels in the payload's metadata, so keys can rotate:
new payloads use the current key, old ones open with the key they name.
Payloads that were never encrypted pass through unchanged, so histories
recorded before encryption was turned on still replay.
"""

import base64
import dataclasses
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12


class CodecError(Exception):
    """A payload cannot be opened (unknown key id, or tampered with)."""


def new_key() -> str:
    """A fresh 256-bit key, in the form the settings take."""
    return base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)).decode()


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: dict[str, str], current: str) -> None:
        if current not in keys:
            raise ValueError(f"the current key id {current!r} has no key")
        self._keys = {
            key_id: AESGCM(base64.urlsafe_b64decode(key))
            for key_id, key in keys.items()
        }
        self._current = current

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        sealer = self._keys[self._current]
        sealed = []
        for payload in payloads:
            nonce = os.urandom(NONCE_BYTES)
            sealed.append(
                Payload(
                    metadata={"encoding": ENCODING, KEY_ID: self._current.encode()},
                    data=nonce
                    + sealer.encrypt(nonce, payload.SerializeToString(), None),
                )
            )
        return sealed

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        opened = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                opened.append(payload)
                continue
            key_id = payload.metadata.get(KEY_ID, b"").decode()
            opener = self._keys.get(key_id)
            if opener is None:
                raise CodecError(f"no key with id {key_id!r} to open a payload")
            nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
            try:
                opened.append(Payload.FromString(opener.decrypt(nonce, sealed, None)))
            except InvalidTag:
                raise CodecError("a payload failed its integrity check") from None
        return opened


SEALED = "sealed:v1:"


def seal_text(keys: dict[str, str], current: str, text: str, context: str) -> str:
    """`text` encrypted with the current key, for a secret kept in the
    database; `context` (such as the row's id) binds it to its place, so a
    sealed value copied elsewhere does not open. Without keys it stays as
    it is."""
    if not keys:
        return text
    nonce = os.urandom(NONCE_BYTES)
    sealer = AESGCM(base64.urlsafe_b64decode(keys[current]))
    data = nonce + sealer.encrypt(nonce, text.encode(), context.encode())
    return f"{SEALED}{current}:{base64.urlsafe_b64encode(data).decode()}"


def open_text(keys: dict[str, str], stored: str, context: str) -> str:
    """The text `seal_text` sealed (a value never sealed is returned as is)."""
    if not stored.startswith(SEALED):
        return stored
    key_id, _, data = stored.removeprefix(SEALED).rpartition(":")
    if key_id not in keys:
        raise CodecError(f"no key with id {key_id!r} to open a stored secret")
    raw = base64.urlsafe_b64decode(data)
    opener = AESGCM(base64.urlsafe_b64decode(keys[key_id]))
    try:
        return opener.decrypt(
            raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode()
        ).decode()
    except InvalidTag:
        raise CodecError("a stored secret failed its integrity check") from None


def data_converter(keys: dict[str, str], current: str) -> DataConverter:
    """Pydantic payloads, encrypted when keys are configured."""
    if not keys:
        return pydantic_data_converter
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=EncryptionCodec(keys, current),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
