"""Fault injection through real HTTP: the real exporter against the project's Kubernetes API test
server while that server (or the network in front of it) misbehaves as real ones do.

Every test ends with the same check: the device-plugin series the exporter serves equal a fresh
render of the server's current objects through the same parser, renderer and handler — no update
lost, no deleted object left. While a fault lasts, a monitor scrapes /metrics and /readyz every
few milliseconds: a node nobody touches must be in every scrape, unchanged, and
`mindx_exporter_watch_up` must tell the truth.

Readiness during an outage (a decision, also in the README): /readyz stays 200 once the first
list succeeded, also while the API server is unreachable. Like kube-state-metrics, the exporter
keeps serving the last known state; `mindx_exporter_watch_up` 0 and
`mindx_exporter_last_sync_timestamp_seconds` say it may be stale. Dropping readiness would take
the exporter out of its Service exactly when the control plane is down and lose every series.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import random
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson
import pytest

from exporter.apiserver import KubeApiTestServer, Store
from exporter.app import SourceSelection
from exporter.handlers.joins import JoinState
from exporter.kube.reflector import ReflectorOptions
from exporter.metrics.selfmetrics import ExporterMetrics
from exporter.metrics.store import MetricsStore
from exporter.registry import ALL_FAMILIES, SOURCES, SOURCES_BY_NAME, watch_target
from exporter.sources.common import go_json_dumps, sha256_hex
from tests.conftest import RunningExporter, StartExporter
from tests.helpers import Series, eventually, labels, parse_exposition, select
from tests.test_sources_e2e import fault_event

SRC = "device-plugin"
NAMESPACE = "kube-system"
SPEC = SOURCES_BY_NAME[SRC]
CM_PATH = f"/api/v1/namespaces/{NAMESPACE}/configmaps"
ONLY_DP = SourceSelection(enabled={spec.name: spec.name == SRC for spec in SOURCES})
DP_WATCH = labels(source=SRC, namespace=NAMESPACE)
STEADY = "steady-node"  # written before the exporter starts, never touched afterwards

FAST = ReflectorOptions(
    page_size=3,
    watch_timeout=30,
    stall_timeout=5,
    backoff_initial=0.02,
    backoff_max=0.2,
    list_timeout=2.0,
)

# --- the cluster: device-plugin ConfigMaps with valid CheckCodes ------------------------------

CHIPS = 8
LEVELS = ("NotHandleFault", "RestartRequest", "RestartNPU", "PreSeparateNPU", "SeparateNPU")
CODES = ("80E18402", "81078603", "8C204E00", "80CB8009")


def cm_name(node: str) -> str:
    return f"mindx-dl-deviceinfo-{node}"


def dp_cm(node: str, faults: Mapping[int, tuple[str, str]], stamp: int) -> dict[str, Any]:
    """A device-plugin ConfigMap as the producer writes it: 8 chips, `faults` chip → (level, code)."""
    names = [f"Ascend910-{i}" for i in range(CHIPS)]
    entries = [
        {
            "fault_type": "CardUnhealthy",
            "npu_name": names[chip],
            "large_model_fault_level": level,
            "fault_level": level,
            "fault_handling": level,
            "fault_code": code,
            "fault_time_and_level_map": {code: {"fault_time": stamp * 1000, "fault_level": level}},
        }
        for chip, (level, code) in sorted(faults.items())
    ]
    device_list = {  # keys in byte order, as Go's json.Marshal writes a map
        "huawei.com/Ascend910": ",".join(n for i, n in enumerate(names) if i not in faults),
        "huawei.com/Ascend910-Fault": orjson.dumps(entries).decode(),
        "huawei.com/Ascend910-NetworkUnhealthy": "",
        "huawei.com/Ascend910-Recovering": "",
        "huawei.com/Ascend910-Unhealthy": ",".join(names[i] for i in sorted(faults)),
    }
    device_info = {"DeviceList": device_list, "UpdateTime": stamp}
    info = {
        "DeviceInfo": device_info,
        "SuperPodID": -2,
        "ServerIndex": -2,
        "CheckCode": sha256_hex(go_json_dumps(device_info)),
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": cm_name(node), "namespace": NAMESPACE, "labels": {"mx-consumer-cim": "true"}},
        "data": {"DeviceInfoCfg": orjson.dumps(info).decode(), "ManuallySeparateNPU": ""},
    }


class Workload:
    """Seeded random creates, fault changes and deletes of device-plugin ConfigMaps."""

    def __init__(self, store: Store, seed: int, nodes: int = 12) -> None:
        self.store = store
        self.rng = random.Random(seed)
        self.nodes = [f"node-{i:03d}" for i in range(nodes)]
        self.present: set[str] = set()
        self.stamp = 1744181950

    def populate(self) -> None:
        self.store.apply("configmaps", dp_cm(STEADY, {3: ("SeparateNPU", "80E18402")}, self.stamp))
        for node in self.nodes:
            self.write(node)

    def write(self, node: str) -> None:
        self.stamp += 1
        chips = self.rng.sample(range(CHIPS), self.rng.randint(0, 3))
        faults = {chip: (self.rng.choice(LEVELS), self.rng.choice(CODES)) for chip in chips}
        self.store.apply("configmaps", dp_cm(node, faults, self.stamp))
        self.present.add(node)

    def delete(self, node: str) -> None:
        self.store.delete("configmaps", NAMESPACE, cm_name(node))
        self.present.discard(node)

    def step(self) -> None:
        node = self.rng.choice(self.nodes)
        if node in self.present and self.rng.random() < 0.3:
            self.delete(node)
        else:
            self.write(node)

    def steps(self, count: int) -> None:
        for _ in range(count):
            self.step()


# --- what the exporter should serve ----------------------------------------------------------


# Fault history depends on which versions the exporter saw, not only on the current objects.
HISTORY = ("mindx_exporter_", "mindx_npu_chip_faults_total", "mindx_npu_fault_duration_seconds")


def data_series(series: Series) -> Series:
    return {
        key: value
        for key, value in series.items()
        if key[0].startswith("mindx_") and not key[0].startswith(HISTORY)
    }


def expected_series(store: Store) -> Series:
    """The server's current device-plugin objects through a fresh handler (parse + render), wired
    as the exporter wires it when only the device plugin is watched (app.py joins the usable-chips
    view to it)."""
    target = watch_target(SPEC, NAMESPACE)
    metrics_store = MetricsStore(ALL_FAMILIES)
    handler = SPEC.handler(SPEC, target, metrics_store, ExporterMetrics())
    for feed in SPEC.feeds:
        handler.listen(JoinState(feed.join, metrics_store).listener(feed))
    objects = store.list(
        "configmaps",
        NAMESPACE,
        label_selector=SPEC.watch.label_selector,
        field_selector=SPEC.watch.field_selector,
    )
    handler.replace(objects)
    return data_series(parse_exposition(metrics_store.body().decode()))


def describe_difference(served: Series, expected: Series) -> str:
    missing = sorted(set(expected) - set(served), key=str)
    extra = sorted(set(served) - set(expected), key=str)
    changed = sorted((k for k in set(served) & set(expected) if served[k] != expected[k]), key=str)
    return (
        f"{len(missing)} missing, {len(extra)} stale, {len(changed)} wrong values; "
        f"missing {missing[:2]} stale {extra[:2]} wrong {changed[:2]}"
    )


async def converged(exporter: RunningExporter, store: Store, timeout: float = 10.0) -> None:
    async def same() -> None:
        served = data_series(await exporter.scrape())
        expected = expected_series(store)
        assert served == expected, describe_difference(served, expected)

    await eventually(same, timeout)


async def watch_up_again(exporter: RunningExporter) -> None:
    """After recovery `mindx_exporter_watch_up` returns to 1 (a last relist may still be running)."""

    async def up() -> None:
        series = await exporter.scrape()
        assert select(series, "mindx_exporter_watch_up", source=SRC) == {DP_WATCH: 1}

    await eventually(up)


def node_series(series: Series, node: str) -> Series:
    return {key: value for key, value in series.items() if ("node", node) in key[1]}


def relists(series: Series, reason: str) -> float:
    return sum(select(series, "mindx_exporter_relists_total", source=SRC, reason=reason).values())


def requests_to(api: KubeApiTestServer, since: int, *needles: str) -> list[tuple[float, str]]:
    return [
        (at, path)
        for at, _, path in api.timed_request_log[since:]
        if path.startswith(CM_PATH) and all(needle in path for needle in needles)
    ]


def is_list(path: str) -> bool:
    return "watch=" not in path


# --- the monitor: what every scrape during a fault shows ---------------------------------------


@dataclasses.dataclass(frozen=True)
class Sample:
    at: float
    watch_up: float | None
    ready: int
    steady: Series


class Monitor:
    """Scrapes /metrics and /readyz in a loop while a fault is injected."""

    def __init__(self, exporter: RunningExporter, interval: float = 0.02) -> None:
        self.exporter = exporter
        self.interval = interval
        self.samples: list[Sample] = []
        self.steady: Series = {}
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Monitor:
        self.steady = node_series(await self.exporter.scrape(), STEADY)
        assert self.steady, "the steady node is not served before the fault"
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while True:
            at = time.monotonic()
            series = await self.exporter.scrape()
            ready = (await self.exporter.get("/readyz"))[0]
            up = select(series, "mindx_exporter_watch_up", source=SRC).get(DP_WATCH)
            self.samples.append(Sample(at, up, ready, node_series(series, STEADY)))
            await asyncio.sleep(self.interval)

    def between(self, start: float, end: float) -> list[Sample]:
        return [s for s in self.samples if start <= s.at <= end]

    def assert_served_throughout(self) -> None:
        assert len(self.samples) >= 5, "the monitor hardly scraped"
        for sample in self.samples:
            assert sample.steady == self.steady, "an untouched node changed or vanished during the fault"
            assert sample.ready == 200, "readiness dropped after the first list"


# --- the test server's fault hooks themselves -------------------------------------------------


async def test_hooks_cut_mute_and_hang(api: KubeApiTestServer) -> None:
    api.store.apply("configmaps", dp_cm("hook", {}, 1))
    async with aiohttp.ClientSession() as http:
        api.cut_watches(25, count=1)
        received = bytearray()
        async with http.get(api.url + CM_PATH, params={"watch": "1"}) as resp:
            with pytest.raises(aiohttp.ClientPayloadError):
                async for chunk in resp.content.iter_any():
                    received.extend(chunk)
        assert bytes(received) == b'{"type":"ADDED","object":'  # 25 bytes: cut inside the object

        async with http.get(api.url + CM_PATH, params={"watch": "1", "allowWatchBookmarks": "1"}) as resp:
            await resp.content.readline()  # the replayed ADDED
            api.mute_watches()
            api.store.apply("configmaps", dp_cm("hook", {1: ("SeparateNPU", "80E18402")}, 2))
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(resp.content.readline(), 0.6)  # no event, no bookmark

        api.hang_next(1, path="limit=")
        started = time.monotonic()
        timeout = aiohttp.ClientTimeout(total=0.3)
        with pytest.raises(asyncio.TimeoutError):
            async with http.get(api.url + CM_PATH, params={"limit": "5"}, timeout=timeout) as resp:
                assert resp.status == 200
                await resp.read()
        assert 0.29 < time.monotonic() - started < 2
        async with http.get(api.url + CM_PATH, params={"limit": "5"}) as resp:  # only one hung
            assert resp.status == 200 and len((await resp.json())["items"]) == 1


# --- the faults -----------------------------------------------------------------------------


async def test_streams_cut_mid_line_and_mid_object(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    work = Workload(api.store, seed=1)
    work.populate()
    exporter = await start_exporter(reflector=FAST, sources=ONLY_DP)
    rng = random.Random(2)
    since = len(api.timed_request_log)
    async with Monitor(exporter) as monitor:
        for _ in range(40):
            # The open watch and the next one are cut after 0..4000 bytes: inside the first few
            # events (each ~1.3 KB), inside a bookmark, or, rarely, on a line boundary.
            api.cut_watches(lambda: rng.randint(0, 4000), count=1)
            work.steps(rng.randint(1, 3))
            await asyncio.sleep(rng.uniform(0.005, 0.04))
        api.clear_failures()
        await converged(exporter, api.store)
    monitor.assert_served_throughout()
    assert len(requests_to(api, since, "watch=1")) >= 20, "the exporter was hardly cut off"
    series = await exporter.scrape()
    await watch_up_again(exporter)
    assert select(series, "mindx_exporter_watch_errors_total", source=SRC, reason="connection")


async def compact_while_not_watching(api: KubeApiTestServer, work: Workload, interval: float) -> None:
    """Compact every `interval`; when the exporter holds no watch, change an object first, so only a
    completed list can show the change."""
    while True:
        await asyncio.sleep(interval)
        if api.open_watches == 0:
            work.step()
        api.compact()


async def test_410_storm_while_writing_and_paginating(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    work = Workload(api.store, seed=3, nodes=24)
    work.populate()
    exporter = await start_exporter(reflector=dataclasses.replace(FAST, page_size=2), sources=ONLY_DP)
    api.delay = 0.02  # a paginated list (13 pages of 2) takes at least 0.26 s
    rng = random.Random(4)
    since = len(api.timed_request_log)
    async with Monitor(exporter) as monitor:
        for _ in range(30):  # 410 on open watches and on lists, while objects change
            work.steps(rng.randint(1, 3))
            api.compact()
            await asyncio.sleep(rng.uniform(0.02, 0.08))
        # History is now compacted faster than a paginated list can finish: every continue token
        # expires. The exporter restarts its pages, then backs off and tries again, but never asks
        # for the whole list in one unpaginated response; once the storm passes it catches up.
        storm = asyncio.create_task(compact_while_not_watching(api, work, 0.1))
        storm_since = len(api.timed_request_log)
        try:
            await asyncio.sleep(2.0)
        finally:
            storm.cancel()
        restarts = [path for _, path in requests_to(api, storm_since, "limit=") if "continue=" not in path]
        assert len(restarts) >= 3, "no list was restarted during the storm"
        api.delay = 0
        await converged(exporter, api.store)
    monitor.assert_served_throughout()
    series = await exporter.scrape()
    # Compactions 20-80 ms apart outrun a 0.26 s list: few relists complete, each after restarts.
    assert relists(series, "expired") >= 1
    assert requests_to(api, since, "continue="), "pagination was never in the way of the storm"
    unpaginated = [path for _, path in requests_to(api, since) if is_list(path) and "limit=" not in path]
    assert not unpaginated, f"a LIST without pagination: {unpaginated[:1]}"
    # Every 410 (on a watch, in a watch stream or on a continue page) is a watch error; every
    # relist it caused is a relist, so there are at least as many errors as relists.
    expired_errors = sum(
        select(series, "mindx_exporter_watch_errors_total", source=SRC, reason="expired").values()
    )
    assert expired_errors >= 10 and expired_errors > relists(series, "expired")
    await watch_up_again(exporter)


def gaps(times: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(times)]


async def test_retry_after_is_honoured_on_watch_and_list(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    work = Workload(api.store, seed=5)
    work.populate()
    exporter = await start_exporter(reflector=FAST, sources=ONLY_DP)
    async with Monitor(exporter) as monitor:
        # 429 on the watch: two throttled attempts, each must wait the full Retry-After.
        since = len(api.timed_request_log)
        api.fail_next(2, 429, retry_after=1, path=CM_PATH)
        api.drop_streams()
        work.steps(4)
        await converged(exporter, api.store)
        throttled = [at for at, _ in requests_to(api, since)][:3]
        assert len(throttled) == 3
        assert all(gap >= 0.999 for gap in gaps(throttled)), gaps(throttled)
        quiet = monitor.between(throttled[0] + 0.1, throttled[2] - 0.05)
        assert quiet and all(s.watch_up == 0 for s in quiet), "watch_up said 1 while throttled"

        # 500 + Retry-After on the relist that a compaction forces (503 and 504 take the same path).
        since = len(api.timed_request_log)
        api.fail_next(2, 500, retry_after=1, path="limit=")
        api.compact()
        work.steps(4)
        await converged(exporter, api.store)
        lists = [at for at, path in requests_to(api, since) if is_list(path)][:3]
        assert len(lists) == 3 and all(gap >= 0.999 for gap in gaps(lists)), gaps(lists)

        # 500 without Retry-After: capped exponential backoff, no hot loop.
        since = len(api.timed_request_log)
        api.fail_next(6, 500, path=CM_PATH)
        api.drop_streams()
        work.steps(4)
        await converged(exporter, api.store)
        failing = [at for at, _ in requests_to(api, since)][:7]
        assert len(failing) == 7 and all(gap >= FAST.backoff_initial / 2 for gap in gaps(failing))
    monitor.assert_served_throughout()
    series = await exporter.scrape()
    assert select(series, "mindx_exporter_watch_errors_total", source=SRC, reason="throttled")
    assert select(series, "mindx_exporter_watch_errors_total", source=SRC, reason="server_error")
    await watch_up_again(exporter)


async def test_slow_api_server(api: KubeApiTestServer, start_exporter: StartExporter) -> None:
    work = Workload(api.store, seed=6)
    work.populate()
    exporter = await start_exporter(reflector=FAST, sources=ONLY_DP)
    api.delay = 0.25  # every request, list pages and watches alike
    async with Monitor(exporter) as monitor:
        api.drop_streams()
        work.steps(5)
        await converged(exporter, api.store)
        api.compact()  # a relist of 5 slow pages
        work.steps(5)
        await converged(exporter, api.store)
    monitor.assert_served_throughout()
    assert relists(await exporter.scrape(), "expired") >= 1


async def test_list_that_never_finishes_is_aborted_and_retried(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    work = Workload(api.store, seed=7)
    work.populate()
    options = dataclasses.replace(FAST, list_timeout=0.8)
    exporter = await start_exporter(reflector=options, sources=ONLY_DP)
    async with Monitor(exporter) as monitor:
        since = len(api.timed_request_log)
        api.hang_next(3, path="limit=")
        api.compact()  # the watch expires; the next three lists hang after their first bytes
        work.steps(6)
        await converged(exporter, api.store)
        lists = [at for at, path in requests_to(api, since) if is_list(path)][:4]
        assert len(lists) == 4
        # Each hung list was given up after list_timeout (0.8 s), not much later; the requests are
        # timed where the server receives them, so a busy machine's transit delays blur the bounds.
        assert all(0.6 <= gap < 2.0 for gap in gaps(lists)), gaps(lists)
        hung = monitor.between(lists[0] + 0.05, lists[3] - 0.05)
        assert hung and all(s.watch_up == 0 for s in hung), "watch_up said 1 while the list hung"
    monitor.assert_served_throughout()
    await watch_up_again(exporter)


async def test_first_list_hangs_then_ready(api: KubeApiTestServer, start_exporter: StartExporter) -> None:
    work = Workload(api.store, seed=8)
    work.populate()
    api.hang_next(2, path="limit=")
    options = dataclasses.replace(FAST, list_timeout=0.3)
    exporter = await start_exporter(reflector=options, sources=ONLY_DP, wait_ready=False)
    status, body, _ = await exporter.get("/readyz")
    assert status == 503 and b"device-plugin/kube-system" in body
    await exporter.exporter.wait_ready(5)
    await converged(exporter, api.store)


@pytest.mark.parametrize("history", ["restarted", "overtaken"])
async def test_api_server_gone_then_back_with_new_history(
    api: KubeApiTestServer, start_exporter: StartExporter, history: str
) -> None:
    """The API server disappears (60 s in real life, one second here) and comes back from an etcd
    restore or as a rebuilt control plane: a new store whose resourceVersions started again and
    whose objects changed meanwhile. `restarted`: its RVs are below the exporter's; `overtaken`:
    above, so resuming the watch from the exporter's RV would replay the wrong history."""
    work = Workload(api.store, seed=9)
    work.populate()
    exporter = await start_exporter(reflector=FAST, sources=ONLY_DP)
    work.steps(10)
    await converged(exporter, api.store)
    exporter_rv = api.store.resource_version
    port = api.port
    async with Monitor(exporter) as monitor:
        api.drop_streams()
        await api.stop()
        down_at = time.monotonic()
        new_store = Store()
        for obj in api.store.list("configmaps"):
            new_store.apply("configmaps", obj)
        work.store = new_store
        work.delete(next(iter(sorted(work.present))))  # deleted while the exporter was cut off
        work.steps(8)
        work.write("node-new")
        if history == "overtaken":
            filler = {"metadata": {"name": "filler", "namespace": "default"}, "data": {}}
            while new_store.resource_version <= exporter_rv + 5:
                filler["data"] = {"n": str(new_store.resource_version)}
                new_store.apply("configmaps", filler)
        await asyncio.sleep(1.0)
        back_at = time.monotonic()
        async with KubeApiTestServer(port=port, store=new_store, bookmark_interval=0.2):
            await converged(exporter, new_store)

            await watch_up_again(exporter)
            await converged(exporter, new_store)
    monitor.assert_served_throughout()
    outage = monitor.between(down_at + 0.3, back_at)
    # Sampled every 20 ms when the machine is idle; a loaded CI machine may manage only a few.
    assert len(outage) >= 3 and all(s.watch_up == 0 for s in outage), "watch_up said 1 during the outage"


