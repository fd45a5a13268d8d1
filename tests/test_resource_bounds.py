"""Resource bounds: what the largest and most hostile objects a cluster can hold do to the exporter.

- 1 MiB of garbage (the apiserver's object size limit) in every data key of every source, through
  the real exporter over HTTP: it stays responsive, reports each key, serves everything else, and
  the exposition stays valid (prometheus_client's parser and `promtool check metrics`).
- Adversarial but well-formed 1 MiB objects (thousands of resources, repeated fault entries) parse
  in linear time: the event loop is never blocked for long.
- 10,000 fault Events in one burst: scrapes stay fast and every Event is counted exactly once.
- Label values with quotes, backslashes, newlines, control characters and non-ASCII, and a node
  name of 253 characters (the Kubernetes maximum), come out escaped so both parsers return them
  exactly.
- Memory does not grow with the number of updates of one object (tracemalloc), in the handlers and
  through the whole exporter.
"""

from __future__ import annotations

import asyncio
import gc
import json
import random
import shutil
import subprocess
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from exporter.apiserver import KubeApiTestServer
from exporter.app import Exporter, ExporterConfig, SourceSelection
from exporter.kube.config import load_cluster_access
from exporter.kube.reflector import ReflectorOptions
from exporter.metrics.selfmetrics import ExporterMetrics
from exporter.metrics.store import MetricsStore
from exporter.registry import ALL_FAMILIES, SOURCES, SOURCES_BY_NAME, watch_target
from exporter.sources import clusterd, deviceplugin, noded, volcano
from tests.conftest import RunningExporter, StartExporter
from tests.helpers import FIXTURES, Series, eventually, fixture, labels, parse_exposition, select

MIB = 1024 * 1024
OPTIONS = ReflectorOptions(
    page_size=500, watch_timeout=30, stall_timeout=10, backoff_initial=0.02, backoff_max=0.2, list_timeout=20
)
PROMTOOL = shutil.which("promtool")


def promtool_check(body: bytes) -> None:
    if PROMTOOL is None:
        pytest.skip("promtool not installed (Debian package `prometheus`)")
    done = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True, timeout=120)
    assert done.returncode == 0, (done.stdout + done.stderr).decode()[:2000]


def load_fixtures(api: KubeApiTestServer) -> None:
    for path in sorted(FIXTURES.glob("*.json")):
        api.store.apply("events" if path.name.startswith("event-") else "configmaps", fixture(path.name))


