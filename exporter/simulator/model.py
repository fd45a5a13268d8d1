"""The state of a simulated MindX DL cluster: nodes, chips, faults, switches, NodeD devices and jobs.

Pure and seeded: every random draw comes from one ``random.Random(seed)``, so the same seed, node
count, mix, rates and sequence of ``step(dt)`` calls give the same cluster. Nothing here knows
about Kubernetes objects; ``producers`` turns this state into the producers' exact wire formats.

Faults are driven by Poisson processes (arrivals per node-hour) and by periodic *reviews* of each
active fault, at which the fault escalates, recovers or stays. Events are processed in time order
through one heap, so the cost of a step is proportional to what happens in it, not to the cluster
size: a 10,000-node cluster steps in microseconds when nothing happens.

Levels, codes and their behaviour follow docs/mindx-sources.md (§2.3-2.6, §4, §9, §11, §12).
"""

from __future__ import annotations

import heapq
import math
import random
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from exporter.sources.common import CHIP_LEVEL_RANK

__all__ = [
    "DEFAULT_MIX",
    "DEFAULT_START_TIME",
    "KINDS",
    "ChipFault",
    "ChipKind",
    "ClusterModel",
    "FaultCodeState",
    "FaultRates",
    "FaultTransition",
    "Job",
    "ManualSeparation",
    "Node",
    "NodeDevice",
    "Outage",
    "PublicFault",
    "Script",
    "StepResult",
    "SwitchFault",
    "Upgrade",
]

DEFAULT_START_TIME = 1744182000.0  # 2025-04-09T07:00:00Z, the fixtures' snapshot

# --- chip fault levels (spec §11.1) ------------------------------------------------------------------

NORMAL = "NormalNPU"
NOT_HANDLE = "NotHandleFault"
SUB_HEALTH = "SubHealthFault"
RESTART_REQUEST = "RestartRequest"
RESTART_BUSINESS = "RestartBusiness"
FREE_RESTART = "FreeRestartNPU"
RESTART_NPU = "RestartNPU"
PRE_SEPARATE = "PreSeparateNPU"
SEPARATE = "SeparateNPU"
MANUAL = "ManuallySeparateNPU"

CARD_UNHEALTHY = "CardUnhealthy"
CARD_NETWORK_UNHEALTHY = "CardNetworkUnhealthy"


def _level_rank(level: str) -> int:
    """A chip level's rank; a level MindX DL does not have (scripted, scenario.py) ranks lowest."""
    return CHIP_LEVEL_RANK.get(level, -1)


# Chip levels that leave a chip healthy / network-healthy (spec §2.3).
_CHIP_HEALTHY_LEVELS = frozenset((NORMAL, NOT_HANDLE, SUB_HEALTH))
_NET_HEALTHY_LEVELS = frozenset((NORMAL, NOT_HANDLE))
# An in-use chip at these levels is still reported healthy (grace tolerance, spec §2.3).
_IN_USE_TOLERATED = frozenset((PRE_SEPARATE, FREE_RESTART))
# Faults recovered through a hot reset: the chip passes through `-Recovering`.
_HOT_RESET_LEVELS = frozenset((RESTART_NPU, FREE_RESTART))

# A subset of the shipped catalogs (component/ascend-device-plugin/build/faultCode.json), plus the
# 9-digit UB codes the spec lists (§2.4, §12). PreSeparateNPU has no static code: chips reach it by a
# FaultDuration upgrade, as in the real catalog.
# fmt: off
CHIP_CODES: dict[str, tuple[str, ...]] = {
    NOT_HANDLE: (
        "80E18401", "A4028801", "80E21007", "80C98006", "80A18006", "8C1F8609", "80E01805", "81338006",
        "A4025081", "80DE1803", "020000002",
    ),
    SUB_HEALTH: ("81A3880C", "81AD8605", "80E20207", "8C2FA001", "80E18405", "80DE0207"),
    RESTART_REQUEST: ("80C98009", "80C98008", "80CB8002", "80D58000", "81AB800D"),
    RESTART_BUSINESS: ("8C204E00", "A8028802", "A4302003", "B4060011", "A2301002", "80E01801"),
    FREE_RESTART: ("8C084E00", "8C0E4E00", "8C104E00", "A4193217", "A42A0000"),
    RESTART_NPU: ("8C03A000", "80E24E00", "80E38008", "80E18005", "A6060000", "81498004", "020001002"),
    SEPARATE: ("80E18402", "A8028801", "80E3A201", "A4193216", "A819320F", "4C4BA00C", "200001002"),
}
# fmt: on
# Weights of the static level of a newly raised chip code.
_CHIP_RAISE_WEIGHTS: dict[str, float] = {
    NOT_HANDLE: 0.26,
    SUB_HEALTH: 0.10,
    RESTART_REQUEST: 0.10,
    RESTART_BUSINESS: 0.10,
    FREE_RESTART: 0.10,
    RESTART_NPU: 0.14,
    SEPARATE: 0.20,
}
# Escalation by a new, more severe code (the chain of the brief; PreSeparate and Separate have codes).
_CHIP_ESCALATE_BY_CODE: dict[str, str] = {
    SUB_HEALTH: RESTART_REQUEST,
    RESTART_REQUEST: RESTART_BUSINESS,
    RESTART_BUSINESS: FREE_RESTART,
    FREE_RESTART: RESTART_NPU,
    RESTART_NPU: SEPARATE,
    PRE_SEPARATE: SEPARATE,
}

# The fixed network code set (spec §11.1): 81078603 link down (NotHandle, PreSeparate after
# FaultDuration, Manual after FaultFrequency), 81078607, and the 9-digit UB codes (unknown network
# codes default to PreSeparateNPU).
NETWORK_CODES: dict[str, str] = {
    "81078603": NOT_HANDLE,
    "81078607": NOT_HANDLE,
    "110000002": PRE_SEPARATE,
    "110001024": PRE_SEPARATE,
}
_NETWORK_RAISE_WEIGHTS: dict[str, float] = {
    "81078603": 0.5,
    "81078607": 0.2,
    "110000002": 0.15,
    "110001024": 0.15,
}

ALL_CHIP_CODE_LEVELS: dict[str, str] = {
    **{code: level for level, codes in CHIP_CODES.items() for code in codes},
    **NETWORK_CODES,
}

# --- switch faults (spec §2.5, §11.4; build/SwitchFaultCode.json) ------------------------------------

