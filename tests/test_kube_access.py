"""How the exporter reaches the API server: TLS with a CA bundle and client certificates, bearer
tokens from exec plugins, and in-cluster service-account tokens that rotate."""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
from pathlib import Path

import pytest

from exporter.apiserver import KubeApiTestServer
from exporter.app import Exporter, ExporterConfig
from exporter.kube.config import ClusterAccess, KubeConfigError, ServiceAccountToken, load_cluster_access
from exporter.kube.reflector import ReflectorOptions
from tests.helpers import eventually, fixture

FAST = ReflectorOptions(backoff_initial=0.02, backoff_max=0.1)


async def openssl(*args: str) -> None:
    process = await asyncio.create_subprocess_exec("openssl", *args, stderr=asyncio.subprocess.DEVNULL)
    assert await process.wait() == 0


async def make_pki(tmp: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA."""
    paths = {n: tmp / f"{n}.pem" for n in ("ca", "ca-key", "server", "server-key", "client", "client-key")}
    await openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        str(paths["ca-key"]),
        "-out",
        str(paths["ca"]),
    )
    for name, extra in (("server", "subjectAltName=IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth")):
        csr = tmp / f"{name}.csr"
        ext = tmp / f"{name}.ext"
        ext.write_text(extra + "\n")
        await openssl(
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-keyout",
            str(paths[f"{name}-key"]),
            "-out",
            str(csr),
        )
        await openssl(
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(paths["ca"]),
            "-CAkey",
            str(paths["ca-key"]),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            str(ext),
            "-out",
            str(paths[name]),
        )
    return paths


async def served_objects(access: ClusterAccess, timeout: float = 5) -> int:
    async with Exporter(access, ExporterConfig(listen_address="127.0.0.1:0", reflector=FAST)) as exporter:
        await exporter.wait_ready(timeout)
        return exporter.store.object_count()


async def test_tls_with_ca_bundle_and_client_certificate(tmp_path: Path) -> None:
    pki = await make_pki(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki["server"], pki["server-key"])
    context.load_verify_locations(pki["ca"])
    context.verify_mode = ssl.CERT_REQUIRED  # the server insists on a client certificate
    async with KubeApiTestServer(ssl_context=context) as api:
        api.store.apply("configmaps", fixture("deviceinfo-node133.json"))
        kubeconfig = api.write_kubeconfig(
            tmp_path / "kc", ca_file=pki["ca"], client_cert=pki["client"], client_key=pki["client-key"]
        )
        assert await served_objects(load_cluster_access(str(kubeconfig))) >= 1
        # Without the client certificate the TLS handshake fails: never ready.
        anonymous = api.write_kubeconfig(tmp_path / "kc-anon", ca_file=pki["ca"])
        with pytest.raises(TimeoutError):
            await served_objects(load_cluster_access(str(anonymous)), timeout=0.5)


async def test_exec_plugin_token(tmp_path: Path) -> None:
    plugin = tmp_path / "token-plugin.py"
    plugin.write_text(
        "import json\n"
        'print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",'
        ' "status": {"token": "from-exec-plugin"}}))\n'
    )
    async with KubeApiTestServer(token="from-exec-plugin") as api:
        api.store.apply("configmaps", fixture("deviceinfo-node133.json"))
        path = api.write_kubeconfig(tmp_path / "kc", token="")
        config = json.loads(path.read_text())
        config["users"][0]["user"] = {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": sys.executable,
                "args": [str(plugin)],
                "interactiveMode": "Never",
            }
        }
        path.write_text(json.dumps(config))
        assert await served_objects(load_cluster_access(str(path))) == 1


def test_service_account_token_is_reread_when_rotated(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first\n")
    token = ServiceAccountToken(token_file)
    assert token.header() == "Bearer first"
    replacement = tmp_path / "token.new"
    replacement.write_text("second")
    replacement.replace(token_file)  # the kubelet swaps the projected file atomically
    assert token.header() == "Bearer second"


async def test_rotated_in_cluster_token_keeps_the_watch_alive(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first")
    async with KubeApiTestServer(token="first") as api:
        api.store.apply("configmaps", fixture("deviceinfo-node133.json"))
        access = ClusterAccess(
            host=api.url, ssl_context=False, service_account=ServiceAccountToken(token_file)
        )
        async with Exporter(access, ExporterConfig(listen_address="127.0.0.1:0", reflector=FAST)) as exporter:
            await exporter.wait_ready(5)
            # The old token expires on the server; the kubelet writes a new one; streams reconnect.
            api.token = "second"
            replacement = tmp_path / "token.new"
            replacement.write_text("second")
            replacement.replace(token_file)
            api.drop_streams()
            api.store.apply("configmaps", fixture("deviceinfo-node134-healthy.json"))

            async def caught_up() -> None:
                assert exporter.store.object_count() == 2

            await eventually(caught_up)


def test_no_kubeconfig_anywhere_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(KubeConfigError, match="no kubeconfig found"):
        load_cluster_access()


def test_broken_kubeconfig_error_does_not_leak_its_contents(tmp_path: Path) -> None:
    path = tmp_path / "kc"
    path.write_text("users: [{name: x, user: {token: super-secret-token}}]\ncurrent-context: nope\n")
    with pytest.raises(KubeConfigError) as raised:
        load_cluster_access(str(path))
    assert "super-secret-token" not in str(raised.value)
