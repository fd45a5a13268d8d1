"""ClusterD shards merged per node: reshuffles never flap a node, duplicates resolve to the
newest copy, vanished nodes go after one full round, stale shards stop counting."""

from __future__ import annotations

import random
from typing import Any

import orjson

from exporter.kube.reflector import WatchTarget
from exporter.metrics.selfmetrics import ExporterMetrics
from exporter.metrics.store import MetricsStore
from exporter.registry import ALL_FAMILIES, SOURCES_BY_NAME
from exporter.sources.clusterd import ClusterdHandler
from exporter.sources.clusterd import parser as clusterd_parser
from tests.helpers import fixture, parse_exposition, select

SPEC = SOURCES_BY_NAME["clusterd"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def device_entries() -> dict[str, Any]:
    cm = fixture("cluster-info-device-0.json")
    entries: dict[str, Any] = orjson.loads(cm["data"]["cluster-info-device-0"])
    return entries


class Cluster:
    """Writes shards the way ClusterD does, into a handler, with increasing resourceVersions."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.store = MetricsStore(ALL_FAMILIES)
        target = WatchTarget("clusterd", "configmaps", "mindx-dl", SPEC.watch.label_selector)
        self.handler = ClusterdHandler(
            SPEC, target, self.store, ExporterMetrics(), stale_after=60, clock=self.clock
        )
        self.rv = 100

    def shard(self, index: int, entries: dict[str, Any] | None) -> dict[str, Any]:
        self.rv += 1
        name = f"cluster-info-device-{index}"
        value = "" if entries is None else orjson.dumps(entries).decode()
        return {
            "metadata": {"name": name, "namespace": "mindx-dl", "resourceVersion": str(self.rv)},
            "data": {name: value},
        }

    def write(self, index: int, entries: dict[str, Any] | None) -> None:
        self.handler.upsert(self.shard(index, entries))

    def nodes(self) -> set[str]:
        series = parse_exposition(self.store.body().decode())
        return {dict(k)["node"] for k in select(series, "mindx_npu_chip_fault_level", source="clusterd")}

    def level(self, node: str, npu: str) -> float:
        series = parse_exposition(self.store.body().decode())
        values = select(series, "mindx_npu_chip_fault_level", node=node, npu=npu)
        assert len(values) == 1
        return next(iter(values.values()))


def test_reshuffle_across_shards_never_flaps_a_node() -> None:
    entries = device_entries()
    nodes = set(entries)
    cluster = Cluster()
    rng = random.Random(7)
    cluster.handler.replace([cluster.shard(i, None) for i in range(3)])
    for report in range(40):
        keys = list(entries)
        rng.shuffle(keys)
        cuts = sorted(rng.sample(range(len(keys) + 1), 2))
        parts = [keys[: cuts[0]], keys[cuts[0] : cuts[1]], keys[cuts[1] :]]
        for index, part in enumerate(parts):  # shards written one after another, not atomically
            cluster.write(index, {k: entries[k] for k in part} if part else None)
            if report > 0:
                assert cluster.nodes() == {k.removeprefix("mindx-dl-deviceinfo-") for k in nodes}, (
                    report,
                    index,
                )
        cluster.clock.now += 5


def test_duplicate_node_takes_newest_update_time() -> None:
    entries = device_entries()
    key = "mindx-dl-deviceinfo-node133"
    old = dict(entries[key])
    new = orjson.loads(orjson.dumps(old))
    new["UpdateTime"] = old["UpdateTime"] + 10
    faults = orjson.loads(new["DeviceList"]["huawei.com/Ascend910-Fault"])
    new["DeviceList"]["huawei.com/Ascend910-Fault"] = orjson.dumps(
        [f for f in faults if f["npu_name"] != "Ascend910-4"]
    ).decode()
    cluster = Cluster()
    cluster.handler.replace([])
    cluster.write(1, {key: new})
    cluster.write(0, {key: old})  # an older copy written later must not win
    assert cluster.level("node133", "Ascend910-4") == 0
    cluster.write(1, None)  # the newer copy moves away: the remaining copy is the truth now
    assert cluster.level("node133", "Ascend910-4") == 8


def test_vanished_node_dropped_after_one_full_round() -> None:
    entries = device_entries()
    cluster = Cluster()
    cluster.handler.replace(
        [
            cluster.shard(0, {k: entries[k] for k in list(entries)[:3]}),
            cluster.shard(1, {k: entries[k] for k in list(entries)[3:]}),
        ]
    )
    assert "node133" in cluster.nodes()
    without = {k: v for k, v in entries.items() if k != "mindx-dl-deviceinfo-node133"}
    cluster.write(0, {k: without[k] for k in list(without)[:2]})
    assert "node133" in cluster.nodes()  # may still be on its way to shard 1
    cluster.write(1, {k: without[k] for k in list(without)[2:]})
    assert "node133" not in cluster.nodes()  # every shard written since: it is gone


def test_single_shard_drops_removed_node_at_once() -> None:
    entries = device_entries()
    cluster = Cluster()
    cluster.handler.replace([cluster.shard(0, entries)])
    cluster.write(0, {k: v for k, v in entries.items() if k != "mindx-dl-deviceinfo-node150"})
    assert "node150" not in cluster.nodes()


def test_stale_shard_from_before_restart_is_ignored() -> None:
    entries = device_entries()
    cluster = Cluster()
    # Shard 1 is left over from a ClusterD process that had more nodes; it is never written again.
    cluster.handler.replace(
        [
            cluster.shard(0, {k: entries[k] for k in list(entries)[:4]}),
            cluster.shard(1, {k: entries[k] for k in list(entries)[4:]}),
        ]
    )
    assert "node150" in cluster.nodes()
    for _ in range(13):
        cluster.clock.now += 5
        cluster.write(0, {k: entries[k] for k in list(entries)[:4]})
        cluster.handler.tick()
    assert "node150" not in cluster.nodes()
    assert "node133" in cluster.nodes()


def test_switch_shards_and_node_cm() -> None:
    cluster = Cluster()
    cluster.handler.replace([fixture("cluster-info-switch-0.json"), fixture("cluster-info-node-cm.json")])
    series = parse_exposition(cluster.store.body().decode())
    assert select(series, "mindx_switch_status", source="clusterd", node="node135", status="UnHealthy")
    assert (
        list(select(series, "mindx_switch_status", source="clusterd", node="node135").values()).count(1) == 1
    )
    assert select(series, "mindx_switch_status", node="node150") == {}  # NodeStatus "": nothing
    assert list(select(series, "mindx_switch_fault_level", source="clusterd")) == [
        frozenset({("source", "clusterd"), ("node", "node135"), ("fault_level", "Separate")})
    ]
    status = select(series, "mindx_node_status", source="clusterd", node="node133")
    assert {dict(k)["status"]: v for k, v in status.items()} == {
        "Healthy": 1,
        "PreSeparate": 0,
        "UnHealthy": 0,
    }
    # An empty node CM ("" when no NodeD CM exists) removes every node status.
    cm = fixture("cluster-info-node-cm.json")
    cm["data"]["cluster-info-node-cm"] = ""
    cluster.handler.upsert(cm)
    assert select(parse_exposition(cluster.store.body().decode()), "mindx_node_status") == {}


def test_unchanged_entries_are_not_parsed_again() -> None:
    from exporter.sources import clusterd

    memo: clusterd.DeviceEntryMemo = {}
    cm = fixture("cluster-info-device-0.json")
    first = clusterd.parse_device_shard(cm, memo)
    assert first.records is not None and set(memo) == set(first.records)
    entries = orjson.loads(cm["data"]["cluster-info-device-0"])
    entries["mindx-dl-deviceinfo-node134"]["UpdateTime"] += 5  # one node changed
    cm["data"]["cluster-info-device-0"] = orjson.dumps(entries).decode()
    second = clusterd.parse_device_shard(cm, memo)
    assert second.records is not None
    assert second.records["node133"] is first.records["node133"]  # reused as is
    assert second.records["node134"] is not first.records["node134"]
    assert second.records["node134"].update_time_raw == first.records["node134"].update_time_raw + 5
    # The same answers as without the memo, problems included.
    plain = clusterd.parse_device_shard(cm)
    assert plain.records == second.records and plain.problems == second.problems


def test_a_big_shard_is_applied_in_steps_and_all_at_once_at_the_end() -> None:
    """The reflector runs the event loop between the steps of a big shard (scrapes and other
    watches go on); a scrape between two steps still sees the previous version whole."""
    template = next(iter(device_entries().values()))
    entries = {f"mindx-dl-deviceinfo-node-{i:04d}": template for i in range(1000)}
    cluster = Cluster()
    cluster.handler.replace([cluster.shard(0, None)])
    before = cluster.store.body()
    steps = cluster.handler.upsert_steps(cluster.shard(0, entries))
    next(steps)
    assert cluster.store.body() == before, "half a shard applied"
    rest = sum(1 for _ in steps)
    assert rest + 1 >= 1000 // clusterd_parser.ENTRIES_PER_STEP
    assert len(cluster.nodes()) == 1000
    # In steps or at once: the same series.
    at_once = Cluster()
    at_once.handler.replace([at_once.shard(0, None)])
    at_once.write(0, entries)
    assert parse_exposition(at_once.store.body().decode()) == parse_exposition(cluster.store.body().decode())
