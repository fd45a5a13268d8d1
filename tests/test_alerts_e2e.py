"""End to end: a fault in a device-plugin ConfigMap becomes an Alertmanager notification.

Real `prometheus` and `prometheus-alertmanager` processes (Debian packages; .ci/run installs
them) run on 127.0.0.1 with free ports and temporary directories. Prometheus scrapes the real
exporter, which watches the project's Kubernetes API test server, and evaluates the real rule
file `deploy/prometheus/alerts.yaml` (loaded as it is, not copied). Alertmanager runs the example
configuration `deploy/alertmanager/alertmanager.yaml` with its receivers pointed at a webhook
server in this test and its timers shortened. Every wait polls with a deadline.
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from aiohttp import web

from exporter.apiserver import KubeApiTestServer
from exporter.sources.common import go_json_dumps, sha256_hex
from tests.conftest import StartExporter
from tests.helpers import eventually, fixture
from tests.prometheus_process import ALERTMANAGER, PROMETHEUS, free_port, running, wait_ready

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "alerts.yaml"
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yaml"
ALERT = "MindXNPUChipSeparated"
NODE, NPU = "node134", "Ascend910-2"

pytestmark = pytest.mark.skipif(
    PROMETHEUS is None or ALERTMANAGER is None,
    reason="needs prometheus and prometheus-alertmanager (Debian packages of those names)",
)


# --- the device plugin's ConfigMap, as the producer writes it --------------------------------


def device_info(fault: bool) -> dict[str, Any]:
    """node134's ConfigMap, written now (fresh UpdateTime, valid CheckCode); with `fault`, chip
    Ascend910-2 is SeparateNPU with code 80E18402, else all eight chips are available."""
    cm = fixture("deviceinfo-node134-healthy.json")
    info = orjson.loads(cm["data"]["DeviceInfoCfg"])
    chips = [f"Ascend910-{i}" for i in range(8)]
    faults: list[dict[str, Any]] = []
    if fault:
        chips.remove(NPU)
        faults.append(
            {
                "fault_type": "CardUnhealthy",
                "npu_name": NPU,
                "large_model_fault_level": "SeparateNPU",
                "fault_level": "SeparateNPU",
                "fault_handling": "SeparateNPU",
                "fault_code": "80E18402",
                "fault_time_and_level_map": {
                    "80E18402": {"fault_time": int(time.time() * 1000), "fault_level": "SeparateNPU"}
                },
            }
        )
    device_list = {
        "huawei.com/Ascend910": ",".join(chips),
        "huawei.com/Ascend910-Fault": orjson.dumps(faults).decode(),
        "huawei.com/Ascend910-NetworkUnhealthy": "",
        "huawei.com/Ascend910-Recovering": "",
        "huawei.com/Ascend910-Unhealthy": NPU if fault else "",
    }
    update_time = int(time.time())
    info["DeviceInfo"] = {"DeviceList": device_list, "UpdateTime": update_time}
    info["CheckCode"] = sha256_hex(go_json_dumps({"DeviceList": device_list, "UpdateTime": update_time}))
    cm["data"]["DeviceInfoCfg"] = orjson.dumps(info).decode()
    return cm


# --- the webhook --------------------------------------------------------------------------------


@dataclass
class Webhook:
    """Records Alertmanager's webhook notifications: (receiver, payload)."""

    notifications: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.notifications.append((request.match_info["receiver"], await request.json()))
        return web.Response(text="ok")

    def alerts(self, receiver: str, status: str) -> list[dict[str, Any]]:
        return [
            alert
            for name, payload in self.notifications
            if name == receiver
            for alert in payload["alerts"]
            if alert["labels"].get("alertname") == ALERT and alert["status"] == status
        ]


def alertmanager_config(hook_url: str) -> dict[str, Any]:
    """The example configuration, receivers → the test's webhook, timers in seconds."""
    config: dict[str, Any] = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    config["global"]["resolve_timeout"] = "10s"
    config["receivers"] = [
        {"name": r["name"], "webhook_configs": [{"url": f"{hook_url}/{r['name']}", "send_resolved": True}]}
        for r in config["receivers"]
    ]

    def shorten(route: dict[str, Any], root: bool = False) -> None:
        for key, value in (("group_wait", "1s"), ("group_interval", "1s"), ("repeat_interval", "1h")):
            if root or key in route:
                route[key] = value
        for child in route.get("routes", ()):
            shorten(child)

    shorten(config["route"], root=True)
    return config


def rule_for_seconds(alert: str) -> float:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    rule = next(r for g in groups for r in g["rules"] if r.get("alert") == alert)
    total = 0.0
    for amount, unit in re.findall(r"(\d+)([smh])", rule.get("for", "0s")):
        total += int(amount) * {"s": 1, "m": 60, "h": 3600}[unit]
    return total


