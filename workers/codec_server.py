"""`oms codec-server`: the codec endpoint the Temporal UI decodes payloads with.

Implements Temporal's remote codec protocol (`POST /encode`, `POST /decode`,
JSON-encoded `Payloads`) with the same keys as the worker and the API, so
engineers read histories in clear in the UI while the cluster stores them
encrypted. It answers only the UI origins in `OMS_CODEC_CORS_ORIGINS`; run it
where only people allowed to see customer data can reach it.
"""

from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from workers.codec import CodecError, EncryptionCodec
from workers.settings import Settings


def create_codec_app(settings: Settings) -> FastAPI:
    if not settings.codec_keys:
        raise SystemExit("oms codec-server: set OMS_CODEC_KEYS and OMS_CODEC_KEY_ID")
    codec = EncryptionCodec(settings.codec_secrets, settings.codec_key_id)
    app = FastAPI(title="OMS payload codec", docs_url=None, redoc_url=None)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.codec_cors_origins,
        allow_credentials=True,
        allow_methods=["POST"],
        allow_headers=["content-type", "x-namespace", "authorization"],
    )

    async def convert(request: Request, decode: bool) -> Response:
        try:
            payloads = json_format.Parse(await request.body(), Payloads())
        except json_format.ParseError as error:
            return Response(str(error), status_code=400)
        convert = codec.decode if decode else codec.encode
        try:
            done = await convert(list(payloads.payloads))
        except CodecError as error:
            return Response(str(error), status_code=400)
        body = json_format.MessageToJson(Payloads(payloads=done))
        return Response(body, media_type="application/json")

    @app.post("/encode")
    async def encode(request: Request) -> Response:
        return await convert(request, decode=False)

    @app.post("/decode")
    async def decode(request: Request) -> Response:
        return await convert(request, decode=True)

    return app
