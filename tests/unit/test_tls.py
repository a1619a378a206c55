"""gRPC with mutual TLS from a throwaway CA made in the test: a client with a CA-signed certificate
gets through, one without a certificate or from another CA is refused."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from rayredis._private.tls import TlsFiles
from rayredis.config import Config
from rayredis.exceptions import RaySystemError


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key: Any, issuer: str, issuer_key: Any, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _pki(d: Path, name: str) -> TlsFiles:
    """A CA and one certificate it signed (for localhost), written under ``d``."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _cert(f"{name}-ca", ca_key, f"{name}-ca", ca_key, True)
    cert = _cert("localhost", key, f"{name}-ca", ca_key, False)
    pem = serialization.Encoding.PEM
    (d / f"{name}-ca.pem").write_bytes(ca.public_bytes(pem))
    (d / f"{name}.pem").write_bytes(cert.public_bytes(pem))
    (d / f"{name}.key").write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    return TlsFiles(str(d / f"{name}.pem"), str(d / f"{name}.key"), str(d / f"{name}-ca.pem"))


def test_mutual_tls(tmp_path: Path) -> None:
    good, other = _pki(tmp_path, "cluster"), _pki(tmp_path, "other")

    async def echo(request: bytes, context: Any) -> bytes:
        return request

    async def call(port: int, creds: grpc.ChannelCredentials) -> bytes:
        opts = [("grpc.ssl_target_name_override", "localhost")]
        async with grpc.aio.secure_channel(f"127.0.0.1:{port}", creds, options=opts) as ch:
            out: bytes = await ch.unary_unary("/rayredis.Test/Echo")(b"hi", timeout=10)
            return out

    async def main() -> None:
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "rayredis.Test", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}),))
        port = server.add_secure_port("127.0.0.1:0", good.server_credentials())
        await server.start()
        try:
            assert await call(port, good.channel_credentials()) == b"hi"
            no_cert = grpc.ssl_channel_credentials(root_certificates=Path(good.ca).read_bytes())
            for creds in (no_cert, other.channel_credentials()):
                with pytest.raises(grpc.aio.AioRpcError) as e:
                    await call(port, creds)
                assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        finally:
            await server.stop(0)

    asyncio.run(main())


def test_partial_configuration_names_the_missing_variables() -> None:
    assert TlsFiles.from_config(Config()) is None
    with pytest.raises(RaySystemError, match="RAYREDIS_TLS_KEY"):
        TlsFiles.from_config(dataclasses.replace(Config(), tls_cert="/x.pem"))
