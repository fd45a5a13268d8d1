"""`--web.config.file`: TLS and basic authentication for the HTTP endpoints, in the Prometheus
exporter-toolkit web configuration format (the same YAML file node_exporter reads).

    tls_server_config:      cert_file, key_file, client_auth_type, client_ca_file, min_version,
                            max_version, cipher_suites, prefer_server_cipher_suites
    http_server_config:     headers (the five exporter-toolkit allows), http2 (accepted, ignored:
                            aiohttp serves HTTP/1.1)
    basic_auth_users:       user -> bcrypt hash
    auth_excluded_paths:    extra paths served without basic auth

Deviations from exporter-toolkit, each for a reason (docs/security.md):

* `/healthz` and `/readyz` never require basic auth: kubelet probes cannot send credentials. They
  reveal only "ok" or the names of the watches that have not listed yet. The telemetry path is
  always protected, even when listed in `auth_excluded_paths`.
* The file is read once at start; exporter-toolkit re-reads it on every request. Restart (roll the
  pods) after changing it or rotating the certificate.
* Python's `ssl` module verifies every client certificate it asks for, so `RequireAnyClientCert`
  needs `client_ca_file` and behaves like `RequireAndVerifyClientCert`, and `RequestClientCert`
  does not ask for a certificate (nothing here reads an unverified one).
* Inline `cert`/`key`/`client_ca`, `client_allowed_sans`, `curve_preferences` and `rate_limit` are
  rejected with a clear error rather than silently ignored.

Errors name the offending field and never echo a value that may be secret (keys, hashes).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import re
import secrets
import ssl
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import bcrypt
import yaml
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from exporter.logs import RateLimitedEvent, event

log = logging.getLogger("exporter.web")

# Always reachable without basic auth: kubelet probes cannot send credentials.
PROBE_PATHS = ("/healthz", "/readyz")

REALM = "mindx-fault-exporter"

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}

CLIENT_AUTH_TYPES = (
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "RequireClientCert",  # exporter-toolkit's old name for RequireAnyClientCert
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
)

# Go's crypto/tls names (tls.CipherSuites(), the secure ones) -> OpenSSL names, TLS 1.0-1.2.
CIPHER_SUITES = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
# TLS 1.3 suites are not configurable (in Go nor in OpenSSL via this list); accepted, as Go does.
TLS13_CIPHER_SUITES = frozenset(
    {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
)

# The headers exporter-toolkit lets a web config set, with their allowed values (None: any).
EXTRA_HEADERS: dict[str, tuple[str, ...] | None] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}

_BCRYPT_HASH = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")

_TOP_LEVEL = {"tls_server_config", "http_server_config", "basic_auth_users", "auth_excluded_paths"}
_TLS_FIELDS = {
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "min_version",
    "max_version",
    "cipher_suites",
    "prefer_server_cipher_suites",
}
_HTTP_FIELDS = {"http2", "headers"}
# exporter-toolkit fields this exporter does not implement: refused, never silently ignored.
_UNSUPPORTED = {
    "rate_limit": "rate_limit is not supported by mindx-fault-exporter",
    "tls_server_config.cert": "inline tls_server_config.cert is not supported; use cert_file",
    "tls_server_config.key": "inline tls_server_config.key is not supported; use key_file",
    "tls_server_config.client_ca": "inline tls_server_config.client_ca is not supported; use client_ca_file",
    "tls_server_config.client_allowed_sans": "tls_server_config.client_allowed_sans is not supported",
    "tls_server_config.curve_preferences": "tls_server_config.curve_preferences is not supported",
}


class WebConfigError(Exception):
    """The web configuration file is unreadable or invalid. The message names the file and field
    and never contains a secret from it."""


# -- loading --------------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (two entries for one user would be ambiguous)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, str | int | float | bool) and key in seen:
            raise WebConfigError(f"duplicate key {key!r} at line {key_node.start_mark.line + 1}")
        if isinstance(key, str | int | float | bool):
            seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _parse_yaml(path: Path, text: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except WebConfigError as err:
        raise WebConfigError(f"{path}: {err}") from None
    except yaml.MarkedYAMLError as err:
        # Only the position and the parser's complaint: the snippet PyYAML adds could be a secret.
        mark = err.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise WebConfigError(f"{path}: invalid YAML{where}: {err.problem or 'syntax error'}") from None
    except yaml.YAMLError:
        raise WebConfigError(f"{path}: invalid YAML") from None


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WebConfigError(f"{where} must be a mapping, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise WebConfigError(f"{where}: keys must be strings, got {type(key).__name__}")
    return value


def _check_fields(values: Mapping[str, Any], known: set[str], prefix: str) -> None:
    for key in values:
        qualified = f"{prefix}{key}"
        if qualified in _UNSUPPORTED:
            raise WebConfigError(_UNSUPPORTED[qualified])
        if key not in known:
            raise WebConfigError(
                f"unknown field {qualified!r} (known: {', '.join(prefix + k for k in sorted(known))})"
            )


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise WebConfigError(f"{where} must be a string, got {type(value).__name__}")
    return value


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise WebConfigError(f"{where} must be true or false, got {type(value).__name__}")
    return value


def _string_list(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise WebConfigError(f"{where} must be a list of strings, got {type(value).__name__}")
    return tuple(_string(item, f"{where}[{i}]") for i, item in enumerate(value))


def _file(value: Any, where: str, base: Path) -> Path | None:
    if value is None or value == "":
        return None
    path = Path(_string(value, where)).expanduser()
    return path if path.is_absolute() else base / path  # relative to the config file, as in the toolkit


@dataclass(frozen=True)
class TLSServerConfig:
    cert_file: Path
    key_file: Path
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    cipher_suites: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True

    @property
    def requires_client_cert(self) -> bool:
        required = ("RequireAnyClientCert", "RequireClientCert", "RequireAndVerifyClientCert")
        return self.client_auth_type in required

    def ssl_context(self) -> ssl.SSLContext:
        """A fresh server context; raises WebConfigError naming the field that cannot be used."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.minimum_version = TLS_VERSIONS[self.min_version]
            context.maximum_version = TLS_VERSIONS[self.max_version]
        except (ValueError, ssl.SSLError) as err:
            raise WebConfigError(f"tls_server_config.min_version/max_version: {_ssl_reason(err)}") from None
        context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
        if self.prefer_server_cipher_suites:
            context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
        else:
            context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
        for name, path in (("cert_file", self.cert_file), ("key_file", self.key_file)):
            if not path.is_file():
                raise WebConfigError(f"tls_server_config.{name}: {path} does not exist or is not a file")
        try:
            context.load_cert_chain(self.cert_file, self.key_file, password=_no_password)
        except _EncryptedKey:
            raise WebConfigError(
                f"tls_server_config.key_file: {self.key_file} is encrypted; an unencrypted key is required"
            ) from None
        except (OSError, ssl.SSLError) as err:
            raise WebConfigError(
                f"tls_server_config.cert_file/key_file: cannot load the certificate {self.cert_file} "
                f"with the key {self.key_file}: {_ssl_reason(err)}"
            ) from None
        if self.client_ca_file is not None:
            try:
                context.load_verify_locations(cafile=self.client_ca_file)
            except (OSError, ssl.SSLError) as err:
                raise WebConfigError(
                    f"tls_server_config.client_ca_file: cannot load {self.client_ca_file}: {_ssl_reason(err)}"
                ) from None
        if self.client_auth_type in ("NoClientCert", "RequestClientCert"):
            context.verify_mode = ssl.CERT_NONE
        elif self.client_auth_type == "VerifyClientCertIfGiven":
            context.verify_mode = ssl.CERT_OPTIONAL
        else:
            context.verify_mode = ssl.CERT_REQUIRED
        openssl_names = [CIPHER_SUITES[name] for name in self.cipher_suites if name in CIPHER_SUITES]
        if openssl_names:
            try:
                context.set_ciphers(":".join(openssl_names))
            except ssl.SSLError:
                raise WebConfigError(
                    "tls_server_config.cipher_suites: none of the listed suites is available in this OpenSSL"
                ) from None
        context.set_alpn_protocols(["http/1.1"])
        return context


