"""ClusterD (S4-S6): `mindx-dl/cluster-info-node-cm`, `cluster-info-device-<m>` and
`cluster-info-switch-<m>`. The parsers are in `parser`, the per-node merge of the shards (and the
usable-chips view ClusterD's three maps give) in `merge`; this module declares the source."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from exporter.sources.base import Parsed, Source, Watch, families_of
from exporter.sources.clusterd.merge import SOURCE as NAME
from exporter.sources.clusterd.merge import ClusterdHandler
from exporter.sources.clusterd.parser import (
    DEVICE_KEY_PREFIX,
    DEVICE_PREFIX,
    NAMESPACE,
    NODE_CM_NAME,
    NODE_KEY_PREFIX,
    SWITCH_KEY_PREFIX,
    SWITCH_PREFIX,
    ClusterDeviceEntry,
    ClusterSwitchEntry,
    DeviceEntryMemo,
    Kind,
    MapName,
    SwitchEntryMemo,
    classify,
    is_device_shard,
    is_switch_shard,
    parse_device_shard,
    parse_node_cm,
    parse_switch_shard,
    shard_index,
)
from exporter.sources.common import object_name
from exporter.sources.limits import DEFAULT_LIMITS, Limits
from exporter.sources.nodestatus import NODE_STATUS_METRICS
from exporter.sources.nodeview import NODE_VIEW_METRICS
from exporter.sources.records import NodeStatusRecord
from exporter.sources.usable import NODE_NPU_USABLE_CHIPS, USABLE_CHIPS

__all__ = [
    "DEVICE_KEY_PREFIX",
    "DEVICE_PREFIX",
    "NAMESPACE",
    "NODE_CM_NAME",
    "NODE_KEY_PREFIX",
    "SOURCE",
    "SWITCH_KEY_PREFIX",
    "SWITCH_PREFIX",
    "ClusterDeviceEntry",
    "ClusterSwitchEntry",
    "ClusterdHandler",
    "DeviceEntryMemo",
    "Kind",
    "MapName",
    "SwitchEntryMemo",
    "classify",
    "is_device_shard",
    "is_switch_shard",
    "parse",
    "parse_device_shard",
    "parse_node_cm",
    "parse_switch_shard",
    "shard_index",
]

ClusterRecord = NodeStatusRecord | ClusterDeviceEntry | ClusterSwitchEntry


def parse(cm: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> Parsed[ClusterRecord]:
    """Any of ClusterD's ConfigMaps → its per-node entries, keyed `<kind>/<node>` (records None for
    any other object). The handler merges shards per node; this is the one-object view."""
    which = classify(object_name(cm)[1])
    if which is None:
        return Parsed(None)
    one: Parsed[Any]
    if which.kind is Kind.NODE:
        one = parse_node_cm(cm, limits)
    elif which.kind is Kind.DEVICE:
        one = parse_device_shard(cm, limits=limits)
    else:
        one = parse_switch_shard(cm)
    records = {f"{which.kind.value}/{node}": record for node, record in (one.records or {}).items()}
    return Parsed(records, one.problems)


SOURCE: Source[ClusterRecord] = Source(
    name=NAME,
    description="ClusterD ConfigMaps cluster-info-node-cm, -device-<m>, -switch-<m>",
    watch=Watch(
        "configmaps",
        NAMESPACE,
        label_selector="mx-consumer-volcano=true",
        name_prefixes=(NODE_CM_NAME, DEVICE_PREFIX, SWITCH_PREFIX),
    ),
    parse=parse,
    families=(
        *families_of(NODE_VIEW_METRICS),
        *families_of(NODE_STATUS_METRICS),
        NODE_NPU_USABLE_CHIPS,
    ),
    handler=ClusterdHandler,
    # ClusterD's three maps answer the usable-chips procedure themselves (see merge.py).
    supersedes=(USABLE_CHIPS,),
    # The merge handler hands over each node's winning device entry (see merge.py).
    chip_views=lambda records: [
        r.view.chips
        for r in records.values()
        if isinstance(r, ClusterDeviceEntry) and r.view.chips is not None
    ],
)
