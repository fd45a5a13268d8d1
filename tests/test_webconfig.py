"""`--web.config.file`: TLS (server and client certificates, protocol versions) and basic auth on the
exporter, with real TLS clients, certificates made by the `openssl` command, and the real
Prometheus scraping over TLS with basic auth."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import bcrypt
import pytest
import yaml

from exporter import webconfig
from exporter.apiserver import KubeApiTestServer
from exporter.app import Exporter
from exporter.webconfig import BasicAuth, WebConfigError, load_web_config, parse_basic_authorization
from tests.helpers import eventually, fixture
from tests.web_helpers import (
    basic_auth,
    bcrypt_hash,
    client_context,
    exporter_with,
    make_pki,
    write_web_config,
)

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def password_hash() -> str:
    return bcrypt_hash(PASSWORD)


def tls_section(pki: dict[str, Path], **extra: Any) -> dict[str, Any]:
    return {"cert_file": str(pki["server"]), "key_file": str(pki["server-key"]), **extra}


def mtls_section(pki: dict[str, Path], **extra: Any) -> dict[str, Any]:
    return tls_section(
        pki, client_auth_type="RequireAndVerifyClientCert", client_ca_file=str(pki["ca"]), **extra
    )


async def fetch(
    url: str, *, context: ssl.SSLContext | None = None, auth: str | None = None
) -> tuple[int, bytes, dict[str, str]]:
    headers = {"Authorization": auth} if auth is not None else {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, ssl=context if context is not None else True, headers=headers) as resp,
    ):
        return resp.status, await resp.read(), dict(resp.headers)


def https(exporter: Exporter, path: str = "/metrics") -> str:
    return f"https://127.0.0.1:{exporter.port}{path}"


def http(exporter: Exporter, path: str = "/metrics") -> str:
    return f"http://127.0.0.1:{exporter.port}{path}"


@pytest.fixture
async def loaded_api(api: KubeApiTestServer) -> AsyncIterator[KubeApiTestServer]:
    api.store.apply("configmaps", fixture("deviceinfo-node133.json"))
    yield api


# --- TLS ---------------------------------------------------------------------------------------


async def test_mutual_tls_valid_client_is_served(
    loaded_api: KubeApiTestServer, tmp_path: Path, pki: dict[str, Path]
) -> None:
    config = load_web_config(write_web_config(tmp_path / "web.yml", {"tls_server_config": mtls_section(pki)}))
    async with exporter_with(loaded_api, tmp_path, config) as exporter:
        status, body, _ = await fetch(https(exporter), context=client_context(pki))
        assert status == 200 and b"mindx_npu_chip_fault_level{" in body
        # Probes are served over the same TLS listener (here: with the client certificate too).
        assert (await fetch(https(exporter, "/readyz"), context=client_context(pki)))[0] == 200
        # Plain HTTP to a TLS port gets no metrics.
        with pytest.raises(aiohttp.ClientError):
            await fetch(http(exporter))


async def test_mutual_tls_rejects_missing_or_foreign_client_certificates(
    loaded_api: KubeApiTestServer, tmp_path: Path, pki: dict[str, Path]
) -> None:
    config = load_web_config(write_web_config(tmp_path / "web.yml", {"tls_server_config": mtls_section(pki)}))
    async with exporter_with(loaded_api, tmp_path, config) as exporter:
        with pytest.raises(aiohttp.ClientError):  # no client certificate
            await fetch(https(exporter), context=client_context(pki, cert=None))
        with pytest.raises(aiohttp.ClientError):  # certificate signed by a CA the server does not trust
            await fetch(https(exporter), context=client_context(pki, cert="other-client"))
        # The listener is still healthy afterwards.
        assert (await fetch(https(exporter), context=client_context(pki)))[0] == 200


async def test_client_that_trusts_another_ca_refuses_the_server(
    loaded_api: KubeApiTestServer, tmp_path: Path, pki: dict[str, Path]
) -> None:
    config = load_web_config(write_web_config(tmp_path / "web.yml", {"tls_server_config": tls_section(pki)}))
    async with exporter_with(loaded_api, tmp_path, config) as exporter:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await fetch(https(exporter), context=client_context(pki, cert=None, ca="other-ca"))
        assert (await fetch(https(exporter), context=client_context(pki, cert=None)))[0] == 200


async def test_verify_client_cert_if_given(
    loaded_api: KubeApiTestServer, tmp_path: Path, pki: dict[str, Path]
) -> None:
    section = tls_section(pki, client_auth_type="VerifyClientCertIfGiven", client_ca_file=str(pki["ca"]))
    config = load_web_config(write_web_config(tmp_path / "web.yml", {"tls_server_config": section}))
    async with exporter_with(loaded_api, tmp_path, config) as exporter:
        assert (await fetch(https(exporter), context=client_context(pki, cert=None)))[0] == 200
        assert (await fetch(https(exporter), context=client_context(pki)))[0] == 200
        with pytest.raises(aiohttp.ClientError):
            await fetch(https(exporter), context=client_context(pki, cert="other-client"))


async def test_min_version_tls13_refuses_a_tls12_client(
    loaded_api: KubeApiTestServer, tmp_path: Path, pki: dict[str, Path]
) -> None:
    section = tls_section(pki, min_version="TLS13")
    config = load_web_config(write_web_config(tmp_path / "web.yml", {"tls_server_config": section}))
    async with exporter_with(loaded_api, tmp_path, config) as exporter:
        tls12 = client_context(pki, cert=None, max_version=ssl.TLSVersion.TLSv1_2)
        with pytest.raises(aiohttp.ClientError):
            await fetch(https(exporter), context=tls12)
        assert (await fetch(https(exporter), context=client_context(pki, cert=None)))[0] == 200


async def test_max_version_and_cipher_suites(
    loaded_api: KubeApiTestServer, tmp_path: Path, pki: dict[str, Path]
) -> None:
    section = tls_section(pki, max_version="TLS12", cipher_suites=["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"])
    config = load_web_config(write_web_config(tmp_path / "web.yml", {"tls_server_config": section}))
    async with exporter_with(loaded_api, tmp_path, config) as exporter:
        context = client_context(pki, cert=None)
        assert (await fetch(https(exporter), context=context))[0] == 200
        _, writer = await asyncio.open_connection("127.0.0.1", exporter.port, ssl=context)
        ssl_object = writer.get_extra_info("ssl_object")
        assert ssl_object.version() == "TLSv1.2"
        assert ssl_object.cipher()[0] == "ECDHE-ECDSA-AES256-GCM-SHA384"
        writer.close()
        # A client offering only other TLS 1.2 suites cannot connect.
        other = client_context(pki, cert=None, max_version=ssl.TLSVersion.TLSv1_2)
        other.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
        with pytest.raises(aiohttp.ClientError):
            await fetch(https(exporter), context=other)


# --- basic auth --------------------------------------------------------------------------------


async def test_basic_auth_over_tls(
    loaded_api: KubeApiTestServer, tmp_path: Path, pki: dict[str, Path], password_hash: str
) -> None:
    raw = {
        "tls_server_config": tls_section(pki),
        "basic_auth_users": {"prometheus": password_hash},
        "http_server_config": {"headers": {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "deny"}},
    }
    config = load_web_config(write_web_config(tmp_path / "web.yml", raw))
    async with exporter_with(loaded_api, tmp_path, config) as exporter:
        context = client_context(pki, cert=None)
        status, body, headers = await fetch(https(exporter), context=context)
        assert status == 401
        assert headers["WWW-Authenticate"].startswith("Basic")
        assert b"mindx_" not in body
        assert headers["X-Content-Type-Options"] == "nosniff"  # configured headers on errors too
        wrong = basic_auth("prometheus", "wrong password")
        assert (await fetch(https(exporter), context=context, auth=wrong))[0] == 401
        unknown = basic_auth("nobody", PASSWORD)
        assert (await fetch(https(exporter), context=context, auth=unknown))[0] == 401
        right = basic_auth("prometheus", PASSWORD)
        status, body, headers = await fetch(https(exporter), context=context, auth=right)
        assert status == 200 and b"mindx_npu_chip_fault_level{" in body
        assert headers["X-Frame-Options"] == "deny"
        # Every other path is protected too (exporter-toolkit semantics) ...
        assert (await fetch(https(exporter, "/"), context=context))[0] == 401
        assert (await fetch(https(exporter, "/nope"), context=context))[0] == 401
        assert (await fetch(https(exporter, "/"), context=context, auth=right))[0] == 200
        # ... except the probes, which kubelet calls without credentials (still over TLS).
        for probe in ("/healthz", "/readyz"):
            status, body, headers = await fetch(https(exporter, probe), context=context)
            assert (status, body) == (200, b"ok\n")
            assert headers["X-Content-Type-Options"] == "nosniff"


async def test_basic_auth_without_tls_and_excluded_paths(
    loaded_api: KubeApiTestServer, tmp_path: Path, password_hash: str
) -> None:
    raw = {"basic_auth_users": {"prometheus": password_hash}, "auth_excluded_paths": ["/", "/metrics"]}
    config = load_web_config(write_web_config(tmp_path / "web.yml", raw))
    assert config.tls is None
    async with exporter_with(loaded_api, tmp_path, config) as exporter:
        assert (await fetch(http(exporter, "/")))[0] == 200  # excluded by the file
        assert (await fetch(http(exporter, "/metrics")))[0] == 401  # the telemetry path never is
        assert (await fetch(http(exporter, "/healthz")))[0] == 200
        right = basic_auth("prometheus", PASSWORD)
        assert (await fetch(http(exporter, "/metrics"), auth=right))[0] == 200


async def test_successful_bcrypt_verification_is_cached(
    password_hash: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[bytes] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(hashed)
        return bool(real(password, hashed))

    monkeypatch.setattr(webconfig.bcrypt, "checkpw", counting)
    auth = BasicAuth({"prometheus": password_hash.encode()})

    assert await auth.check(basic_auth("prometheus", PASSWORD)) == "ok"
    assert len(calls) == 1
    for _ in range(5):
        assert await auth.check(basic_auth("prometheus", PASSWORD)) == "ok"
    assert len(calls) == 1  # served from the cache
    # Wrong passwords are never served from the cache, and are not cached themselves.
    assert await auth.check(basic_auth("prometheus", "guess")) == "denied"
    assert await auth.check(basic_auth("prometheus", "guess")) == "denied"
    assert len(calls) == 3
    # Unknown users still pay for a bcrypt check (against a random hash): no user enumeration.
    assert await auth.check(basic_auth("root", PASSWORD)) == "denied"
    assert len(calls) == 4 and calls[-1] != password_hash.encode()
    assert await auth.check(None) == "missing"
    assert await auth.check("Bearer abc") == "denied"
    assert await auth.check(basic_auth("prometheus", "x" * 100)) == "denied"  # > 72 bytes: bcrypt refuses
    assert b"\x00" not in b"".join(calls)


FLOOD_CLIENTS = 48  # more than the old queue of 32: it was full all the time


async def test_a_correct_login_gets_in_during_a_flood_of_wrong_ones(
    loaded_api: KubeApiTestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """48 clients send wrong passwords as fast as they are answered, half for the configured user,
    half for unknown ones; a correct password the exporter has not verified yet (Prometheus' first
    scrape after a restart) is answered 200 within a few attempts, and bcrypt never runs more than
    one check at a time."""
    running = 0
    most = 0
    real = bcrypt.checkpw

    def observed(password: bytes, hashed: bytes) -> bool:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            return bool(real(password, hashed))
        finally:
            running -= 1

    monkeypatch.setattr(webconfig.bcrypt, "checkpw", observed)
    raw = {"basic_auth_users": {"prometheus": bcrypt_hash(PASSWORD, rounds=8)}}  # ~20 ms a check
    config = load_web_config(write_web_config(tmp_path / "web.yml", raw))
    stop = asyncio.Event()
    answers: list[int] = []
    async with (
        exporter_with(loaded_api, tmp_path, config) as exporter,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=FLOOD_CLIENTS + 4)) as session,
    ):
        url = http(exporter)

        async def guesser(number: int) -> None:
            user = "prometheus" if number % 2 else f"admin{number}"
            while not stop.is_set():
                wrong = basic_auth(user, f"guess-{number}-{len(answers)}")
                async with session.get(url, headers={"Authorization": wrong}) as resp:
                    await resp.read()
                    answers.append(resp.status)

        flood = [asyncio.create_task(guesser(n)) for n in range(FLOOD_CLIENTS)]
        try:
            await eventually(lambda: _at_least(answers, 2 * FLOOD_CLIENTS), timeout=30)
            attempts = []
            for _ in range(5):
                async with session.get(
                    url, headers={"Authorization": basic_auth("prometheus", PASSWORD)}
                ) as resp:
                    attempts.append(resp.status)
                    if resp.status == 200:
                        break
                    await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))
            assert attempts[-1] == 200, attempts
        finally:
            stop.set()
            await asyncio.gather(*flood)
    assert 401 in answers
    assert most == 1  # one core at most, however many guess


async def _at_least(answers: list[int], count: int) -> None:
    assert len(answers) >= count


async def test_a_login_not_yet_verified_goes_before_guesses(monkeypatch: pytest.MonkeyPatch) -> None:
    """Queued guesses for a user already verified, or for unknown users, run after the check of a
    configured user's first login, whatever their number and order of arrival."""
    order: list[bytes] = []
    running = threading.Event()
    release = threading.Event()
    real = bcrypt.checkpw

    def gated(password: bytes, hashed: bytes) -> bool:
        order.append(password)
        if password == b"in-progress":
            running.set()
            release.wait(10)
        return bool(real(password, hashed))

    users = {"prometheus": bcrypt_hash(PASSWORD).encode(), "grafana": bcrypt_hash("grafana-pw").encode()}
    auth = BasicAuth(users)
    assert await auth.check(basic_auth("prometheus", PASSWORD), "10.0.0.1") == "ok"  # now verified
    monkeypatch.setattr(webconfig.bcrypt, "checkpw", gated)
    busy = asyncio.create_task(auth.check(basic_auth("nobody", "in-progress"), "10.0.0.9"))
    await asyncio.to_thread(running.wait, 10)
    guesses = [
        asyncio.create_task(auth.check(basic_auth(user, f"{kind}-guess{i}"), "10.0.0.9"))
        for i in range(10)
        for user, kind in (("prometheus", "verified"), (f"unknown{i}", "unknown"))
    ]
    await asyncio.sleep(0.05)
    first_login = asyncio.create_task(auth.check(basic_auth("grafana", "grafana-pw"), "10.0.0.9"))
    await asyncio.sleep(0.05)
    release.set()
    assert await first_login == "ok"
    assert set(await asyncio.gather(busy, *guesses)) == {"denied"}
    assert order[:2] == [b"in-progress", b"grafana-pw"]
    # Then the guesses at the verified user, then those at unknown users.
    assert [password.split(b"-")[0] for password in order[2:]] == [b"verified"] * 10 + [b"unknown"] * 10