class _EncryptedKey(Exception):
    pass


def _no_password() -> str:
    raise _EncryptedKey  # never prompt on the terminal for a key passphrase


def _ssl_reason(err: BaseException) -> str:
    if isinstance(err, ssl.SSLError) and err.reason:
        return str(err.reason)
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return type(err).__name__


def _load_tls(raw: Any, base: Path) -> TLSServerConfig | None:
    values = _mapping(raw, "tls_server_config")
    _check_fields(values, _TLS_FIELDS, "tls_server_config.")
    cert_file = _file(values.get("cert_file"), "tls_server_config.cert_file", base)
    key_file = _file(values.get("key_file"), "tls_server_config.key_file", base)
    client_ca_file = _file(values.get("client_ca_file"), "tls_server_config.client_ca_file", base)
    client_auth_type = values.get("client_auth_type") or ""
    client_auth_type = _string(client_auth_type, "tls_server_config.client_auth_type")
    if not (cert_file or key_file or client_ca_file or client_auth_type):
        return None  # like exporter-toolkit: no TLS field set means plain HTTP
    if cert_file is None:
        raise WebConfigError("tls_server_config.cert_file is required when TLS is configured")
    if key_file is None:
        raise WebConfigError("tls_server_config.key_file is required when TLS is configured")
    client_auth_type = client_auth_type or "NoClientCert"
    if client_auth_type not in CLIENT_AUTH_TYPES:
        raise WebConfigError(
            f"tls_server_config.client_auth_type: unknown value {client_auth_type!r} "
            f"(one of {', '.join(CLIENT_AUTH_TYPES)})"
        )
    if client_ca_file is not None and client_auth_type == "NoClientCert":
        raise WebConfigError("tls_server_config.client_ca_file is set but client_auth_type is NoClientCert")
    if client_ca_file is None and client_auth_type not in ("NoClientCert", "RequestClientCert"):
        raise WebConfigError(
            f"tls_server_config.client_auth_type {client_auth_type} needs client_ca_file "
            "(the CA that signs the scrapers' client certificates)"
        )
    versions = {}
    for name, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        version = _string(values.get(name) or default, f"tls_server_config.{name}")
        if version not in TLS_VERSIONS:
            known = ", ".join(TLS_VERSIONS)
            raise WebConfigError(f"tls_server_config.{name}: unknown TLS version {version!r} ({known})")
        versions[name] = version
    if TLS_VERSIONS[versions["min_version"]] > TLS_VERSIONS[versions["max_version"]]:
        raise WebConfigError("tls_server_config.min_version is newer than max_version")
    suites = _string_list(values.get("cipher_suites"), "tls_server_config.cipher_suites")
    for suite in suites:
        if suite not in CIPHER_SUITES and suite not in TLS13_CIPHER_SUITES:
            raise WebConfigError(
                f"tls_server_config.cipher_suites: unknown or insecure cipher suite {suite!r}"
            )
    prefer = values.get("prefer_server_cipher_suites", True)
    config = TLSServerConfig(
        cert_file=cert_file,
        key_file=key_file,
        client_auth_type=client_auth_type,
        client_ca_file=client_ca_file,
        min_version=versions["min_version"],
        max_version=versions["max_version"],
        cipher_suites=suites,
        prefer_server_cipher_suites=_bool(prefer, "tls_server_config.prefer_server_cipher_suites"),
    )
    config.ssl_context()  # fail at start-up, not on the first connection
    return config


