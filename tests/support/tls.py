"""A TLS-only ``redis-server`` on loopback, with certificates the test makes (``openssl``).

:func:`make_pki` writes a CA, a server certificate for 127.0.0.1 signed by it, a client certificate,
and a second CA that signed nothing here (the wrong one). :class:`TlsRedis` listens with TLS only
(``--port 0``) and asks clients for a certificate (``tls-auth-clients yes``).
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import redis

from storefront_jobs.embedded import EmbeddedRedis


@dataclasses.dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    wrong_ca: Path

    def settings(self, *, ca: Path | None = None) -> dict[str, str]:
        """The BROKER_TLS__* settings of a client (as ``worker_env`` keywords)."""
        return {
            "broker_tls__ca_file": str(ca or self.ca),
            "broker_tls__cert_file": str(self.client_cert),
            "broker_tls__key_file": str(self.client_key),
        }


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ca(folder: Path, name: str) -> Path:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
             "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=folder)  # fmt: skip
    return folder / f"{name}.crt"


def _signed(folder: Path, name: str, ca: str, extension: str) -> tuple[Path, Path]:
    (folder / f"{name}.ext").write_text(extension + "\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=folder)  # fmt: skip
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt",
             cwd=folder)  # fmt: skip
    return folder / f"{name}.crt", folder / f"{name}.key"


def make_pki(folder: Path) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    ca = _ca(folder, "ca")
    server_cert, server_key = _signed(folder, "server", "ca", "subjectAltName=IP:127.0.0.1")
    client_cert, client_key = _signed(folder, "client", "ca", "extendedKeyUsage=clientAuth")
    wrong_ca = _ca(folder, "wrong-ca")
    return Pki(ca, server_cert, server_key, client_cert, client_key, wrong_ca)


class TlsRedis(EmbeddedRedis):
    """A redis-server that speaks TLS only, on ``port``."""

    def __init__(self, pki: Pki, data_dir: Path) -> None:
        super().__init__(data_dir=data_dir)
        self.pki = pki

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        args = super().command()
        args[args.index("--port") + 1] = "0"
        return [
            *args,
            "--tls-port", str(self.port),
            "--tls-cert-file", str(self.pki.server_cert),
            "--tls-key-file", str(self.pki.server_key),
            "--tls-ca-cert-file", str(self.pki.ca),
            "--tls-auth-clients", "yes",
        ]  # fmt: skip

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(
            self.url,
            ssl_ca_certs=str(self.pki.ca),
            ssl_certfile=str(self.pki.client_cert),
            ssl_keyfile=str(self.pki.client_key),
        )

    def wait_ready(self, timeout_s: float) -> None:
        import time

        deadline = time.monotonic() + timeout_s
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"redis-server (TLS) exited; see {self.data_dir}/redis.log")
            try:
                with self.client() as client:
                    if client.ping():
                        return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server (TLS) on port {self.port} did not start in {timeout_s} s")
            time.sleep(0.05)