def test_unknown_users_pay_the_highest_configured_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    """With users at different costs, a wrong password for the most expensive one costs as much as
    any unknown user name: the dummy hash has the highest cost, not the lowest."""
    checked: list[bytes] = []
    real = bcrypt.checkpw

    def recording(password: bytes, hashed: bytes) -> bool:
        checked.append(hashed)
        return bool(real(password, hashed))

    monkeypatch.setattr(webconfig.bcrypt, "checkpw", recording)
    users = {"cheap": bcrypt_hash("a", rounds=4).encode(), "dear": bcrypt_hash("b", rounds=6).encode()}
    auth = BasicAuth(users)
    assert auth.dummy_cost == 6

    async def verdicts() -> list[str]:
        return [
            await auth.check(basic_auth("dear", "wrong")),
            await auth.check(basic_auth("nobody", "wrong")),
            await auth.check(basic_auth("cheap", "wrong")),
        ]

    assert asyncio.run(verdicts()) == ["denied", "denied", "denied"]
    costs = [hashed[:7] for hashed in checked]
    assert costs == [b"$2b$06$", b"$2b$06$", b"$2b$04$"]  # the unknown user went through bcrypt at cost 6
    assert checked[1] not in users.values()


def test_parse_basic_authorization() -> None:
    assert parse_basic_authorization(basic_auth("u", "p:w")) == ("u", b"p:w")
    assert parse_basic_authorization("basic dTpw") == ("u", b"p")
    for bad in (None, "", "Basic", "Basic !!!", "Basic dXNlcg==", "Digest dTpw"):
        assert parse_basic_authorization(bad) is None


