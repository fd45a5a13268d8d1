"""Vocabulary and helpers shared by the parsers of every MindX DL producer.

Everything here is pure: no I/O, no state. `docs/mindx-sources.md` (read from the producers'
source) fixes the formats; the comments say which quirk a helper absorbs.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

# Chip fault_handling levels, least to most severe (spec §11.1). The rank is the metric value.
CHIP_LEVELS: tuple[str, ...] = (
    "NormalNPU",
    "NotHandleFault",
    "SubHealthFault",
    "RestartRequest",
    "RestartBusiness",
    "FreeRestartNPU",
    "RestartNPU",
    "PreSeparateNPU",
    "SeparateNPU",
    "ManuallySeparateNPU",
)
CHIP_LEVEL_RANK: dict[str, int] = {name: rank for rank, name in enumerate(CHIP_LEVELS)}
CHIP_LEVEL_RANK["NormalNetwork"] = 0
UNKNOWN_LEVEL_RANK = -1

NODE_STATUSES: tuple[str, ...] = ("Healthy", "PreSeparate", "UnHealthy")
SWITCH_STATUSES: tuple[str, ...] = ("Healthy", "SubHealthy", "PreSeparate", "UnHealthy")

# Problem reasons, shared by `mindx_configmap_invalid` and `mindx_exporter_parse_errors_total`.
REASON_JSON = "json"
REASON_CHECKCODE = "checkcode"
REASON_SCHEMA = "schema"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing in one data key that could not be used (the rest of the object still counts)."""

    key: str
    reason: str  # json | checkcode | schema
    detail: str


@dataclass(slots=True)
class Problems:
    """Collects problems while a parser walks an object."""

    items: list[Problem] = field(default_factory=list)

    def add(self, key: str, reason: str, detail: str) -> None:
        self.items.append(Problem(key, reason, detail))


def chip_level_rank(level: str) -> int:
    return CHIP_LEVEL_RANK.get(level, UNKNOWN_LEVEL_RANK)


def most_severe_rank(levels: Iterable[str]) -> int:
    """Rank of the most severe known level; -1 if only unknown levels were given, 0 if none."""
    best: int | None = None
    for level in levels:
        rank = chip_level_rank(level)
        if best is None or rank > best:
            best = rank
    return 0 if best is None else best


# --- chip names -----------------------------------------------------------------------------

_PHYSICAL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:-(?:V|VPro|IPro))?-(\d+)(?:-\d+)?$")
_VIRTUAL_NAME = re.compile(r"^.+?-\d+c[^-]*-\d+-(\d+)$")


@functools.lru_cache(maxsize=65536)  # chip names repeat on every node; rendering asks often
def chip_id(npu_name: str) -> str:
    """Physical chip id of a device name (spec §2.9): `Ascend910-4`→4, `npu-5`→5,
    vNPU `Ascend910-4c-100-3`→3, share mode `Ascend310P-2-17`→2; "" when it does not parse."""
    match = _VIRTUAL_NAME.match(npu_name) or _PHYSICAL_NAME.match(npu_name)
    return str(int(match.group(1))) if match else ""


def split_names(value: object) -> list[str]:
    """A producer's comma-separated device list; tolerates spaces, empties and duplicates."""
    if not isinstance(value, str) or not value:
        return []
    seen: dict[str, None] = {}
    for part in value.split(","):
        name = part.strip()
        if name:
            seen[name] = None
    return list(seen)


_HEX = re.compile(r"^(?:0[xX])?[0-9A-Fa-f]+$")


def normalize_code(code: str) -> str:
    """Fault codes are upper-case hex without `0x`; non-hex markers (`ManuallySeparateNPU`,
    `AutofillFaultCode`) are kept as written."""
    code = code.strip()
    if _HEX.match(code):
        return code[2:].upper() if code[:2] in ("0x", "0X") else code.upper()
    return code


def split_codes(value: object) -> list[str]:
    """`A8028801,a4028801, 80E18402` → normalized, de-duplicated, order kept."""
    if not isinstance(value, str):
        return []
    seen: dict[str, None] = {}
    for part in value.split(","):
        code = normalize_code(part)
        if code:
            seen[code] = None
    return list(seen)


