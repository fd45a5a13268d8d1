"""The simulated cluster: everything it writes parses with the project's parsers without a single
problem and says what the model says; it is repeatable; ClusterD shards like the real one; every
kind of fault shows up and goes away; and the runner feeds a live API test server."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from typing import Any

import aiohttp
import pytest

from exporter.apiserver import KubeApiTestServer, Store
from exporter.simulator import (
    ALERTS_MIN_NODES,
    DEFAULT_START_TIME,
    KINDS,
    AlertsScenario,
    ClusterDProducer,
    ClusterModel,
    ClusterSimulator,
    FaultRates,
    FaultTransition,
    Node,
    deviceplugin_configmap,
    fault_event,
    noded_configmap,
    split_by_size,
)
from exporter.simulator.model import (
    MANUAL,
    SWITCH_NODE_STATUS,
    ChipFault,
    FaultCodeState,
    ManualSeparation,
    NodeDevice,
    SwitchFault,
    Upgrade,
)
from exporter.simulator.producers import clusterd_device_value, clusterd_node_value, clusterd_switch_value
from exporter.sources import clusterd, deviceplugin, events, manualseparation, noded, publicfaults, volcano
from exporter.sources.common import CHIP_LEVELS, Problems
from exporter.sources.records import NodeChips
from tests.helpers import fixture

SMALL_SHARDS = 12_000  # bytes: forces several ClusterD shards on a 50-node cluster


def make_sim(seed: int = 7, nodes: int = 50, **options: Any) -> ClusterSimulator:
    options.setdefault("start_time", DEFAULT_START_TIME)
    options.setdefault("warmup", 3600.0)
    return ClusterSimulator(Store(), nodes=nodes, seed=seed, **options)


def run(sim: ClusterSimulator, steps: int, dt: float = 30.0, report_every: int = 10) -> None:
    sim.populate()
    for i in range(steps):
        sim.advance(dt)
        if i % report_every == 0:
            sim.report_clusterd()
            sim.report_volcano()
    sim.report_clusterd()
    sim.report_volcano()


def configmaps(store: Store, namespace: str) -> dict[str, dict[str, Any]]:
    return {cm["metadata"]["name"]: cm for cm in store.list("configmaps", namespace)}


def assert_clean(problems: Problems, what: str) -> None:
    assert not problems.items, f"{what}: {problems.items}"


# --- expectations computed from the model ------------------------------------------------------------


def expected_faults(node: Node, clusterd_view: bool = False) -> dict[tuple[str, str], tuple[str, set[str]]]:
    """(npu, fault_type) → (fault_handling, codes). ClusterD drops ManuallySeparateNPU codes."""
    faults = {}
    for npu, fault_type, handling, codes in node.fault_entries():
        kept = {c.code for c in codes if not (clusterd_view and c.level == MANUAL)}
        faults[(npu, fault_type)] = (handling, kept)
    return faults


def parsed_faults(chips: NodeChips) -> dict[tuple[str, str], tuple[str, set[str]]]:
    return {(f.npu, f.fault_type): (f.fault_handling, {c.code for c in f.codes}) for f in chips.faults}


def parsed_lists(chips: NodeChips) -> dict[str, tuple[str, ...]]:
    assert len(chips.resources) == 1
    lists = chips.resources[0].lists
    return {
        status: lists.get(status, ())
        for status in ("available", "unhealthy", "network_unhealthy", "recovering")
    }


def clusterd_status(node: Node, status: str) -> str:
    """ClusterD's rewrite: PreSeparate becomes Healthy while the node's NPUs are in use, else UnHealthy."""
    if status == "PreSeparate":
        return "Healthy" if node.busy else "UnHealthy"
    return status


def expected_health(node: Node) -> str:
    node_status = clusterd_status(node, node.noded_status())
    switch_status = clusterd_status(node, node.switch_status())
    if "UnHealthy" in (node_status, switch_status):
        return "NodeUnhealthy"
    lists = node.chip_lists()
    if lists["unhealthy"]:
        return "CardUnhealthy"
    if lists["network_unhealthy"]:
        return "CardNetworkUnhealthy"
    return "Healthy"


def check_chip_invariants(node: Node) -> None:
    """The DP list semantics of spec §2.3, checked against the model's primitive state."""
    lists = node.chip_lists()
    names = node.kind.names
    for chip, name in enumerate(names):
        level = node.chip_level(chip)
        busy = node.is_busy(chip)
        tolerated = level in ("PreSeparateNPU", "FreeRestartNPU") and busy
        unhealthy = level not in ("NormalNPU", "NotHandleFault", "SubHealthFault") and not tolerated
        assert (name in lists["unhealthy"]) == unhealthy, (node, name, level, busy)
        assert (name in lists["available"]) == (not unhealthy and not busy and chip not in node.recovering)
        net = node.net_level(chip) not in ("NormalNPU", "NotHandleFault")
        assert (name in lists["network_unhealthy"]) == (node.kind.network and net)
    for values in lists.values():
        assert list(values) == sorted(values)  # byte-sorted, like sets.String.List()


# --- the objects -------------------------------------------------------------------------------------


