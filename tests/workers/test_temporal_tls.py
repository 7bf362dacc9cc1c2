"""The Temporal connection from settings: TLS, mutual TLS and API keys.

The dev server speaks plain gRPC, so the mutual-TLS test puts a TLS proxy
of its own in front of it, with certificates made here for the test.
"""

import asyncio
import contextlib
import datetime
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.service import TLSConfig

from workers.settings import Settings
from workers.temporal import TemporalConfigError, connect, connect_options

SERVER_NAME = "temporal.oms.test"


def test_plain_connection_unless_told(settings: Settings) -> None:
    options = connect_options(settings)

    assert options["tls"] is False and options["api_key"] is None
    assert options["namespace"] == settings.temporal_namespace


def test_an_api_key_implies_tls_with_the_system_roots(settings: Settings) -> None:
    cloud = settings.model_copy(
        update={
            "temporal_api_key": SecretStr("key-123"),
            "temporal_namespace": "shop.a1b2c",
        }
    )

    options = connect_options(cloud)

    assert options["tls"] is True
    assert options["api_key"] == "key-123"
    assert options["namespace"] == "shop.a1b2c"


def test_certificate_files_are_read_into_the_tls_config(
    settings: Settings, tmp_path: Path
) -> None:
    pki = make_pki(tmp_path)

    options = connect_options(mutual_tls(settings, pki))

    tls = options["tls"]
    assert isinstance(tls, TLSConfig)
    assert tls.client_cert == pki["client.pem"].read_bytes()
    assert tls.client_private_key == pki["client.key"].read_bytes()
    assert tls.server_root_ca_cert == pki["ca.pem"].read_bytes()
    assert tls.domain == SERVER_NAME


def test_a_certificate_without_its_key_is_refused(
    settings: Settings, tmp_path: Path
) -> None:
    pki = make_pki(tmp_path)
    half = settings.model_copy(update={"temporal_tls_cert": pki["client.pem"]})

    with pytest.raises(TemporalConfigError, match="OMS_TEMPORAL_TLS_KEY"):
        connect_options(half)


def test_a_missing_file_names_its_setting(settings: Settings, tmp_path: Path) -> None:
    missing = settings.model_copy(update={"temporal_tls_ca": tmp_path / "nope.pem"})

    with pytest.raises(TemporalConfigError, match="OMS_TEMPORAL_TLS_CA: cannot read"):
        connect_options(missing)


async def test_mutual_tls_settings_reach_a_server_that_checks_them(
    settings: Settings, client: Client, tmp_path: Path
) -> None:
    pki = make_pki(tmp_path)
    async with tls_proxy(client.service_client.config.target_host, pki) as address:
        trusted = mutual_tls(settings, pki, address)
        anonymous = trusted.model_copy(
            update={"temporal_tls_cert": None, "temporal_tls_key": None}
        )

        connected = await connect(trusted)
        health = await connected.service_client.check_health()
        with pytest.raises(RuntimeError):
            await connect(anonymous)

    assert health


def mutual_tls(settings: Settings, pki: dict[str, Path], address: str = "") -> Settings:
    return settings.model_copy(
        update={
            "temporal_address": address,
            "temporal_tls_cert": pki["client.pem"],
            "temporal_tls_key": pki["client.key"],
            "temporal_tls_ca": pki["ca.pem"],
            "temporal_tls_server_name": SERVER_NAME,
        }
    )


def make_pki(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for SERVER_NAME and a client one, as PEM files."""
    now = datetime.datetime.now(datetime.UTC)

    def issue(
        subject: str,
        key: ec.EllipticCurvePrivateKey,
        issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
        ca: bool = False,
    ) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        issuer_name, issuer_key = issuer or (name, key)
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(subject)]), False
            )
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = issue("OMS test CA", ca_key, None, ca=True)
    files = {"ca.pem": ca_cert.public_bytes(serialization.Encoding.PEM)}
    for role, subject in (("server", SERVER_NAME), ("client", "oms-worker")):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = issue(subject, key, (ca_cert.subject, ca_key))
        files[f"{role}.pem"] = cert.public_bytes(serialization.Encoding.PEM)
        files[f"{role}.key"] = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    paths = {}
    for name, content in files.items():
        paths[name] = folder / name
        paths[name].write_bytes(content)
    return paths


@contextlib.asynccontextmanager
async def tls_proxy(upstream: str, pki: dict[str, Path]) -> AsyncIterator[str]:
    """Terminate mutual TLS on a local port and pass the bytes to `upstream`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki["server.pem"], pki["server.key"])
    context.load_verify_locations(pki["ca.pem"])
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2"])
    host, port = upstream.rsplit(":", 1)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    async with server:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
