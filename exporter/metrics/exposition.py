"""The Prometheus text exposition format (version 0.0.4): family headers and sample lines."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Family:
    """One metric family of the contract: rendering it needs nothing but this."""

    name: str
    type: str  # gauge | counter
    help: str
    labels: tuple[str, ...]
    # Position in the exposition: families are written in ascending order, so the body's layout
    # stays the same whichever module declares a family (tests/test_registry.py: unique).
    order: int = 0

    def header(self) -> bytes:
        return family_header(self.name, self.type, self.help).encode()


def family_header(name: str, type_: str, help_text: str) -> str:
    """The `# HELP` and `# TYPE` lines of a family."""
    escaped = help_text.replace("\\", "\\\\").replace("\n", "\\n")
    return f"# HELP {name} {escaped}\n# TYPE {name} {type_}\n"


def escape_label_value(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        value = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def format_value(value: float) -> str:
    if isinstance(value, int) or (math.isfinite(value) and value.is_integer() and abs(value) < 1e15):
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def render_samples(family: Family, samples: Iterable[tuple[Sequence[str], float]]) -> bytes:
    """Sample lines (no header) for `family`; each sample is (label values in family order, value)."""
    name = family.name
    labels = family.labels
    lines = []
    for values, value in samples:
        pairs = ",".join(
            f'{label}="{escape_label_value(v)}"' for label, v in zip(labels, values, strict=True)
        )
        lines.append(
            f"{name}{{{pairs}}} {format_value(value)}\n" if pairs else f"{name} {format_value(value)}\n"
        )
    return "".join(lines).encode("utf-8")