# --- validation --------------------------------------------------------------------------------

SECRET = "do-not-echo-this-secret"


def bad_configs(pki: dict[str, Path], tmp: Path) -> list[tuple[str, str]]:
    """(file content, expected fragment of the error)."""
    encrypted = tmp / "encrypted-key.pem"
    args = ["pkey", "-in", str(pki["server-key"]), "-aes256", "-passout", "pass:x", "-out", str(encrypted)]
    subprocess.run(["openssl", *args], check=True, capture_output=True)

    def tls(**values: Any) -> str:
        return yaml.safe_dump({"tls_server_config": values})

    cert, key, ca = str(pki["server"]), str(pki["server-key"]), str(pki["ca"])
    pair = {"cert_file": cert, "key_file": key}
    return [
        ("tls_server_confg: {}\n", "unknown field 'tls_server_confg'"),
        ("- a\n- b\n", "must be a mapping"),
        (tls(cert_file=cert), "tls_server_config.key_file is required"),
        (tls(key_file=key), "tls_server_config.cert_file is required"),
        (tls(cert_file=str(tmp / "missing.pem"), key_file=key), "tls_server_config.cert_file"),
        (tls(cert_file=cert, key_file=str(pki["client-key"])), "cannot load the certificate"),
        (tls(cert_file=cert, key_file=str(encrypted)), "is encrypted"),
        (tls(**pair, client_auth_type="Always"), "client_auth_type: unknown value"),
        (tls(**pair, client_auth_type="RequireAndVerifyClientCert"), "needs client_ca_file"),
        (tls(**pair, client_ca_file=ca), "client_ca_file is set but client_auth_type"),
        (
            tls(**pair, client_auth_type="VerifyClientCertIfGiven", client_ca_file=key),
            "tls_server_config.client_ca_file: cannot load",
        ),
        (tls(**pair, min_version="TLS14"), "min_version: unknown TLS version"),
        (tls(**pair, min_version="TLS13", max_version="TLS12"), "newer than max_version"),
        (tls(**pair, cipher_suites=["TLS_RSA_WITH_RC4_128_SHA"]), "insecure cipher suite"),
        (tls(**pair, curve_preferences=["X25519"]), "curve_preferences is not supported"),
        (tls(cert_file=cert, key=f"-----BEGIN PRIVATE KEY-----{SECRET}"), "inline tls_server_config.key"),
        (tls(**pair, prefer_server_cipher_suites="yes please"), "must be true or false"),
        ("http_server_config: {headers: {X-Powered-By: me}}\n", "'X-Powered-By' cannot be configured"),
        ("http_server_config: {headers: {X-Frame-Options: allow}}\n", "X-Frame-Options: invalid value"),
        ("http_server_config: {http3: true}\n", "unknown field 'http_server_config.http3'"),
        (f"basic_auth_users: {{alice: {SECRET}}}\n", "basic_auth_users.alice: not a bcrypt hash"),
        (f"basic_auth_users: {{alice: '$2y$10${SECRET}'}}\n", "basic_auth_users.alice: not a bcrypt hash"),
        (f"basic_auth_users: {{alice: 'x', alice: '{SECRET}'}}\n", "duplicate key 'alice'"),
        (f"basic_auth_users:\n  alice: '$2y$10${SECRET}\n", "invalid YAML at line"),
        (f"basic_auth_users:\n  alice: {SECRET}\n\tbob: x\n", "invalid YAML at line 3"),
        ("auth_excluded_paths: [healthz]\n", "must start with '/'"),
        ("rate_limit: {burst: 1}\n", "rate_limit is not supported"),
    ]


