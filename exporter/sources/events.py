"""S2: the Device Plugin's fault Events in `kube-system` (spec §3) →
`mindx_npu_fault_events_total{node,reason,fault_level}`.

Only Events whose message starts with `device fault,` are fault events; hot-reset, upgrade-release
and other components' Events share the namespace and are ignored without a problem.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from exporter.handlers.base import DEFAULT_OPTIONS, HandlerOptions, ProblemKey, SourceHandler
from exporter.kube.reflector import WatchTarget
from exporter.metrics.exposition import Family
from exporter.metrics.selfmetrics import ExporterMetrics
from exporter.metrics.store import MetricsStore
from exporter.sources.base import Blocks, Parsed, Source, Watch, add_block
from exporter.sources.common import (
    REASON_SCHEMA,
    Problems,
    as_dict,
    as_int,
    as_str,
    object_name,
    rfc3339_seconds,
    split_codes,
)
from exporter.sources.limits import DEFAULT_LIMITS, Limits

FAULT_MESSAGE_PREFIX = "device fault,"
KEY_MESSAGE = "message"

# The spec's regex (§3): `cardID:%d, deviceID:%d` on most cards, `logicID:%d` on Ascend910A5.
_FAULT_MESSAGE = re.compile(
    r"^device fault, nodeName:(?P<node>[^,]*), assertion:(?P<assertion>\w+), "
    r"(?:cardID:(?P<card>-?\d+), deviceID:(?P<dev>-?\d+)|logicID:(?P<logic>-?\d+)), "
    r"faultCodes:(?P<codes>[0-9A-Fa-f,]*), faultLevelName:(?P<level>\w*), alarmRaisedTime:(?P<t>.*)$"
)


@dataclass(frozen=True, slots=True)
class FaultEvent:
    uid: str  # metadata.uid
    name: str  # metadata.name
    node: str  # nodeName from the message, else source.host
    reason: str  # Occur | Recovery | Notice (as written; the message's assertion when `.reason` is empty)
    fault_level: str  # faultLevelName from the message, else `.action`
    fault_codes: tuple[str, ...]  # normalized upper-case hex; DP writes exactly one
    card_id: str  # "" on the A5 form
    device_id: str  # "" on the A5 form
    logic_id: str  # "" on the cardID/deviceID form
    count: int  # Event `count` (series.count as fallback); null/0/missing → 1
    event_time: float | None  # eventTime, else lastTimestamp, else firstTimestamp; unix seconds


RECORD = "event"  # the one record of a fault Event


def is_fault_event(ev: Mapping[str, Any]) -> bool:
    return as_str(ev.get("message")).lstrip().startswith(FAULT_MESSAGE_PREFIX)


def parse_event(ev: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> Parsed[FaultEvent]:
    problems = Problems()
    if not is_fault_event(ev):
        return Parsed(None, problems)
    message = as_str(ev.get("message")).strip()
    match = _FAULT_MESSAGE.match(message)
    if match is None:
        problems.add(KEY_MESSAGE, REASON_SCHEMA, "device fault message does not match the expected format")
        return Parsed(None, problems)
    meta = as_dict(ev.get("metadata")) or {}
    source = as_dict(ev.get("source")) or {}
    record = FaultEvent(
        uid=as_str(meta.get("uid")),
        name=as_str(meta.get("name")),
        node=match.group("node").strip() or as_str(source.get("host")).strip(),
        reason=as_str(ev.get("reason")) or match.group("assertion"),
        fault_level=match.group("level") or as_str(ev.get("action")),
        fault_codes=tuple(split_codes(match.group("codes"))[: limits.codes_per_entry]),
        card_id=match.group("card") or "",
        device_id=match.group("dev") or "",
        logic_id=match.group("logic") or "",
        count=_count(ev),
        event_time=_event_time(ev),
    )
    return Parsed({RECORD: record}, problems)


def _count(ev: Mapping[str, Any]) -> int:
    count = as_int(ev.get("count"))
    if count is None or count <= 0:
        series = as_dict(ev.get("series")) or {}
        count = as_int(series.get("count"))
    return count if count is not None and count > 0 else 1


def _event_time(ev: Mapping[str, Any]) -> float | None:
    for value in (ev.get("eventTime"), ev.get("lastTimestamp"), ev.get("firstTimestamp")):
        seconds = rfc3339_seconds(value)
        if seconds is not None:
            return seconds
    return None


# --- counting -----------------------------------------------------------------------------------
# The contract: an Event counts once when it appears, and again by however much its `count` grows;
# Events that existed before the exporter started are remembered but not counted, so a restart
# does not make the counter jump. A relist after a disconnection counts the Events (and count
# increases) it missed. Deleting an Event never decrements.

NPU_FAULT_EVENTS = Family(
    "mindx_npu_fault_events_total",
    "counter",
    "Device-plugin fault Events seen since the exporter started (an Event's count increments it too).",
    ("node", "reason", "fault_level"),
    order=800,
)


class NodeCountersKey(NamedTuple):
    """Store key of one node's Event counters."""

    node: str


