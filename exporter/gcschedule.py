"""When the garbage collector runs. The exporter's cache is millions of long-lived objects in no
reference cycle, which the collector would otherwise scan again and again: under a write load at
20,000 nodes, full collections came every few seconds and grew from 25 to 150 ms within five
minutes, as rewritten objects replaced the ones frozen at the start. So:

- while the first lists build the cache, there is no collection (for at most `pause_max`);
- then one collection, and every object is frozen (`gc.freeze`: never scanned again, still freed
  by reference counting when its last reference goes);
- after every later full collection, its survivors are frozen too, so the next one scans only the
  objects made since;
- an object frozen while alive that later ends up in an unreachable cycle (a finished request's,
  say) is reclaimed when everything is unfrozen and collected once, every `reclaim_every`: one
  full collection's stall (~400 ms at 20,000 nodes) an hour.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable
from typing import Any

# The first lists take 7 s at 20,000 nodes; an API server that never answers must not keep the
# collector off for good.
PAUSE_MAX = 120.0
RECLAIM_EVERY = 3600.0


class GcSchedule:
    def __init__(self, pause_max: float = PAUSE_MAX, reclaim_every: float = RECLAIM_EVERY) -> None:
        self.pause_max = pause_max
        self.reclaim_every = reclaim_every
        self._paused = False
        self._following = False

    def pause(self) -> None:
        """No collection until `run` has seen the first lists complete (or `close`)."""
        self._paused = gc.isenabled()
        gc.disable()

    async def run(self, first_lists: Awaitable[Any]) -> None:
        """Resume, freeze the cache once the first lists are complete, then keep freezing
        survivors and reclaim every `reclaim_every` seconds. Runs until cancelled."""
        first = asyncio.ensure_future(first_lists)
        try:
            await asyncio.wait_for(asyncio.shield(first), self.pause_max)
        except TimeoutError:
            self._resume()
            await first
        gc.collect()
        gc.freeze()
        self._resume()
        self._following = True
        gc.callbacks.append(self._after_collection)
        while True:
            await asyncio.sleep(self.reclaim_every)
            self.reclaim()

    def reclaim(self) -> None:
        """Collect everything once, frozen objects included, and freeze the survivors again."""
        gc.unfreeze()
        gc.collect()
        gc.freeze()

    def close(self) -> None:
        if self._following:
            self._following = False
            gc.callbacks.remove(self._after_collection)
        self._resume()

    def _after_collection(self, phase: str, info: dict[str, int]) -> None:
        # Right after a full collection the young generations are empty and every survivor is
        # alive: freezing them leaves the next full collection only what is made after.
        if phase == "stop" and info["generation"] == 2:
            gc.freeze()

    def _resume(self) -> None:
        if self._paused:
            self._paused = False
            gc.enable()