def _load_headers(raw: Any) -> tuple[tuple[str, str], ...]:
    values = _mapping(raw, "http_server_config.headers")
    headers = []
    for name, value in values.items():
        where = f"http_server_config.headers.{name}"
        if name not in EXTRA_HEADERS:
            raise WebConfigError(
                f"http_server_config.headers: header {name!r} cannot be configured "
                f"(one of {', '.join(EXTRA_HEADERS)})"
            )
        value = _string(value, where)
        allowed = EXTRA_HEADERS[name]
        if allowed is not None and value not in allowed:
            raise WebConfigError(f"{where}: invalid value {value!r} (one of {', '.join(allowed)})")
        if "\r" in value or "\n" in value:
            raise WebConfigError(f"{where}: line breaks are not allowed")
        if value:  # blank means unset
            headers.append((name, value))
    return tuple(headers)


def _load_users(raw: Any) -> dict[str, bytes]:
    values = _mapping(raw, "basic_auth_users")
    users = {}
    for user, hashed in values.items():
        if not user or ":" in user:
            raise WebConfigError(f"basic_auth_users: invalid user name {user!r} (empty or containing ':')")
        # The value is a secret: say what is wrong with it, never what it is.
        if not isinstance(hashed, str) or not _BCRYPT_HASH.fullmatch(hashed):
            raise WebConfigError(
                f"basic_auth_users.{user}: not a bcrypt hash ($2a$, $2b$ or $2y$, cost 04-31, 53 characters "
                "of salt and hash; create one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)"
            )
        users[user] = hashed.encode()
    return users


