"""Work that can pause: a generator whose every `yield` ends a step and whose return value is the
result. A handler given an object of thousands of entries does it in steps of about a
millisecond, and the reflector runs the event loop between them (`SteppedSink` in
`exporter.kube.reflector`), so scrapes and the other watches are not held up; called directly,
`run_steps` does every step at once."""

from __future__ import annotations

from collections.abc import Generator
from typing import TypeVar

R = TypeVar("R")
Steps = Generator[None, None, R]


def run_steps(steps: Steps[R]) -> R:
    """All the steps at once; the result."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            result: R = done.value
            return result
