"""The K8s RDMA Shared Dev Plugin's `kube-system/dpuinfo-<node>`, byte for byte (docs/mindx-sources.md,
"DPU faults"): two HCAs per node, NICs going down (`hca_port_down`) and cards dropping
(`dpu_card_drop`) and coming back, a write when the content changes or 5 minutes after the last
`UpdateTime`. Every tenth node runs a June-2026 build: no label, no `NodeEvent`, `UpdateTime` an
RFC 3339 string with nanoseconds.

Randomness comes from a generator of its own, so the rest of the simulation does not change.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from exporter.simulator.model import ClusterModel, Node
from exporter.simulator.producers import go_dumps

NAMESPACE = "kube-system"
PREFIX = "dpuinfo-"
KEY = "DpuInfoCfg"
LABELS = {"huawei.com/consumer.clusterd": "true"}
RESYNC_SECONDS = 300.0  # the reporter rewrites an unchanged content after 5 minutes
HCAS = 2

# (FaultCode, Description, FaultLevel) of the shipped catalog (spec F.3).
HCA_PORT_DOWN = ("21000024", "Host to network fault. Need to switch IP after fault.", "SeparateDPU")
DPU_CARD_DROP = ("22000026", "DPU card missing.", "SeparateDPU")

NIC_DOWN_PER_NODE_HOUR = 0.1
CARD_DROP_PER_NODE_HOUR = 0.02
MEAN_FAULT_SECONDS = 1800.0
_ZONE = timezone(timedelta(hours=8))  # the plugin container's zone in the June-2026 example


@dataclass(slots=True)
class _NodeDpus:
    node: Node
    legacy: bool  # a June-2026 build
    faults: dict[str, int] = field(default_factory=dict)  # "<hca>:<code>" / "node:<code>" → first seen, ms
    ends: dict[str, float] = field(default_factory=dict)  # same keys → when the fault clears


def dpuinfo_name(node: Node) -> str:
    return PREFIX + node.name


def _rfc3339_nano(at: float) -> str:
    """Go's time.Time JSON: RFC 3339 with up to 9 fraction digits, trailing zeros dropped."""
    seconds = int(at)
    nanos = min(round((at - seconds) * 1e9), 10**9 - 1)  # a float holds ~0.2 µs at this size
    stamp = datetime.fromtimestamp(seconds, UTC).astimezone(_ZONE)
    fraction = f"{nanos:09d}".rstrip("0")
    return stamp.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + stamp.isoformat()[-6:]