SWITCH_NOT_HANDLE = "NotHandle"
SWITCH_SUB_HEALTH = "SubHealthFault"
SWITCH_RESTART_REQUEST = "RestartRequest"
SWITCH_PRE_SEPARATE = "PreSeparate"
SWITCH_SEPARATE = "Separate"
SWITCH_LEVEL_RANK: dict[str, int] = {
    "": -1,
    SWITCH_NOT_HANDLE: 0,
    SWITCH_SUB_HEALTH: 1,
    SWITCH_RESTART_REQUEST: 2,
    SWITCH_PRE_SEPARATE: 3,
    SWITCH_SEPARATE: 4,
}
SWITCH_NODE_STATUS: dict[str, str] = {
    SWITCH_NOT_HANDLE: "Healthy",
    SWITCH_SUB_HEALTH: "SubHealthy",
    SWITCH_RESTART_REQUEST: "UnHealthy",
    SWITCH_PRE_SEPARATE: "PreSeparate",
    SWITCH_SEPARATE: "UnHealthy",
}
SWITCH_CODES: dict[str, tuple[str, ...]] = {
    SWITCH_NOT_HANDLE: (
        "[0x00f1fef5,155913,cpu,na]",
        "[0x08520003,na,L2,na]",
        "[0x00f10509,132333,L2,na]",
        "[0x00f103b6,155909,na,na]",
    ),
    SWITCH_SUB_HEALTH: (
        "[0x00f103b6,155908,na,na]",
        "[0x00f10509,132332,npu,na]",
        "[0x00f1ff06,155910,na,na]",
    ),
    SWITCH_RESTART_REQUEST: ("[0x00f1fef5,155914,npu,na]",),
    SWITCH_SEPARATE: (
        "[0x00f103b0,155907,na,na]",
        "[0x00f1fef5,155912,npu,na]",
        "[0x08520003,na,npu,na]",
        "[0x08520003,na,cpu,na]",
    ),
}
_SWITCH_RAISE_WEIGHTS: dict[str, float] = {
    SWITCH_NOT_HANDLE: 0.35,
    SWITCH_SUB_HEALTH: 0.3,
    SWITCH_RESTART_REQUEST: 0.05,
    SWITCH_SEPARATE: 0.3,
}
# Escalation changes the fault's level (an operator catalog override; PreSeparate has no shipped code).
_SWITCH_ESCALATE: dict[str, str] = {
    SWITCH_NOT_HANDLE: SWITCH_SUB_HEALTH,
    SWITCH_SUB_HEALTH: SWITCH_PRE_SEPARATE,
    SWITCH_PRE_SEPARATE: SWITCH_SEPARATE,
}
_PEER_DEVICE = {"cpu": 0, "npu": 1, "L2": 2, "na": 0xFFFF}
_SWITCH_SEVERITY = {
    SWITCH_NOT_HANDLE: 0,
    SWITCH_SUB_HEALTH: 1,
    SWITCH_RESTART_REQUEST: 2,
    SWITCH_PRE_SEPARATE: 2,
    SWITCH_SEPARATE: 2,
}
NO_PORT = 4294967295


def _peer(code: str) -> str:
    """The peer field of a switch fault code `[event,id,peer,port]` (`na`: no port)."""
    return code.strip("[]").split(",")[2]


# --- NodeD (spec §4, §11.3; build/NodeDConfiguration.json) -------------------------------------------

NODED_NOT_HANDLE = "NotHandleFault"
NODED_PRE_SEPARATE = "PreSeparateFault"
NODED_SEPARATE = "SeparateFault"
NODED_LEVEL_RANK = {NODED_NOT_HANDLE: 0, NODED_PRE_SEPARATE: 1, NODED_SEPARATE: 2}
NODED_STATUS = {NODED_NOT_HANDLE: "Healthy", NODED_PRE_SEPARATE: "PreSeparate", NODED_SEPARATE: "UnHealthy"}
# fmt: off
NODED_CODES: dict[str, tuple[str, ...]] = {
    NODED_NOT_HANDLE: ("0100000D", "03000009", "03000013", "0300000D", "03000011", "29000001", "2900002F"),
    NODED_PRE_SEPARATE: (
        "0000001D", "2800001F", "01000017", "00000099", "06000025", "080000ED", "02000007", "02000017",
        "0F000011", "0500000D", "0D000001", "24000007", "2C000081", "120000CD", "6200000C",
    ),
    NODED_SEPARATE: ("2C000031",),
}
# fmt: on
_NODED_RAISE_WEIGHTS = {NODED_NOT_HANDLE: 0.4, NODED_PRE_SEPARATE: 0.45, NODED_SEPARATE: 0.15}
_NODED_ESCALATE = {NODED_NOT_HANDLE: NODED_PRE_SEPARATE, NODED_PRE_SEPARATE: NODED_SEPARATE}
# IPMI sensor byte → DeviceType and how many such devices a node has.
_NODED_DEVICE_TYPES: dict[str, tuple[str, int]] = {
    "00": ("CPU", 2),
    "01": ("Fan", 8),
    "02": ("Memory", 32),
    "03": ("PSU", 4),
    "05": ("NIC", 4),
    "06": ("Disk", 8),
    "08": ("Disk", 8),
    "0D": ("PCIe Card", 4),
    "0F": ("NIC", 4),
    "12": ("NPU", 8),
    "24": ("Mainboard", 1),
    "28": ("Mainboard", 1),
    "29": ("Fan", 8),
    "2C": ("Mainboard", 1),
    "62": ("NPU", 8),
}

# --- Volcano jobs (spec §9) ----------------------------------------------------------------------------

_JOB_NAMESPACES = ("default", "llm", "training", "inference")
_JOB_NAMES = (
    "pretrain-70b",
    "finetune-7b",
    "mindx-test",
    "resnet50",
    "deepseek-v3",
    "llama3-405b",
    "qwen-72b",
)
_JOB_SIZES = (1, 2, 4, 8, 16, 32)
_JOB_SIZE_WEIGHTS = (0.3, 0.25, 0.2, 0.13, 0.08, 0.04)
_JOB_RETRIES = (1, 1, 2, 2, 3, 5)


# --- configuration --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChipKind:
    """One node type: what its device plugin writes (spec §2.3)."""

    key: str  # "A2", "A3", "A5", "310P"
    card_type: str  # DP RealCardType
    resource: str  # DeviceList resource key
    device_prefix: str  # device names are `<prefix>-<phyId>`
    chips: int
    network: bool  # writes -NetworkUnhealthy/-Recovering; has network faults and hot resets
    switch: str  # "none": no SwitchInfoCfg; "faults": A3 switch manager; "zero": A5 zero struct
    super_pod: bool  # SuperPodID/ServerIndex >= 0 (else -2)
    rack: bool  # writes RackID (A5)
    logic_id_events: bool  # Event message uses `logicID:%d` (A5)
    chips_per_card: int  # cardID = phyId // chips_per_card, deviceID = phyId % chips_per_card
    dp_pod_prefix: str
    names: tuple[str, ...] = field(default=(), compare=False)  # device name per phyId
    sorted_ids: tuple[int, ...] = field(default=(), compare=False)  # phyIds in byte-sorted name order

    def __post_init__(self) -> None:
        names = tuple(f"{self.device_prefix}-{i}" for i in range(self.chips))
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "sorted_ids", tuple(sorted(range(self.chips), key=names.__getitem__)))


KINDS: dict[str, ChipKind] = {
    "A2": ChipKind(
        "A2",
        "Ascend910B",
        "huawei.com/Ascend910",
        "Ascend910",
        8,
        True,
        "none",
        False,
        False,
        False,
        1,
        "ascend-device-plugin-daemonset-910b",
    ),
    "A3": ChipKind(
        "A3",
        "Ascend910A3",
        "huawei.com/Ascend910",
        "Ascend910",
        16,
        True,
        "faults",
        True,
        False,
        False,
        2,
        "ascend-device-plugin-daemonset-910-a3",
    ),
    "A5": ChipKind(
        "A5",
        "Ascend910A5",
        "huawei.com/npu",
        "npu",
        8,
        True,
        "zero",
        True,
        True,
        True,
        1,
        "ascend-device-plugin-daemonset-npu",
    ),
    "310P": ChipKind(
        "310P",
        "Ascend310P",
        "huawei.com/Ascend310P",
        "Ascend310P",
        8,
        False,
        "none",
        False,
        False,
        False,
        2,
        "ascend-device-plugin-daemonset-310p",
    ),
}
DEFAULT_MIX: dict[str, float] = {"A2": 0.35, "A3": 0.4, "A5": 0.15, "310P": 0.1}
A3_SUPER_POD_NODES = 24  # Atlas 900 A3 SuperPod: 384 NPUs
A5_SUPER_POD_NODES = 64
A5_RACK_NODES = 8


