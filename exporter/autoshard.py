"""Automatic sharding in a StatefulSet (kube-state-metrics' `--pod`/`--pod-namespace`): a pod
named `<statefulset>-<ordinal>` serves shard `<ordinal>` of `spec.replicas` shards, and follows the
StatefulSet when it is scaled. It reads only its own StatefulSet, with `get` and `watch` on that
one object (a GET, then a watch selected by `metadata.name` from the GET's resourceVersion), so
the RBAC grants nothing else."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from exporter.kube.client import KubeClient
from exporter.kube.errors import KubeError
from exporter.kube.reflector import Backoff
from exporter.logs import event

log = logging.getLogger("exporter.autoshard")

_POD_NAME = re.compile(r"^(?P<set>[a-z0-9]([-a-z0-9]*[a-z0-9])?)-(?P<ordinal>0|[1-9][0-9]{0,4})$")


class PodNameError(ValueError):
    """The pod name is not `<statefulset>-<ordinal>`."""


@dataclass(frozen=True, slots=True)
class StatefulSetPod:
    namespace: str
    statefulset: str
    ordinal: int

    @property
    def path(self) -> str:
        return f"/apis/apps/v1/namespaces/{self.namespace}/statefulsets"


def statefulset_pod(pod: str, namespace: str) -> StatefulSetPod:
    match = _POD_NAME.match(pod)
    if match is None or not namespace:
        raise PodNameError(
            f"--pod {pod!r} is not a StatefulSet pod name <statefulset>-<ordinal> (set --pod from the "
            "downward API metadata.name and --pod-namespace from metadata.namespace)"
        )
    return StatefulSetPod(namespace, match["set"], int(match["ordinal"]))


def replicas_of(statefulset: object) -> int | None:
    """`spec.replicas` (Kubernetes defaults it to 1); None for anything that is not a StatefulSet."""
    if not isinstance(statefulset, dict):
        return None
    spec = statefulset.get("spec")
    if not isinstance(spec, dict):
        return None
    replicas = spec.get("replicas", 1)
    return (
        replicas if isinstance(replicas, int) and not isinstance(replicas, bool) and replicas >= 0 else None
    )


async def get_replicas(client: KubeClient, pod: StatefulSetPod) -> tuple[int, str]:
    """The StatefulSet's replicas and resourceVersion."""
    obj = await client.get_json(f"{pod.path}/{pod.statefulset}", {})
    replicas = replicas_of(obj)
    if replicas is None:
        raise ValueError(f"statefulset {pod.namespace}/{pod.statefulset} has no usable spec.replicas")
    meta = obj.get("metadata")
    version = meta.get("resourceVersion", "") if isinstance(meta, dict) else ""
    return replicas, str(version)


async def follow_replicas(
    client: KubeClient,
    pod: StatefulSetPod,
    current: int,
    version: str,
    on_change: Callable[[int], Awaitable[None]],
    idle_timeout: float = 300.0,
    backoff: Backoff | None = None,
) -> None:
    """Call `on_change(replicas)` whenever the StatefulSet's replicas change; runs until cancelled.
    A broken watch is reopened from the last version seen; a failed reopen GETs the object again."""
    backoff = backoff or Backoff(1.0, 30.0)
    params = {"fieldSelector": f"metadata.name={pod.statefulset}", "allowWatchBookmarks": "true"}
    while True:
        try:
            if not version:
                replicas, version = await get_replicas(client, pod)
                if replicas != current:
                    current = replicas
                    await on_change(current)
            async for kind, obj in client.watch(
                pod.path, {**params, "resourceVersion": version}, idle_timeout
            ):
                meta = obj.get("metadata")
                if isinstance(meta, dict) and meta.get("resourceVersion"):
                    version = str(meta["resourceVersion"])
                scaled = replicas_of(obj) if kind in ("ADDED", "MODIFIED") else None
                if scaled is not None and scaled != current:
                    current = scaled
                    await on_change(current)
            backoff.reset()
        except (KubeError, ValueError) as err:
            event(
                log, logging.WARNING, "statefulset watch failed", statefulset=pod.statefulset, error=str(err)
            )
            version = ""  # start again from a GET
            await asyncio.sleep(backoff.next())