def test_everything_written_parses_cleanly_and_matches_the_model() -> None:
    sim = make_sim(seed=7, shard_limit=SMALL_SHARDS, event_ttl=1e9)
    run(sim, steps=240)
    model, store = sim.model, sim.store

    # S1 device plugin: one CM per node, CheckCodes verify, parsed state = model state.
    dp = {n: cm for n, cm in configmaps(store, "kube-system").items() if n.startswith("mindx-dl-deviceinfo-")}
    assert set(dp) == {f"mindx-dl-deviceinfo-{n.name}" for n in model.nodes}
    for node in model.nodes:
        cm = dp[f"mindx-dl-deviceinfo-{node.name}"]
        assert cm["metadata"]["labels"] == {"mx-consumer-cim": "true"}
        result = deviceplugin.parse_configmap(cm)
        assert_clean(result.problems, node.name)
        info = json.loads(cm["data"]["DeviceInfoCfg"])
        assert deviceplugin.verify_checkcode(info["DeviceInfo"], info["CheckCode"])
        view = result.first
        assert view is not None and view.chips is not None
        check_chip_invariants(node)
        assert parsed_lists(view.chips) == node.chip_lists()
        assert view.chips.resources[0].resource == node.kind.resource
        assert parsed_faults(view.chips) == expected_faults(node)
        assert view.chips.manually_separated == node.manually_separated()
        for fault in view.chips.faults:  # per-code times and levels
            chip_fault = (
                node.net_faults if fault.fault_type == "CardNetworkUnhealthy" else node.chip_faults
            ).get(node.kind.names.index(fault.npu))
            for code in fault.codes:
                assert chip_fault is not None
                state = chip_fault.codes[code.code]
                assert (code.level, code.raised_at) == (state.level, state.time_ms / 1000)
        has_switch = node.kind.key in ("A3", "A5")
        assert ("SwitchInfoCfg" in cm["data"]) == has_switch
        if has_switch:
            assert view.switch is not None
            assert (view.switch.fault_level, view.switch.node_status) == (
                node.switch_level(),
                node.switch_status(),
            )
            assert {
                (f.fault_code, f.switch_chip_id, f.switch_port_id, f.fault_level) for f in view.switch.faults
            } == {(f.code, str(f.chip_id), str(f.port_id), f.level) for f in node.switch_faults.values()}
        if node.kind.super_pod:
            assert view.superpod is not None
            assert (view.superpod.super_pod_id, view.superpod.server_index) == (
                node.super_pod_id,
                node.server_index,
            )
            assert view.superpod.rack_id == node.rack_id
        else:
            assert view.superpod is None

    # S3 NodeD: a CM exactly for the nodes with fault devices.
    nodeinfo = {
        name: cm
        for name, cm in configmaps(store, "mindx-dl").items()
        if name.startswith("mindx-dl-nodeinfo-")
    }
    assert set(nodeinfo) == {f"mindx-dl-nodeinfo-{n.name}" for n in model.nodes if n.node_faults}
    for node in model.nodes:
        if not node.node_faults:
            continue
        ndresult = noded.parse_configmap(nodeinfo[f"mindx-dl-nodeinfo-{node.name}"])
        assert_clean(ndresult.problems, node.name)
        assert ndresult.first is not None
        assert ndresult.first.status == node.noded_status()
        assert ndresult.first.update_time == node.noded_update_time
        assert {
            (d.device_type, d.device_id, d.fault_codes, d.fault_level) for d in ndresult.first.devices
        } == {(d.device_type, str(d.device_id), tuple(d.codes), d.level) for d in node.node_faults.values()}

    # S4 ClusterD node CM: NodeStatus rewritten.
    cd = configmaps(store, "mindx-dl")
    cmresult = clusterd.parse_node_cm(cd["cluster-info-node-cm"])
    assert_clean(cmresult.problems, "cluster-info-node-cm")
    assert cmresult.records is not None
    assert {n: r.status for n, r in cmresult.records.items()} == {
        n.name: clusterd_status(n, n.noded_status()) for n in model.nodes if n.node_faults
    }

    # S5 ClusterD device shards: several, every node exactly once, ClusterD's rewrite rules.
    device_names = sorted(n for n in cd if clusterd.is_device_shard(n))
    assert len(device_names) > 1
    seen: Counter[str] = Counter()
    for name in device_names:
        shard = clusterd.parse_device_shard(cd[name])
        assert_clean(shard.problems, name)
        assert shard.records is not None
        assert len(cd[name]["data"][name].encode()) <= SMALL_SHARDS
        seen.update(shard.records.keys())
        for node_name, entry in shard.records.items():
            node = model.node_by_name[node_name]
            chips = entry.view.chips
            assert chips is not None
            assert parsed_lists(chips) == node.chip_lists()
            assert parsed_faults(chips) == expected_faults(node, clusterd_view=True)
            manual = {npu for (npu, _), (handling, _) in expected_faults(node).items() if handling == MANUAL}
            assert set(chips.manually_separated) == manual
            assert entry.update_time_raw == node.update_time
    assert seen == Counter(n.name for n in model.nodes)

    # S6 ClusterD switch shards: the A3 and A5 nodes.
    switch_seen: Counter[str] = Counter()
    for name in (n for n in cd if clusterd.is_switch_shard(n)):
        sw = clusterd.parse_switch_shard(cd[name])
        assert_clean(sw.problems, name)
        assert sw.records is not None
        switch_seen.update(sw.records.keys())
        for node_name, sentry in sw.records.items():
            node = model.node_by_name[node_name]
            assert sentry.state.node_status == clusterd_status(node, node.switch_status())
            assert sentry.state.fault_level == node.switch_level()
    assert switch_seen == Counter(n.name for n in model.nodes if n.kind.key in ("A3", "A5"))

    # S7 Volcano: fault nodes with ClusterD's view, retry budgets of the running jobs.
    vc = store.get("configmaps", "volcano-system", "vcjob-fault-npu-cm")
    assert "labels" not in vc["metadata"]
    vresult = volcano.parse_configmap(vc)
    assert_clean(vresult.problems, "vcjob-fault-npu-cm")
    assert vresult.records is not None
    states = {n.view.node: n.health_state for n in volcano.fault_nodes(vresult)}
    assert states == {n.name: expected_health(n) for n in model.nodes if expected_health(n) != "Healthy"}
    assert {(r.namespace, r.podgroup, r.job_uid, r.times) for r in volcano.job_retries(vresult)} == {
        (j.namespace, j.podgroup, j.uid, j.times) for j in model.jobs.values()
    }

    # S2 Events: every one is a device-plugin fault event in the spec's format.
    evs = store.list("events", "kube-system")
    assert evs
    for ev in evs:
        evresult = events.parse_event(ev)
        assert_clean(evresult.problems, ev["metadata"]["name"])
        record = evresult.first
        assert record is not None
        node = model.node_by_name[record.node]
        assert ev["involvedObject"] == {"kind": "pod", "namespace": "kube-system", "name": node.dp_pod}
        assert "count" not in ev and ev["firstTimestamp"] is None
        assert record.reason in ("Occur", "Recovery", "Notice")
        assert (record.logic_id != "") == (node.kind.key == "A5")
        assert len(record.fault_codes) == 1
        assert ev["metadata"]["name"].startswith(node.dp_pod + ".")