@dataclass(frozen=True)
class WebConfig:
    """A loaded and validated web configuration file."""

    path: Path
    tls: TLSServerConfig | None = None
    users: Mapping[str, bytes] = field(default_factory=dict, repr=False)  # user -> bcrypt hash
    headers: tuple[tuple[str, str], ...] = ()
    auth_excluded_paths: tuple[str, ...] = ()
    http2: bool = True

    def ssl_context(self) -> ssl.SSLContext | None:
        return self.tls.ssl_context() if self.tls is not None else None

    def middlewares(
        self, telemetry_path: str = "/metrics", rejected: Callable[[str], None] | None = None
    ) -> list[Middleware]:
        """Response headers (outermost, so 401s carry them too), then basic auth if configured.
        `rejected` counts logins refused because too many are pending (`too_many_logins`)."""
        chain: list[Middleware] = []
        if self.headers:
            chain.append(headers_middleware(self.headers))
        if self.users:
            excluded = (set(PROBE_PATHS) | set(self.auth_excluded_paths)) - {telemetry_path}
            chain.append(BasicAuth(self.users, excluded, rejected).middleware)
        return chain

    def summary(self) -> dict[str, Any]:
        """Log fields describing the configuration (no secrets)."""
        return {
            "web_config": str(self.path),
            "tls": self.tls is not None,
            "client_auth": self.tls.client_auth_type if self.tls is not None else None,
            "basic_auth_users": len(self.users),
        }


