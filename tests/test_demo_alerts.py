"""`demo --profile alerts` makes the shipped alerts fire, once each, under a real Prometheus.

The real `mindx-fault-exporter demo` process runs the alerts profile 30 times faster than real
time; a real `prometheus` (Debian package) scrapes it with the configuration shipped for trying
the demo (deploy/demo/prometheus.yml, target and intervals adapted) and evaluates a copy of
deploy/prometheus/alerts.yaml whose `for:` windows and time thresholds are divided by the same
factor (the shipped file stays as it is). Every chip, node, switch and job alert, and both
staleness alerts, must fire, and none may flap.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.simulator import AlertsScenario, ClusterModel, Node
from exporter.simulator.scenario import STUCK_JOB, AlertsRoles
from tests.prometheus_process import PROMETHEUS, PrometheusServer, free_port, prometheus

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "alerts.yaml"
DEMO_PROMETHEUS = ROOT / "deploy" / "demo" / "prometheus.yml"
DEMO_ALERTMANAGER = ROOT / "deploy" / "demo" / "alertmanager.yml"
SCALE = 30  # simulated seconds per real second
# The alerts the profile promises: every chip, node, switch and job alert, and the staleness ones.
EXPECTED = {
    "MindXNPUChipSeparated",
    "MindXNPUChipPreSeparate",
    "MindXNPUChipRestartFaultPersists",
    "MindXNPUChipUnknownFaultHandling",
    "MindXNPUChipPublicFault",
    "MindXNPUFaultEventsFlapping",
    "MindXNPUChipFlapping",
    "MindXPublicFaultSeparateNPU",
    "MindXNPUChipFaultFrequencySeparated",
    "MindXJobSchedulingException",
    "MindXJobRescheduledRepeatedly",
    "MindXDPUSeparated",
    "MindXNodeUnhealthy",
    "MindXNodePreSeparate",
    "MindXSwitchUnhealthy",
    "MindXSwitchDegraded",
    "MindXJobRetriesExhausted",
    "MindXJobRetriesLow",
    "MindXDevicePluginStale",
    "MindXVolcanoStale",
}
# Rule time thresholds to compress with the clock: alert → (text in its expr, seconds in it).
THRESHOLDS = {
    "MindXDevicePluginStale": ("> 900", 900),
    "MindXVolcanoStale": ("> 300", 300),
    "MindXNPUFaultEventsFlapping": ("[1h]", 3600),
}
DEADLINE = 150.0  # seconds; the last alert (RestartFaultPersists) is due at about (180 + 1800) / 30 = 66 s

pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="needs prometheus (Debian package of that name)")


def scaled(seconds: float) -> str:
    return f"{max(1, round(seconds / SCALE))}s"


def compressed_rules(target: Path) -> Path:
    """The shipped rules with every `for:` and the time thresholds of THRESHOLDS divided by SCALE."""
    doc = yaml.safe_load(RULES.read_text())
    names = set()
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue  # a recording rule
            names.add(rule["alert"])
            duration = re.fullmatch(r"(\d+)([smh])", rule.get("for", "0s"))
            assert duration, rule.get("for")
            rule["for"] = scaled(int(duration[1]) * {"s": 1, "m": 60, "h": 3600}[duration[2]])
            if rule["alert"] in THRESHOLDS:
                text, seconds = THRESHOLDS[rule["alert"]]
                assert text in rule["expr"], (rule["alert"], "its threshold changed: update THRESHOLDS")
                new = f"[{scaled(seconds)}]" if text.startswith("[") else f"> {seconds / SCALE:g}"
                rule["expr"] = rule["expr"].replace(text, new)
    assert names >= EXPECTED, EXPECTED - names
    target.write_text(yaml.safe_dump(doc, sort_keys=False))
    return target


def prometheus_config(port: int, rules: Path) -> dict[str, Any]:
    """deploy/demo/prometheus.yml with the demo's port, the compressed rules, 1 s intervals and no
    Alertmanager."""
    config: dict[str, Any] = yaml.safe_load(DEMO_PROMETHEUS.read_text())
    config["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(rules)]
    config.pop("alerting")
    (job,) = config["scrape_configs"]
    assert job["static_configs"] == [{"targets": ["127.0.0.1:9847"]}]  # the demo's default address
    job["static_configs"] = [{"targets": [f"127.0.0.1:{port}"]}]
    return config


@contextlib.asynccontextmanager
async def demo(port: int, workdir: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """`mindx-fault-exporter demo --profile alerts`, running until its first lines are printed."""
    log = (workdir / "demo.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "exporter",
        "demo",
        "--profile",
        "alerts",
        "--time-scale",
        str(SCALE),
        "--web.listen-address",
        f"127.0.0.1:{port}",
        "--log.level",
        "warning",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
    )
    try:
        assert proc.stdout is not None
        banner = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert "profile alerts, time scale 30" in banner, banner + (workdir / "demo.log").read_text()
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()


def episodes(values: list[list[Any]]) -> int:
    """Firing spans in a range-query series sampled every second: a gap starts a new one."""
    times = [float(t) for t, _ in values]
    return 1 + sum(1 for a, b in itertools.pairwise(times) if b - a > 1.5)


def scripted_nodes() -> set[str]:
    """The nodes the demo's script drives: the same seed and size (the demo's defaults) reserve
    the same nodes."""
    scenario = AlertsScenario()
    ClusterModel(30, seed=1, script=scenario)
    assert scenario.roles is not None
    return {node.name for node in vars_of(scenario.roles)}


def vars_of(roles: AlertsRoles) -> list[Node]:
    return [roles.chips, roles.switch, roles.node_down, roles.job, roles.quiet]


SCRIPTED_NODES = scripted_nodes()


def is_scripted(labels: dict[str, str]) -> bool:
    if labels["alertname"] == "MindXNPUChipFaultFrequencySeparated":
        return True  # ClusterD's separations from before the start (always two, random chips)
    if labels["alertname"] == "MindXJobSchedulingException":
        return labels.get("job") == STUCK_JOB
    if "node" in labels:
        return labels["node"] in SCRIPTED_NODES
    return labels.get("podgroup", "").startswith("alerts-demo-") or labels["alertname"] == "MindXVolcanoStale"


async def firing(prom: PrometheusServer) -> set[str]:
    """Names of the alerts the script makes fire now (random faults of other nodes left out)."""
    series = await prom.query('ALERTS{alertstate="firing"}')
    return {s["metric"]["alertname"] for s in series if is_scripted(s["metric"])}


def test_alerts_profile_refuses_too_few_nodes() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "exporter", "demo", "--profile", "alerts", "--nodes", "4"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "mindx-fault-exporter demo: --profile alerts needs --nodes 5 or more (got 4): "
        "its script drives 5 nodes of its own"
    ], done.stderr
    assert done.stdout == ""


def test_demo_configurations_are_valid() -> None:
    promtool, amtool = shutil.which("promtool"), shutil.which("amtool")
    if promtool is None or amtool is None:
        pytest.skip("needs promtool and amtool (Debian packages prometheus, prometheus-alertmanager)")
    for args in (
        [promtool, "check", "config", str(DEMO_PROMETHEUS)],
        [amtool, "check-config", str(DEMO_ALERTMANAGER)],
    ):
        done = subprocess.run(args, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
    assert "../prometheus/alerts.yaml" in yaml.safe_load(DEMO_PROMETHEUS.read_text())["rule_files"]


async def test_alerts_profile_fires_every_alert_once(tmp_path: Path) -> None:
    port = free_port()
    rules = compressed_rules(tmp_path / "alerts.yaml")
    seen: dict[str, float] = {}
    async with (
        demo(port, tmp_path) as proc,
        prometheus(prometheus_config(port, rules), tmp_path / "prom") as prom,
    ):
        began = time.time()
        try:
            while not seen.keys() >= EXPECTED and time.time() - began < DEADLINE:
                assert proc.returncode is None, "the demo exited"
                for name in await firing(prom):
                    seen.setdefault(name, time.time() - began)
                await asyncio.sleep(1.0)
            missing = EXPECTED - seen.keys()
            assert not missing, f"never fired within {DEADLINE:.0f} s: {sorted(missing)} (fired: {seen})"

            # No flapping. Each scripted alert (name and labels) fires in one span: two are let
            # pass for a scrape that failed on a loaded machine. The random faults of the other
            # nodes move 30 times faster than in real life, and a switch fault that comes and goes
            # under a lasting one can rightly re-fire an alert: three spans at most.
            series = await prom.query_range('ALERTS{alertstate="firing"}', began - 5, time.time(), 1)
            spans = {tuple(sorted(s["metric"].items())): episodes(s["values"]) for s in series}
            scripted = {labels: n for labels, n in spans.items() if is_scripted(dict(labels))}
            names = {dict(labels)["alertname"] for labels in scripted}
            assert names == EXPECTED, (names ^ EXPECTED, scripted)
            assert not {labels: n for labels, n in scripted.items() if n > 2}
            assert not {labels: n for labels, n in spans.items() if n > 3}
        except AssertionError as err:
            raise AssertionError(f"{err}\n{prom.process.tail()}") from err
    assert proc.returncode == 0  # SIGTERM stops the demo cleanly