def test_objects_match_the_fixture_formats() -> None:
    """Byte-level conventions seen in the fixtures: key order, zero structs, JSON-in-JSON."""
    sim = make_sim(seed=3, mix={"A3": 1, "A5": 1, "A2": 1, "310P": 1}, nodes=8)
    sim.populate()
    dp = configmaps(sim.store, "kube-system")
    for node in sim.model.nodes:
        data = dp[f"mindx-dl-deviceinfo-{node.name}"]["data"]
        expected_keys = ["Description", "DeviceInfoCfg", "ManuallySeparateNPU", "UpgradeFaultReason"]
        if node.kind.key in ("A3", "A5"):
            expected_keys.insert(3, "SwitchInfoCfg")
        assert list(data) == expected_keys
        info = data["DeviceInfoCfg"]
        assert info.startswith('{"DeviceInfo":{"DeviceList":{')
        assert ('"RackID":' in info) == (node.kind.key == "A5")
        device_list = json.loads(info)["DeviceInfo"]["DeviceList"]
        assert list(device_list) == sorted(device_list)
        suffixes = {k.removeprefix(node.kind.resource) for k in device_list}
        if node.kind.key == "310P":
            assert suffixes == {"", "-Fault", "-Unhealthy"}
        else:
            assert suffixes == {"", "-Fault", "-NetworkUnhealthy", "-Recovering", "-Unhealthy"}
        if node.kind.key == "A5":
            assert data["SwitchInfoCfg"] == (
                '{"FaultCode":null,"FaultLevel":"","UpdateTime":0,"NodeStatus":"","FaultTimeAndLevelMap":null}'
            )


def test_same_seed_same_objects_different_seed_different() -> None:
    def snapshot(seed: int) -> list[Any]:
        sim = make_sim(seed=seed, shard_limit=SMALL_SHARDS)
        run(sim, steps=60)
        objects = []
        for resource in ("configmaps", "events"):
            for obj in sim.store.list(resource):
                meta = {
                    k: v
                    for k, v in obj["metadata"].items()
                    if k not in ("uid", "creationTimestamp", "resourceVersion")
                }
                objects.append({**obj, "metadata": meta})
        return objects

    first = snapshot(11)
    assert first == snapshot(11)
    assert first != snapshot(12)


# --- ClusterD sharding ---------------------------------------------------------------------------------


def shard_members(objects: list[dict[str, Any]], prefix: str) -> list[set[str]]:
    members = []
    for obj in objects:
        name = obj["metadata"]["name"]
        if name.startswith(prefix):
            value = obj["data"][name]
            members.append(set(json.loads(value)) if value else set())
    return members