def load_web_config(path: str | Path) -> WebConfig:
    """Read, parse and validate a web configuration file, loading its certificates once."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else type(err).__name__
        raise WebConfigError(f"cannot read web config file {path}: {reason}") from None
    raw = _parse_yaml(path, text)
    try:
        values = _mapping(raw, "the web config file")
        _check_fields(values, _TOP_LEVEL, "")
        tls = _load_tls(values.get("tls_server_config"), path.parent)
        http = _mapping(values.get("http_server_config"), "http_server_config")
        _check_fields(http, _HTTP_FIELDS, "http_server_config.")
        http2 = _bool(http.get("http2", True), "http_server_config.http2")
        headers = _load_headers(http.get("headers"))
        users = _load_users(values.get("basic_auth_users"))
        excluded = _string_list(values.get("auth_excluded_paths"), "auth_excluded_paths")
        for item in excluded:
            if not item.startswith("/"):
                raise WebConfigError(f"auth_excluded_paths: {item!r} must start with '/'")
    except WebConfigError as err:
        raise WebConfigError(f"{path}: {err}") from None
    return WebConfig(
        path=path, tls=tls, users=users, headers=headers, auth_excluded_paths=excluded, http2=http2
    )


# -- serving --------------------------------------------------------------------------------------------


RESPONSE_HEADERS_KEY = web.RequestKey("mindx.response_headers", tuple[tuple[str, str], ...])


def headers_middleware(headers: Iterable[tuple[str, str]]) -> Middleware:
    extra = tuple(headers)

    @web.middleware
    async def add_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
        # Streamed responses send their headers inside the handler: exporter.server applies
        # these from its on_response_prepare hook.
        request[RESPONSE_HEADERS_KEY] = extra
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # 404, 405, ...: aiohttp sends the exception as the response
            exc.headers.update(extra)
            raise
        if not response.prepared:
            response.headers.update(extra)
        return response

    return add_headers


Verdict = Literal["ok", "missing", "denied", "busy"]


@dataclass(eq=False)
class _Check:
    """A pending bcrypt check; `verdict` resolves to its result, or to None when refused."""

    hashed: bytes | None  # None: unknown user, checked against the dummy hash
    password: bytes
    client: str
    verdict: asyncio.Future[bool | None]


class _CheckQueue:
    """Pending bcrypt checks, served one at a time by one worker thread.

    Checks are ranked: a configured user not verified yet (the right password is still to come:
    Prometheus' first scrape after a restart), then a configured user already verified (the
    right password is cached, so this is almost surely a guess), then an unknown user (never
    succeeds). Within a rank, clients (remote addresses) take turns, first come first served
    per client. So a flood of wrong logins never locks a correct, not yet verified login out: it
    waits for no guess at an unknown or a verified user, for one check per other address guessing
    at unverified users, and for the guesses queued ahead of it from its own address. At most
    MAX_PENDING checks wait, at most MAX_PER_CLIENT of one rank from one address; a check arriving
    at a full queue displaces the newest of a lower rank. Everything else beyond is refused (503).
    """

    MAX_PENDING = 64
    MAX_PER_CLIENT = 48

    def __init__(self, run: Callable[[bytes | None, bytes], bool]) -> None:
        self._run = run
        self._classes: tuple[dict[str, deque[_Check]], ...] = ({}, {}, {})  # by rank, see above
        self._pending = 0
        self._worker: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        return self._pending

    async def check(self, hashed: bytes | None, password: bytes, client: str, rank: int) -> bool | None:
        """bcrypt's verdict, or None when the queue is full. `rank`: 0 a configured user not
        verified yet, 1 a configured user already verified, 2 an unknown user."""
        clients = self._classes[rank]
        if len(clients.get(client, ())) >= self.MAX_PER_CLIENT:
            return None
        if self._pending >= self.MAX_PENDING and not self._displace_below(rank):
            return None
        item = _Check(hashed, password, client, asyncio.get_running_loop().create_future())
        clients.setdefault(client, deque()).append(item)
        self._pending += 1
        if self._worker is None:
            self._worker = asyncio.create_task(self._work(), name="bcrypt checks")
        try:
            return await item.verdict
        except asyncio.CancelledError:  # the client left, or its deadline passed: free the place
            self._discard(rank, item)
            raise

    def _displace_below(self, rank: int) -> bool:
        for lower in reversed(self._classes[rank + 1 :]):
            if lower:
                client = next(reversed(lower))  # the client that most recently started queueing
                item = lower[client].pop()
                if not lower[client]:
                    del lower[client]
                self._pending -= 1
                item.verdict.set_result(None)
                return True
        return False

    def _discard(self, rank: int, item: _Check) -> None:
        queue = self._classes[rank].get(item.client)
        if queue is not None and item in queue:
            queue.remove(item)
            self._pending -= 1
            if not queue:
                del self._classes[rank][item.client]

    def _next(self) -> _Check | None:
        for clients in self._classes:
            if clients:
                client = next(iter(clients))
                queue = clients.pop(client)
                item = queue.popleft()
                if queue:
                    clients[client] = queue  # to the end of the round
                self._pending -= 1
                return item
        return None

    async def _work(self) -> None:
        try:
            while (item := self._next()) is not None:
                try:
                    valid = await asyncio.to_thread(self._run, item.hashed, item.password)
                except Exception as err:  # a bug, not a verdict: fail this request, keep serving
                    if not item.verdict.done():
                        item.verdict.set_exception(err)
                    continue
                if not item.verdict.done():
                    item.verdict.set_result(valid)
        finally:
            self._worker = None


class BasicAuth:
    """HTTP basic authentication against bcrypt hashes.

    bcrypt is slow on purpose (~50 ms at cost 10), so a successful verification is remembered:
    per user, an HMAC (random per-process key) of user, hash and password; later requests compare
    it in constant time and skip bcrypt. Failures are not cached (attacker-chosen, unbounded).
    bcrypt runs in one worker thread, one check at a time, so guessing cannot stall the event loop
    or take more than one core; `_CheckQueue` decides the order and refuses (503) beyond its bounds.
    An unknown user is checked against a random hash of the highest cost configured, so timing
    does not reveal which users exist.
    """

    LOG_INTERVAL = 10.0

    def __init__(
        self,
        users: Mapping[str, bytes],
        excluded_paths: Iterable[str] = PROBE_PATHS,
        rejected: Callable[[str], None] | None = None,
    ) -> None:
        self._users = dict(users)
        self._excluded = frozenset(excluded_paths)
        self._rejected = rejected
        self._key = secrets.token_bytes(32)
        self._verified: dict[str, bytes] = {}
        self._queue = _CheckQueue(self._bcrypt)
        # The most expensive configured hash: a wrong password for any user costs at least this
        # much, so an unknown user must too. Made now, so no request pays for making it.
        self.dummy_cost = max((int(h[4:6]) for h in self._users.values()), default=10)
        self._dummy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(self.dummy_cost))
        self._denied_log = RateLimitedEvent(log, self.LOG_INTERVAL)
        self._busy_log = RateLimitedEvent(log, self.LOG_INTERVAL)

    def _digest(self, user: bytes, hashed: bytes, password: bytes) -> bytes:
        message = len(user).to_bytes(4, "big") + user + hashed + password
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def _bcrypt(self, hashed: bytes | None, password: bytes) -> bool:
        try:
            return bool(bcrypt.checkpw(password, self._dummy if hashed is None else hashed))
        except ValueError:  # longer than 72 bytes, or a NUL byte: bcrypt cannot have produced it
            return False

    async def check(self, authorization: str | None, client: str = "") -> Verdict:
        """The verdict on an Authorization header sent from address `client`."""
        credentials = parse_basic_authorization(authorization)
        if credentials is None:
            return "missing" if not authorization else "denied"
        user, password = credentials
        hashed = self._users.get(user)
        digest = self._digest(user.encode(), hashed or b"", password)
        cached = self._verified.get(user)
        if hashed is not None and cached is not None and hmac.compare_digest(cached, digest):
            return "ok"
        rank = 2 if hashed is None else 1 if user in self._verified else 0
        valid = await self._queue.check(hashed, password, client, rank)
        if valid is None:
            return "busy"
        if valid and hashed is not None:
            self._verified[user] = digest
            return "ok"
        return "denied"

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in self._excluded:
            return await handler(request)
        verdict = await self.check(request.headers.get(hdrs.AUTHORIZATION), request.remote or "")
        if verdict == "ok":
            return await handler(request)
        self._log_rejection(request, verdict)
        if verdict == "busy":
            if self._rejected is not None:
                self._rejected("too_many_logins")
            return web.Response(status=503, text="Service Unavailable\n", headers={"Retry-After": "1"})
        return web.Response(
            status=401, text="Unauthorized\n", headers={hdrs.WWW_AUTHENTICATE: f'Basic realm="{REALM}"'}
        )

    def _log_rejection(self, request: web.Request, verdict: Verdict) -> None:
        """At most one line per LOG_INTERVAL and kind, so a guessing client cannot flood the log.
        Neither the user name nor the password is logged (people type passwords into user name
        fields)."""
        if verdict == "missing":
            event(log, logging.DEBUG, "request without credentials", path=request.path, remote=request.remote)
        elif verdict == "busy":
            self._busy_log(
                logging.WARNING, "too many logins at once", path=request.path, remote=request.remote,
                pending=self._queue.pending,
            )  # fmt: skip
        else:
            self._denied_log(
                logging.WARNING, "rejected request with invalid credentials", path=request.path,
                remote=request.remote,
            )  # fmt: skip


def parse_basic_authorization(header: str | None) -> tuple[str, bytes] | None:
    """`Basic base64(user:password)` -> (user, password); None when absent or malformed."""
    if not header:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    if not sep:
        return None
    try:
        return user.decode("utf-8"), password
    except UnicodeDecodeError:
        return None
