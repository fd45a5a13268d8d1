"""Where the Kubernetes API is and how to authenticate, resolved by the official `kubernetes`
package (kubeconfig with contexts, exec and auth-provider plugins, or in-cluster config).

Only loading is delegated; requests are made with aiohttp (`exporter.kube.client`).
"""

from __future__ import annotations

import binascii
import os
import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from kubernetes import client as k8s_client

SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


class KubeConfigError(Exception):
    """The cluster could not be located or its credentials could not be loaded."""


class ServiceAccountToken:
    """The in-cluster token, re-read whenever the kubelet rotates the file (never cached for the
    process lifetime: projected tokens expire after about an hour)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stamp: tuple[int, int] | None = None
        self._value = ""

    def header(self) -> str:
        stat = self._path.stat()
        stamp = (stat.st_mtime_ns, stat.st_ino)
        if stamp != self._stamp:
            self._value = self._path.read_text().strip()
            self._stamp = stamp
        return f"Bearer {self._value}"

    def invalidate(self) -> None:
        self._stamp = None


@dataclass
class ClusterAccess:
    """Everything the HTTP client needs: the server URL, TLS settings and an Authorization source."""

    host: str
    ssl_context: ssl.SSLContext | bool
    configuration: k8s_client.Configuration | None = None
    service_account: ServiceAccountToken | None = None
    description: str = ""

    def authorization(self) -> str | None:
        """The Authorization header value for the next request (refreshed if it expired)."""
        if self.service_account is not None:
            return self.service_account.header()
        cfg = self.configuration
        if cfg is None:
            return None
        if cfg.refresh_api_key_hook is not None:
            cfg.refresh_api_key_hook(cfg)
        token = cfg.api_key.get("BearerToken") or cfg.api_key.get("authorization")
        if token:
            return str(token)
        if cfg.username and cfg.password:
            basic = cfg.get_basic_auth_token()
            return str(basic) if basic else None
        return None

    def invalidate(self) -> None:
        """After a 401: make the next `authorization()` read fresh credentials."""
        if self.service_account is not None:
            self.service_account.invalidate()


def load_cluster_access(kubeconfig: str | None = None, context: str | None = None) -> ClusterAccess:
    """`--kubeconfig`, then `$KUBECONFIG` (several files separated by `:` are merged as kubectl
    merges them), then `~/.kube/config`; in-cluster when none exists and the pod's service account
    is mounted. Raises KubeConfigError with the reason and the fix, never a secret."""
    paths, where = _kubeconfig_paths(kubeconfig)
    if not paths:
        if "KUBERNETES_SERVICE_HOST" in os.environ:
            return _in_cluster()
        raise KubeConfigError(
            "no kubeconfig found (--kubeconfig, $KUBECONFIG, ~/.kube/config) and not running in a "
            "cluster; pass --kubeconfig FILE"
        )
    files = [_read_kubeconfig(path) for path in paths]
    context = context or next((f["current-context"] for f in files if f.get("current-context")), None)
    contexts = _names(files, "contexts")
    if context is None:
        raise KubeConfigError(
            f"cannot load {where}: it sets no current-context; pass --context with one of: "
            f"{_listed(contexts)}"
        )
    if context not in contexts:
        raise KubeConfigError(
            f"cannot load {where}: context {context!r} is not defined (contexts: {_listed(contexts)}); "
            "pass --context with one of them"
        )
    # Imported here: the package takes half a second to import, and a command-line error
    # (checked before anything is loaded) should not wait for it.
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config

    cfg = k8s_client.Configuration()
    try:
        # The library merges the files (first definition of a name wins, as in kubectl); the
        # context is resolved above because it would take the last file's current-context.
        k8s_config.load_kube_config(
            config_file=os.pathsep.join(paths),
            context=context,
            client_configuration=cfg,
            persist_config=False,
        )
        ssl_context = _ssl_context(cfg)
    except (k8s_config.ConfigException, OSError, ssl.SSLError, binascii.Error, ValueError) as err:
        raise KubeConfigError(f"cannot load {where} context {context!r}: {_reason(err)}") from None
    except Exception as err:  # exec plugins, auth providers: any type; the message may hold secrets
        raise KubeConfigError(
            f"cannot load {where} context {context!r}: {type(err).__name__}; fix the kubeconfig "
            "or choose another with --kubeconfig or --context"
        ) from None
    return ClusterAccess(
        host=cfg.host.rstrip("/"),
        ssl_context=ssl_context,
        configuration=cfg,
        description=f"{where} context {context}",
    )


def _kubeconfig_paths(explicit: str | None) -> tuple[list[str], str]:
    """The kubeconfig files to merge and how to name them in messages. Files listed in
    $KUBECONFIG that do not exist are skipped, as kubectl skips them; an explicit --kubeconfig
    must exist."""
    if explicit:
        path = os.path.expanduser(explicit)
        if not os.path.isfile(path):
            raise KubeConfigError(
                f"cannot load kubeconfig {explicit}: no such file; check the --kubeconfig path"
            )
        return [path], f"kubeconfig {explicit}"
    listed = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    if listed:
        existing = [os.path.expanduser(p) for p in listed if os.path.isfile(os.path.expanduser(p))]
        if not existing:
            raise KubeConfigError(
                f"cannot load kubeconfig {os.pathsep.join(listed)} (from $KUBECONFIG): none of these "
                "files exists; fix $KUBECONFIG or pass --kubeconfig"
            )
        return existing, f"kubeconfig {os.pathsep.join(existing)} (from $KUBECONFIG)"
    default = Path(os.path.expanduser("~/.kube/config"))
    return ([str(default)], f"kubeconfig {default}") if default.is_file() else ([], "")


def _read_kubeconfig(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as stream:  # a stream: YAML errors then quote no content
            data = yaml.safe_load(stream)
    except OSError as err:
        raise KubeConfigError(f"cannot load kubeconfig {path}: {err.strerror or err}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or type(err).__name__
        raise KubeConfigError(f"cannot load kubeconfig {path}: not valid YAML{at}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise KubeConfigError(
            f"cannot load kubeconfig {path}: not a kubeconfig (expected a mapping at the top)"
        )
    for key in ("clusters", "contexts", "users"):
        items = data.get(key) or []
        if not isinstance(items, list) or not all(isinstance(i, dict) and "name" in i for i in items):
            raise KubeConfigError(
                f"cannot load kubeconfig {path}: {key} must be a list of entries that each have a name"
            )
    return data


def _names(files: list[dict[str, Any]], key: str) -> list[str]:
    return list(dict.fromkeys(str(item["name"]) for f in files for item in f.get(key) or []))


def _listed(names: list[str]) -> str:
    return ", ".join(names) if names else "none defined"


# Python reprs of kubeconfig entries (the library names merged entries by their whole dict).
_ENTRY_REPR = re.compile(r"\{.*\}")


def _reason(err: BaseException) -> str:
    """The library's message, which says what is wrong (`File does not exist: /x/ca.crt`), with
    anything that could quote a kubeconfig entry's values cut out."""
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    if isinstance(err, OSError) and err.strerror:
        text = f"{err.strerror}: {err.filename}" if err.filename else err.strerror
    text = _ENTRY_REPR.sub("{…}", text)
    if isinstance(err, binascii.Error):
        text = f"invalid base64 data ({text})"
    if isinstance(err, ssl.SSLError):
        text = f"unusable certificate or key ({err.reason or text})"
    return f"{text}; fix the kubeconfig or choose another with --kubeconfig or --context"


def _in_cluster() -> ClusterAccess:
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config

    cfg = k8s_client.Configuration()
    try:
        k8s_config.load_incluster_config(client_configuration=cfg)
    except Exception as err:
        raise KubeConfigError(f"cannot load in-cluster config: {type(err).__name__}") from err
    return ClusterAccess(
        host=cfg.host.rstrip("/"),
        ssl_context=_ssl_context(cfg),
        service_account=ServiceAccountToken(SERVICE_ACCOUNT_TOKEN),
        description="in-cluster service account",
    )


def _ssl_context(cfg: Any) -> ssl.SSLContext | bool:
    if not str(cfg.host).startswith("https"):
        return False
    if not cfg.verify_ssl:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = (
            ssl.create_default_context(cafile=cfg.ssl_ca_cert)
            if cfg.ssl_ca_cert
            else ssl.create_default_context()
        )
    if cfg.cert_file:
        context.load_cert_chain(cfg.cert_file, cfg.key_file)
    return context