def test_invalid_files_are_clear_errors_without_secrets(pki: dict[str, Path], tmp_path: Path) -> None:
    for i, (content, expected) in enumerate(bad_configs(pki, tmp_path)):
        path = tmp_path / f"bad-{i}.yml"
        path.write_text(content)
        with pytest.raises(WebConfigError) as raised:
            load_web_config(path)
        message = str(raised.value)
        assert expected in message, (content, message)
        assert str(path) in message
        assert SECRET not in message and "BEGIN PRIVATE KEY" not in message, message


def test_valid_files(pki: dict[str, Path], tmp_path: Path, password_hash: str) -> None:
    empty = tmp_path / "empty.yml"
    empty.write_text("")
    config = load_web_config(empty)
    assert config.tls is None and not config.users and config.ssl_context() is None
    # Relative paths are relative to the file (exporter-toolkit semantics); probes never need auth.
    for name in ("server", "server-key", "ca"):
        shutil.copy(pki[name], tmp_path / f"{name}.pem")
    raw = {
        "tls_server_config": {
            "cert_file": "server.pem",
            "key_file": "server-key.pem",
            "client_auth_type": "RequireAnyClientCert",
            "client_ca_file": "ca.pem",
            "cipher_suites": ["TLS_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"],
        },
        "http_server_config": {"http2": False, "headers": {"Strict-Transport-Security": ""}},
        "basic_auth_users": {"a": password_hash, "b": password_hash.replace("$2b$", "$2y$", 1)},
    }
    config = load_web_config(write_web_config(tmp_path / "web.yml", raw))
    assert config.tls is not None and config.tls.cert_file == tmp_path / "server.pem"
    assert config.tls.requires_client_cert
    context = config.ssl_context()
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED
    assert config.headers == ()  # blank means unset
    assert password_hash not in repr(config)
    assert config.summary() == {
        "web_config": str(tmp_path / "web.yml"),
        "tls": True,
        "client_auth": "RequireAnyClientCert",
        "basic_auth_users": 2,
    }