@dataclass(frozen=True, slots=True)
class FaultRates:
    """How lively the cluster is. Arrival rates are per node and hour (switch faults per A3 node,
    network faults per node with network keys); every active fault is *reviewed* on average
    ``reviews_per_hour`` times an hour and then escalates with ``escalate_prob``, recovers with
    ``recover_prob`` or stays. The defaults are the demo rates: a 50-node cluster shows every kind
    of fault within a simulated hour or two. ``calm()`` is closer to a production cluster."""

    raise_per_node_hour: float = 0.5  # chip (CardUnhealthy) faults
    network_per_node_hour: float = 0.2  # CardNetworkUnhealthy faults
    switch_per_node_hour: float = 0.6  # A3 switch faults
    noded_per_node_hour: float = 0.15  # NodeD node-device faults
    manual_per_node_hour: float = 0.03  # operator manual separations (ManuallySeparateNPU key)
    notice_per_node_hour: float = 0.1  # one-off (`Notice`) device events without state change
    escalate_prob: float = 0.3
    recover_prob: float = 0.45
    reviews_per_hour: float = 4.0
    hot_reset_seconds: float = 60.0
    job_utilization: float = 0.6  # share of nodes running jobs in steady state
    job_mean_hours: float = 2.0

    @classmethod
    def calm(cls) -> FaultRates:
        """Roughly production-like: ~1-2 % of nodes with a current fault."""
        return cls(
            raise_per_node_hour=0.01,
            network_per_node_hour=0.005,
            switch_per_node_hour=0.003,
            noded_per_node_hour=0.002,
            manual_per_node_hour=0.0005,
            notice_per_node_hour=0.005,
            reviews_per_hour=1.0,
            job_mean_hours=6.0,
        )


# --- state ----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class FaultCodeState:
    code: str
    static_level: str  # catalog level (what Events report)
    level: str  # current per-code level (after FaultDuration/FaultFrequency upgrades)
    time_ms: int


@dataclass(eq=False, slots=True)
class ChipFault:
    """One DeviceFault entry: the chip's CardUnhealthy or CardNetworkUnhealthy codes."""

    node: Node
    chip: int
    network: bool
    codes: dict[str, FaultCodeState] = field(default_factory=dict)  # raise order
    resetting: bool = False
    active: bool = True

    @property
    def fault_type(self) -> str:
        return CARD_NETWORK_UNHEALTHY if self.network else CARD_UNHEALTHY

    @property
    def level(self) -> str:
        return max((c.level for c in self.codes.values()), key=_level_rank, default=NORMAL)


@dataclass(slots=True)
class Upgrade:
    """One `UpgradeFaultReason` entry (spec §2.6)."""

    upgrade_time_ms: int
    fault_code: str  # lower-case, or "AutofillFaultCode"
    fault_level: str
    upgrade_type: str  # FaultFrequency | FaultDuration | FaultAutofill


@dataclass(eq=False, slots=True)
class ManualSeparation:
    node: Node
    chip: int
    source: str  # "autofill" (operator), "chip" or "network" (FaultFrequency of that entry)
    active: bool = True


@dataclass(eq=False, slots=True)
class SwitchFault:
    node: Node
    code: str  # AssembledFaultCode
    event_type: int
    level: str
    chip_id: int
    port_id: int
    peer_device: int
    peer_port: int
    severity: int
    time_ms: int
    active: bool = True

    @property
    def key(self) -> str:
        return f"{self.code}_{self.chip_id}_{self.port_id}"


@dataclass(eq=False, slots=True)
class NodeDevice:
    """One NodeD `FaultDevList` entry."""

    node: Node
    device_type: str
    device_id: int
    codes: dict[str, str] = field(default_factory=dict)  # code → level, raise order
    active: bool = True

    @property
    def level(self) -> str:
        return max(self.codes.values(), key=NODED_LEVEL_RANK.__getitem__)


@dataclass(frozen=True, slots=True)
class PublicFault:
    """A public fault ClusterD injects on a chip (spec §6 step 4); ``time`` in seconds."""

    code: str
    level: str
    time: int


@dataclass(frozen=True, slots=True)
class Outage:
    """A producer that writes nothing from ``start`` to ``end`` (simulated seconds): ``producer``
    "device-plugin" for one ``node`` (index), or "volcano" for the whole cluster (``node`` None).
    The model only records it; the runner obeys it."""

    producer: str
    node: int | None
    start: float
    end: float


@dataclass(eq=False, slots=True)
class Job:
    id: int
    namespace: str
    name: str
    uid: str
    times: int  # remaining retries
    nodes: list[Node]
    active: bool = True

    @property
    def podgroup(self) -> str:
        return f"{self.name}-{self.uid}"

    @property
    def job_id(self) -> str:
        """Volcano's JobID, the `remain-retry-times` key."""
        return f"{self.namespace}/{self.podgroup}"


@dataclass(frozen=True, slots=True)
class JobRestart:
    """Volcano restarted `job` because `chip` of `node` became unusable (read by the job producers)."""

    job: Job
    node: Node
    chip: int
    at: float  # simulated time
    stamp: float  # the time the producers write for it (`ClusterModel.stamp()`)


