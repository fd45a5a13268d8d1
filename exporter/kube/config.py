"""Where the Kubernetes API is and how to authenticate, resolved by the official `kubernetes`
package (kubeconfig with contexts, exec and auth-provider plugins, or in-cluster config).

Only loading is delegated; requests are made with aiohttp (`exporter.kube.client`).
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

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
    """`--kubeconfig`, then `$KUBECONFIG`, then `~/.kube/config`; in-cluster when none exists
    and the pod's service account is mounted."""
    path = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or None
    default = Path(os.path.expanduser("~/.kube/config"))
    if path is None and default.exists():
        path = str(default)
    if path is None and "KUBERNETES_SERVICE_HOST" in os.environ:
        return _in_cluster()
    if path is None:
        raise KubeConfigError(
            "no kubeconfig found (--kubeconfig, $KUBECONFIG, ~/.kube/config) and not running in a cluster"
        )
    cfg = k8s_client.Configuration()
    try:
        k8s_config.load_kube_config(
            config_file=path, context=context, client_configuration=cfg, persist_config=False
        )
    except Exception as err:  # the loader raises many types; none may carry secrets into logs
        raise KubeConfigError(f"cannot load kubeconfig {path}: {type(err).__name__}") from err
    return ClusterAccess(
        host=cfg.host.rstrip("/"),
        ssl_context=_ssl_context(cfg),
        configuration=cfg,
        description=f"kubeconfig {path}" + (f" context {context}" if context else ""),
    )


def _in_cluster() -> ClusterAccess:
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