def test_clusterd_shards_split_by_size_and_redraw_membership() -> None:
    model = ClusterModel(60, seed=5, warmup=1800.0)
    producer = ClusterDProducer(seed=5, shard_limit=8000)
    first = producer.report(model)
    assert [o["metadata"]["name"] for o in first][-1].startswith("cluster-info-device-")
    shards = shard_members(first, "cluster-info-device-")
    assert len(shards) >= 3
    for obj in first:
        (value,) = obj["data"].values()
        assert len(value.encode()) <= 8000
        assert obj["metadata"]["labels"] == {"mx-consumer-volcano": "true"}
    everyone = {f"mindx-dl-deviceinfo-{n.name}" for n in model.nodes}
    assert set().union(*shards) == everyone
    assert sum(len(s) for s in shards) == len(everyone)  # each node in exactly one shard
    # Each shard holds the largest prefix that fits: the entry that came next in the drawn order (one
    # of the next shard's, at most its largest) would have overflowed it.
    for obj, nxt in itertools.pairwise(first):
        name, next_name = obj["metadata"]["name"], nxt["metadata"]["name"]
        if name.startswith("cluster-info-device-") and next_name.startswith("cluster-info-device-"):
            parts = json.loads(nxt["data"][next_name]).items()
            largest = max(len(json.dumps({k: v}, separators=(",", ":"))) - 2 for k, v in parts)
            assert len(obj["data"][name]) + 1 + largest > 8000

    second = shard_members(producer.report(model), "cluster-info-device-")
    assert len(second) == len(shards)
    assert second != shards  # random order re-drawn at every report
    assert set().union(*second) == everyone

    # Shard count only grows: when everything fits again, the surplus shards are written as "".
    producer.shard_limit = 10_000_000
    third = producer.report(model)
    values = [
        o["data"][o["metadata"]["name"]]
        for o in third
        if o["metadata"]["name"].startswith("cluster-info-device-")
    ]
    assert len(values) == len(shards)
    assert set(json.loads(values[0])) == everyone
    assert values[1:] == [""] * (len(shards) - 1)
    for obj in third:
        assert_clean(clusterd.parse_device_shard(obj).problems, obj["metadata"]["name"])


def test_split_by_size() -> None:
    # {"a":1} style: entries of 10 bytes; a shard of n entries is 2 + 10n + (n - 1) bytes.
    assert split_by_size([10] * 5, 1000) == [(0, 5)]
    assert split_by_size([10] * 5, 2 + 10 * 2 + 1) == [(0, 2), (2, 4), (4, 5)]
    assert split_by_size([10] * 5, 2 + 10 * 2) == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]
    assert split_by_size([50, 10], 30) == [(0, 1), (1, 2)]  # an oversized entry gets a shard alone
    assert split_by_size([], 100) == [(0, 0)]


# --- liveliness ----------------------------------------------------------------------------------------


def test_every_fault_kind_appears_and_recovers_at_demo_rates() -> None:
    sim = make_sim(seed=1, nodes=50, warmup=0.0, event_ttl=1e9)
    sim.populate()
    store = sim.store
    handlings: set[tuple[str, str]] = set()
    switch_levels: set[str] = set()
    switch_statuses: set[str] = set()
    node_statuses: set[str] = set()
    retries: set[int] = set()
    ever: set[tuple[str, str, str]] = set()
    recovered: set[tuple[str, str, str]] = set()
    recovering = False
    wanted_handlings = {("CardUnhealthy", level) for level in CHIP_LEVELS[1:]} | {
        ("CardNetworkUnhealthy", "NotHandleFault"),
        ("CardNetworkUnhealthy", "PreSeparateNPU"),
    }

    def complete() -> bool:
        return (
            wanted_handlings <= handlings
            and {"NotHandle", "SubHealthFault", "PreSeparate", "Separate"} <= switch_levels
            and {"PreSeparate", "UnHealthy"} <= node_statuses
            and 0 in retries
            and recovering
            and len(recovered) >= 10
        )

    steps = 0
    current: set[tuple[str, str, str]] = set()
    while not complete():
        steps += 1
        assert steps <= 600, "not every fault kind appeared within 600 steps of 30 s"
        result = sim.advance(30.0)
        for index in result.dp_changed:
            node = sim.model.nodes[index]
            view = deviceplugin.parse_configmap(
                store.get("configmaps", "kube-system", f"mindx-dl-deviceinfo-{node.name}")
            ).first
            assert view is not None and view.chips is not None
            present = {(node.name, f.npu, f.fault_type) for f in view.chips.faults}
            gone = {key for key in current if key[0] == node.name} - present
            recovered |= gone
            current = (current - gone) | present
            ever |= present
            handlings |= {(f.fault_type, f.fault_handling) for f in view.chips.faults}
            recovering = recovering or any(r.lists.get("recovering") for r in view.chips.resources)
            if view.switch is not None and view.switch.fault_level:
                switch_levels.add(view.switch.fault_level)
                switch_statuses.add(view.switch.node_status)
        for cm in store.list("configmaps", "mindx-dl"):
            record = noded.parse_configmap(cm).first
            if record is not None:
                node_statuses.add(record.status)
        sim.report_volcano()
        vresult = volcano.parse_configmap(store.get("configmaps", "volcano-system", "vcjob-fault-npu-cm"))
        retries |= {r.times for r in volcano.job_retries(vresult)}

    assert switch_statuses >= {"Healthy", "SubHealthy", "UnHealthy"} or switch_statuses >= {"PreSeparate"}
    reasons = Counter(ev["reason"] for ev in store.list("events", "kube-system"))
    assert reasons["Occur"] and reasons["Recovery"]
    assert recovered <= ever


