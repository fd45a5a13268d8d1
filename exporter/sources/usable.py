"""The vendor's "which chips can a job use now" procedure (operations guide, end of the fault
chapter), as a pure function over records the parsers already produce.

For a node: take its available chip list; if the node's status or its switch status is
`UnHealthy`, none of its chips is usable, otherwise the available ones are. ClusterD's three
views are the intended inputs (`cluster-info-device-*`, `cluster-info-node-cm`,
`cluster-info-switch-*`); without ClusterD the device plugin's lists and `SwitchInfoCfg` plus
NodeD's status answer the same question one step earlier. A node absent from the node view is
healthy (NodeD deletes its ConfigMap when a node has no fault).
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.sources.records import NodeChips

UNHEALTHY = "UnHealthy"


@dataclass(frozen=True, slots=True)
class UsableChips:
    node: str
    node_status: str  # "" when the node view has no entry (healthy)
    switch_status: str  # "" when unknown (no switch info, A5, switch manager absent)
    usable: dict[str, tuple[str, ...]]  # resource → chips a job can use now

    @property
    def blocked(self) -> bool:
        return UNHEALTHY in (self.node_status, self.switch_status)


def usable_chips(chips: NodeChips, node_status: str, switch_status: str) -> UsableChips:
    blocked = UNHEALTHY in (node_status, switch_status)
    usable = {
        res.resource: () if blocked else tuple(res.lists.get("available", ())) for res in chips.resources
    }
    return UsableChips(chips.node, node_status, switch_status, usable)