# --- the test -----------------------------------------------------------------------------------


async def test_separate_npu_fault_notifies_and_resolves(
    api: KubeApiTestServer, start_exporter: StartExporter, tmp_path: Path
) -> None:
    assert PROMETHEUS is not None and ALERTMANAGER is not None
    # The critical chip alert must be quick: the test waits for its `for:` plus the pipeline.
    hold = rule_for_seconds(ALERT)
    assert hold <= 60, f"{ALERT} has for: {hold}s; too long for this test"

    api.store.apply("configmaps", device_info(fault=False))
    exporter = await start_exporter()

    webhook = Webhook()
    app = web.Application()
    app.router.add_post("/{receiver}", webhook.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook_port = runner.addresses[0][1]

    am_port, prom_port = free_port(), free_port()
    am_dir, prom_dir = tmp_path / "alertmanager", tmp_path / "prometheus"
    am_dir.mkdir()
    prom_dir.mkdir()
    (am_dir / "alertmanager.yaml").write_text(
        yaml.safe_dump(alertmanager_config(f"http://127.0.0.1:{hook_port}"))
    )
    (prom_dir / "prometheus.yaml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES)],
                "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
                "scrape_configs": [
                    {
                        "job_name": "mindx-fault-exporter",
                        "honor_labels": True,
                        "static_configs": [{"targets": [f"127.0.0.1:{exporter.exporter.port}"]}],
                    }
                ],
            }
        )
    )

    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(runner.cleanup)
        session = await stack.enter_async_context(aiohttp.ClientSession())
        alertmanager = await stack.enter_async_context(
            running(
                "alertmanager",
                [
                    ALERTMANAGER,
                    f"--config.file={am_dir / 'alertmanager.yaml'}",
                    f"--storage.path={am_dir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{am_port}",
                    "--cluster.listen-address=",
                ],
                am_dir,
            )
        )
        prometheus = await stack.enter_async_context(
            running(
                "prometheus",
                [
                    PROMETHEUS,
                    f"--config.file={prom_dir / 'prometheus.yaml'}",
                    f"--storage.tsdb.path={prom_dir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                prom_dir,
            )
        )
        logs = (alertmanager, prometheus)
        try:
            await wait_ready(session, f"http://127.0.0.1:{am_port}/-/ready", alertmanager)
            await wait_ready(session, f"http://127.0.0.1:{prom_port}/-/ready", prometheus)

            async def scraped() -> None:
                query = {"query": 'up{job="mindx-fault-exporter"} == 1 and on () mindx_exporter_watch_up'}
                async with session.get(f"http://127.0.0.1:{prom_port}/api/v1/query", params=query) as resp:
                    assert (await resp.json())["data"]["result"], "exporter not scraped yet"

            await eventually(scraped, timeout=20, interval=0.2)
            assert webhook.alerts("mindx-pager", "firing") == []

            # The device plugin raises the fault.
            api.store.apply("configmaps", device_info(fault=True))
            expected_labels = {
                "alertname": ALERT,
                "node": NODE,
                "npu": NPU,
                "id": "2",
                "fault_handling": "SeparateNPU",
                "severity": "critical",
                "subject": "chip",
            }

            async def notified() -> None:
                # Routed by severity (pager) and by fault_handling (hardware ticket).
                for receiver in ("mindx-pager", "npu-hardware"):
                    alerts = webhook.alerts(receiver, "firing")
                    assert alerts, f"no firing {ALERT} at {receiver}: {webhook.notifications}"
                    assert alerts[-1]["labels"] == expected_labels
                annotations = webhook.alerts("mindx-pager", "firing")[-1]["annotations"]
                assert annotations["summary"] == f"NPU {NPU} on {NODE} is isolated (SeparateNPU)"
                assert annotations["description"].endswith("Fault codes: 80E18402.")
                assert annotations["runbook_url"].endswith("docs/runbooks.md#mindxnpuchipseparated")

            await eventually(notified, timeout=30 + hold, interval=0.2)
            # Nothing went to the warning receivers for this chip.
            assert webhook.alerts("npu-operations", "firing") == []
            assert webhook.alerts("mindx-chat", "firing") == []

            # The chip is repaired: the device plugin writes it healthy again.
            api.store.apply("configmaps", device_info(fault=False))

            async def resolved() -> None:
                for receiver in ("mindx-pager", "npu-hardware"):
                    alerts = webhook.alerts(receiver, "resolved")
                    assert alerts, f"no resolved {ALERT} at {receiver}"
                    assert alerts[-1]["labels"] == expected_labels

            await eventually(resolved, timeout=30, interval=0.2)
        except AssertionError as err:
            raise AssertionError(f"{err}\n" + "\n".join(p.tail() for p in logs)) from err
