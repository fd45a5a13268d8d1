"""Automatic sharding: a StatefulSet pod serves the shard of its ordinal among its StatefulSet's
replicas, re-shards when the StatefulSet is scaled, and reads the StatefulSet with GET and WATCH
of that one object only (the RBAC the sharded overlay grants)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from exporter.apiserver import KubeApiTestServer
from exporter.app import Exporter, ExporterConfig
from exporter.autoshard import PodNameError, statefulset_pod
from exporter.kube.config import load_cluster_access
from exporter.kube.reflector import ReflectorOptions
from exporter.sharding import fnv1a_64
from exporter.simulator import ClusterSimulator
from tests.helpers import Series, eventually, parse_exposition

FAST = ReflectorOptions(page_size=100, backoff_initial=0.01, backoff_max=0.05)
NAMESPACE, NAME = "monitoring", "mindx-fault-exporter"


def statefulset(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "spec": {"replicas": replicas, "serviceName": NAME},
    }


def test_pod_names() -> None:
    pod = statefulset_pod("mindx-fault-exporter-12", "monitoring")
    assert (pod.statefulset, pod.ordinal) == ("mindx-fault-exporter", 12)
    for bad in ("mindx-fault-exporter", "exporter-x", "Exporter-1", "exporter-01"):
        with pytest.raises(PodNameError):
            statefulset_pod(bad, "monitoring")


def nodes_served(series: Series) -> set[str]:
    return {
        dict(labels)["node"]
        for name, labels in series
        if name == "mindx_source_update_timestamp_seconds" and ("source", "device-plugin") in labels
    }


async def test_follows_the_statefulset_when_scaled(tmp_path: Path) -> None:
    async with KubeApiTestServer(bookmark_interval=0.05) as api:
        simulator = ClusterSimulator(
            api.store, nodes=40, seed=4, clusterd_interval=None, volcano_interval=None
        )
        simulator.populate()
        every_node = {node.name for node in simulator.model.nodes}
        api.store.create("statefulsets", statefulset(2), namespace=NAMESPACE)
        access = load_cluster_access(str(api.write_kubeconfig(tmp_path / "kc")))
        config = ExporterConfig(
            listen_address="127.0.0.1:0",
            reflector=FAST,
            autoshard=statefulset_pod(f"{NAME}-1", NAMESPACE),
        )
        async with Exporter(access, config) as exporter:
            await exporter.wait_ready(15)

            async def serving(total: int) -> None:
                series = parse_exposition(exporter.store.body().decode() + exporter.metrics.render().decode())
                assert series[("mindx_exporter_total_shards", frozenset())] == total
                assert series[("mindx_exporter_shard_ordinal", frozenset())] == 1
                expected = {node for node in every_node if fnv1a_64(node) % total == 1}
                assert nodes_served(series) == expected

            await eventually(lambda: serving(2), timeout=15)
            scaled = statefulset(3)
            scaled["metadata"]["resourceVersion"] = api.store.get("statefulsets", NAMESPACE, NAME)[
                "metadata"
            ]["resourceVersion"]
            api.store.update("statefulsets", scaled, namespace=NAMESPACE)
            await eventually(lambda: serving(3), timeout=15)
            # Scaled below this pod (ordinal 1 of 1): it is about to go, and keeps its part until then.
            api.store.patch("statefulsets", NAMESPACE, NAME, {"spec": {"replicas": 1}}, "merge")
            simulator.advance(600)
            await eventually(lambda: serving(3), timeout=5)
        # Only GET and WATCH of the one StatefulSet: what get/watch on it with resourceNames allows.
        statefulset_requests = [(m, p) for m, p in api.request_log if "/statefulsets" in p]
        assert statefulset_requests
        for method, path in statefulset_requests:
            assert method == "GET"
            assert path.startswith(f"/apis/apps/v1/namespaces/{NAMESPACE}/statefulsets/{NAME}") or (
                "watch=1" in path and f"fieldSelector=metadata.name%3D{NAME}" in path
            ), path


def test_bad_pod_name_is_a_user_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--pod", "exporter", "--pod-namespace", "monitoring"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "is not a StatefulSet pod name" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
