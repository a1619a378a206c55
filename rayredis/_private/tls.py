"""Optional TLS for gRPC between hosts: server and channel credentials from a cert, key and CA.

Configured by ``Config.tls_cert/tls_key/tls_ca`` (``RAYREDIS_TLS_CERT``, ``_KEY``, ``_CA``: PEM paths);
with all three set, servers require client certificates signed by the CA (mutual TLS) and
channels verify the server against it. Not wired into the processes yet (docs/security.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from rayredis.config import Config, get_config
from rayredis.exceptions import RaySystemError


@dataclass(frozen=True)
class TlsFiles:
    """PEM paths of this node's certificate, its key and the cluster's CA."""

    cert: str
    key: str
    ca: str

    @classmethod
    def from_config(cls, cfg: Config | None = None) -> TlsFiles | None:
        """The files ``Config.tls_cert/tls_key/tls_ca`` (``RAYREDIS_TLS_*``) name; None when none is set."""
        cfg = cfg or get_config()
        vals = [cfg.tls_cert, cfg.tls_key, cfg.tls_ca]
        if not any(vals):
            return None
        if not all(vals):
            raise RaySystemError("TLS needs all of RAYREDIS_TLS_CERT, RAYREDIS_TLS_KEY and RAYREDIS_TLS_CA "
                                 "(PEM files: this node's certificate, its key, the cluster's CA); "
                                 "set the missing ones")
        return cls(*vals)

    def _read(self) -> tuple[bytes, bytes, bytes]:
        out = []
        for what, path in (("certificate", self.cert), ("key", self.key), ("CA", self.ca)):
            try:
                with open(path, "rb") as f:
                    out.append(f.read())
            except OSError as e:
                raise RaySystemError(f"cannot read the TLS {what} {path}: {e}") from e
        return out[0], out[1], out[2]

    def server_credentials(self) -> grpc.ServerCredentials:
        """Credentials for ``server.add_secure_port``: this node's cert, clients must present one the CA signed."""
        cert, key, ca = self._read()
        return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """Credentials for ``grpc.aio.secure_channel``: verify the server by the CA, present this node's cert."""
        cert, key, ca = self._read()
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
