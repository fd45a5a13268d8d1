"""A store of rendered sample blocks (kube-state-metrics' metrics_store, for asyncio).

Every object's samples are rendered once, when the object changes, and kept per family; a
scrape writes each family's header and then every object's block for it. The joined body (and
its gzip) is cached until something changes. All methods are synchronous and the event loop
runs one at a time, so a scrape never sees a half-applied update or relist.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from exporter.metrics.exposition import Family

Key = Hashable


# Level 1: a 60 MB body compresses about three times faster than at the default level 6, and
# the text format's repetition still shrinks it about 20-fold.
GZIP_LEVEL = 1


@dataclass(slots=True)
class _Body:
    generation: int
    data: bytes
    gzip: asyncio.Future[tuple[bytes, zlib._Compress]] | None = None


class MetricsStore:
    def __init__(self, families: Iterable[Family]) -> None:
        self.families: tuple[Family, ...] = tuple(families)
        self._headers = {family: family.header() for family in self.families}
        self._blocks: dict[Family, dict[Key, bytes]] = {family: {} for family in self.families}
        self._families_of: dict[Key, tuple[Family, ...]] = {}
        self._groups: dict[Hashable, set[Key]] = {}
        self._generation = 0
        self._body: _Body | None = None
        # Families that gained a key since the last render: their blocks are re-sorted by key
        # then, so the body's order depends only on the content, never on the update history.
        self._unsorted: set[Family] = set()

    # --- updates ----------------------------------------------------------------------------

    def set(self, group: Hashable, key: Key, blocks: Mapping[Family, bytes]) -> bool:
        """Replace everything `key` contributes with `blocks` (families absent from it vanish).
        Returns False, and keeps the cached body, when nothing changed."""
        self._groups.setdefault(group, set()).add(key)
        if self._same(key, blocks):
            return False
        self._put(key, blocks)
        self._generation += 1
        return True

    def delete(self, group: Hashable, key: Key) -> None:
        if key in self._families_of:
            self._put(key, {})
            self._generation += 1
        members = self._groups.get(group)
        if members is not None:
            members.discard(key)

    def replace_group(self, group: Hashable, items: Mapping[Any, Mapping[Family, bytes]]) -> None:
        """A relist: the group's keys become exactly `items`, in one step."""
        for key in self._groups.get(group, set()) - items.keys():
            self._put(key, {})
        for key, blocks in items.items():
            self._put(key, blocks)
        self._groups[group] = set(items)
        self._generation += 1

    def keys(self, group: Hashable) -> frozenset[Key]:
        return frozenset(self._groups.get(group, ()))

    def _same(self, key: Key, blocks: Mapping[Family, bytes]) -> bool:
        present = [family for family, block in blocks.items() if block]
        if tuple(present) != self._families_of.get(key, ()):
            return False
        return all(self._blocks[family][key] == blocks[family] for family in present)

    def _put(self, key: Key, blocks: Mapping[Family, bytes]) -> None:
        """Make `key`'s blocks exactly `blocks`. Existing entries are updated in place, so a
        family's order only needs re-sorting when a key is new to it."""
        old = self._families_of.pop(key, ())
        present = []
        for family, block in blocks.items():
            if block:
                per_key = self._blocks[family]
                if key not in per_key:
                    self._unsorted.add(family)
                per_key[key] = block
                present.append(family)
        for family in old:
            if family not in present:
                del self._blocks[family][key]
        if present:
            self._families_of[key] = tuple(present)

    # --- reading ----------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        return self._generation

    def object_count(self) -> int:
        return len(self._families_of)

    def body(self) -> bytes:
        """The exposition of every stored block; rebuilt only after a change."""
        return self._current().data

    async def gzip_parts(self) -> tuple[bytes, zlib._Compress]:
        """The body compressed as the start of a gzip stream, plus a compressor positioned after it.

        The caller copies the compressor to append its own trailing text (self-metrics) and
        finish the stream. Compression runs in a worker thread (zlib releases the GIL), so watch
        events keep being applied meanwhile; concurrent scrapes of the same body share one
        compression, and an unchanged store is never compressed twice.
        """
        body = self._current()
        if body.gzip is None:
            body.gzip = asyncio.ensure_future(asyncio.to_thread(_gzip_start, body.data))
        return await asyncio.shield(body.gzip)

    def _current(self) -> _Body:
        if self._body is None or self._body.generation != self._generation:
            self._body = _Body(self._generation, self._render())
        return self._body

    def _render(self) -> bytes:
        for family in self._unsorted:
            self._blocks[family] = dict(sorted(self._blocks[family].items(), key=_sort_key))
        self._unsorted.clear()
        parts: list[bytes] = []
        for family in self.families:
            blocks = self._blocks[family]
            parts.append(self._headers[family])
            parts.extend(blocks.values())
        return b"".join(parts)


def _gzip_start(data: bytes) -> tuple[bytes, zlib._Compress]:
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH), compressor


def _sort_key(item: tuple[Key, bytes]) -> Any:
    return item[0]
