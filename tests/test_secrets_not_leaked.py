"""Secrets never reach the logs or /metrics: the kubeconfig's bearer token and client key, the
basic-auth passwords (right and wrong) and their bcrypt hashes, through API-server 401s, failed
logins on /metrics and broken kubeconfig / web config files. Every log record of every logger,
debug level included, is captured through the exporter's JSON formatter."""

from __future__ import annotations

import base64
import io
import json
import logging
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from exporter.apiserver import KubeApiTestServer
from exporter.kube.config import KubeConfigError, load_cluster_access
from exporter.logs import JsonFormatter
from exporter.webconfig import WebConfigError, load_web_config
from tests.helpers import eventually, fixture
from tests.web_helpers import (
    basic_auth,
    bcrypt_hash,
    client_context,
    exporter_with,
    make_pki,
    write_web_config,
)

TOKEN = "kubeconfig-bearer-token-7f3a9c"  # what the kubeconfig holds (the API server wants another)
SERVER_TOKEN = "apiserver-expects-token-21be"
PASSWORD = "scrape-password-b81d"
WRONG_PASSWORDS = ("guessed-password-0c4e", "another-guess-99aa")


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Every record from every logger, at debug level, formatted as the exporter writes them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def key_material(pem: Path) -> list[str]:
    """The PEM's base64 lines, the whole file base64-encoded (kubeconfig *-data) and its DER bytes
    as base64 in one line: any of these in a log would leak the key."""
    text = pem.read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("-----")]
    return [*lines, "".join(lines), base64.b64encode(text.encode()).decode()[:40]]


def assert_clean(text: str, secrets: list[str], where: str) -> None:
    for secret in secrets:
        assert secret not in text, f"secret {secret[:6]}… leaked into {where}"


async def test_no_secret_in_logs_or_metrics(tmp_path: Path, captured: io.StringIO) -> None:
    pki = make_pki(tmp_path / "pki")
    password_hash = bcrypt_hash(PASSWORD)
    client_key_pem = pki["client-key"]
    secrets = [
        TOKEN,
        SERVER_TOKEN,
        PASSWORD,
        *WRONG_PASSWORDS,
        password_hash,
        password_hash[7:],  # salt and digest without the prefix
        *key_material(client_key_pem),
        *key_material(pki["server-key"]),
        basic_auth("prometheus", PASSWORD).split()[1],
        *(basic_auth("prometheus", wrong).split()[1] for wrong in WRONG_PASSWORDS),
    ]

    # The API server over TLS with client certificates and a token the kubeconfig does not have.
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(pki["server"], pki["server-key"])
    server_context.load_verify_locations(pki["ca"])
    server_context.verify_mode = ssl.CERT_REQUIRED
    web_config_path = write_web_config(
        tmp_path / "web.yml",
        {
            "tls_server_config": {"cert_file": str(pki["server"]), "key_file": str(pki["server-key"])},
            "basic_auth_users": {"prometheus": password_hash},
        },
    )
    web_config = load_web_config(web_config_path)
    metrics_body = ""
    async with KubeApiTestServer(ssl_context=server_context, token=SERVER_TOKEN) as api:
        api.store.apply("configmaps", fixture("deviceinfo-node133.json"))
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig", token=TOKEN, ca_file=pki["ca"])
        config = json.loads(kubeconfig.read_text())
        config["users"][0]["user"].update(
            {
                "client-certificate-data": base64.b64encode(pki["client"].read_bytes()).decode(),
                "client-key-data": base64.b64encode(client_key_pem.read_bytes()).decode(),
            }
        )
        kubeconfig.write_text(json.dumps(config))

        running = exporter_with(api, tmp_path, web_config, kubeconfig=kubeconfig, wait_ready=False)
        async with running as exporter:
            # 1. The API server answers 401: the exporter logs the failure and keeps retrying.
            async def unauthorized_logged() -> None:
                assert '"status":401' in captured.getvalue()

            await eventually(unauthorized_logged)

            # 2. Failed and successful logins on /metrics, over TLS.
            url = f"https://127.0.0.1:{exporter.port}/metrics"
            context = client_context(pki, cert=None)
            async with aiohttp.ClientSession() as session:
                for wrong in WRONG_PASSWORDS:
                    headers = {"Authorization": basic_auth("prometheus", wrong)}
                    async with session.get(url, ssl=context, headers=headers) as resp:
                        assert resp.status == 401
                # A password typed into the user name field.
                headers = {"Authorization": basic_auth(WRONG_PASSWORDS[0], WRONG_PASSWORDS[1])}
                async with session.get(url, ssl=context, headers=headers) as resp:
                    assert resp.status == 401
                async with session.get(url, ssl=context) as resp:
                    assert resp.status == 401

                # 3. The token becomes valid: the exporter recovers and serves the objects.
                api.token = TOKEN

                async def recovered() -> None:
                    assert exporter.store.object_count() == 1

                await eventually(recovered)
                headers = {"Authorization": basic_auth("prometheus", PASSWORD)}
                async with session.get(url, ssl=context, headers=headers) as resp:
                    assert resp.status == 200
                    metrics_body = await resp.text()
                assert "mindx_npu_chip_fault_level{" in metrics_body

    # 4. Broken files: error messages (printed by the CLI, maybe logged) must not carry secrets.
    broken = tmp_path / "broken-kubeconfig"
    config["users"][0]["user"]["client-key-data"] = "!!" + config["users"][0]["user"]["client-key-data"]
    config["current-context"] = "missing"
    broken.write_text(json.dumps(config))
    with pytest.raises(KubeConfigError) as kube_error:
        load_cluster_access(str(broken))
    bad_web = tmp_path / "bad-web.yml"
    bad_web.write_text(f"basic_auth_users:\n  prometheus: {PASSWORD}\n  other: '{password_hash}\n")
    with pytest.raises(WebConfigError) as web_error:
        load_web_config(bad_web)
    cli = subprocess.run(
        [sys.executable, "-m", "exporter", f"--kubeconfig={broken}", f"--web.config.file={web_config_path}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert cli.returncode == 2 and "cannot load kubeconfig" in cli.stderr

    logs = captured.getvalue()
    assert "rejected request with invalid credentials" in logs  # the failures were logged ...
    assert_clean(logs, secrets, "the logs")  # ... without what was tried
    assert_clean(metrics_body, secrets, "/metrics")
    assert_clean(str(kube_error.value), secrets, "the kubeconfig error")
    assert_clean(str(web_error.value), secrets, "the web config error")
    assert_clean(cli.stdout + cli.stderr, secrets, "the CLI output")
    # Every captured line is one JSON object (nothing bypassed the formatter's structure).
    for line in logs.splitlines():
        json.loads(line)
