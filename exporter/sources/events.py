"""S2: the Device Plugin's fault Events in `kube-system` (spec §3).

Only Events whose message starts with `device fault,` are fault events; hot-reset, upgrade-release
and other components' Events share the namespace and are ignored without a problem.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from exporter.sources.common import (
    REASON_SCHEMA,
    Problems,
    as_dict,
    as_int,
    as_str,
    rfc3339_seconds,
    split_codes,
)

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


@dataclass(frozen=True, slots=True)
class EventResult:
    record: FaultEvent | None  # None when the Event is not a device-plugin fault Event
    problems: Problems


def is_fault_event(ev: Mapping[str, Any]) -> bool:
    return as_str(ev.get("message")).lstrip().startswith(FAULT_MESSAGE_PREFIX)


def parse_event(ev: Mapping[str, Any]) -> EventResult:
    problems = Problems()
    if not is_fault_event(ev):
        return EventResult(None, problems)
    message = as_str(ev.get("message")).strip()
    match = _FAULT_MESSAGE.match(message)
    if match is None:
        problems.add(KEY_MESSAGE, REASON_SCHEMA, "device fault message does not match the expected format")
        return EventResult(None, problems)
    meta = as_dict(ev.get("metadata")) or {}
    source = as_dict(ev.get("source")) or {}
    record = FaultEvent(
        uid=as_str(meta.get("uid")),
        name=as_str(meta.get("name")),
        node=match.group("node").strip() or as_str(source.get("host")).strip(),
        reason=as_str(ev.get("reason")) or match.group("assertion"),
        fault_level=match.group("level") or as_str(ev.get("action")),
        fault_codes=tuple(split_codes(match.group("codes"))),
        card_id=match.group("card") or "",
        device_id=match.group("dev") or "",
        logic_id=match.group("logic") or "",
        count=_count(ev),
        event_time=_event_time(ev),
    )
    return EventResult(record, problems)


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