class Node:
    """One node. ``version`` counts device-plugin content changes (producers cache on it);
    ``noded_version`` counts NodeD changes."""

    __slots__ = (
        "busy",
        "chip_faults",
        "dp_pod",
        "index",
        "job",
        "kind",
        "manual",
        "name",
        "net_faults",
        "node_faults",
        "noded_update_time",
        "noded_version",
        "public_faults",
        "rack_id",
        "recovering",
        "server_index",
        "super_pod_id",
        "switch_faults",
        "switch_update_time",
        "update_time",
        "upgrades",
        "version",
    )

    def __init__(self, index: int, name: str, kind: ChipKind, dp_pod: str) -> None:
        self.index = index
        self.name = name
        self.kind = kind
        self.dp_pod = dp_pod
        self.super_pod_id = -2
        self.server_index = -2
        self.rack_id: int | None = None
        self.chip_faults: dict[int, ChipFault] = {}
        self.net_faults: dict[int, ChipFault] = {}
        self.manual: dict[int, ManualSeparation] = {}
        self.upgrades: dict[int, list[Upgrade]] = {}
        self.recovering: dict[int, float] = {}  # chip → end of hot reset (sim seconds)
        self.busy = 0  # bit mask of chips allocated to the node's job
        self.job: Job | None = None
        self.switch_faults: dict[str, SwitchFault] = {}
        self.node_faults: dict[tuple[str, int], NodeDevice] = {}
        self.public_faults: dict[int, PublicFault] = {}  # chip → ClusterD's public fault (scripted only)
        self.version = 0
        self.update_time = 0  # seconds: last device-plugin content change
        self.switch_update_time = 0  # seconds: last switch change
        self.noded_version = 0
        self.noded_update_time = 0  # seconds: last NodeD change

    def __repr__(self) -> str:
        return f"Node({self.name!r}, {self.kind.key})"

    # -- chip health (spec §2.3) ------------------------------------------------------------------------

    def chip_level(self, chip: int) -> str:
        """Most severe CardUnhealthy level of a chip, ManuallySeparateNPU when separated."""
        if chip in self.manual:
            return MANUAL
        fault = self.chip_faults.get(chip)
        return fault.level if fault is not None else NORMAL

    def net_level(self, chip: int) -> str:
        fault = self.net_faults.get(chip)
        return fault.level if fault is not None else NORMAL

    def is_busy(self, chip: int) -> bool:
        return bool(self.busy >> chip & 1)

    def is_unhealthy(self, chip: int) -> bool:
        level = self.chip_level(chip)
        if level in _CHIP_HEALTHY_LEVELS:
            return False
        return not (level in _IN_USE_TOLERATED and self.is_busy(chip))

    def is_network_unhealthy(self, chip: int) -> bool:
        return self.kind.network and self.net_level(chip) not in _NET_HEALTHY_LEVELS

    def is_available(self, chip: int) -> bool:
        return not (self.is_unhealthy(chip) or self.is_busy(chip) or chip in self.recovering)

    def chip_lists(self) -> dict[str, tuple[str, ...]]:
        """Device names per DP list, byte-sorted: `available`, `unhealthy`, `network_unhealthy`,
        `recovering` (the status names of `exporter.sources.records.CHIP_LIST_STATUSES`)."""
        kind = self.kind
        names = kind.names
        available: list[str] = []
        unhealthy: list[str] = []
        network: list[str] = []
        recovering: list[str] = []
        plain = not (self.chip_faults or self.net_faults or self.manual or self.recovering)
        for chip in kind.sorted_ids:
            if plain:
                if not self.busy >> chip & 1:
                    available.append(names[chip])
                continue
            if self.is_unhealthy(chip):
                unhealthy.append(names[chip])
            elif not (self.busy >> chip & 1 or chip in self.recovering):
                available.append(names[chip])
            if self.is_network_unhealthy(chip):
                network.append(names[chip])
            if chip in self.recovering:
                recovering.append(names[chip])
        return {
            "available": tuple(available),
            "unhealthy": tuple(unhealthy),
            "network_unhealthy": tuple(network),
            "recovering": tuple(recovering),
        }

    def healthy_mask(self) -> int:
        """Chips a new job may use."""
        mask = 0
        for chip in range(self.kind.chips):
            if self.is_available(chip) or (self.is_busy(chip) and not self.is_unhealthy(chip)):
                mask |= 1 << chip
        return mask

    def fault_entries(self) -> list[tuple[str, str, str, list[FaultCodeState]]]:
        """The device plugin's `-Fault` entries: (npu_name, fault_type, fault_handling, codes), in
        byte order of (npu_name, fault_type). An operator-separated chip without codes gets an
        entry with no codes (autofilled manual separation)."""
        entries: list[tuple[str, str, str, list[FaultCodeState]]] = []
        if not (self.chip_faults or self.net_faults or self.manual):
            return entries
        names = self.kind.names
        for chip in self.kind.sorted_ids:
            net = self.net_faults.get(chip)
            if net is not None and net.codes:
                entries.append((names[chip], CARD_NETWORK_UNHEALTHY, net.level, list(net.codes.values())))
            card = self.chip_faults.get(chip)
            manual = self.manual.get(chip)
            autofill = manual is not None and manual.source == "autofill"
            if card is not None and card.codes:
                level = MANUAL if autofill else card.level
                entries.append((names[chip], CARD_UNHEALTHY, level, list(card.codes.values())))
            elif autofill:
                entries.append((names[chip], CARD_UNHEALTHY, MANUAL, []))
        return entries

    def manually_separated(self) -> tuple[str, ...]:
        names = self.kind.names
        return tuple(sorted(names[chip] for chip in self.manual))

    # -- switch (spec §2.5) -----------------------------------------------------------------------------

    def switch_level(self) -> str:
        """Switch FaultLevel: most severe active fault, "" when none."""
        return max(
            (f.level for f in self.switch_faults.values()), key=SWITCH_LEVEL_RANK.__getitem__, default=""
        )

    def switch_status(self) -> str:
        """Switch NodeStatus as the device plugin writes it ("" for A5's zero struct)."""
        if self.kind.switch != "faults":
            return ""
        level = self.switch_level()
        if not level or self.recovering:  # hot reset in progress forces Healthy (spec §2.5)
            return "Healthy"
        return SWITCH_NODE_STATUS[level]

    # -- NodeD (spec §4) --------------------------------------------------------------------------------

    def noded_status(self) -> str:
        """NodeD NodeStatus; "" when NodeD has nothing (its ConfigMap is deleted)."""
        if not self.node_faults:
            return ""
        level = max((d.level for d in self.node_faults.values()), key=NODED_LEVEL_RANK.__getitem__)
        return NODED_STATUS[level]

    def noded_worst_level(self) -> str:
        if not self.node_faults:
            return ""
        return max((d.level for d in self.node_faults.values()), key=NODED_LEVEL_RANK.__getitem__)


@dataclass(frozen=True, slots=True)
class FaultTransition:
    """A device fault event the device plugin reports (spec §3): one code per transition."""

    node: int  # node index
    chip: int  # physical id (= logic id in this simulation)
    code: str
    assertion: str  # Occur | Recovery | Notice
    level: str  # static catalog level (faultLevelName)
    time_ms: int


@dataclass(slots=True)
class StepResult:
    """What one ``step`` changed, so writers rewrite only that."""

    now: float
    dp_changed: dict[int, None] = field(default_factory=dict)  # node indices, device-plugin CM content
    noded_changed: dict[int, None] = field(default_factory=dict)  # node indices, NodeD CM content
    transitions: list[FaultTransition] = field(default_factory=list)
    jobs_changed: bool = False

    def merge(self, other: StepResult) -> None:
        self.now = other.now
        self.dp_changed.update(other.dp_changed)
        self.noded_changed.update(other.noded_changed)
        self.transitions.extend(other.transitions)
        self.jobs_changed = self.jobs_changed or other.jobs_changed


# --- the model ------------------------------------------------------------------------------------------


class Script(Protocol):
    """A scripted scenario (see scenario.py): ``reserve`` names the nodes it drives (kept out of the
    random faults and jobs from the start, warm-up included); ``install`` runs once at the start time
    and schedules its actions with ``ClusterModel.at``."""

    def reserve(self, model: ClusterModel) -> Iterable[Node]: ...

    def install(self, model: ClusterModel) -> None: ...


_ARRIVALS = ("chip", "network", "switch", "noded", "manual", "notice", "job")