def garbage(rng: random.Random, size: int, kind: str) -> str:
    """About `size` bytes (UTF-8) of one kind of garbage."""
    if kind == "bytes":  # every code point 0..255: controls, quotes, backslashes, Latin-1
        return rng.randbytes(size // 2).decode("latin-1")
    if kind == "unicode":
        alphabet = 'aZ09 ,:-"\\{}[]\n\t\u00e9\u4e2d\u2028\U0001f680'
        return "".join(rng.choice(alphabet) for _ in range(size // 3))
    if kind == "json":  # JSON-looking, invalid: unbalanced, nested past any parser's limit
        return '{"DeviceInfo":{"DeviceList":' + "[" * (size // 2) + '"x",' * (size // 8)
    raise ValueError(kind)


def cm(
    namespace: str, name: str, data: dict[str, str], labels_: dict[str, str] | None = None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels_:
        metadata["labels"] = labels_
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


DP_LABELS = {"mx-consumer-cim": "true"}
CLUSTERD_LABELS = {"mx-consumer-volcano": "true"}


def garbage_objects(rng: random.Random, kind: str) -> list[tuple[str, dict[str, Any]]]:
    """One ~1 MiB object per source, every data key garbage."""
    third, half = MIB // 3, MIB // 2
    objects = [
        (
            "configmaps",
            cm(
                "kube-system",
                "mindx-dl-deviceinfo-garbage",
                {
                    deviceplugin.KEY_DEVICE_INFO: garbage(rng, third, kind),
                    deviceplugin.KEY_SWITCH_INFO: garbage(rng, third, kind),
                    deviceplugin.KEY_MANUALLY_SEPARATED: garbage(rng, third, kind),
                },
                DP_LABELS,
            ),
        ),
        (
            "configmaps",
            cm(
                "mindx-dl",
                "mindx-dl-nodeinfo-garbage",
                {
                    noded.KEY_NODE_INFO: garbage(rng, half, kind),
                    noded.KEY_UPDATE_TIME: garbage(rng, half, kind),
                },
                DP_LABELS,
            ),
        ),
        (
            "configmaps",
            cm(
                "volcano-system",
                volcano.NAME,
                {
                    volcano.KEY_FAULT_NODE: garbage(rng, half, kind),
                    volcano.KEY_RETRY_TIMES: garbage(rng, half, kind),
                },
            ),
        ),
    ]
    for name in (clusterd.NODE_CM_NAME, f"{clusterd.DEVICE_PREFIX}1", f"{clusterd.SWITCH_PREFIX}1"):
        objects.append(("configmaps", cm("mindx-dl", name, {name: garbage(rng, MIB, kind)}, CLUSTERD_LABELS)))
    event = fixture("event-deviceplugin-node133-occur.json")
    event["metadata"] = {"name": "garbage.1", "namespace": "kube-system"}
    event["message"] = "device fault, " + garbage(rng, MIB, kind)
    objects.append(("events", event))
    return objects


JSON_KEYS = {
    ("kube-system", "mindx-dl-deviceinfo-garbage", deviceplugin.KEY_DEVICE_INFO),
    ("kube-system", "mindx-dl-deviceinfo-garbage", deviceplugin.KEY_SWITCH_INFO),
    ("mindx-dl", "mindx-dl-nodeinfo-garbage", noded.KEY_NODE_INFO),
    ("volcano-system", volcano.NAME, volcano.KEY_FAULT_NODE),
    ("volcano-system", volcano.NAME, volcano.KEY_RETRY_TIMES),
    ("mindx-dl", clusterd.NODE_CM_NAME, clusterd.NODE_CM_NAME),
    ("mindx-dl", f"{clusterd.DEVICE_PREFIX}1", f"{clusterd.DEVICE_PREFIX}1"),
    ("mindx-dl", f"{clusterd.SWITCH_PREFIX}1", f"{clusterd.SWITCH_PREFIX}1"),
}


def untouched(series: Series) -> Series:
    """Series of the device plugin's, NodeD's and ClusterD's device shards' fixture objects, which
    the garbage test does not overwrite (Volcano and ClusterD's node map have one object each, which
    it does overwrite; usable chips join the node map)."""
    return {
        key: value
        for key, value in series.items()
        if ("node", "garbage") not in key[1]
        and not key[0].startswith("mindx_exporter_")
        and (
            ("source", "device-plugin") in key[1]
            or ("source", "noded") in key[1]
            or (key[0].startswith("mindx_npu_chip_") and ("source", "clusterd") in key[1])
        )
        and key[0] != "mindx_node_npu_usable_chips"
    }


class ScrapeTimer:
    """Scrapes in a loop and records how long each took."""

    def __init__(self, exporter: RunningExporter) -> None:
        self.exporter = exporter
        self.latencies: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            started = time.perf_counter()
            status, _, _ = await self.exporter.get("/metrics")
            assert status == 200
            self.latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.01)

    async def __aenter__(self) -> ScrapeTimer:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


@pytest.mark.parametrize("kind", ["bytes", "unicode", "json"])
async def test_megabyte_of_garbage_in_every_source(
    api: KubeApiTestServer, start_exporter: StartExporter, kind: str
) -> None:
    load_fixtures(api)
    exporter = await start_exporter(reflector=OPTIONS)
    before = untouched(await exporter.scrape())
    assert before
    objects = garbage_objects(random.Random(kind), kind)
    async with ScrapeTimer(exporter) as timer:
        for resource, obj in objects:
            api.store.apply(resource, obj)
            await asyncio.sleep(0)

        async def reported() -> None:
            series = await exporter.scrape()
            invalid = {
                (d["namespace"], d["configmap"], d["key"])
                for d in map(dict, select(series, "mindx_configmap_invalid", reason="json"))
            }
            assert invalid >= JSON_KEYS
            assert select(series, "mindx_configmap_invalid", configmap="garbage.1", key="message")

        await eventually(reported, timeout=20)
    _, body, _ = await exporter.get("/metrics")
    series = parse_exposition(body.decode())  # no duplicate series
    assert untouched(series) == before, "series of untouched objects changed"
    assert set(select(series, "mindx_exporter_watch_up").values()) == {1}
    assert max(timer.latencies) < 2.0, f"a scrape took {max(timer.latencies):.2f}s"
    promtool_check(body)

    # Deleting the garbage leaves nothing behind.
    for resource, obj in objects:
        api.store.delete(resource, obj["metadata"]["namespace"], obj["metadata"]["name"])

    async def cleaned() -> None:
        assert not select(await exporter.scrape(), "mindx_configmap_invalid", reason="json")

    await eventually(cleaned)


# --- adversarial, well-formed megabytes ---------------------------------------------------------


def _dp_object(device_list: dict[str, str], manual: str = "") -> dict[str, Any]:
    info = {"DeviceInfo": {"DeviceList": device_list, "UpdateTime": 1744181950}, "CheckCode": ""}
    data = {deviceplugin.KEY_DEVICE_INFO: json.dumps(info), deviceplugin.KEY_MANUALLY_SEPARATED: manual}
    return cm("kube-system", "mindx-dl-deviceinfo-big", data, DP_LABELS)


def many_resources_and_manual_chips() -> tuple[str, dict[str, Any]]:
    """20,000 resource names and 20,000 manually separated chips listed under none of them."""
    device_list = {f"huawei.com/r{i}": "" for i in range(20_000)}
    return "device-plugin", _dp_object(device_list, ",".join(f"z{i}-1" for i in range(20_000)))


def repeated_fault_entries() -> tuple[str, dict[str, Any]]:
    """One chip, thousands of fault entries of one fault_type, each with its own code."""
    entries = [{"npu_name": "npu-1", "fault_type": "T", "fault_code": f"{i:X}"} for i in range(12_000)]
    return "device-plugin", _dp_object({"huawei.com/npu-Fault": json.dumps(entries, separators=(",", ":"))})


def repeated_node_devices() -> tuple[str, dict[str, Any]]:
    """NodeD: one faulty device repeated thousands of times, each with its own code."""
    devices = [{"DeviceType": "CPU", "DeviceId": 1, "FaultCode": [f"{i:X}"]} for i in range(14_000)]
    info = json.dumps({"NodeInfo": {"FaultDevList": devices, "NodeStatus": "UnHealthy"}, "CheckCode": ""})
    return "noded", cm("mindx-dl", "mindx-dl-nodeinfo-big", {noded.KEY_NODE_INFO: info}, DP_LABELS)


def many_shard_nodes() -> tuple[str, dict[str, Any]]:
    """A ClusterD device shard with thousands of nodes."""
    entries = {
        f"mindx-dl-deviceinfo-n{i}": {"DeviceList": {"huawei.com/Ascend910": "Ascend910-0"}, "UpdateTime": 1}
        for i in range(10_000)
    }
    name = f"{clusterd.DEVICE_PREFIX}0"
    return "clusterd", cm(
        "mindx-dl", name, {name: json.dumps(entries, separators=(",", ":"))}, CLUSTERD_LABELS
    )


@pytest.mark.parametrize(
    "build",
    [many_resources_and_manual_chips, repeated_fault_entries, repeated_node_devices, many_shard_nodes],
)
def test_adversarial_megabyte_objects_render_in_linear_time(
    build: Callable[[], tuple[str, dict[str, Any]]],
) -> None:
    source, obj = build()
    assert len(orjson.dumps(obj)) <= 1.1 * MIB  # what the apiserver would accept
    spec = SOURCES_BY_NAME[source]
    target = watch_target(spec)
    store = MetricsStore(ALL_FAMILIES)
    handler = spec.handler(spec, target, store, ExporterMetrics())
    started = time.process_time()  # CPU time: the same on a busy CI machine
    handler.upsert(obj)
    body = store.body()
    took = time.process_time() - started
    # Quadratic merges took 3-140 s here; linear ones take well under a second.
    assert took < 1.5, f"{build.__name__}: {took:.2f} s of CPU with the event loop blocked"
    assert body


# --- 10,000 Events ---------------------------------------------------------------------------

EVENTS_ONLY = SourceSelection(enabled={spec.name: spec.name == "device-plugin-events" for spec in SOURCES})
REASONS = ("Occur", "Recovery")
LEVELS = ("SeparateNPU", "RestartNPU", "NotHandleFault")


def fault_event(index: int, count: int = 1) -> tuple[dict[str, Any], tuple[str, str, str]]:
    node, reason, level = f"node{index % 50:03d}", REASONS[index % 2], LEVELS[index % 3]
    message = (
        f"device fault, nodeName:{node}, assertion:{reason}, cardID:{index % 8}, deviceID:0, "
        f"faultCodes:80E18402, faultLevelName:{level}, alarmRaisedTime:2025-04-09 10:57:35"
    )
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"dp.{index:06d}", "namespace": "kube-system"},
        "involvedObject": {"kind": "pod", "namespace": "kube-system", "name": "dp"},
        "reason": reason,
        "message": message,
        "source": {"component": "device-plugin", "host": node},
        "type": "Warning",
        "count": count,
    }
    return event, (node, reason, level)


def event_totals(series: Series) -> Counter[tuple[str, str, str]]:
    totals: Counter[tuple[str, str, str]] = Counter()
    for lbls, value in select(series, "mindx_npu_fault_events_total").items():
        d = dict(lbls)
        totals[(d["node"], d["reason"], d["fault_level"])] += int(value)
    return totals


async def test_ten_thousand_events_in_a_burst(api: KubeApiTestServer, start_exporter: StartExporter) -> None:
    exporter = await start_exporter(reflector=OPTIONS, sources=EVENTS_ONLY)
    expected: Counter[tuple[str, str, str]] = Counter()
    async with ScrapeTimer(exporter) as timer:
        for index in range(10_000):
            event, key = fault_event(index)
            api.store.apply("events", event)
            expected[key] += 1
            if index % 1000 == 999:
                await asyncio.sleep(0)  # the burst comes from the same event loop as the exporter

        async def counted() -> None:
            series = await exporter.scrape()
            assert event_totals(series) == expected
            assert select(series, "mindx_exporter_objects", source="device-plugin-events") == {
                labels(source="device-plugin-events", namespace="kube-system"): 10_000
            }

        await eventually(counted, timeout=30)
    assert max(timer.latencies) < 2.0, f"a scrape took {max(timer.latencies):.2f}s during the burst"

    # 1,000 of them recur twice more; then a relist must not count anything again.
    for index in range(0, 10_000, 10):
        event, key = fault_event(index, count=3)
        api.store.apply("events", event)
        expected[key] += 2
    await eventually(counted, timeout=30)
    api.compact()

    async def relisted() -> None:
        series = await exporter.scrape()
        assert select(series, "mindx_exporter_relists_total", reason="expired")
        assert event_totals(series) == expected

    await eventually(relisted, timeout=30)


# --- hostile label values --------------------------------------------------------------------

LONG_NODE = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 253 characters, a valid node name
HOSTILE_NODES = (
    'node"quote',
    "node\\back\\slash",
    "node\nnew\nline",
    "nœud-节点-🚀",
    'mix"\\\n\r\t\x00é',
    LONG_NODE,
)
HOSTILE_NPUS = ('npu"x-1', "npu\\y-2", "npu\nz-3", "芯片-4")
HOSTILE_CODE = 'A"B\\C\nD-é'
HOSTILE_TYPE = 'type"\\\n'


def hostile_dp(node: str) -> dict[str, Any]:
    fault = {
        "fault_type": HOSTILE_TYPE,
        "npu_name": HOSTILE_NPUS[0],
        "fault_handling": "SeparateNPU",
        "fault_code": HOSTILE_CODE,
        "fault_time_and_level_map": {HOSTILE_CODE: {"fault_time": 1744181950000, "fault_level": 'lvl"\\'}},
    }
    device_list = {
        "huawei.com/Ascend910": ",".join(HOSTILE_NPUS[1:]),
        "huawei.com/Ascend910-Fault": json.dumps([fault]),
        "huawei.com/Ascend910-Unhealthy": HOSTILE_NPUS[0],
    }
    info = {"DeviceInfo": {"DeviceList": device_list, "UpdateTime": 1744181950}, "CheckCode": ""}
    data = {deviceplugin.KEY_DEVICE_INFO: json.dumps(info)}
    return cm("kube-system", deviceplugin.NAME_PREFIX + node, data, DP_LABELS)


async def test_hostile_label_values_and_longest_node_name(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    for node in HOSTILE_NODES:
        # (A real apiserver refuses ConfigMap names like these; ClusterD, Volcano and Events carry
        # node names in their data, where nothing validates them.)
        api.store.apply("configmaps", hostile_dp(node))
    fault_nodes = [
        {"NodeName": node, "NodeHealthState": 'state"\\\n', "UpdateTime": 1} for node in HOSTILE_NODES
    ]
    api.store.apply(
        "configmaps",
        cm(
            "volcano-system",
            volcano.NAME,
            {
                volcano.KEY_FAULT_NODE: json.dumps(fault_nodes),
                volcano.KEY_RETRY_TIMES: json.dumps({'ns/pg"\\\n': {"UUID": "é\n", "Times": 1}}),
            },
        ),
    )
    exporter = await start_exporter(reflector=OPTIONS)
    for index, node in enumerate(HOSTILE_NODES):
        event, _ = fault_event(index)
        event["message"] = event["message"].replace(f"node{index:03d}", node)
        event["reason"] = 'Occur"\\\n'
        api.store.apply("events", event)

    async def served() -> None:
        series = await exporter.scrape()
        for node in HOSTILE_NODES:
            assert select(
                series, "mindx_npu_chip_fault_level", source="device-plugin", node=node, npu=HOSTILE_NPUS[0]
            )
            assert select(
                series,
                "mindx_npu_chip_fault_code",
                node=node,
                fault_code=HOSTILE_CODE,
                fault_type=HOSTILE_TYPE,
            )
            assert select(series, "mindx_node_health_state", node=node, state='state"\\\n')
            assert select(series, "mindx_npu_fault_events_total", node=node, reason='Occur"\\\n')
            for npu in HOSTILE_NPUS:
                assert select(series, "mindx_npu_chip_fault_level", node=node, npu=npu)
        assert select(series, "mindx_job_remaining_retries", podgroup='pg"\\\n', job_uid="é\n")

    await eventually(served)
    _, body, _ = await exporter.get("/metrics")
    assert LONG_NODE.encode() in body and b'node\\"quote' in body and b"node\\nnew\\nline" in body
    promtool_check(body)


# --- memory ---------------------------------------------------------------------------------


def traced_now() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def garbage_update(source: str, rng: random.Random, version: int, size: int) -> dict[str, Any]:
    """The same object (name, uid) again, with fresh garbage of the same kinds of problems."""
    text = garbage(rng, size, "bytes")
    if source == "device-plugin":
        obj = cm(
            "kube-system",
            "mindx-dl-deviceinfo-g",
            {deviceplugin.KEY_DEVICE_INFO: "{" + text, deviceplugin.KEY_MANUALLY_SEPARATED: text},
        )
    elif source == "noded":
        obj = cm(
            "mindx-dl", "mindx-dl-nodeinfo-g", {noded.KEY_NODE_INFO: "{" + text, noded.KEY_UPDATE_TIME: text}
        )
    elif source == "clusterd":
        obj = cm("mindx-dl", clusterd.NODE_CM_NAME, {clusterd.NODE_CM_NAME: "{" + text})
    elif source == "volcano":
        obj = cm(
            "volcano-system",
            volcano.NAME,
            {volcano.KEY_FAULT_NODE: "[" + text, volcano.KEY_RETRY_TIMES: "{" + text},
        )
    else:
        obj, _ = fault_event(1, count=version)
        obj["message"] = "device fault, " + text
    obj["metadata"].update(resourceVersion=str(version), uid="same-object")
    return obj


@pytest.mark.parametrize("source", [spec.name for spec in SOURCES])
def test_memory_flat_over_repeated_garbage_updates_in_handlers(source: str) -> None:
    spec = SOURCES_BY_NAME[source]
    target = watch_target(spec)
    store = MetricsStore(ALL_FAMILIES)
    metrics = ExporterMetrics()
    handler = spec.handler(spec, target, store, metrics)
    handler.replace([])
    rng = random.Random(source)
    size = 128 * 1024
    tracemalloc.start()
    try:
        for version in range(1, 11):
            handler.upsert(garbage_update(source, rng, version, size))
            store.body()
        warm = traced_now()
        for version in range(11, 111):
            handler.upsert(garbage_update(source, rng, version, size))
            store.body()
        grown = traced_now() - warm
    finally:
        tracemalloc.stop()
    # 100 updates of 128 KiB: anything kept per update would be >= 12 MiB.
    assert grown < 1 * MIB, f"{source}: {grown / MIB:.2f} MiB more after 100 updates"


async def test_memory_flat_through_the_exporter(tmp_path: Path) -> None:
    rng = random.Random(99)
    size = MIB // 2
    # A short history, so the test server's own memory is bounded too.
    async with KubeApiTestServer(bookmark_interval=0.2, max_history=8) as api:
        load_fixtures(api)
        access = load_cluster_access(str(api.write_kubeconfig(tmp_path / "kubeconfig")))
        config = ExporterConfig(listen_address="127.0.0.1:0", reflector=OPTIONS)
        async with Exporter(access, config) as exporter:
            await exporter.wait_ready(10)

            async def write(version: int) -> None:
                obj = garbage_update("device-plugin", rng, version, size)
                obj["metadata"]["labels"] = DP_LABELS
                api.store.apply("configmaps", obj)
                target = api.store.resource_version
                while int(exporter.reflectors[0].resource_version or 0) < target:
                    await asyncio.sleep(0.005)

            assert exporter.reflectors[0].target.source == "device-plugin"
            tracemalloc.start()
            try:
                for version in range(1, 21):
                    await write(version)
                warm = traced_now()
                for version in range(21, 61):
                    await write(version)
                grown = traced_now() - warm
            finally:
                tracemalloc.stop()
            # 40 updates of 0.5 MiB (1-3 MiB each in transit): anything kept per update >= 20 MiB.
            assert grown < 4 * MIB, f"{grown / MIB:.2f} MiB more after 40 updates"
