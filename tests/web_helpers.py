"""Helpers for the HTTP-side tests: certificates made with the `openssl` command, web config files,
and the exporter started with a web config and HTTP limits."""

from __future__ import annotations

import base64
import contextlib
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import bcrypt
import yaml

from exporter.apiserver import KubeApiTestServer
from exporter.app import Exporter, ExporterConfig
from exporter.httpserver import HttpLimits
from exporter.kube.config import load_cluster_access
from exporter.kube.reflector import ReflectorOptions
from exporter.webconfig import WebConfig
from tests.conftest import TEST_REFLECTOR

PKI_NAMES = (
    "ca",
    "ca-key",
    "server",
    "server-key",
    "client",
    "client-key",
    "other-ca",
    "other-ca-key",
    "other-client",
    "other-client-key",
)


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _key_and_csr(key: Path, csr: Path, subject: str) -> None:
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-subj", subject, "-keyout", str(key), "-out", str(csr),
    )  # fmt: skip


def make_pki(directory: Path) -> dict[str, Path]:
    """Two CAs; the first signs a server certificate for 127.0.0.1 and a client certificate, the
    second ("other") signs another client certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {name: directory / f"{name}.pem" for name in PKI_NAMES}
    for ca in ("ca", "other-ca"):
        _openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-days", "2", "-subj", f"/CN=test-{ca}",
            "-keyout", str(paths[f"{ca}-key"]), "-out", str(paths[ca]),
        )  # fmt: skip
    leaves = (
        ("server", "ca", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
        ("client", "ca", "extendedKeyUsage=clientAuth"),
        ("other-client", "other-ca", "extendedKeyUsage=clientAuth"),
    )
    for name, ca, extensions in leaves:
        csr, ext = directory / f"{name}.csr", directory / f"{name}.ext"
        ext.write_text(extensions + "\n")
        _key_and_csr(paths[f"{name}-key"], csr, f"/CN={name}")
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(paths[ca]), "-CAkey", str(paths[f"{ca}-key"]),
            "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(paths[name]),
        )  # fmt: skip
    return paths


def bcrypt_hash(password: str, rounds: int = 4) -> str:
    """Cost 4 keeps tests fast; production hashes use 10 or more."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()


def basic_auth(user: str, password: str) -> str:
    """An Authorization header value."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def write_web_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def client_context(
    pki: dict[str, Path],
    *,
    cert: str | None = "client",
    ca: str = "ca",
    max_version: ssl.TLSVersion | None = None,
) -> ssl.SSLContext:
    """A client trusting `ca`, presenting certificate `cert` (None: none)."""
    context = ssl.create_default_context(cafile=str(pki[ca]))
    if cert is not None:
        context.load_cert_chain(pki[cert], pki[f"{cert}-key"])
    if max_version is not None:
        context.maximum_version = max_version
    return context


@contextlib.asynccontextmanager
async def exporter_with(
    api: KubeApiTestServer,
    tmp_path: Path,
    web_config: WebConfig | None = None,
    http: HttpLimits | None = None,
    kubeconfig: Path | None = None,
    wait_ready: bool = True,
    reflector: ReflectorOptions = TEST_REFLECTOR,
) -> AsyncIterator[Exporter]:
    kubeconfig = kubeconfig or api.write_kubeconfig(tmp_path / "kubeconfig")
    config = ExporterConfig(
        listen_address="127.0.0.1:0",
        reflector=reflector,
        web_config=web_config,
        http=http or HttpLimits(),
    )
    async with Exporter(load_cluster_access(str(kubeconfig)), config) as exporter:
        if wait_ready:
            await exporter.wait_ready(10)
        yield exporter


TCP_ESTABLISHED = 1


def tcp_state(sock: socket.socket) -> int:
    """The kernel's TCP state of `sock` (tcp_info.tcpi_state), read without touching its data."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]


def stalled_request(port: int, request: bytes) -> socket.socket:
    """A client that sends `request` with a 4 KiB receive buffer and then never reads."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: sets the window
    sock.connect(("127.0.0.1", port))
    sock.sendall(request)
    return sock