def test_switch_node_status_follows_the_level() -> None:
    model = ClusterModel(40, seed=2, mix={"A3": 1}, warmup=4 * 3600.0)
    seen = 0
    for node in model.nodes:
        level = node.switch_level()
        if level and not node.recovering:
            assert node.switch_status() == SWITCH_NODE_STATUS[level]
            seen += 1
        elif not level:
            assert node.switch_status() == "Healthy"
    assert seen


def test_calm_rates_keep_most_nodes_healthy() -> None:
    model = ClusterModel(2000, seed=4, rates=FaultRates.calm(), warmup=6 * 3600.0)
    faulty = sum(1 for _ in model.faulty_nodes())
    assert 0 < faulty < 0.1 * len(model.nodes)


# --- the runner against a live API server --------------------------------------------------------------


async def test_runner_writes_through_a_live_api_server() -> None:
    async with KubeApiTestServer(bookmark_interval=0.2) as api:
        sim = ClusterSimulator(
            api.store,
            nodes=20,
            seed=3,
            time_scale=600.0,
            tick=0.05,
            clusterd_interval=0.2,
            volcano_interval=0.1,
        )
        sim.populate()
        rv = api.store.resource_version
        seen: Counter[tuple[str, str]] = Counter()
        async with aiohttp.ClientSession() as session:
            url = f"{api.url}/api/v1/configmaps?watch=1&resourceVersion={rv}"
            async with sim, session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as resp:
                assert resp.status == 200
                while not (
                    seen["MODIFIED", "deviceinfo"]
                    and seen["MODIFIED", "cluster-info"]
                    and seen["MODIFIED", "vcjob"]
                ):
                    line = await asyncio.wait_for(resp.content.readline(), timeout=5)
                    event = json.loads(line)
                    name = event["object"]["metadata"]["name"]
                    kind = next(
                        (k for k in ("deviceinfo", "nodeinfo", "cluster-info", "vcjob") if k in name), name
                    )
                    seen[event["type"], kind] += 1
                assert sim.running
        assert not sim.running
        assert sim.stats.clusterd_reports >= 1 and sim.stats.volcano_writes >= 2
        assert api.store.count("events") == sim.stats.events_written - sim.stats.events_expired


async def test_writes_per_second_paces_device_plugin_updates() -> None:
    store = Store()
    sim = ClusterSimulator(
        store,
        nodes=300,
        seed=9,
        rates=FaultRates.calm(),
        time_scale=1.0,
        writes_per_second=200.0,
        clusterd_interval=None,
        volcano_interval=None,
    )
    sim.populate()
    before_rv = store.resource_version
    before = sim.stats.dp_writes
    async with sim:
        await asyncio.sleep(0.5)
    written = sim.stats.dp_writes - before
    assert 30 <= written <= 170, written  # 200/s for 0.5 s, with slack for a loaded machine
    assert store.resource_version > before_rv


@pytest.mark.parametrize("kind", ["A2", "A3", "A5", "310P"])
def test_each_kind_alone(kind: str) -> None:
    sim = make_sim(seed=13, nodes=6, mix={kind: 1})
    run(sim, steps=30)
    for cm in sim.store.list("configmaps"):
        for parse in (deviceplugin.parse_configmap, noded.parse_configmap):
            assert_clean(parse(cm).problems, cm["metadata"]["name"])
        assert_clean(clusterd.parse_device_shard(cm).problems, cm["metadata"]["name"])
        assert_clean(clusterd.parse_switch_shard(cm).problems, cm["metadata"]["name"])
        assert_clean(volcano.parse_configmap(cm).problems, cm["metadata"]["name"])


# --- byte-for-byte against the fixtures ----------------------------------------------------------------


def fixture_node135() -> Node:
    """The state behind tests/fixtures/deviceinfo-node135-a3-switchfault.json."""
    node = Node(0, "node135", KINDS["A3"], "ascend-device-plugin-daemonset-910-a3-x")
    node.super_pod_id, node.server_index = 3, 5
    node.update_time = 1744182100
    node.busy = sum(1 << chip for chip in (0, 1, 2, 4, 5, 6, 7))
    restart = ChipFault(node, 12, network=False)
    restart.codes["80C98009"] = FaultCodeState("80C98009", "RestartRequest", "RestartRequest", 1744181990456)
    manual = ChipFault(node, 3, network=False)
    manual.codes["80E01801"] = FaultCodeState("80E01801", "RestartBusiness", MANUAL, 1744170000000)
    node.chip_faults = {12: restart, 3: manual}
    node.manual = {3: ManualSeparation(node, 3, "chip")}
    node.upgrades = {3: [Upgrade(1744170000000, "80e01801", MANUAL, "FaultFrequency")]}
    fault = SwitchFault(node, "[0x08520003,na,npu,na]", 139591683, "Separate", 0, 12, 1, 3, 2, 1744181000123)
    node.switch_faults = {fault.key: fault}
    return node


def fixture_node150() -> Node:
    node = Node(1, "node150", KINDS["A5"], "ascend-device-plugin-daemonset-npu-x")
    node.super_pod_id, node.server_index, node.rack_id = 1, 0, 2
    node.update_time = 1744182010
    link = ChipFault(node, 5, network=True)
    link.codes["81078607"] = FaultCodeState("81078607", "NotHandleFault", "NotHandleFault", 1744181500321)
    node.net_faults = {5: link}
    return node