class ClusterModel:
    """A simulated cluster of ``nodes`` nodes.

    ``mix`` maps kind keys of ``KINDS`` ("A2", "A3", "A5", "310P") to weights; every kind with a
    positive weight gets at least one node when there are enough nodes. ``warmup`` simulated seconds
    are run before ``start_time`` so the cluster starts in a lived-in state (``now == start_time``
    afterwards).
    """

    def __init__(
        self,
        nodes: int = 50,
        *,
        seed: int = 0,
        mix: Mapping[str, float] | None = None,
        rates: FaultRates | None = None,
        start_time: float = DEFAULT_START_TIME,
        warmup: float = 0.0,
        name_prefix: str = "node-",
        script: Script | None = None,
    ) -> None:
        if nodes < 1:
            raise ValueError("a cluster needs at least one node")
        self.seed = seed
        self.rng = random.Random(seed)
        self.rates = rates if rates is not None else FaultRates()
        self.mix = dict(mix if mix is not None else DEFAULT_MIX)
        unknown = sorted(set(self.mix) - set(KINDS))
        if unknown or not any(w > 0 for w in self.mix.values()):
            raise ValueError(f"mix needs positive weights for kinds of {sorted(KINDS)}, got {self.mix}")
        self.now = float(start_time) - warmup
        # Written times: None = the simulated time itself, else (sim time, its stamp, stamp seconds
        # per simulated second) for the current step; see ``stamp`` and ``step(stamp_until=)``.
        self._stamp_base: tuple[float, float, float] | None = None
        self.noded_owner_uid = self._uuid()
        self.nodes: list[Node] = self._make_nodes(nodes, name_prefix)
        self.node_by_name: dict[str, Node] = {node.name: node for node in self.nodes}
        self.script = script
        self.outages: list[Outage] = []
        # Scripted jobs that do not run (ClusterD's scheduling-exception-report): key → (namespace, name)
        self.stuck_jobs: dict[str, tuple[str, str]] = {}
        reserved = {node.index for node in script.reserve(self)} if script is not None else set()
        self.reserved: frozenset[int] = frozenset(reserved)
        # Random faults and jobs land on these (all nodes unless a script reserved some).
        self._random_nodes = [n for n in self.nodes if n.index not in reserved] if reserved else self.nodes
        self._network_nodes = [n for n in self._random_nodes if n.kind.network]
        self._switch_nodes = [n for n in self._random_nodes if n.kind.switch == "faults"]
        self._kind_counts = {key: sum(1 for n in self.nodes if n.kind.key == key) for key in KINDS}
        # Nodes without a job, per kind: list + position index for O(1) removal.
        self._free: dict[str, list[Node]] = {key: [] for key in KINDS}
        self._free_pos: dict[int, int] = {}
        for node in self._random_nodes:
            self._add_free(node)
        self.jobs: dict[int, Job] = {}
        self._job_seq = 0
        self.job_restarts: deque[JobRestart] = deque(maxlen=4096)  # drained by simulator/job_extra.py
        self._heap: list[tuple[float, int, str, Any]] = []
        self._seq = 0
        self._result = StepResult(self.now)
        self._last_ms: dict[tuple[int, int], int] = {}  # (node, chip) → last event ms in this step
        rates_per_s = self._arrival_rates()
        self._rate = rates_per_s
        self._next_arrival = {name: self._draw_next(self.now, rates_per_s[name]) for name in _ARRIVALS}
        for node in self.nodes:
            node.update_time = node.switch_update_time = int(self.now)
        self._fill_jobs()
        if warmup > 0:
            self.step(warmup)
        self.now = float(start_time)
        if script is not None:
            script.install(self)

    # -- construction -----------------------------------------------------------------------------------

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _make_nodes(self, count: int, prefix: str) -> list[Node]:
        kinds = _apportion(count, self.mix)
        self.rng.shuffle(kinds)
        width = max(3, len(str(count - 1)))
        letters = "bcdfghjklmnpqrstvwxz2456789"
        nodes = []
        a3_seen = a5_seen = 0
        for index, key in enumerate(kinds):
            kind = KINDS[key]
            pod = f"{kind.dp_pod_prefix}-{''.join(self.rng.choices(letters, k=5))}"
            node = Node(index, f"{prefix}{index:0{width}d}", kind, pod)
            if key == "A3":
                node.super_pod_id, node.server_index = divmod(a3_seen, A3_SUPER_POD_NODES)
                a3_seen += 1
            elif key == "A5":
                node.super_pod_id, node.server_index = divmod(a5_seen, A5_SUPER_POD_NODES)
                node.rack_id = node.server_index // A5_RACK_NODES
                a5_seen += 1
            nodes.append(node)
        return nodes

    def _arrival_rates(self) -> dict[str, float]:
        r, n = self.rates, len(self._random_nodes)
        job_rate = 0.0
        if r.job_utilization > 0 and r.job_mean_hours > 0:
            # Arrivals that keep the utilization: nodes to fill / (nodes per job * job duration).
            job_rate = r.job_utilization * n / (self._mean_job_nodes() * r.job_mean_hours)
        per_hour = {
            "chip": r.raise_per_node_hour * n,
            "network": r.network_per_node_hour * len(self._network_nodes),
            "switch": r.switch_per_node_hour * len(self._switch_nodes),
            "noded": r.noded_per_node_hour * n,
            "manual": r.manual_per_node_hour * n,
            "notice": r.notice_per_node_hour * n,
            "job": job_rate,
        }
        return {name: rate / 3600.0 for name, rate in per_hour.items()}

    def _mean_job_nodes(self) -> float:
        """Expected nodes of a new job, given the per-kind size caps of ``_on_arrive_job``."""
        total = 0.0
        for count in self._kind_counts.values():
            cap = max(1, count // 3)
            size = sum(min(s, cap) * w for s, w in zip(_JOB_SIZES, _JOB_SIZE_WEIGHTS, strict=True))
            total += count * size
        return max(1.0, total / len(self.nodes))

    def _fill_jobs(self) -> None:
        """Start the cluster in steady state: jobs on about ``job_utilization`` of the nodes."""
        target = self.rates.job_utilization * len(self._random_nodes)
        busy = 0
        for _ in range(2 * len(self.nodes)):
            if busy >= target:
                break
            before = len(self.jobs)
            self._on_arrive_job(None)
            if len(self.jobs) > before:
                busy += len(self.jobs[self._job_seq].nodes)

    def _draw_next(self, after: float, rate_per_s: float) -> float:
        return after + self.rng.expovariate(rate_per_s) if rate_per_s > 0 else math.inf

    # -- free-node bookkeeping --------------------------------------------------------------------------

    def _add_free(self, node: Node) -> None:
        if node.index in self.reserved:
            return  # a script's node: no random job
        free = self._free[node.kind.key]
        self._free_pos[node.index] = len(free)
        free.append(node)

    def _remove_free(self, node: Node) -> None:
        free = self._free[node.kind.key]
        pos = self._free_pos.pop(node.index)
        last = free.pop()
        if last is not node:
            free[pos] = last
            self._free_pos[last.index] = pos

    # -- stepping ---------------------------------------------------------------------------------------

    def stamp(self) -> float:
        """The time the producers write for the current simulated instant (unix seconds): the
        simulated time itself, unless ``step(stamp_until=...)`` held the written times back."""
        base = self._stamp_base
        if base is None:
            return self.now
        return base[1] + (self.now - base[0]) * base[2]

    def step(self, dt: float, stamp_until: float | None = None) -> StepResult:
        """Advance the simulated clock by ``dt`` seconds and return what changed.

        ``stamp_until`` caps the times written during the step: they advance with the simulated
        clock but never past it (the runner passes the wall clock, so a simulation running faster
        than real time never writes a time in the future; durations between written times then
        shrink by the time scale). Once given, later steps continue from the capped time."""
        if dt < 0:
            raise ValueError("time does not run backwards")
        end = self.now + dt
        stop: float | None = None
        if stamp_until is not None or self._stamp_base is not None:
            begin = self.stamp()
            stop = begin + dt if stamp_until is None else min(begin + dt, stamp_until)
            begin = min(begin, stop)  # a wall clock set back: written times follow it
            self._stamp_base = (self.now, begin, (stop - begin) / dt if dt > 0 else 0.0)
        result = self._result = StepResult(end)
        self._last_ms.clear()
        for name in _ARRIVALS:
            at = self._next_arrival[name]
            while at <= end:
                self._schedule(at, "arrive_" + name, None)
                at = self._draw_next(at, self._rate[name])
            self._next_arrival[name] = at
        heap = self._heap
        while heap and heap[0][0] <= end:
            at, _, action, target = heapq.heappop(heap)
            self.now = max(self.now, at)
            getattr(self, "_on_" + action)(target)
        self.now = end
        if stop is not None:
            self._stamp_base = (end, stop, 1.0)
        return result

    def _schedule(self, at: float, action: str, target: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, action, target))

    def at(self, delay: float, action: Callable[[ClusterModel], None]) -> None:
        """Run ``action(model)`` ``delay`` simulated seconds from now (a script's timeline)."""
        self._schedule(self.now + delay, "script", action)

    def _on_script(self, action: Callable[[ClusterModel], None]) -> None:
        action(self)

    def _schedule_review(self, action: str, target: Any) -> None:
        rate = self.rates.reviews_per_hour / 3600.0
        if rate > 0:
            self._schedule(self.now + self.rng.expovariate(rate), action, target)

    def _now_ms(self) -> int:
        return int(self.stamp() * 1000)

    def _touch(self, node: Node) -> None:
        node.version += 1
        node.update_time = int(self.stamp())
        self._result.dp_changed[node.index] = None

    def _touch_noded(self, node: Node) -> None:
        node.noded_version += 1
        node.noded_update_time = int(self.stamp())
        self._result.noded_changed[node.index] = None

    def _transition(self, node: Node, chip: int, code: FaultCodeState | str, assertion: str) -> None:
        if isinstance(code, FaultCodeState):
            name, level = code.code, code.static_level
        else:
            name, level = code, ALL_CHIP_CODE_LEVELS[code]
        at = self._event_ms(node, chip)
        self._result.transitions.append(FaultTransition(node.index, chip, name, assertion, level, at))

    def _event_ms(self, node: Node, chip: int) -> int:
        """The current time in ms, distinct per chip within a step: Event names are
        `<pod>.<ms><logicID>`, so two transitions of one chip in the same ms would collide."""
        at = self._now_ms()
        key = (node.index, chip)
        last = self._last_ms.get(key)
        if last is not None and at <= last:
            at = last + 1
        self._last_ms[key] = at
        return at

    def _review_outcome(self) -> str:
        r = self.rng.random()
        if r < self.rates.escalate_prob:
            return "escalate"
        if r < self.rates.escalate_prob + self.rates.recover_prob:
            return "recover"
        return "stay"

    def _pick(self, weights: Mapping[str, float]) -> str:
        return self.rng.choices(list(weights), list(weights.values()))[0]

    # -- chip faults ------------------------------------------------------------------------------------

    def _faultable_chip(self, node: Node) -> int | None:
        chip = self.rng.randrange(node.kind.chips)
        if chip in node.manual or chip in node.recovering:
            return None  # isolated or resetting chips raise nothing new
        return chip

    def _add_code(self, fault: ChipFault, level: str, codes: tuple[str, ...]) -> FaultCodeState | None:
        fresh = [c for c in codes if c not in fault.codes]
        if not fresh:
            return None
        code = self.rng.choice(fresh)
        at = self._event_ms(fault.node, fault.chip)
        state = FaultCodeState(code, level, level, at)
        fault.codes[code] = state
        self._result.transitions.append(
            FaultTransition(fault.node.index, fault.chip, code, "Occur", level, at)
        )
        return state

    def _on_arrive_chip(self, _: None) -> None:
        pool = self._random_nodes
        if not pool:
            return
        node = pool[self.rng.randrange(len(pool))]
        chip = self._faultable_chip(node)
        if chip is None:
            return
        level = self._pick(_CHIP_RAISE_WEIGHTS)
        fault = node.chip_faults.get(chip)
        created = fault is None
        if fault is None:
            fault = node.chip_faults[chip] = ChipFault(node, chip, network=False)
        if fault.resetting or self._add_code(fault, level, CHIP_CODES[level]) is None:
            return
        if created:
            self._schedule_review("review_chip", fault)
        self._chip_changed(node, chip)

    def _on_arrive_network(self, _: None) -> None:
        if not self._network_nodes:
            return
        node = self._network_nodes[self.rng.randrange(len(self._network_nodes))]
        chip = self._faultable_chip(node)
        if chip is None:
            return
        code = self._pick(_NETWORK_RAISE_WEIGHTS)
        fault = node.net_faults.get(chip)
        created = fault is None
        if fault is None:
            fault = node.net_faults[chip] = ChipFault(node, chip, network=True)
        if self._add_code(fault, NETWORK_CODES[code], (code,)) is None:
            return
        if created:
            self._schedule_review("review_chip", fault)
        self._chip_changed(node, chip)

    def _on_review_chip(self, fault: ChipFault) -> None:
        if not fault.active or fault.resetting:
            return
        outcome = self._review_outcome()
        if outcome == "escalate":
            self._escalate_chip(fault)
        elif outcome == "recover":
            self._recover_chip(fault)
        if fault.active and not fault.resetting:
            self._schedule_review("review_chip", fault)

    def _upgrade(self, fault: ChipFault, state: FaultCodeState, level: str, upgrade_type: str) -> None:
        state.level = level
        upgrade = Upgrade(self._now_ms(), state.code.lower(), level, upgrade_type)
        fault.node.upgrades.setdefault(fault.chip, []).append(upgrade)

    def _escalate_chip(self, fault: ChipFault) -> None:
        node, chip, level = fault.node, fault.chip, fault.level
        if level == NOT_HANDLE:
            # FaultDuration: a NotHandle code that lasts becomes PreSeparateNPU (spec §12).
            state = next(c for c in fault.codes.values() if c.level == NOT_HANDLE)
            self._upgrade(fault, state, PRE_SEPARATE, "FaultDuration")
        elif (fault.network and level == PRE_SEPARATE) or (not fault.network and level == SEPARATE):
            # FaultFrequency: the code keeps coming back → ManuallySeparateNPU.
            if chip in node.manual:
                return
            state = next(c for c in reversed(fault.codes.values()) if c.level == level)
            self._upgrade(fault, state, MANUAL, "FaultFrequency")
            separation = ManualSeparation(node, chip, "network" if fault.network else "chip")
            node.manual[chip] = separation
        elif not fault.network and level in _CHIP_ESCALATE_BY_CODE:
            target = _CHIP_ESCALATE_BY_CODE[level]
            if self._add_code(fault, target, CHIP_CODES[target]) is None:
                return
        else:
            return
        self._chip_changed(node, chip)

    def _recover_chip(self, fault: ChipFault) -> None:
        node, chip = fault.node, fault.chip
        if not fault.network and node.kind.network and fault.level in _HOT_RESET_LEVELS:
            # Recovered through a hot reset: the chip shows in -Recovering until the reset ends.
            fault.resetting = True
            node.recovering[chip] = self.now + self.rates.hot_reset_seconds
            self._schedule(node.recovering[chip], "reset_end", fault)
            self._touch(node)
            return
        self._clear_chip_fault(fault)

    def _clear_chip_fault(self, fault: ChipFault) -> None:
        node, chip = fault.node, fault.chip
        fault.active = False
        faults = node.net_faults if fault.network else node.chip_faults
        if faults.get(chip) is fault:
            del faults[chip]
        for state in fault.codes.values():
            self._transition(node, chip, state, "Recovery")
        lowered = {code.lower() for code in fault.codes}
        remaining = [u for u in node.upgrades.get(chip, ()) if u.fault_code not in lowered]
        if remaining:
            node.upgrades[chip] = remaining
        else:
            node.upgrades.pop(chip, None)
        manual = node.manual.get(chip)
        if manual is not None and manual.source == ("network" if fault.network else "chip"):
            manual.active = False
            del node.manual[chip]
        self._touch(node)

    def _on_reset_end(self, fault: ChipFault) -> None:
        node = fault.node
        node.recovering.pop(fault.chip, None)
        if fault.active:
            self._clear_chip_fault(fault)
        else:
            self._touch(node)

    def _chip_changed(self, node: Node, chip: int) -> None:
        """A chip's faults changed: rewrite the node, and restart the job using the chip if it is
        now unusable (Volcano decrements the job's retry budget, spec §9)."""
        self._touch(node)
        job = node.job
        if job is None or not node.is_busy(chip) or not node.is_unhealthy(chip):
            return
        node.busy &= ~(1 << chip)
        self._result.jobs_changed = True
        if job.times > 0:
            job.times -= 1
            self.job_restarts.append(JobRestart(job, node, chip, self.now, self.stamp()))
        else:
            self._end_job(job)  # budget exhausted: the job fails

    # -- operator manual separation and one-off events ------------------------------------------------

    def _on_arrive_manual(self, _: None) -> None:
        pool = self._random_nodes
        if not pool:
            return
        node = pool[self.rng.randrange(len(pool))]
        chip = self.rng.randrange(node.kind.chips)
        if not node.is_available(chip) or chip in node.chip_faults or chip in node.net_faults:
            return
        separation = ManualSeparation(node, chip, "autofill")
        node.manual[chip] = separation
        node.upgrades.setdefault(chip, []).append(
            Upgrade(self._now_ms(), "AutofillFaultCode", MANUAL, "FaultAutofill")
        )
        self._schedule_review("review_manual", separation)
        self._touch(node)

    def _on_review_manual(self, separation: ManualSeparation) -> None:
        if not separation.active:
            return
        if self.rng.random() < self.rates.recover_prob:
            node, chip = separation.node, separation.chip
            separation.active = False
            del node.manual[chip]
            remaining = [u for u in node.upgrades.get(chip, ()) if u.upgrade_type != "FaultAutofill"]
            if remaining:
                node.upgrades[chip] = remaining
            else:
                node.upgrades.pop(chip, None)
            self._touch(node)
        else:
            self._schedule_review("review_manual", separation)

    def _on_arrive_notice(self, _: None) -> None:
        pool = self._random_nodes
        if not pool:
            return
        node = pool[self.rng.randrange(len(pool))]
        chip = self.rng.randrange(node.kind.chips)
        self._transition(node, chip, self.rng.choice(CHIP_CODES[NOT_HANDLE]), "Notice")

    # -- switch faults ----------------------------------------------------------------------------------

    def _on_arrive_switch(self, _: None) -> None:
        if not self._switch_nodes:
            return
        node = self._switch_nodes[self.rng.randrange(len(self._switch_nodes))]
        level = self._pick(_SWITCH_RAISE_WEIGHTS)
        code = self.rng.choice(SWITCH_CODES[level])
        chip_id = self.rng.randrange(4)
        port_fault = _peer(code) != "na"
        port_id = self.rng.randrange(48) if port_fault else NO_PORT
        peer_port = self.rng.randrange(8) if port_fault else 0
        fault = self._switch_fault(node, code, level, chip_id, port_id, peer_port)
        if fault.key in node.switch_faults:
            return
        node.switch_faults[fault.key] = fault
        self._schedule_review("review_switch", fault)
        self._switch_changed(node)

    def _on_review_switch(self, fault: SwitchFault) -> None:
        if not fault.active:
            return
        outcome = self._review_outcome()
        node = fault.node
        if outcome == "escalate" and fault.level in _SWITCH_ESCALATE:
            fault.level = _SWITCH_ESCALATE[fault.level]
            fault.severity = _SWITCH_SEVERITY[fault.level]
            self._switch_changed(node)
        elif outcome == "recover":
            fault.active = False
            del node.switch_faults[fault.key]
            self._switch_changed(node)
            return
        self._schedule_review("review_switch", fault)

    def _switch_changed(self, node: Node) -> None:
        node.switch_update_time = int(self.stamp())
        self._touch(node)

    # -- NodeD ------------------------------------------------------------------------------------------

    def _on_arrive_noded(self, _: None) -> None:
        pool = self._random_nodes
        if not pool:
            return
        node = pool[self.rng.randrange(len(pool))]
        level = self._pick(_NODED_RAISE_WEIGHTS)
        code = self.rng.choice(NODED_CODES[level])
        device_type, count = _NODED_DEVICE_TYPES[code[:2]]
        key = (device_type, self.rng.randrange(count))
        device = node.node_faults.get(key)
        if device is None:
            device = node.node_faults[key] = NodeDevice(node, device_type, key[1])
            self._schedule_review("review_noded", device)
        elif code in device.codes:
            return
        device.codes[code] = level
        self._touch_noded(node)

    def _on_review_noded(self, device: NodeDevice) -> None:
        if not device.active:
            return
        node = device.node
        outcome = self._review_outcome()
        if outcome == "escalate" and device.level in _NODED_ESCALATE:
            target = _NODED_ESCALATE[device.level]
            fresh = [c for c in NODED_CODES[target] if c not in device.codes]
            if fresh:
                device.codes[self.rng.choice(fresh)] = target
                self._touch_noded(node)
        elif outcome == "recover":
            device.active = False
            del node.node_faults[(device.device_type, device.device_id)]
            self._touch_noded(node)
            return
        self._schedule_review("review_noded", device)

    # -- jobs -------------------------------------------------------------------------------------------

    def _on_arrive_job(self, _: None) -> None:
        kinds = [key for key, free in self._free.items() if free]
        if not kinds:
            return
        key = self.rng.choices(kinds, [len(self._free[k]) for k in kinds])[0]
        free = self._free[key]
        cap = max(1, self._kind_counts[key] // 3)  # no job grabs a whole small cluster
        size = min(self.rng.choices(_JOB_SIZES, _JOB_SIZE_WEIGHTS)[0], cap, len(free))
        chosen = [node for node in self.rng.sample(free, size) if node.healthy_mask()]
        if not chosen:
            return
        self._job_seq += 1
        job = Job(
            id=self._job_seq,
            namespace=self.rng.choice(_JOB_NAMESPACES),
            name=f"{self.rng.choice(_JOB_NAMES)}-{self._job_seq}",
            uid=self._uuid(),
            times=self.rng.choice(_JOB_RETRIES),
            nodes=chosen,
        )
        for node in chosen:
            self._remove_free(node)
            node.job = job
            node.busy = node.healthy_mask()
            self._touch(node)
        self.jobs[job.id] = job
        self._result.jobs_changed = True
        mean = self.rates.job_mean_hours * 3600.0
        self._schedule(self.now + self.rng.expovariate(1.0 / mean), "job_end", job)

    def _on_job_end(self, job: Job) -> None:
        if job.active:
            self._end_job(job)

    def _end_job(self, job: Job) -> None:
        job.active = False
        del self.jobs[job.id]
        for node in job.nodes:
            node.job = None
            node.busy = 0
            self._add_free(node)
            self._touch(node)
        self._result.jobs_changed = True

    # -- scripted faults (scenario.py): placed by a script, never reviewed, cleared by it ----------------

    def raise_chip_code(self, node: Node, chip: int, code: str, level: str, network: bool = False) -> None:
        """The device plugin reports ``code`` at ``level`` on ``chip`` (an Occur Event, a job using the
        chip is restarted if the chip becomes unusable)."""
        faults = node.net_faults if network else node.chip_faults
        fault = faults.get(chip)
        if fault is None:
            fault = faults[chip] = ChipFault(node, chip, network=network)
        if code in fault.codes:
            return
        at = self._event_ms(node, chip)
        fault.codes[code] = FaultCodeState(code, level, level, at)
        self._result.transitions.append(FaultTransition(node.index, chip, code, "Occur", level, at))
        self._chip_changed(node, chip)

    def upgrade_chip_code(self, node: Node, chip: int, code: str, level: str, upgrade_type: str) -> None:
        """A FaultDuration / FaultFrequency upgrade of one of the chip's codes (spec §2.6)."""
        fault = node.chip_faults[chip]
        self._upgrade(fault, fault.codes[code], level, upgrade_type)
        self._chip_changed(node, chip)

    def clear_chip(self, node: Node, chip: int, network: bool = False) -> None:
        """Every code of the chip's CardUnhealthy (or CardNetworkUnhealthy) entry recovers."""
        fault = (node.net_faults if network else node.chip_faults).get(chip)
        if fault is not None:
            self._clear_chip_fault(fault)

    def raise_public_fault(self, node: Node, chip: int, code: str, level: str) -> None:
        """ClusterD injects a public fault on the chip; the device plugin knows nothing of it, so
        only the version its consumers (ClusterD, Volcano) cache on changes."""
        node.public_faults[chip] = PublicFault(code, level, int(self.stamp()))
        node.version += 1

    def clear_public_fault(self, node: Node, chip: int) -> None:
        if node.public_faults.pop(chip, None) is not None:
            node.version += 1

    def raise_switch_fault(
        self, node: Node, code: str, level: str, chip_id: int = 0, port_id: int = 0
    ) -> None:
        """A switch fault of ``level`` (``SwitchInfoCfg``, A3 nodes)."""
        fault = self._switch_fault(node, code, level, chip_id, port_id, 0)
        node.switch_faults[fault.key] = fault
        self._switch_changed(node)

    def _switch_fault(
        self, node: Node, code: str, level: str, chip_id: int, port_id: int, peer_port: int
    ) -> SwitchFault:
        """The fault as the switch manager reports `code`; a code without a peer (`na`) has no
        port (`port_id`, `peer_port` ignored)."""
        peer = _peer(code)
        port_fault = peer != "na"
        return SwitchFault(
            node=node,
            code=code,
            event_type=int(code[1:].split(",")[0], 16),
            level=level,
            chip_id=chip_id,
            port_id=port_id if port_fault else NO_PORT,
            peer_device=_PEER_DEVICE[peer],
            peer_port=peer_port if port_fault else 0xFFFF,
            severity=_SWITCH_SEVERITY[level],
            time_ms=self._now_ms(),
        )

    def clear_switch_faults(self, node: Node) -> None:
        for fault in node.switch_faults.values():
            fault.active = False
        node.switch_faults.clear()
        self._switch_changed(node)

    def raise_node_fault(self, node: Node, code: str, level: str, device_id: int = 0) -> None:
        """NodeD reports ``code`` (its IPMI sensor byte gives the device type) at ``level``."""
        device_type = _NODED_DEVICE_TYPES[code[:2]][0]
        key = (device_type, device_id)
        device = node.node_faults.get(key)
        if device is None:
            device = node.node_faults[key] = NodeDevice(node, device_type, device_id)
        device.codes[code] = level
        self._touch_noded(node)

    def clear_node_faults(self, node: Node) -> None:
        for device in node.node_faults.values():
            device.active = False
        node.node_faults.clear()
        self._touch_noded(node)

    def start_job(self, nodes: list[Node], namespace: str, name: str, times: int) -> Job:
        """A job on every usable chip of ``nodes`` with ``times`` fault retries; it runs until
        ``end_job`` or until a fault finds its retries exhausted."""
        self._job_seq += 1
        job = Job(self._job_seq, namespace, f"{name}-{self._job_seq}", self._uuid(), times, list(nodes))
        for node in nodes:
            if node.index in self._free_pos:
                self._remove_free(node)
            node.job = job
            node.busy = node.healthy_mask()
            self._touch(node)
        self.jobs[job.id] = job
        self._result.jobs_changed = True
        return job

    def end_job(self, job: Job) -> None:
        if job.active:
            self._end_job(job)

    # -- views ------------------------------------------------------------------------------------------

    def faulty_nodes(self) -> Iterator[Node]:
        """Nodes with anything to report beyond healthy chips (for consumers that skip healthy nodes)."""
        for node in self.nodes:
            if (
                node.chip_faults
                or node.net_faults
                or node.manual
                or node.recovering
                or node.switch_faults
                or node.node_faults
                or node.public_faults
            ):
                yield node


def _apportion(count: int, mix: Mapping[str, float]) -> list[str]:
    """Kind keys for ``count`` nodes in proportion to ``mix`` (largest remainder), at least one node
    per positively weighted kind when ``count`` allows."""
    kinds = [key for key in KINDS if mix.get(key, 0) > 0]
    total = sum(mix[key] for key in kinds)
    exact = {key: count * mix[key] / total for key in kinds}
    counts = {key: int(exact[key]) for key in kinds}
    for key in sorted(kinds, key=lambda k: exact[k] - counts[k], reverse=True)[
        : count - sum(counts.values())
    ]:
        counts[key] += 1
    if count >= len(kinds):
        for key in kinds:
            while counts[key] == 0:
                donor = max(kinds, key=counts.__getitem__)
                counts[donor] -= 1
                counts[key] += 1
    return [key for key in kinds for _ in range(counts[key])]
