"""Customer data never reaches a Temporal history in clear."""

import asyncio
import base64
import json
import re

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client

from models.orders import Address, Customer, workflow_id_for
from tests.conftest import FIRST, MakeProduct
from tests.helpers import finished, place_order, start_order
from workers.codec import CodecError, EncryptionCodec, new_key, open_text, seal_text
from workers.codec_server import create_codec_app
from workers.embedded import wheel_binary
from workers.settings import Settings
from workers.worker import WorkerGroup


def plain(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=text.encode())


async def test_sealed_payloads_open_with_their_key_even_after_rotation() -> None:
    old_key, new = new_key(), new_key()
    before = EncryptionCodec({"k1": old_key}, "k1")
    after = EncryptionCodec({"k1": old_key, "k2": new}, "k2")

    sealed_before = await before.encode([plain('{"email": "ada@example.com"}')])
    sealed_after = await after.encode([plain("later")])

    assert b"ada@example.com" not in sealed_before[0].data
    assert sealed_after[0].metadata["encryption-key-id"] == b"k2"
    assert (await after.decode(sealed_before))[
        0
    ].data == b'{"email": "ada@example.com"}'
    assert (await after.decode(sealed_after))[0].data == b"later"
    with pytest.raises(CodecError, match="no key"):
        await before.decode(sealed_after)
    # Histories from before encryption open as they are.
    assert (await after.decode([plain("old")]))[0].data == b"old"


async def test_a_tampered_payload_is_refused() -> None:
    codec = EncryptionCodec({"k1": new_key()}, "k1")
    [sealed] = await codec.encode([plain("amount 10.00")])
    sealed.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])

    with pytest.raises(CodecError, match="integrity"):
        await codec.decode([sealed])


async def test_history_read_without_the_key_shows_no_customer_data(
    client: Client,
    worker: WorkerGroup,
    settings: Settings,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 1})
    order = place_order([(sku, 1)])
    order.customer = Customer(
        email="grace.hopper@navy.example", name="Grace Hopper", phone="+1 555 0100"
    )
    order.shipping_address = Address(
        country="US", city="Arlington", postal_code="22201", line1="Cobol Street 7"
    )
    state = await finished(
        await start_order(client, order, settings.temporal_task_queue)
    )
    workflows = [workflow_id_for(order.order_id)] + [
        f"{workflow_id_for(order.order_id)}-shipment-{s.number}"
        for s in state.shipments
    ]

    address = client.service_client.config.target_host
    for workflow_id in workflows:
        as_json = await _cli(
            "workflow", "show", "--address", address, "-w", workflow_id, "-o", "json"
        )
        payloads = "".join(
            base64.b64decode(data).decode(errors="replace")
            for data in re.findall(r'"data":\s*"([A-Za-z0-9+/=]+)"', as_json)
        )
        assert "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED" in as_json
        for secret in ("grace.hopper", "Grace Hopper", "555 0100", "Cobol Street"):
            assert secret not in payloads, f"{secret!r} in the history of {workflow_id}"


async def _cli(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        wheel_binary("temporal"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_codec_server_decodes_for_the_ui_origin_only(settings: Settings) -> None:
    app = create_codec_app(settings)
    transport = httpx.ASGITransport(app=app)
    secret = json_format.MessageToJson(Payloads(payloads=[plain('"Grace Hopper"')]))
    ui = {"Origin": "http://localhost:8233", "Content-Type": "application/json"}

    async with httpx.AsyncClient(transport=transport, base_url="http://codec") as http:
        encoded = await http.post("/encode", content=secret, headers=ui)
        decoded = await http.post("/decode", content=encoded.content, headers=ui)
        preflight = await http.options(
            "/decode",
            headers={
                "Origin": "http://evil.example",
                "Access-Control-Request-Method": "POST",
            },
        )

    assert "Grace Hopper" not in encoded.text
    assert encoded.headers["access-control-allow-origin"] == "http://localhost:8233"
    payload = json.loads(decoded.text)["payloads"][0]
    assert (
        json_format.ParseDict({"payloads": [payload]}, Payloads()).payloads[0].data
        == b'"Grace Hopper"'
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_a_stored_secret_opens_only_in_its_place_and_with_its_key() -> None:
    old, new = new_key(), new_key()
    sealed = seal_text({"k1": old}, "k1", "whsec_abc", "subscription-1")

    assert "whsec_abc" not in sealed
    # After rotation the old key still opens what it sealed.
    assert open_text({"k1": old, "k2": new}, sealed, "subscription-1") == "whsec_abc"
    with pytest.raises(CodecError):
        open_text({"k1": old}, sealed, "subscription-2")
    with pytest.raises(CodecError):
        open_text({"k2": new}, sealed, "subscription-1")
    # Without keys nothing is sealed, and what was never sealed opens as is.
    assert seal_text({}, "", "whsec_abc", "subscription-1") == "whsec_abc"
    assert open_text({"k1": old}, "whsec_abc", "subscription-1") == "whsec_abc"