def test_example_web_config_is_valid(pki: dict[str, Path], tmp_path: Path) -> None:
    example = Path(__file__).resolve().parent.parent / "deploy" / "web-config.example.yml"
    raw = yaml.safe_load(example.read_text())
    raw["tls_server_config"].update(
        cert_file=str(pki["server"]), key_file=str(pki["server-key"]), client_ca_file=str(pki["ca"])
    )
    config = load_web_config(write_web_config(tmp_path / "web.yml", raw))
    assert config.tls is not None and config.tls.client_auth_type == "RequireAndVerifyClientCert"
    assert set(config.users) == {"prometheus"}
    assert dict(config.headers)["X-Frame-Options"] == "deny"
    # As shipped it names files that do not exist here: a clear error, not a crash.
    with pytest.raises(WebConfigError, match=r"tls_server_config\.cert_file"):
        load_web_config(example)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_cli_exits_2_on_a_bad_web_config(tmp_path: Path) -> None:
    bad = tmp_path / "web.yml"
    bad.write_text(f"basic_auth_users:\n  alice: {SECRET}\n")
    kubeconfig = tmp_path / "kubeconfig"  # never reached: the web config is checked first
    result = run_cli("--web.config.file", str(bad), "--kubeconfig", str(kubeconfig))
    assert result.returncode == 2
    assert "basic_auth_users.alice: not a bcrypt hash" in result.stderr
    assert SECRET not in result.stderr + result.stdout
    missing = run_cli("--web.config.file", str(tmp_path / "nope.yml"), "--kubeconfig", str(kubeconfig))
    assert missing.returncode == 2 and "cannot read web config file" in missing.stderr


