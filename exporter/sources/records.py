"""Typed records the parsers produce. Several producers describe the same things (chips of a
node, a node's switch), so they share these shapes and the families that render them."""

from __future__ import annotations

from dataclasses import dataclass, field

# The chip lists a producer keeps per resource name, as `mindx_node_npu_chips{status}` names them.
CHIP_LIST_STATUSES: tuple[str, ...] = (
    "available",
    "unhealthy",
    "network_unhealthy",
    "recovering",
    "manually_separated",
)


@dataclass(frozen=True, slots=True)
class FaultCode:
    code: str
    level: str  # the per-code level where the producer gives one, else the entry's level
    raised_at: float  # unix seconds, 0 when the producer gave no time


@dataclass(frozen=True, slots=True)
class ChipFault:
    """One fault entry of a chip: the producer writes at most one per (chip, fault_type)."""

    npu: str
    fault_type: str
    fault_handling: str
    codes: tuple[FaultCode, ...]


@dataclass(frozen=True, slots=True)
class ResourceChips:
    """The chip lists of one resource name (`huawei.com/Ascend910`, `huawei.com/npu`, …)."""

    resource: str
    lists: dict[str, tuple[str, ...]]  # CHIP_LIST_STATUSES → chip names


@dataclass(frozen=True, slots=True)
class NodeChips:
    """Everything a producer says about the chips of one node."""

    node: str
    resources: tuple[ResourceChips, ...]
    faults: tuple[ChipFault, ...]
    manually_separated: tuple[str, ...] = ()  # chips separated by operator/frequency rule


@dataclass(frozen=True, slots=True)
class SwitchFault:
    fault_code: str  # AssembledFaultCode, e.g. "[0x08520003,na,npu,na]"
    switch_chip_id: str
    switch_port_id: str
    fault_level: str
    raised_at: float


@dataclass(frozen=True, slots=True)
class SwitchState:
    node: str
    fault_level: str  # "" when no current switch fault
    node_status: str  # "" when the producer does not know (A5, switch manager absent)
    faults: tuple[SwitchFault, ...] = ()


@dataclass(frozen=True, slots=True)
class SuperPodInfo:
    node: str
    super_pod_id: int
    server_index: int
    rack_id: int | None


@dataclass(slots=True)
class NodeView:
    """One producer's full view of one node; every field is optional so a partly broken
    object still contributes what it can."""

    node: str
    chips: NodeChips | None = None
    switch: SwitchState | None = None
    superpod: SuperPodInfo | None = None
    update_time: float | None = None  # unix seconds
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NodeFaultDevice:
    """One faulty node device as NodeD reports it (`FaultDevList` entry, spec §4)."""

    device_type: str  # "CPU", "Memory", "PSU", … or "UNKNOWN"; kept as written
    device_id: str  # DeviceId (int64) as a decimal string
    fault_codes: tuple[str, ...]  # normalized upper-case hex
    fault_level: str  # NotHandleFault | PreSeparateFault | SeparateFault | unknown kept as written


@dataclass(frozen=True, slots=True)
class NodeStatusRecord:
    """A node's hardware status: NodeD's own ConfigMap (S3) or ClusterD's copy of it (S4)."""

    node: str
    status: str  # raw NodeStatus ("Healthy", "PreSeparate", "UnHealthy", …), "" when absent
    devices: tuple[NodeFaultDevice, ...]
    update_time: float | None  # unix seconds
