"""Fault history over any producer's chip view (`NodeChips`): which fault codes a new version of an
object raised and cleared compared with the previous one, and the families that count them
(`mindx_npu_chip_faults_total`) and time them (`mindx_npu_fault_duration_seconds`). Pure: the
state between versions is kept by exporter.handlers.history."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from exporter.metrics.exposition import Family, escape_label_value, format_value
from exporter.sources.base import Sample
from exporter.sources.common import chip_id
from exporter.sources.records import NodeChips

NPU_CHIP_FAULTS_TOTAL = Family(
    "mindx_npu_chip_faults_total",
    "counter",
    "Times a fault code was raised on a chip since the exporter started (a code counts when a new "
    "version of the object has it and the previous one did not; the first list only learns).",
    ("source", "node", "npu", "id", "fault_code", "fault_level"),
    order=160,
)
NPU_FAULT_DURATION_SECONDS = Family(
    "mindx_npu_fault_duration_seconds",
    "histogram",
    "How long each cleared chip fault code lasted: from its raise time (the producer's, else when "
    "first seen) to the update that no longer has it.",
    ("source", "fault_level"),
    order=170,
)
# 1 minute to 30 days.
DURATION_BUCKETS: tuple[float, ...] = (
    60, 300, 900, 1800, 3600, 7200, 21600, 43200, 86400, 172800, 604800, 1209600, 2592000,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ActiveCode:
    """One fault code active on one chip."""

    node: str
    npu: str
    code: str
    level: str
    raised_at: float  # the producer's raise time, unix seconds; 0 when it gave none


CodeKey = tuple[str, str, str]  # (node, npu, code)


def active_codes(views: Iterable[NodeChips]) -> dict[CodeKey, ActiveCode]:
    """Every (chip, code) active in the views; a code in two entries of one chip keeps the first."""
    active: dict[CodeKey, ActiveCode] = {}
    for chips in views:
        for fault in chips.faults:
            for code in fault.codes:
                key = (chips.node, fault.npu, code.code)
                if key not in active:
                    active[key] = ActiveCode(chips.node, fault.npu, code.code, code.level, code.raised_at)
    return active


@dataclass(frozen=True, slots=True)
class Change:
    raised: tuple[ActiveCode, ...]
    cleared: tuple[ActiveCode, ...]


def compare(previous: Mapping[CodeKey, ActiveCode], current: Mapping[CodeKey, ActiveCode]) -> Change:
    return Change(
        raised=tuple(code for key, code in current.items() if key not in previous),
        cleared=tuple(code for key, code in previous.items() if key not in current),
    )


CounterKey = tuple[str, str, str, str]  # (node, npu, code, level)


def counter_samples(source: str, counts: Mapping[CounterKey, int]) -> Iterator[Sample]:
    for (node, npu, code, level), count in sorted(counts.items()):
        yield (source, node, npu, chip_id(npu), code, level), count


@dataclass(slots=True)
class DurationHistogram:
    """Cumulative bucket counts, sum and count of one (source, fault_level)."""

    buckets: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS))
    total: float = 0.0
    count: int = 0

    def observe(self, seconds: float) -> None:
        for index in range(bisect.bisect_left(DURATION_BUCKETS, seconds), len(DURATION_BUCKETS)):
            self.buckets[index] += 1
        self.total += seconds
        self.count += 1


def render_histograms(source: str, histograms: Mapping[str, DurationHistogram]) -> bytes:
    """The histogram's sample lines for one source (its header is the store's)."""
    name = NPU_FAULT_DURATION_SECONDS.name
    lines = []
    for level in sorted(histograms):
        hist = histograms[level]
        labels = f'source="{escape_label_value(source)}",fault_level="{escape_label_value(level)}"'
        for bound, count in zip(DURATION_BUCKETS, hist.buckets, strict=True):
            lines.append(f'{name}_bucket{{{labels},le="{format_value(bound)}"}} {count}\n')
        lines.append(f'{name}_bucket{{{labels},le="+Inf"}} {hist.count}\n')
        lines.append(f"{name}_sum{{{labels}}} {format_value(hist.total)}\n")
        lines.append(f"{name}_count{{{labels}}} {hist.count}\n")
    return "".join(lines).encode()
