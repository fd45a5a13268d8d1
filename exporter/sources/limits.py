"""Per-object limits: far above what real hardware writes, low enough that one hostile or broken
object cannot add a hundred thousand series or stall the event loop (a 1.6 MB device-plugin
ConfigMap naming 100,000 chips took 1 s to parse and render on every rewrite). What goes over a
limit is cut off at the limit and reported as a problem with reason `limit`
(`mindx_configmap_invalid`, `mindx_exporter_parse_errors_total`); the rest of the object counts."""

from __future__ import annotations

from dataclasses import dataclass

REASON_LIMIT = "limit"


@dataclass(frozen=True, slots=True)
class Limits:
    # Real nodes carry 8 or 16 chips (up to 7 vNPUs each); an A5 super-node 64.
    chips_per_node: int = 1024
    # Resource names per node (huawei.com/Ascend910, huawei.com/npu, …): one or two in practice.
    resources_per_node: int = 64
    # The producers write one fault entry per (chip, fault type).
    fault_entries_per_chip: int = 64
    codes_per_entry: int = 256
    # NodeD lists the node's faulty devices (CPUs, DIMMs, PSUs, …).
    devices_per_node: int = 1024

    def __post_init__(self) -> None:
        for name in self.__slots__:
            if getattr(self, name) < 1:
                raise ValueError(f"limit {name} must be at least 1")


DEFAULT_LIMITS = Limits()