class DpuProducer:
    def __init__(self, model: ClusterModel) -> None:
        self.rng = random.Random(f"dpu-{model.seed}")
        self._nodes = [_NodeDpus(node, legacy=node.index % 10 == 7) for node in model.nodes]
        self._written: dict[int, float] = {}  # node → sim time of its last write, oldest first
        self._ends: list[tuple[float, int, str]] = []  # (when, node, fault key): clears, soonest first
        self._next = {"nic": self._draw(model, model.now, NIC_DOWN_PER_NODE_HOUR)}
        self._next["card"] = self._draw(model, model.now, CARD_DROP_PER_NODE_HOUR)

    def _draw(self, model: ClusterModel, after: float, per_node_hour: float) -> float:
        return after + self.rng.expovariate(per_node_hour * len(model.nodes) / 3600.0)

    def start(self, model: ClusterModel) -> list[dict[str, Any]]:
        """Every node's object, a few with a NIC already down (a lived-in cluster) that stays down
        for at least the first hour (it waits for a technician)."""
        now, stamp = model.now, model.stamp()
        for state in self.rng.sample(self._nodes, max(1, len(self._nodes) // 20)):
            key = f"mlx5_{self.rng.randrange(HCAS)}:{HCA_PORT_DOWN[0]}"
            self._raise(state, key, now + 3600.0, stamp - self.rng.uniform(60, 1800))
        return [self._write(state, now, stamp) for state in self._nodes]

    def step(self, model: ClusterModel) -> list[dict[str, Any]]:
        """Simulated time (`now`) drives arrivals, clears and heartbeats; the times written are the
        model's written time (`stamp()`, held back to the wall clock in the demo)."""
        now, stamp = model.now, model.stamp()
        changed: dict[int, _NodeDpus] = {}
        for kind, code in (("nic", HCA_PORT_DOWN[0]), ("card", DPU_CARD_DROP[0])):
            while self._next[kind] <= now:
                at = self._next[kind]
                state = self._nodes[self.rng.randrange(len(self._nodes))]
                where = f"mlx5_{self.rng.randrange(HCAS)}" if kind == "nic" else "node"
                if not (kind == "card" and state.legacy):  # June-2026 builds have no NodeEvent
                    self._raise(state, f"{where}:{code}", at, stamp)
                    changed[state.node.index] = state
                rate = NIC_DOWN_PER_NODE_HOUR if kind == "nic" else CARD_DROP_PER_NODE_HOUR
                self._next[kind] = self._draw(model, at, rate)
        while self._ends and self._ends[0][0] <= now:
            end, index, key = heapq.heappop(self._ends)
            state = self._nodes[index]
            if state.ends.get(key) == end:
                del state.ends[key], state.faults[key]
                changed[index] = state
        for index, at in self._written.items():  # heartbeats: 5 minutes after the last write
            if now - at < RESYNC_SECONDS:
                break
            changed.setdefault(index, self._nodes[index])
        return [self._write(state, now, stamp) for state in changed.values()]

    def _raise(self, state: _NodeDpus, key: str, at: float, first_seen: float) -> None:
        """A fault from simulated time `at`, written as first detected at `first_seen`."""
        state.faults.setdefault(key, int(first_seen * 1000))
        end = state.ends[key] = at + self.rng.expovariate(1.0 / MEAN_FAULT_SECONDS)
        heapq.heappush(self._ends, (end, state.node.index, key))

    def _write(self, state: _NodeDpus, now: float, stamp: float) -> dict[str, Any]:
        info: dict[str, Any] = {"DPUList": [self._hca(state, i) for i in range(HCAS)]}
        if not state.legacy:
            info["NodeEvent"] = {"NodeName": state.node.name, "FaultList": self._faults(state, "node")}
        content = go_dumps(info)
        self._written.pop(state.node.index, None)
        self._written[state.node.index] = now
        update: str = _rfc3339_nano(stamp) if state.legacy else str(int(stamp * 1000))
        value = '{"DPUInfo":' + content + ',"UpdateTime":' + (f'"{update}"' if state.legacy else update) + "}"
        metadata: dict[str, Any] = {"name": dpuinfo_name(state.node), "namespace": NAMESPACE}
        if not state.legacy:
            metadata["labels"] = dict(LABELS)
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {KEY: value}}

    def _hca(self, state: _NodeDpus, index: int) -> dict[str, Any]:
        hca = f"mlx5_{index}"
        item: dict[str, Any] = {"HcaName": hca, "EthName": f"enp{index + 1}s0"}
        if not state.legacy:  # the June-2026 example: an HCA without an address omits IpAddr
            item["IpAddr"] = f"10.{state.node.index // 256 % 256}.{state.node.index % 256}.{index + 1}"
        item.update(DeviceID="0xa222", VendorID="0x19e5", FaultList=self._faults(state, hca))
        return item

    @staticmethod
    def _faults(state: _NodeDpus, where: str) -> list[dict[str, Any]]:
        faults = []
        for code, description, level in (HCA_PORT_DOWN, DPU_CARD_DROP):  # catalog order
            first = state.faults.get(f"{where}:{code}")
            if first is not None:
                faults.append(
                    {"FaultCode": code, "Time": first, "Description": description, "FaultLevel": level}
                )
        return faults