async def test_silent_stream_is_detected_and_restarted(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    work = Workload(api.store, seed=10)
    work.populate()
    options = dataclasses.replace(FAST, stall_timeout=0.6)  # bookmarks come every 0.2 s
    exporter = await start_exporter(reflector=options, sources=ONLY_DP)
    await watch_up_again(exporter)  # ready after the list: the watch must be open to be muted
    async with Monitor(exporter) as monitor:
        api.mute_watches()
        muted_at = time.monotonic()
        work.steps(6)  # events the silent stream never delivers
        await converged(exporter, api.store, timeout=5)
        assert time.monotonic() - muted_at < 0.6 + 1.5
    monitor.assert_served_throughout()
    series = await exporter.scrape()
    assert relists(series, "stalled") >= 1
    await watch_up_again(exporter)


@pytest.mark.parametrize("compacted", [False, True])
async def test_objects_changed_and_deleted_while_disconnected(
    api: KubeApiTestServer, start_exporter: StartExporter, compacted: bool
) -> None:
    work = Workload(api.store, seed=11)
    work.populate()
    exporter = await start_exporter(reflector=FAST, sources=ONLY_DP)
    async with Monitor(exporter) as monitor:
        api.fail_next(10**6, 503, path=CM_PATH)  # the API is unreachable for this exporter
        api.drop_streams()
        cut_at = time.monotonic()
        for _ in range(8):
            work.step()
            await asyncio.sleep(0.03)
        for node in ("node-000", "node-001"):
            if node in work.present:
                work.delete(node)
        work.write("node-002")
        work.write("node-extra")
        if compacted:
            api.compact()
        await asyncio.sleep(0.3)
        back_at = time.monotonic()
        api.clear_failures()
        await converged(exporter, api.store)
    monitor.assert_served_throughout()
    cut_off = monitor.between(cut_at + 0.1, back_at)
    assert cut_off and all(s.watch_up == 0 for s in cut_off), "watch_up said 1 while cut off"
    served = await exporter.scrape()
    assert not select(served, "mindx_npu_chip_fault_level", node="node-000")
    assert select(served, "mindx_npu_chip_fault_level", node="node-extra")


async def test_events_relist_that_loses_its_continue_token_stays_paginated(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    """An Events relist whose continue token expires starts its pages again: it never falls back
    to one LIST of every Event (33,003 of them took the exporter to 462 MiB), and it still counts
    the fault Events missed while disconnected, once."""
    events_path = "/api/v1/namespaces/kube-system/events"

    def fault(index: int, node: str) -> dict[str, Any]:
        message = (
            f"device fault, nodeName:{node}, assertion:Occur, cardID:1, deviceID:0, faultCodes:80E18402, "
            f"faultLevelName:SeparateNPU, alarmRaisedTime:2025-04-09 11:00:{index % 60:02d}"
        )
        return fault_event(f"dp-pod.{1744170000000 + index}", message)

    for index in range(20):  # present at start: remembered, not counted
        api.store.apply("events", fault(index, "node-old"))
    only_events = SourceSelection(
        enabled={spec.name: spec.name == "device-plugin-events" for spec in SOURCES}
    )
    exporter = await start_exporter(reflector=FAST, sources=only_events)
    for index in range(20, 22):
        api.store.apply("events", fault(index, "node-new"))

    async def counted(expected: float) -> None:
        series = await exporter.scrape()
        assert select(series, "mindx_npu_fault_events_total") == {
            labels(node="node-new", reason="Occur", fault_level="SeparateNPU"): expected
        }

    await eventually(lambda: counted(2))
    since = len(api.request_log)
    api.fail_next(10**6, 503, path="watch=")  # cut off: the next Events arrive while not watching
    api.drop_streams()

    async def cut_off() -> None:
        series = await exporter.scrape()
        assert select(series, "mindx_exporter_watch_errors_total", reason="server_error")

    await eventually(cut_off)
    for index in range(22, 25):
        api.store.apply("events", fault(index, "node-new"))
    api.expire_continue_tokens(2)  # the relist loses its continue token twice
    api.clear_failures()
    await eventually(lambda: counted(5))

    requests = [path for _, path in api.request_log[since:] if path.startswith(events_path)]
    lists = [path for path in requests if "watch=" not in path]
    assert lists and all("limit=3" in path for path in lists), lists
    # The relist started again twice (relists while the watch failed may add first pages).
    assert len([path for path in lists if "continue=" not in path]) >= 3
    series = await exporter.scrape()
    expired = select(
        series, "mindx_exporter_watch_errors_total", source="device-plugin-events", reason="expired"
    )
    assert expired == {labels(source="device-plugin-events", namespace="kube-system", reason="expired"): 2}


async def test_410_in_a_watch_stream_is_a_watch_error_and_a_relist(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    """A compaction ends the open watch with an ERROR event carrying 410: one expired watch error
    and one expired relist, as for a 410 answering the watch request itself."""
    work = Workload(api.store, seed=12)
    work.populate()
    exporter = await start_exporter(reflector=FAST, sources=ONLY_DP)
    await watch_up_again(exporter)
    api.compact()  # the open stream gets {"type":"ERROR","object":{...,"code":410}}
    work.steps(3)
    await converged(exporter, api.store)
    await watch_up_again(exporter)
    series = await exporter.scrape()
    assert relists(series, "expired") == 1
    expired = select(series, "mindx_exporter_watch_errors_total", source=SRC, reason="expired")
    assert expired == {labels(source=SRC, namespace=NAMESPACE, reason="expired"): 1}

    # The same for a watch request answered 410 outright.
    api.fail_next(1, 410, path="watch=")
    api.drop_streams()
    work.steps(2)
    await converged(exporter, api.store)
    await watch_up_again(exporter)
    series = await exporter.scrape()
    assert relists(series, "expired") == 2
    assert select(series, "mindx_exporter_watch_errors_total", source=SRC, reason="expired") == {
        labels(source=SRC, namespace=NAMESPACE, reason="expired"): 2
    }
