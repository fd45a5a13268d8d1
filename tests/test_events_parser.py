"""The device-plugin fault Event parser on the fixture and synthetic Events (A5 form, non-fault Events)."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.sources import events
from exporter.sources.events import FaultEvent
from tests.helpers import fixture

EVENT = "event-deviceplugin-node133-occur.json"


def a5_event() -> dict[str, Any]:
    """An Ascend910A5 Recovery Event as DP writes it: `logicID:` instead of cardID/deviceID, no count or
    first/lastTimestamp, Normal type."""
    ev = fixture(EVENT)
    ev["metadata"]["name"] = "ascend-device-plugin-daemonset-a5-x7k2p.17441815003215"
    ev["metadata"]["uid"] = "a5a5a5a5-0000-4000-8000-000000000001"
    ev["involvedObject"]["name"] = "ascend-device-plugin-daemonset-a5-x7k2p"
    ev["reason"] = "Recovery"
    ev["type"] = "Normal"
    ev["action"] = "NotHandleFault"
    ev["message"] = (
        "device fault, nodeName:node150, assertion:Recovery, logicID:5, faultCodes:81078607, "
        "faultLevelName:NotHandleFault, alarmRaisedTime:2025-04-09 15:05:00"
    )
    ev["source"]["host"] = "node150"
    ev["eventTime"] = "2025-04-09T07:05:00.321000Z"
    for key in ("count", "firstTimestamp", "lastTimestamp"):
        ev.pop(key, None)
    return ev


def test_fixture_exact_record() -> None:
    result = events.parse_event(fixture(EVENT))
    assert result.problems.items == []
    assert result.first == FaultEvent(
        uid="1f13f493-469d-52ff-865b-8613364d7415",
        name="ascend-device-plugin-daemonset-910-dlpmv.17441674559014",
        node="node133",
        reason="Occur",
        fault_level="SeparateNPU",
        fault_codes=("80E18402",),
        card_id="2",
        device_id="0",
        logic_id="",
        count=1,  # count not set by DP
        event_time=1744167455.901,  # eventTime µs UTC, not the local-time alarmRaisedTime
    )
    assert events.is_fault_event(fixture(EVENT))


def test_a5_logic_id_form() -> None:
    result = events.parse_event(a5_event())
    assert result.problems.items == []
    assert result.first == FaultEvent(
        uid="a5a5a5a5-0000-4000-8000-000000000001",
        name="ascend-device-plugin-daemonset-a5-x7k2p.17441815003215",
        node="node150",
        reason="Recovery",
        fault_level="NotHandleFault",
        fault_codes=("81078607",),
        card_id="",
        device_id="",
        logic_id="5",
        count=1,
        event_time=1744182300.321,
    )


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        (
            {"eventTime": "2025-04-09T02:57:35.901000Z", "lastTimestamp": "2025-04-09T03:00:00Z"},
            1744167455.901,
        ),
        (
            {
                "eventTime": None,
                "lastTimestamp": "2025-04-09T03:00:00Z",
                "firstTimestamp": "2025-04-09T02:00:00Z",
            },
            1744167600.0,
        ),
        ({"eventTime": None, "lastTimestamp": None, "firstTimestamp": "2025-04-09T02:00:00Z"}, 1744164000.0),
        ({"eventTime": "garbage", "lastTimestamp": "", "firstTimestamp": 5}, None),
        ({}, None),
    ],
)
def test_event_time_fallbacks(times: dict[str, Any], expected: float | None) -> None:
    ev = fixture(EVENT)
    for key in ("eventTime", "firstTimestamp", "lastTimestamp"):
        ev.pop(key, None)
    ev.update(times)
    result = events.parse_event(ev)
    assert result.first is not None and result.first.event_time == expected


@pytest.mark.parametrize(
    ("fields", "count"),
    [
        ({}, 1),
        ({"count": None}, 1),
        ({"count": 0}, 1),
        ({"count": -3}, 1),
        ({"count": 4}, 4),
        ({"count": "4"}, 1),
        ({"count": True}, 1),
        ({"series": {"count": 6}}, 6),
        ({"count": 2, "series": {"count": 6}}, 2),
    ],
)
def test_count(fields: dict[str, Any], count: int) -> None:
    ev = fixture(EVENT)
    ev.pop("count", None)
    ev.update(fields)
    result = events.parse_event(ev)
    assert result.first is not None and result.first.count == count


def test_fallbacks_for_node_reason_and_level() -> None:
    ev = fixture(EVENT)
    ev["message"] = (
        "device fault, nodeName:, assertion:Notice, cardID:-1, deviceID:3, faultCodes:a8028801,110001024, "
        "faultLevelName:, alarmRaisedTime:"
    )
    del ev["reason"]
    ev["action"] = "FutureLevel"
    result = events.parse_event(ev)
    assert result.problems.items == []
    assert result.first is not None
    assert (result.first.node, result.first.reason, result.first.fault_level) == (
        "node133",
        "Notice",
        "FutureLevel",
    )
    assert result.first.fault_codes == ("A8028801", "110001024")
    assert (result.first.card_id, result.first.device_id) == ("-1", "3")


def test_unknown_reason_kept_and_no_metadata() -> None:
    ev = {"message": fixture(EVENT)["message"], "reason": "Unexpected"}
    result = events.parse_event(ev)
    assert result.first is not None
    assert (result.first.uid, result.first.name, result.first.reason) == ("", "", "Unexpected")
    assert (result.first.node, result.first.event_time, result.first.count) == ("node133", None, 1)


def _non_fault(reason: str, message: object, **extra: Any) -> dict[str, Any]:
    ev = fixture(EVENT)
    ev.update({"reason": reason, "message": message, **extra})
    return ev


@pytest.mark.parametrize(
    "ev",
    [
        _non_fault(
            "HotResetStart",
            "hot reset start, nodeName:node133, ringDevs:[0 1 2 3], faultDev:2, tokensLeft:1, "
            "time:2025-04-09 10:57:40",
            involvedObject={"kind": "Node", "name": "node133"},
        ),
        _non_fault(
            "HotResetComplete",
            "hot reset complete, nodeName:node133, devices:[0 1 2 3], time:2025-04-09 10:58:00",
        ),
        _non_fault("HotResetFailed", "hot reset failed, nodeName:node133, devices:[0], time:x, err:timeout"),
        _non_fault(
            "EventReleaseUpgradeFault",
            '{"Ascend910-3":[{"upgrade_time":1744167455784,"fault_code":"80e01801","fault_level":'
            '"ManuallySeparateNPU","upgrade_type":"FaultFrequency"}]}',
        ),
        _non_fault(
            "Scheduled",
            "Successfully assigned kube-system/x to node133",
            source={"component": "default-scheduler"},
        ),
        _non_fault("Occur", None),
        _non_fault("Occur", 17),
        _non_fault("Occur", "Device fault, nodeName:node133"),  # case matters: not DP's format
        {},
    ],
)
def test_non_fault_events_are_ignored_silently(ev: dict[str, Any]) -> None:
    assert not events.is_fault_event(ev)
    result = events.parse_event(ev)
    assert result.first is None and result.problems.items == []


@pytest.mark.parametrize(
    "message",
    [
        "device fault,",
        "device fault, nodeName:node133, assertion:Occur, faultCodes:80E18402, faultLevelName:SeparateNPU, "
        "alarmRaisedTime:x",  # no device part
        "device fault, nodeName:node133, assertion:Occur, cardID:x, deviceID:0, faultCodes:80E18402, "
        "faultLevelName:SeparateNPU, alarmRaisedTime:x",
        "device fault, nodeName:node133, assertion:Occur, cardID:2, deviceID:0, faultCodes:ZZ, "
        "faultLevelName:SeparateNPU, alarmRaisedTime:x",
    ],
)
def test_malformed_fault_message_is_a_schema_problem(message: str) -> None:
    ev = fixture(EVENT)
    ev["message"] = message
    assert events.is_fault_event(ev)
    result = events.parse_event(ev)
    assert result.first is None
    assert [(p.key, p.reason) for p in result.problems.items] == [("message", "schema")]


def test_garbage_fields_never_raise() -> None:
    ev = fixture(EVENT)
    ev.update({"metadata": "x", "source": [], "count": {}, "eventTime": 3, "reason": 5, "action": None})
    result = events.parse_event(ev)
    assert result.first is not None
    assert (result.first.uid, result.first.reason, result.first.event_time) == ("", "Occur", None)
