"""The scale-out path on a real engine: exporter shards scraped by a vmagent cluster into one
VictoriaMetrics store hold exactly the single process's series, and vmalert fires the shipped
alerts as Prometheus does over the single process.

Everything runs on 127.0.0.1: the project's Kubernetes API test server with a seeded simulated
cluster (in this process), three exporter shards and one unsharded reference exporter (real CLI
processes), two `vmagent` members in cluster mode splitting the shards between them and
remote-writing to one `victoria-metrics`, `vmalert` evaluating a copy of
deploy/prometheus/alerts.yaml (every `for:` set to 0s) against it, and Debian's `prometheus`
scraping the reference exporter and evaluating the same copy. The simulator churns while everything
scrapes, then stops; the test then compares, polling with deadlines:

(a) the mindx data series stored in VictoriaMetrics (without `instance`/`job`) with the reference
    exporter's /metrics: same label sets and values, none duplicated, none missing;
(b) each vmagent member's targets: non-empty, disjoint, together every shard;
(c) the alerts vmalert reports firing with those Prometheus reports firing, for every data alert
    whose own expression has no range, offset or time() (MindXNPUChipFlapping reads the
    fault-history recording rules, which vmalert writes back to the store and reads again).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import re
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from exporter.apiserver import KubeApiTestServer
from exporter.simulator import ClusterSimulator
from tests import vm_process
from tests.helpers import eventually, parse_exposition
from tests.prometheus_process import PROMETHEUS, Process, PrometheusServer, free_port, prometheus, wait_ready
from tests.vm_process import (
    VICTORIA_METRICS,
    VMAGENT,
    VMALERT,
    VmProcess,
    spawn,
    victoria_metrics,
    vmagent,
    vmalert,
)

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "alerts.yaml"
SHARDS = 3
MEMBERS = 2
JOB = "mindx-fault-exporter"
# Alerts the simulated cluster (seed 5, 40 nodes) triggers; each must fire on both engines.
MUST_FIRE = ("MindXNPUChipSeparated", "MindXNodeUnhealthy", "MindXSwitchUnhealthy")
# Measured by each process against its own clock when it sees a fault clear: the same series and
# counts everywhere, sums and buckets a few milliseconds apart (as in tests/test_sharding.py).
TIMED = ("mindx_npu_fault_duration_seconds_sum", "mindx_npu_fault_duration_seconds_bucket")
# The labels the scraper adds; which process served a series is not part of the data.
TARGET_LABELS = ("instance", "job")

MISSING = [
    name
    for name, path in (
        ("victoria-metrics", VICTORIA_METRICS),
        ("vmagent", VMAGENT),
        ("vmalert", VMALERT),
        ("prometheus", PROMETHEUS),
    )
    if path is None
]
needs_binaries = pytest.mark.skipif(
    bool(MISSING) and not os.environ.get("CI"),
    reason=f"needs {', '.join(MISSING)}: apt-get install victoria-metrics prometheus (as .ci/run does)",
)

Key = tuple[str, frozenset[tuple[str, str]]]


# --- series --------------------------------------------------------------------------------------


def is_data(name: str) -> bool:
    return name.startswith("mindx_") and not name.startswith("mindx_exporter_")


def key(name: str, labels: dict[str, str], drop: tuple[str, ...] = ()) -> Key:
    """A series as stored: no empty label values (storage drops those), nor the labels in `drop`."""
    return name, frozenset((k, v) for k, v in labels.items() if k not in drop and k != "__name__" and v != "")


async def scrape(session: aiohttp.ClientSession, port: int) -> dict[Key, float]:
    async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
        assert resp.status == 200
        body = await resp.text()
    return {
        key(name, dict(labels)): value
        for (name, labels), value in parse_exposition(body).items()
        if is_data(name)
    }


def same_value(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)


def describe(keys: Any) -> str:
    return ", ".join(f"{name}{dict(sorted(labels))}" for name, labels in sorted(keys, key=str)[:3])


# --- alerts ----------------------------------------------------------------------------------------


def rules_copy(path: Path) -> list[str]:
    """Write the shipped rules with every `for:` at 0s to `path`; return the names of the alerts to
    compare: those not about the exporter's own health (their `up`/`instance` differ by design
    between one process and shards) whose expression depends only on the current samples (no range,
    offset or time(): the two engines sample at different moments)."""
    document = yaml.safe_load(RULES.read_text())
    compared = []
    for group in document["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            if "for" in rule:
                rule["for"] = "0s"
            stateless = not re.search(r"\[|\boffset\b|time\(\)", rule["expr"])
            if stateless and rule["labels"]["subject"] != "exporter":
                compared.append(rule["alert"])
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return compared


Labels = frozenset[tuple[str, str]]
# Firing alerts: (label set, annotations as rendered) → how many times the engine reports it.
AlertSet = Counter[tuple[Labels, Labels]]


async def prometheus_firing(server: PrometheusServer, names: list[str]) -> AlertSet:
    data = await server.api("alerts", {})
    return Counter(
        (frozenset(a["labels"].items()), frozenset(a["annotations"].items()))
        for a in data["alerts"]
        if a["state"] == "firing" and a["labels"]["alertname"] in names
    )


async def vmalert_firing(server: VmProcess, names: list[str]) -> AlertSet:
    data = await server.get_json("/api/v1/alerts")
    firing: AlertSet = Counter()
    for alert in data["alerts"] or ():  # null before the first evaluation
        labels = {"alertname": alert["name"], **alert["labels"]}
        if alert["state"] == "firing" and labels["alertname"] in names:
            firing[frozenset(labels.items()), frozenset(alert["annotations"].items())] += 1
    return firing


def show(alerts: AlertSet) -> list[dict[str, str]]:
    return [dict(sorted(labels | annotations)) for labels, annotations in sorted(alerts, key=str)[:2]]


# --- processes ---------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def exporter_process(
    session: aiohttp.ClientSession, workdir: Path, kubeconfig: Path, port: int, *flags: str
) -> AsyncIterator[Process]:
    """The exporter's CLI, as an operator runs it (this checkout's code)."""
    args = [
        sys.executable,
        "-m",
        "exporter",
        f"--kubeconfig={kubeconfig}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    path = os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))
    async with spawn(workdir.name, [*args, *flags], workdir, env={"PYTHONPATH": path}) as process:
        await wait_ready(session, f"http://127.0.0.1:{port}/readyz", process, timeout=60)
        yield process


def scrape_config(ports: list[int]) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [
            {
                "job_name": JOB,
                "honor_labels": True,
                "static_configs": [{"targets": [f"127.0.0.1:{port}" for port in ports]}],
            }
        ],
    }


async def member_targets(agent: VmProcess) -> list[dict[str, Any]]:
    data = await agent.get_json("/api/v1/targets")
    targets: list[dict[str, Any]] = data["activeTargets"] or []
    return targets


async def split_cluster(
    session: aiohttp.ClientSession, stack: contextlib.AsyncExitStack, workdir: Path, remote_write: str
) -> tuple[list[int], list[VmProcess]]:
    """Start the two vmagent members on shard ports that vmagent splits between them.

    Cluster mode assigns a target to a member by a hash of its labels and address; with three
    targets and two members, one member gets all of them once in four. The test needs both
    members busy, so it picks the shards' ports with vmagent itself: free ports, both members
    started, each asked for its targets; if one has none, again with other ports. (With many
    targets, as in a real cluster, every member gets its share without help.)"""
    for attempt in range(12):
        ports = [free_port() for _ in range(SHARDS)]
        async with contextlib.AsyncExitStack() as trial:
            agents = [
                await trial.enter_async_context(
                    vmagent(
                        session,
                        workdir / f"try{attempt}-member{m}",
                        scrape_config(ports),
                        remote_write,
                        m,
                        MEMBERS,
                    )
                )
                for m in range(MEMBERS)
            ]

            async def assigned(agents: list[VmProcess] = agents) -> list[int]:
                counts = [len(await member_targets(agent)) for agent in agents]
                assert sum(counts) == SHARDS, f"targets per member so far: {counts}"
                return counts

            counts = await eventually(assigned, timeout=20, interval=0.1)
            if all(counts):
                stack.push_async_exit(trial.pop_all())
                return ports, agents
    raise AssertionError("vmagent never split three targets between two members")


# --- the test ------------------------------------------------------------------------------------------


def test_deployment_docs_quote_the_flags() -> None:
    """docs/deployment.md shows the VictoriaMetrics command lines this test runs."""
    text = (ROOT / "docs" / "deployment.md").read_text()
    section = text[text.index("## Large clusters: shards") :]
    section = section[: section.index("\n## ", 1)]
    here = Path("x")
    for args in (
        vm_process.victoria_metrics_args(1, here),
        vm_process.vmagent_args(1, here, "http://x/api/v1/write", here, 0, MEMBERS),
        vm_process.vmalert_args(1, here, "http://x", "http://y", "1s"),
    ):
        for arg in args:
            flag = arg.split("=", 1)[0]
            assert flag in section, f"{flag} is not in docs/deployment.md#large-clusters-shards"


@needs_binaries
async def test_shards_through_vmagent_cluster_into_victoriametrics(tmp_path: Path) -> None:
    assert not MISSING, f"CI=true, but {', '.join(MISSING)} missing: .ci/run installs the Debian packages"
    rules = tmp_path / "alerts.yaml"
    compared = rules_copy(rules)
    assert set(MUST_FIRE) <= set(compared)

    # vmalert's notifier: accepts what vmalert sends (Alertmanager's v2 API), keeps nothing.
    notifier = web.Application()

    async def accept(_request: web.Request) -> web.Response:
        return web.json_response({})

    notifier.router.add_post("/api/v2/alerts", accept)
    runner = web.AppRunner(notifier, access_log=None)

    async with (
        KubeApiTestServer(host="127.0.0.1", port=0, bookmark_interval=0.2) as api,
        aiohttp.ClientSession() as session,
        contextlib.AsyncExitStack() as stack,
    ):
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        notifier_url = f"http://127.0.0.1:{runner.addresses[0][1]}"

        simulator = ClusterSimulator(
            api.store, nodes=40, seed=5, clusterd_interval=None, volcano_interval=None
        )
        simulator.populate()
        simulator.report_clusterd()
        simulator.report_volcano()
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")

        store = await stack.enter_async_context(victoria_metrics(session, tmp_path / "victoria-metrics"))
        shard_ports, agents = await split_cluster(session, stack, tmp_path, f"{store.url}/api/v1/write")
        reference_port = free_port()
        processes = [
            await stack.enter_async_context(
                exporter_process(session, tmp_path / "reference", kubeconfig, reference_port)
            ),
            *[
                await stack.enter_async_context(
                    exporter_process(
                        session,
                        tmp_path / f"shard-{n}",
                        kubeconfig,
                        port,
                        f"--shard={n}",
                        f"--total-shards={SHARDS}",
                    )
                )
                for n, port in enumerate(shard_ports)
            ],
        ]
        alerting = await stack.enter_async_context(
            vmalert(session, tmp_path / "vmalert", rules, store.url, notifier_url)
        )
        reference_prometheus = await stack.enter_async_context(
            prometheus(
                {
                    "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(rules)],
                    "scrape_configs": [
                        {
                            "job_name": JOB,
                            "honor_labels": True,
                            "static_configs": [{"targets": [f"127.0.0.1:{reference_port}"]}],
                        }
                    ],
                },
                tmp_path / "prometheus",
            )
        )
        logs = [
            store.process,
            *(a.process for a in agents),
            *processes,
            alerting.process,
            reference_prometheus.process,
        ]

        try:
            # Churn while everything scrapes: faults raised, escalated and recovered, ClusterD
            # reshuffling its shards, Volcano rewriting its budgets.
            rng = random.Random(5)
            for step in range(10):
                simulator.advance(rng.uniform(60, 900))
                simulator.report_clusterd()
                if step % 3 == 0:
                    simulator.report_volcano()
                await asyncio.sleep(0.3)
            # From here on nothing changes.

            async def shards_serve_the_reference() -> dict[Key, float]:
                reference = await scrape(session, reference_port)
                union: dict[Key, float] = {}
                for port in shard_ports:
                    served = await scrape(session, port)
                    assert not served.keys() & union.keys(), "a series served by two shards"
                    union.update(served)
                missing, extra = reference.keys() - union.keys(), union.keys() - reference.keys()
                assert not missing and not extra, f"missing {describe(missing)}; extra {describe(extra)}"
                return reference

            reference = await eventually(shards_serve_the_reference, timeout=30, interval=0.2)
            assert len(reference) > 1000

            # (a) VictoriaMetrics holds exactly the single process's series.
            async def stored_equals_reference() -> None:
                expected = await scrape(session, reference_port)
                stored = [
                    (key(s["metric"]["__name__"], s["metric"], TARGET_LABELS), float(s["value"][1]))
                    for s in await store.query('{__name__=~"mindx_.+", __name__!~"mindx_exporter_.+"}')
                ]
                keys = Counter(k for k, _ in stored)
                duplicated = [k for k, n in keys.items() if n > 1]
                assert not duplicated, f"stored more than once: {describe(duplicated)}"
                missing, extra = expected.keys() - keys.keys(), keys.keys() - expected.keys()
                assert not missing and not extra, f"missing {describe(missing)}; extra {describe(extra)}"
                values = dict(stored)
                wrong = [k for k, v in expected.items() if k[0] not in TIMED and not same_value(v, values[k])]
                assert not wrong, f"different values: {[(k, expected[k], values[k]) for k in wrong[:3]]}"

            await eventually(stored_equals_reference, timeout=30, interval=0.5)

            # (b) Each vmagent member scraped its own, non-empty part of the shards, all of them up.
            seen: list[set[str]] = []
            for agent in agents:
                targets = await member_targets(agent)
                assert targets, f"{agent.process.name} scrapes nothing"
                assert all(t["health"] == "up" for t in targets), targets
                seen.append({t["scrapeUrl"] for t in targets})
            assert not seen[0] & seen[1], f"both members scrape {seen[0] & seen[1]}"
            assert seen[0] | seen[1] == {f"http://127.0.0.1:{port}/metrics" for port in shard_ports}

            # (c) vmalert over the store fires what Prometheus over the single process fires.
            async def same_alerts() -> AlertSet:
                on_prometheus = await prometheus_firing(reference_prometheus, compared)
                on_vmalert = await vmalert_firing(alerting, compared)
                names = {dict(labels)["alertname"] for labels, _ in on_prometheus}
                assert set(MUST_FIRE) <= names, f"not firing on Prometheus yet: {set(MUST_FIRE) - names}"
                # The same alerts with the same labels, and the same text in their notifications:
                # the annotations' templates (`query` included) rendered by each engine.
                assert on_vmalert == on_prometheus, (
                    f"only on vmalert: {show(on_vmalert - on_prometheus)}; "
                    f"only on Prometheus: {show(on_prometheus - on_vmalert)}"
                )
                return on_prometheus

            firing = await eventually(same_alerts, timeout=30, interval=0.5)
            assert max(firing.values()) == 1, "an alert reported twice"
        except AssertionError as err:
            raise AssertionError(f"{err}\n" + "\n".join(p.tail(15) for p in logs)) from err
