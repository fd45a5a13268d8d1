"""The garbage collector's schedule (exporter.gcschedule): paused while the first lists run, then
the cache and every later full collection's survivors are frozen, and a periodic reclaim frees
cycles that were frozen while alive."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator

import pytest

from exporter.gcschedule import GcSchedule
from tests.helpers import eventually


class Node:
    """A weak-referenceable object, to build a reference cycle."""

    other: Node | None = None


@pytest.fixture
async def following() -> AsyncIterator[GcSchedule]:
    """A schedule past its first lists, freezing survivors; everything unfrozen afterwards."""
    schedule = GcSchedule()
    schedule.pause()
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    done.set_result(None)
    task = asyncio.create_task(schedule.run(done))
    try:
        await eventually(lambda: _assert(gc.isenabled() and gc.get_freeze_count() > 0), timeout=5)
        yield schedule
    finally:
        await _stop(task, schedule)
        gc.unfreeze()


async def _stop(task: asyncio.Task[None], schedule: GcSchedule) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    schedule.close()


async def _assert(condition: bool) -> None:
    assert condition


async def test_the_survivors_of_a_full_collection_are_frozen(following: GcSchedule) -> None:
    kept = [{"n": i, "list": [i]} for i in range(5000)]
    before = gc.get_freeze_count()
    gc.collect()
    assert gc.get_freeze_count() >= before + len(kept), "survivors left for the next collection"
    following.close()
    more = [{"n": i, "list": [i]} for i in range(5000)]
    before = gc.get_freeze_count()
    gc.collect()
    assert gc.get_freeze_count() == before, "still freezing after close"
    del kept, more


async def test_a_cycle_frozen_while_alive_is_freed_by_the_reclaim(following: GcSchedule) -> None:
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    gc.collect()  # frozen: both alive
    del a, b
    gc.collect()
    assert gone() is not None, "a frozen cycle is not collected"
    following.reclaim()
    assert gone() is None


async def test_an_api_server_that_never_answers_does_not_keep_the_collector_off() -> None:
    schedule = GcSchedule(pause_max=0.05)
    schedule.pause()
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(schedule.run(never))
    try:
        assert not gc.isenabled()
        await eventually(lambda: _assert(gc.isenabled()), timeout=5)
    finally:
        await _stop(task, schedule)
        never.cancel()
    assert gc.isenabled()
