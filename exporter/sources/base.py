"""The seam every MindX producer plugs into (kube-state-metrics' one file per resource).

A producer is one module that declares, as data, a `Source`:

- `watch`: what to list and watch (resource, default namespace, selectors, name prefixes);
- `parse`: object → `Parsed` (typed records by sub-key, plus problems), pure;
- `metrics`: the table of families it serves, each with the function from a record to samples;
- `feeds` / `supersedes`: which cross-source joins (`Join`) it contributes to or computes itself;
- `chip_views`: where its records describe chips, for fault history.

The core (reflectors, handlers, store, HTTP, app wiring) works from these declarations and never
names a producer. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from exporter.metrics.exposition import Family, render_samples
from exporter.sources.common import Problems
from exporter.sources.limits import Limits
from exporter.sources.records import NodeChips

if TYPE_CHECKING:
    from exporter.handlers.base import HandlerFactory

R = TypeVar("R")

Sample = tuple[Sequence[str], float]  # label values in the family's order, value
Blocks = dict[Family, bytes]  # one object's (or one node's) rendered samples, per family


@dataclass(frozen=True, slots=True)
class Watch:
    """What one source lists and watches: the narrowest selection its producer allows."""

    resource: str  # "configmaps" | "events"
    namespace: str  # the producer's namespace: default of --source.<name>.namespace
    label_selector: str = ""
    field_selector: str = ""
    # Filtered client-side where no selector can express it ("" matches any name).
    name_prefixes: tuple[str, ...] = ("",)

    def wants(self, name: str) -> bool:
        return name.startswith(self.name_prefixes)


@dataclass(frozen=True, slots=True)
class Parsed(Generic[R]):
    """A parser's answer for one object: records by sub-key (a node, a job, …) and problems.
    `records` is None when the object is not one of the source's objects."""

    records: Mapping[str, R] | None
    problems: Problems = field(default_factory=Problems)

    @property
    def first(self) -> R | None:
        """The first record (sources with one record per object), None when there is none."""
        return next(iter(self.records.values()), None) if self.records else None


class Parser(Protocol[R]):
    """`parse(obj, limits)`: pure; what goes over `limits` is cut off and reported as a problem."""

    def __call__(self, obj: Mapping[str, Any], limits: Limits = ..., /) -> Parsed[R]: ...


@dataclass(frozen=True, slots=True)
class Metric(Generic[R]):
    """One row of a source's table: a family and the function from (source label, record) to its
    samples."""

    family: Family
    samples: Callable[[str, R], Iterable[Sample]]


def add_block(blocks: Blocks, family: Family, samples: Iterable[Sample]) -> None:
    rendered = render_samples(family, samples)
    if rendered:
        blocks[family] = blocks.get(family, b"") + rendered


def render_table(table: Sequence[Metric[R]], source: str, record: R) -> Blocks:
    """A record's blocks: every row of `table` applied to it."""
    blocks: Blocks = {}
    for metric in table:
        add_block(blocks, metric.family, metric.samples(source, record))
    return blocks


def families_of(table: Iterable[Metric[Any]]) -> tuple[Family, ...]:
    return tuple(dict.fromkeys(metric.family for metric in table))


@dataclass(frozen=True, slots=True)
class Join:
    """A view computed per node from several sources (usable chips from the device plugin's chip
    lists and NodeD's status). Each feeding source declares a `Feed` with one of `roles`; the core
    keeps the latest value per (role, node) and calls `compute` for every node whose inputs
    changed. `compute` returns the node's blocks, or None when the node has nothing to show."""

    name: str
    roles: tuple[str, ...]
    families: tuple[Family, ...]
    compute: Callable[[str, Mapping[str, object]], Blocks | None]


@dataclass(frozen=True, slots=True)
class Feed(Generic[R]):
    """A source's contribution to a join: from one object's records, the node and the value it
    gives for `role` (None when the object gives none)."""

    join: Join
    role: str
    extract: Callable[[Mapping[str, R]], tuple[str, object] | None]


@dataclass(frozen=True, slots=True)
class Source(Generic[R]):
    """Everything the core needs to know about one producer."""

    name: str  # the flag name (`--source.<name>.*`) and the `source` label of its data families
    description: str
    watch: Watch
    parse: Parser[R]
    families: tuple[Family, ...]  # every family it serves
    # Turns its watch events into store updates: `per_object(render)` (exporter.handlers.objects)
    # for sources whose series depend on one object alone, or a handler of the source's own.
    handler: HandlerFactory
    feeds: tuple[Feed[R], ...] = ()
    supersedes: tuple[Join, ...] = ()  # joins this source computes itself when it is watched
    # The chip views in one object's records, for fault history (mindx_npu_chip_faults_total);
    # None for sources that say nothing about chip faults.
    chip_views: Callable[[Mapping[str, R]], Iterable[NodeChips]] | None = None
    # False for a source that must be asked for (`--source.<name>.enabled=true`): one that needs
    # read access the default deployment does not grant.
    enabled_by_default: bool = True

    @property
    def namespace(self) -> str:
        """The producer's namespace: the default of `--source.<name>.namespace` (which also takes a
        comma-separated list: one watch per namespace)."""
        return self.watch.namespace
