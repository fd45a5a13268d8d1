"""Horizontal sharding (kube-state-metrics' `--shard`/`--total-shards`): every shard lists and
watches everything, and renders only its part, so the shards together serve exactly one copy of
every series.

- Series about a node (a chip, the node, its switch, its Events, its fault history) belong to the
  shard of the node: a stable hash of the node name.
- Series about a job (retries, reschedules, recovery, scheduling exceptions) belong to the shard of
  the job: a hash of `namespace/name`.
- Series about one object as a whole (`mindx_configmap_invalid`) belong to the shard of the object;
  those of ClusterD's maps to shard 0, the one shard that parses every node's entry.
- Cluster-wide series (a producer's totals, the fault-duration histogram) belong to shard 0.

A shard keeps only what its series need: other shards' nodes are dropped as soon as their names
are read (ClusterD's entries, joins, fault history, Event counters). Shard 0 keeps, of other
shards' nodes, their chips' active fault codes: the histogram times every clear in the cluster.

The hash is FNV-1a 64 of the UTF-8 name, modulo the number of shards: stable across processes,
Python versions and restarts (unlike `hash()`), and the same in every shard.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK = (1 << 64) - 1


@functools.lru_cache(maxsize=1 << 16)
def fnv1a_64(text: str) -> int:
    value = _FNV_OFFSET
    for byte in text.encode():
        value = ((value ^ byte) * _FNV_PRIME) & _MASK
    return value


class Scope(NamedTuple):
    """What a record's series are about, for sharding."""

    kind: str  # NODE | JOB | OBJECT | CLUSTER
    name: str  # the node, `namespace/job`, `namespace/object`, or "" for the cluster


NODE, JOB, OBJECT, CLUSTER = "node", "job", "object", "cluster"
CLUSTER_SCOPE = Scope(CLUSTER, "")


def node_scope(node: str) -> Scope:
    return Scope(NODE, node)


def job_scope(namespace: str, job: str) -> Scope:
    return Scope(JOB, f"{namespace}/{job}")


def object_scope(namespace: str, name: str) -> Scope:
    return Scope(OBJECT, f"{namespace}/{name}")


@dataclass(frozen=True, slots=True)
class Shard:
    """This process's part: shard `ordinal` of `total` (0 of 1 = everything)."""

    ordinal: int = 0
    total: int = 1

    def __post_init__(self) -> None:
        if self.total < 1 or not 0 <= self.ordinal < self.total:
            raise ValueError(f"shard {self.ordinal} of {self.total}: need 0 <= shard < total-shards")

    @property
    def everything(self) -> bool:
        return self.total == 1

    def owns(self, scope: Scope) -> bool:
        if self.total == 1:
            return True
        if scope.kind == CLUSTER:
            return self.ordinal == 0
        return fnv1a_64(scope.name) % self.total == self.ordinal

    def owns_node(self, node: str) -> bool:
        return self.total == 1 or fnv1a_64(node) % self.total == self.ordinal


ALL = Shard()