def shard_entry(fixture_name: str, key: str) -> str:
    """One node's `"key":{...}` text inside a ClusterD fixture shard, as written."""
    value = fixture(fixture_name)["data"][fixture_name.removesuffix(".json")]
    start = value.index(f'"{key}":')
    depth, end = 0, start
    for end in range(value.index("{", start), len(value)):
        depth += {"{": 1, "}": -1}.get(value[end], 0)
        if depth == 0:
            break
    return value[start : end + 1]


def test_reproduces_the_fixtures_byte_for_byte() -> None:
    node135, node150 = fixture_node135(), fixture_node150()
    for node, name in (
        (node135, "deviceinfo-node135-a3-switchfault.json"),
        (node150, "deviceinfo-node150-a5-npu.json"),
    ):
        expected = fixture(name)
        cm = deviceplugin_configmap(node)
        assert cm["data"] == expected["data"]
        assert cm["metadata"]["labels"] == expected["metadata"]["labels"]

    healthy = Node(2, "node134", KINDS["A2"], "pod")
    assert (
        deviceplugin_configmap(healthy, 1744181950)["data"]
        == fixture("deviceinfo-node134-healthy.json")["data"]
    )

    # ClusterD's copies: codes re-merged, ManuallySeparateNPU codes dropped, RackID 0 for non-A5.
    for node in (node135, node150):
        key = f"mindx-dl-deviceinfo-{node.name}"
        assert f'"{key}":{clusterd_device_value(node)}' == shard_entry("cluster-info-device-0.json", key)
        key = f"mindx-dl-switchinfo-{node.name}"
        assert f'"{key}":{clusterd_switch_value(node)}' == shard_entry("cluster-info-switch-0.json", key)

    # NodeD and ClusterD's node CM.
    node136 = Node(3, "node136", KINDS["A2"], "pod")
    node136.noded_update_time = 1744181890
    node136.node_faults = {
        ("Mainboard", 0): NodeDevice(node136, "Mainboard", 0, {"2C000031": "SeparateFault"}),
        ("PSU", 2): NodeDevice(node136, "PSU", 2, {"0300000D": "NotHandleFault"}),
    }
    expected_nd = fixture("nodeinfo-node136-unhealthy.json")
    nd = noded_configmap(node136, expected_nd["metadata"]["ownerReferences"][0]["uid"])
    assert nd is not None
    assert nd["data"] == expected_nd["data"]
    assert nd["metadata"]["ownerReferences"] == expected_nd["metadata"]["ownerReferences"]
    key = "mindx-dl-nodeinfo-node136"
    assert f'"{key}":{clusterd_node_value(node136)}' == shard_entry("cluster-info-node-cm.json", key)

    # A device-plugin Event (node133 is an A3 node: two chips per card).
    node133 = Node(4, "node133", KINDS["A3"], "ascend-device-plugin-daemonset-910-dlpmv")
    transition = FaultTransition(4, 4, "80E18402", "Occur", "SeparateNPU", 1744167455901)
    expected_ev = fixture("event-deviceplugin-node133-occur.json")
    event = fault_event(node133, transition)
    ignored = ("uid", "resourceVersion", "creationTimestamp")
    assert event["metadata"] == {k: v for k, v in expected_ev["metadata"].items() if k not in ignored}
    assert {k: v for k, v in event.items() if k != "metadata"} == {
        k: v for k, v in expected_ev.items() if k != "metadata"
    }


# --- written times and the alerts scenario ---------------------------------------------------------------


def view_times(view: Any, what: str) -> list[tuple[str, float]]:
    """Every time in a parsed NodeView: its UpdateTime, its chips' and switch faults' times."""
    times = []
    if view.update_time:
        times.append((f"{what} UpdateTime", view.update_time))
    for fault in view.chips.faults if view.chips is not None else ():
        times += [(f"{what} {fault.npu} {code.code}", code.raised_at) for code in fault.codes]
    for sw in view.switch.faults if view.switch is not None else ():
        times.append((f"{what} switch {sw.fault_code}", sw.raised_at))
    return times


def written_times(store: Store) -> list[tuple[str, float]]:
    """(what, unix seconds) of every time in every object the simulator wrote, read back with the
    exporter's own parsers."""
    times: list[tuple[str, float]] = []
    for cm in store.list("configmaps"):
        name = cm["metadata"]["name"]
        if name.startswith("mindx-dl-deviceinfo-"):
            times += view_times(deviceplugin.parse_configmap(cm).first, name)
        elif name.startswith("mindx-dl-nodeinfo-"):
            record = noded.parse_configmap(cm).first
            assert record is not None and record.update_time is not None
            times.append((name, record.update_time))
        elif name == "cluster-info-node-cm":
            for node, rec in (clusterd.parse_node_cm(cm).records or {}).items():
                times.append((f"{name} {node}", rec.update_time or 0.0))
        elif clusterd.is_device_shard(name):
            for entry in (clusterd.parse_device_shard(cm).records or {}).values():
                times += view_times(entry.view, name)
        elif clusterd.is_switch_shard(name):
            for node, sentry in (clusterd.parse_switch_shard(cm).records or {}).items():
                times.append((f"{name} {node}", sentry.update_time or 0.0))
        elif name == "vcjob-fault-npu-cm":
            for vnode in volcano.fault_nodes(volcano.parse_configmap(cm)):
                times += view_times(vnode.view, name)
        elif name == "statistic-fault-info":
            for record in (publicfaults.parse_configmap(cm).records or {}).values():
                times += [(f"{name} {f.fault_code}", f.raised_at) for f in getattr(record, "faults", ())]
        elif name == "clusterd-manual-info-cm":
            for sep in (manualseparation.parse_configmap(cm).records or {}).values():
                times += [(f"{name} {c.npu} {c.fault_code}", c.separated_at) for c in sep.chips]
    for ev in store.list("events"):
        record = events.parse_event(ev).first
        assert record is not None and record.event_time is not None
        times.append((ev["metadata"]["name"], record.event_time))
    return times


