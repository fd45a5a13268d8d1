"""ClusterD's per-node merge rule for its sharded maps (spec §8), as pure functions shared by the
exporter's ClusterD handler and the `devices` command.

A node can sit in two `cluster-info-device-*` / `cluster-info-switch-*` shards while ClusterD
rewrites them one after another: the copy with the larger `UpdateTime` wins, a tie goes to the
shard with the higher resourceVersion (written later), a full tie to the first one seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

Entry = TypeVar("Entry")


def newest(candidates: Iterable[tuple[int, int, Entry]]) -> Entry | None:
    """The entry of the largest (UpdateTime, resourceVersion) among one node's copies; None if none."""
    best: tuple[int, int] | None = None
    chosen: Entry | None = None
    for stamp, resource_version, entry in candidates:
        rank = (stamp, resource_version)
        if best is None or rank > best:
            best, chosen = rank, entry
    return chosen


def merge_shards(
    shards: Iterable[tuple[int, Mapping[str, Entry]]], stamp: Callable[[Entry], int]
) -> dict[str, Entry]:
    """(resourceVersion, node → entry) per shard → one entry per node by `newest`."""
    copies: dict[str, list[tuple[int, int, Entry]]] = {}
    for resource_version, entries in shards:
        for node, entry in entries.items():
            copies.setdefault(node, []).append((stamp(entry), resource_version, entry))
    merged: dict[str, Entry] = {}
    for node, candidates in copies.items():
        winner = newest(candidates)
        if winner is not None:
            merged[node] = winner
    return merged


def resource_version(obj: Mapping[str, Any]) -> int:
    """An object's resourceVersion as an integer for ordering writes; 0 when absent or not a number."""
    meta = obj.get("metadata")
    value = meta.get("resourceVersion") if isinstance(meta, dict) else None
    try:
        return int(value) if isinstance(value, str) else 0
    except ValueError:
        return 0
