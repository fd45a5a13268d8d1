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

from collections.abc import Mapping
from dataclasses import dataclass

from exporter.metrics.exposition import Family
from exporter.sources.base import Blocks, Join, add_block
from exporter.sources.records import NodeChips, NodeView

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


NODE_NPU_USABLE_CHIPS = Family(
    "mindx_node_npu_usable_chips",
    "gauge",
    "Chips a job can use now by the vendor's procedure: the available chips, or 0 when the node's "
    "status or its switch status is UnHealthy. Chips in use by jobs are in no list, so a fully busy "
    "node shows 0 with no fault.",
    ("source", "node", "resource"),
    order=150,
)


def render_usable(source: str, usable: UsableChips) -> Blocks:
    blocks: Blocks = {}
    add_block(
        blocks,
        NODE_NPU_USABLE_CHIPS,
        (((source, usable.node, resource), len(chips)) for resource, chips in sorted(usable.usable.items())),
    )
    return blocks


# The join's roles: a node's view with its chip lists (and switch), and its node status.
ROLE_CHIPS, ROLE_NODE_STATUS = "chips", "node_status"
# Without ClusterD, the procedure is answered one step earlier, from the device plugin's lists and
# SwitchInfoCfg plus NodeD's status; the series carry the chip lists' producer as `source`.
CHIP_LISTS_PRODUCER = "device-plugin"


def _usable_from_feeds(node: str, inputs: Mapping[str, object]) -> Blocks | None:
    view = inputs.get(ROLE_CHIPS)
    if not isinstance(view, NodeView) or view.chips is None:
        return None
    switch_status = view.switch.node_status if view.switch is not None else ""
    status = inputs.get(ROLE_NODE_STATUS)
    node_status = status if isinstance(status, str) else ""
    return render_usable(CHIP_LISTS_PRODUCER, usable_chips(view.chips, node_status, switch_status))


USABLE_CHIPS = Join(
    name="usable-chips",
    roles=(ROLE_CHIPS, ROLE_NODE_STATUS),
    families=(NODE_NPU_USABLE_CHIPS,),
    compute=_usable_from_feeds,
)