async def test_a_fast_simulation_never_writes_a_time_in_the_future() -> None:
    """Ten simulated minutes per second: before, the simulated clock (and every time written) ran
    ahead of the wall clock by that much; written times must stay at or before now."""
    store = Store()
    sim = ClusterSimulator(
        store,
        nodes=30,
        seed=5,
        rates=FaultRates(),
        time_scale=600.0,
        tick=0.05,
        clusterd_interval=0.1,
        volcano_interval=0.1,
    )
    sim.populate()
    checked = 0
    async with sim:
        for _ in range(15):
            await asyncio.sleep(0.1)
            now = time.time()  # nothing is written while this coroutine runs
            times = written_times(store)
            late = [(what, at - now) for what, at in times if at > now]
            assert not late, late[:5]
            checked += len(times)
    assert sim.model.now > time.time() + 600  # the simulated clock did run ahead
    assert sim.stats.events_written > 0 and checked > 1000
    names = {what.split(" ")[0] for what, _ in written_times(store)}
    assert {"statistic-fault-info", "clusterd-manual-info-cm", "vcjob-fault-npu-cm"} <= names


def scenario_sim(nodes: int = 30, **options: Any) -> tuple[ClusterSimulator, AlertsScenario]:
    scenario = AlertsScenario()
    sim = make_sim(seed=11, nodes=nodes, script=scenario, event_ttl=1e9, **options)
    sim.populate()
    return sim, scenario


def step_to(sim: ClusterSimulator, offset: float, dt: float = 10.0) -> None:
    """Advance to ``offset`` simulated seconds after the start, reporting as the services would."""
    while sim.model.now < DEFAULT_START_TIME + offset:
        sim.advance(min(dt, DEFAULT_START_TIME + offset - sim.model.now))
        sim.report_clusterd()
        sim.report_volcano()


def chip_faults(store: Store, source: str, node: Node) -> dict[str, tuple[str, set[str]]]:
    """npu → (fault_handling, codes) of the chip fault entries one producer writes for ``node``
    (CardUnhealthy and PublicFault; network entries left out)."""
    if source == "device-plugin":
        view = deviceplugin.parse_configmap(
            store.get("configmaps", "kube-system", f"mindx-dl-deviceinfo-{node.name}")
        ).first
    else:
        view = next(
            entry.view
            for cm in store.list("configmaps", "mindx-dl")
            if clusterd.is_device_shard(cm["metadata"]["name"])
            for name, entry in (clusterd.parse_device_shard(cm).records or {}).items()
            if name == node.name
        )
    assert view is not None and view.chips is not None
    return {
        f.npu + ("/public" if f.fault_type == "PublicFault" else ""): (
            f.fault_handling,
            {c.code for c in f.codes},
        )
        for f in view.chips.faults
        if f.fault_type != "CardNetworkUnhealthy"
    }