def render_event_counts(counts: Mapping[tuple[str, str, str], int]) -> Blocks:
    """`mindx_npu_fault_events_total` for one node: (node, reason, fault_level) → count."""
    blocks: Blocks = {}
    add_block(blocks, NPU_FAULT_EVENTS, ((key, count) for key, count in sorted(counts.items())))
    return blocks


CounterKey = tuple[str, str, str]  # (node, reason, fault_level)


class EventCounter(SourceHandler):
    def __init__(
        self,
        source: Source[Any],
        target: WatchTarget,
        store: MetricsStore,
        metrics: ExporterMetrics,
        options: HandlerOptions = DEFAULT_OPTIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(source, target, store, metrics, options)
        self._clock = clock
        self._started = False
        self._seen: dict[str, tuple[CounterKey, int]] = {}  # Event uid → (counter, count so far)
        self._counts: dict[str, dict[CounterKey, int]] = {}  # node → counters
        self._last_increment: dict[str, float] = {}  # node → clock() of its newest increment

    def tick(self) -> None:
        """Drop the counters of nodes without an increment for `counter_idle_seconds`: the series
        count is then bounded by the nodes with fault Events in that window, not by every node that
        ever had one. A node's next Event starts its counters again (a new series)."""
        idle = self.options.counter_idle_seconds
        if idle <= 0:
            return
        cutoff = self._clock() - idle
        for node in [node for node, last in self._last_increment.items() if last < cutoff]:
            del self._last_increment[node]
            self._counts.pop(node, None)
            self.store.delete(self.group, NodeCountersKey(node))

    def relist(self) -> EventRelist:
        return EventRelist(self, counting=self._started)  # the first list only learns

    def upsert(self, obj: dict[str, Any]) -> None:
        changed: set[str] = set()
        problem_items: dict[ProblemKey, Blocks] = {}
        self._observe(obj, True, changed, problem_items)
        for node in changed:
            if self.options.shard.owns_node(node):
                self.store.set(self.group, NodeCountersKey(node), render_event_counts(self._counts[node]))
        for key, blocks in problem_items.items():
            self.store.set(self.problem_group, key, blocks)
        self.metrics.set_objects(self.target, len(self._seen))

    def delete(self, obj: dict[str, Any]) -> None:
        namespace, name = object_name(obj)
        uid = _uid(obj)
        self._seen.pop(uid, None)
        self.forget_problems(namespace, name)
        self.metrics.set_objects(self.target, len(self._seen))

    def _observe(
        self,
        obj: Mapping[str, Any],
        counting: bool,
        changed: set[str],
        problem_items: dict[ProblemKey, Blocks],
    ) -> str:
        """Remember one Event; count what is new about it. Returns its uid for fault Events."""
        namespace, name = object_name(obj)
        result = parse_event(obj, self.options.limits)
        # Every Event gets an entry ({} when fine), so a corrected Event clears its series.
        problem_items[self.problem_key(namespace, name)] = self.problem_blocks(
            obj, namespace, name, result.problems.items
        )
        record = result.first
        if record is None or not self.options.shard.owns_node(record.node):
            return ""  # not a fault Event, or another shard's node: nothing to count here
        uid = record.uid or f"{namespace}/{name}"
        key = (record.node, record.reason, record.fault_level)
        previous = self._seen.get(uid)
        seen_count = previous[1] if previous is not None else 0
        self._seen[uid] = (key, max(seen_count, record.count))
        increase = record.count - seen_count
        if counting and increase > 0:
            node_counts = self._counts.setdefault(record.node, {})
            node_counts[key] = node_counts.get(key, 0) + increase
            self._last_increment[record.node] = self._clock()
            changed.add(record.node)
        return uid


def _uid(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    uid = meta.get("uid") if isinstance(meta, dict) else None
    if isinstance(uid, str) and uid:
        return uid
    namespace, name = object_name(obj)
    return f"{namespace}/{name}"


SOURCE = Source(
    name="device-plugin-events",
    description="Ascend Device Plugin fault Events",
    # Events cannot be selected by message; the device plugin is their reporting component.
    watch=Watch("events", "kube-system", field_selector="source=device-plugin"),
    parse=parse_event,
    families=(NPU_FAULT_EVENTS,),
    handler=EventCounter,
)


class EventRelist:
    """One relist of the fault Events, page by page: each Event is counted as its page arrives;
    the Events gone are forgotten, and the counters rendered, when the list is complete."""

    def __init__(self, handler: EventCounter, counting: bool) -> None:
        self.handler = handler
        self.counting = counting
        self.present: set[str] = set()
        self.changed_nodes: set[str] = set()
        self.problem_items: dict[ProblemKey, Blocks] = {}

    def add(self, objects: list[dict[str, Any]]) -> None:
        for obj in objects:
            uid = self.handler._observe(obj, self.counting, self.changed_nodes, self.problem_items)
            if uid:
                self.present.add(uid)

    def finish(self) -> None:
        handler = self.handler
        handler._started = True
        for uid in handler._seen.keys() - self.present:
            del handler._seen[uid]
        mine = handler.options.shard.owns_node
        items = {
            NodeCountersKey(node): render_event_counts(c) for node, c in handler._counts.items() if mine(node)
        }
        handler.replace_problems(self.problem_items)
        handler.store.replace_group(handler.group, items)
        handler.metrics.set_objects(handler.target, len(handler._seen))