# --- time -----------------------------------------------------------------------------------


def unix_seconds(value: object) -> float:
    """A producer timestamp in seconds, milliseconds or microseconds → unix seconds.

    Producers mix units per field (spec §11.6) and some fields are documented wrongly, so the
    magnitude decides: anything past year 5138 in seconds is really ms (or µs). 0, -1,
    negatives and non-numbers mean "no time" → 0.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    if value <= 0:
        return 0.0
    if value >= 1e14:
        return value / 1e6
    if value >= 1e11:
        return value / 1e3
    return float(value)


def rfc3339_seconds(value: object) -> float | None:
    """NodeD's `updateTime` (`2025-04-09T15:03:32+08:00`, container time zone) → unix seconds."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.timestamp()


# --- JSON as Go writes it ---------------------------------------------------------------------


def loads(text: str | bytes) -> Any:
    """orjson.loads; raises orjson.JSONDecodeError (a ValueError) on invalid JSON."""
    return orjson.loads(text)


_GO_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_GO_NEEDS_ESCAPE = re.compile('["\\\\\x00-\x1f<>&\u2028\u2029]')


def _go_escape_char(match: re.Match[str]) -> str:
    char = match.group(0)
    return _GO_ESCAPES.get(char) or f"\\u{ord(char):04x}"


def go_json_string(text: str) -> str:
    """A string encoded exactly as Go's encoding/json does (HTML-safe escapes, \\u00XX controls)."""
    return '"' + _GO_NEEDS_ESCAPE.sub(_go_escape_char, text) + '"'


def go_json_dumps(value: Any) -> str:
    """Re-encode a decoded JSON value the way Go's json.Marshal wrote it, keeping key order.

    Used to recompute CheckCodes: Go emitted struct fields in declaration order, which the
    decoded dict preserves. Floats never occur in the hashed objects; a float makes the
    CheckCode fail, which is the truth (Go would have written an integer).
    """
    if isinstance(value, str):
        return go_json_string(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Mapping):
        return "{" + ",".join(go_json_string(str(k)) + ":" + go_json_dumps(v) for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(go_json_dumps(v) for v in value) + "]"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def decode_json(
    data: Mapping[str, Any],
    key: str,
    problems: Problems,
    *,
    shape: type = dict,
    required: bool = False,
    blank_is_empty: bool = False,
) -> Any:
    """The JSON value of `shape` (dict or list) stored as a string under `data[key]`; None, and a
    problem, when it is not one. A missing key is a problem only where the producer always writes
    it; with `blank_is_empty`, `""`, `null`, `[]` and `{}` mean "nothing" (ClusterD and Volcano
    write `""` when empty)."""
    raw = data.get(key)
    if raw is None:
        if required:
            problems.add(key, REASON_SCHEMA, "key missing")
        return None
    if not isinstance(raw, str):
        problems.add(key, REASON_SCHEMA, "value is not a string")
        return None
    if blank_is_empty and not raw.strip():
        return None
    try:
        decoded = loads(raw)
    except ValueError as err:
        problems.add(key, REASON_JSON, f"invalid JSON: {err}")
        return None
    if blank_is_empty and decoded in (None, [], {}):
        return None
    if not isinstance(decoded, shape):
        problems.add(key, REASON_SCHEMA, f"value is not a JSON {'array' if shape is list else 'object'}")
        return None
    return decoded


def node_from_name(name: str, prefix: str) -> str | None:
    """`mindx-dl-deviceinfo-node133` with prefix `mindx-dl-deviceinfo-` → `node133`."""
    if name.startswith(prefix) and len(name) > len(prefix):
        return name[len(prefix) :]
    return None


def as_dict(value: object) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def as_str(value: object) -> str:
    return value if isinstance(value, str) else ""


def as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def object_name(obj: Mapping[str, Any]) -> tuple[str, str]:
    """(namespace, name) of a Kubernetes object dict; empty strings when absent."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return "", ""
    return as_str(meta.get("namespace")), as_str(meta.get("name"))


def configmap_data(obj: Mapping[str, Any]) -> dict[str, Any]:
    data = obj.get("data")
    return data if isinstance(data, dict) else {}