def test_alerts_scenario_plays_its_script_on_reserved_nodes() -> None:
    sim, scenario = scenario_sim()
    model, store = sim.model, sim.store
    roles = scenario.roles
    assert roles is not None and scenario.job is not None
    reserved = {roles.chips, roles.switch, roles.node_down, roles.job, roles.quiet}
    assert len(reserved) == 5 and {roles.chips.kind.key, roles.switch.kind.key} == {"A3"}
    assert {n.index for n in reserved} == model.reserved
    # The warm-up hour left the reserved nodes alone: no random fault, no random job.
    for node in reserved:
        assert not (
            node.chip_faults or node.net_faults or node.manual or node.switch_faults or node.node_faults
        )
    assert roles.job.job is scenario.job and scenario.job.times == 2
    assert all(node.job is None for node in reserved - {roles.job})
    name = f"mindx-dl-deviceinfo-{roles.quiet.name}"
    quiet_stamp = json.loads(store.get("configmaps", "kube-system", name)["data"]["DeviceInfoCfg"])
    assert quiet_stamp["DeviceInfo"]["UpdateTime"] == DEFAULT_START_TIME - 600  # down 10 minutes ago

    step_to(sim, 100)
    dp = chip_faults(store, "device-plugin", roles.chips)
    assert dp == {
        "Ascend910-0": ("SeparateNPU", {"80E18402"}),
        "Ascend910-1": ("PreSeparateNPU", {"80E18401"}),
        "Ascend910-2": ("FutureLevelNPU", {"80FF0001"}),
    }
    cd = chip_faults(store, "clusterd", roles.chips)
    assert cd["Ascend910-3/public"] == ("SeparateNPU", {"220001001"})
    assert cd["Ascend910-2"] == ("NormalNPU", {"80FF0001"})  # ClusterD ranks an unknown level as NormalNPU
    assert roles.switch.switch_status() == "UnHealthy" and roles.chips.switch_status() == "SubHealthy"
    assert roles.node_down.noded_status() == "UnHealthy"
    assert roles.job.noded_status() == "PreSeparate" and roles.job.busy  # ClusterD: Healthy
    # ClusterD also lists the public fault in statistic-fault-info, and reports the pending job.
    stat = publicfaults.parse_configmap(store.get("configmaps", "cluster-system", "statistic-fault-info"))
    node_faults = getattr((stat.records or {}).get(f"node/{roles.chips.name}"), "faults", ())
    assert [(f.chip_id, f.fault_code, f.fault_level) for f in node_faults] == [
        ("3", "220001001", "SeparateNPU")
    ]
    report = store.get("configmaps", "cluster-system", "scheduling-exception-report")
    assert any(key.startswith("alerts-demo-pending.") for key in report.get("data") or {})

    step_to(sim, 170)
    assert scenario.job.times == 2
    step_to(sim, 200)
    assert scenario.job.times == 1
    step_to(sim, 440)
    assert scenario.job.times == 0 and scenario.job.active
    occurs = Counter(ev["reason"] for ev in store.list("events") if ev["source"]["host"] == roles.chips.name)
    assert occurs["Occur"] >= 15 and occurs["Recovery"] >= 14  # the flapping link, 3 a minute

    # The quiet node's device plugin writes nothing until 15 minutes after the start.
    step_to(sim, 890)
    cfg = json.loads(store.get("configmaps", "kube-system", name)["data"]["DeviceInfoCfg"])
    assert cfg["DeviceInfo"]["UpdateTime"] == DEFAULT_START_TIME - 600
    step_to(sim, 910)
    cfg = json.loads(store.get("configmaps", "kube-system", name)["data"]["DeviceInfoCfg"])
    assert cfg["DeviceInfo"]["UpdateTime"] >= DEFAULT_START_TIME + 900

    # Volcano holds no session from 16 to 26 minutes.
    def volcano_rv() -> str:
        return str(
            store.get("configmaps", "volcano-system", "vcjob-fault-npu-cm")["metadata"]["resourceVersion"]
        )

    step_to(sim, 970)
    before = volcano_rv()
    step_to(sim, 1550)
    assert volcano_rv() == before
    step_to(sim, 1570)
    assert volcano_rv() != before

    # Everything scripted recovers at 50 minutes; every object still parses cleanly.
    step_to(sim, 3100, dt=60.0)
    assert not scenario.job.active
    for node in reserved:
        assert not (node.chip_faults or node.net_faults or node.switch_faults or node.node_faults)
        assert not node.public_faults
    for cm in store.list("configmaps"):
        cm_name = cm["metadata"]["name"]
        if cm_name.startswith("mindx-dl-deviceinfo-"):
            assert_clean(deviceplugin.parse_configmap(cm).problems, cm_name)
        elif clusterd.is_device_shard(cm_name):
            assert_clean(clusterd.parse_device_shard(cm).problems, cm_name)
        elif cm_name == "vcjob-fault-npu-cm":
            assert_clean(volcano.parse_configmap(cm).problems, cm_name)


def test_alerts_scenario_objects_parse_cleanly_while_it_plays() -> None:
    sim, scenario = scenario_sim(shard_limit=SMALL_SHARDS)
    step_to(sim, 400, dt=30.0)
    store = sim.store
    for cm in store.list("configmaps"):
        name = cm["metadata"]["name"]
        if name.startswith("mindx-dl-deviceinfo-"):
            assert_clean(deviceplugin.parse_configmap(cm).problems, name)
        elif name.startswith("mindx-dl-nodeinfo-"):
            assert_clean(noded.parse_configmap(cm).problems, name)
        elif clusterd.is_device_shard(name):
            assert_clean(clusterd.parse_device_shard(cm).problems, name)
        elif clusterd.is_switch_shard(name):
            assert_clean(clusterd.parse_switch_shard(cm).problems, name)
        elif name == "vcjob-fault-npu-cm":
            result = volcano.parse_configmap(cm)
            assert_clean(result.problems, name)
            states = {n.view.node: n.health_state for n in volcano.fault_nodes(result)}
            assert scenario.roles is not None
            assert states[scenario.roles.switch.name] == "NodeUnhealthy"
            assert states[scenario.roles.node_down.name] == "NodeUnhealthy"
            assert states[scenario.roles.chips.name] == "CardUnhealthy"
    for ev in store.list("events"):
        assert_clean(events.parse_event(ev).problems, ev["metadata"]["name"])


@pytest.mark.parametrize("nodes", range(ALERTS_MIN_NODES, 41))
def test_alerts_scenario_fits_from_its_minimum_node_count(nodes: int) -> None:
    model = ClusterModel(nodes, seed=nodes, script=AlertsScenario())
    assert len(model.reserved) == 5


def test_alerts_scenario_refuses_a_cluster_too_small() -> None:
    with pytest.raises(ValueError, match="needs at least 5 nodes"):
        ClusterModel(ALERTS_MIN_NODES - 1, script=AlertsScenario())