# --- the real Prometheus -----------------------------------------------------------------------

PROMETHEUS = shutil.which("prometheus")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def prometheus(config: dict[str, Any], workdir: Path) -> Iterator[str]:
    """Run /usr/bin/prometheus on a free 127.0.0.1 port; yields its base URL."""
    assert PROMETHEUS is not None
    port = free_port()
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = (workdir / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


async def query(session: aiohttp.ClientSession, base: str, promql: str) -> list[dict[str, Any]]:
    async with session.get(f"{base}/api/v1/query", params={"query": promql}) as resp:
        if resp.status != 200:
            return []
        body = await resp.json()
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


@pytest.mark.skipif(PROMETHEUS is None, reason="needs Debian's prometheus package (.ci/run installs it)")
async def test_prometheus_scrapes_over_mutual_tls_with_basic_auth(
    loaded_api: KubeApiTestServer, tmp_path: Path, pki: dict[str, Path], password_hash: str
) -> None:
    raw = {"tls_server_config": mtls_section(pki), "basic_auth_users": {"prometheus": password_hash}}
    config = load_web_config(write_web_config(tmp_path / "web.yml", raw))
    async with exporter_with(loaded_api, tmp_path, config) as exporter:
        password_file = tmp_path / "scrape-password"
        password_file.write_text(PASSWORD)
        scrape = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "mindx",
                    "scheme": "https",
                    "tls_config": {
                        "ca_file": str(pki["ca"]),
                        "cert_file": str(pki["client"]),
                        "key_file": str(pki["client-key"]),
                    },
                    "basic_auth": {"username": "prometheus", "password_file": str(password_file)},
                    "static_configs": [{"targets": [f"127.0.0.1:{exporter.port}"]}],
                },
                {  # the same target without credentials: Prometheus sees it down
                    "job_name": "anonymous",
                    "scheme": "https",
                    "tls_config": {
                        "ca_file": str(pki["ca"]),
                        "cert_file": str(pki["client"]),
                        "key_file": str(pki["client-key"]),
                    },
                    "static_configs": [{"targets": [f"127.0.0.1:{exporter.port}"]}],
                },
            ],
        }
        workdir = tmp_path / "prometheus"
        workdir.mkdir()
        with prometheus(scrape, workdir) as base:
            deadline = time.monotonic() + 25
            up: list[dict[str, Any]] = []
            series: list[dict[str, Any]] = []
            anonymous: list[dict[str, Any]] = []
            async with aiohttp.ClientSession() as session:
                while time.monotonic() < deadline:
                    with contextlib.suppress(aiohttp.ClientError):
                        up = await query(session, base, 'up{job="mindx"}')
                        series = await query(session, base, 'mindx_npu_chip_fault_level{job="mindx"}')
                        anonymous = await query(session, base, 'up{job="anonymous"}')
                        if up and up[0]["value"][1] == "1" and series and anonymous:
                            break
                    await asyncio.sleep(0.3)
            log = (workdir / "prometheus.log").read_text(errors="replace")
            assert up and up[0]["value"][1] == "1", log
            assert series and series[0]["metric"]["node"] == "node133"
            assert anonymous and anonymous[0]["value"][1] == "0"
