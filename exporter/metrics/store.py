"""A store of rendered sample blocks (kube-state-metrics' metrics_store, for asyncio).

Every object's samples are rendered once, when the object changes, and kept per family; a
scrape writes each family's header and then every object's block for it, in key order. Each
family's blocks are held in segments of consecutive keys (about SEGMENT_TARGET bytes), and each
segment caches its joined text and its compressed form, so after a change a scrape re-joins and
re-compresses only the segments that changed: the gzip body of a 36 MB exposition is rebuilt
from a few 32 KiB segments instead of from scratch. All methods that change or read the blocks
are synchronous and the event loop runs one at a time, so a scrape never sees a half-applied
update or relist.
"""

from __future__ import annotations

import asyncio
import bisect
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

from exporter.metrics.exposition import Family
from exporter.metrics.gzipstream import EMPTY, GZIP_HEADER, CrcTree, Deflated, deflate_part

# A block's key: a tuple of strings, ordered among the keys of one family. Each group uses one
# named key type (a NamedTuple of strings) that says what its keys are; the store needs only the
# order, and keys of different groups in one family compare as plain tuples.
Key = tuple[str, ...]
K = TypeVar("K", bound=Key)


class Group(NamedTuple):
    """The keys one writer owns, replaced together on a relist: a source's objects in one
    namespace, or a join's nodes."""

    owner: str  # the source's or the join's name
    scope: str  # the namespace, or the join's own scope


# Where a block sits: its key, then its group, so two groups can never overwrite each other's
# blocks even if their keys compare equal as tuples; keys of one family are unique in practice,
# so the body's order is the keys' order.
Slot = tuple[Key, Group]
_HEADER: Slot = ((), Group("", ""))


# A segment is split above SEGMENT_MAX and merged into its neighbour below SEGMENT_MIN. At 32 KiB
# a segment compresses in ~20 µs, and 10,000 nodes' 36 MB make about 1,500 segments.
SEGMENT_TARGET = 32 << 10
SEGMENT_MAX = 2 * SEGMENT_TARGET
SEGMENT_MIN = SEGMENT_TARGET // 4


class _Segment:
    """Consecutive keys of one family (or a family's constant header) and their blocks, as two
    parallel lists in key order: joining a segment is one `join` of `blocks`, with no lookup per
    key (a scrape after a busy interval joins thousands of segments)."""

    __slots__ = ("_text", "blocks", "deflated", "keys", "size", "version")

    def __init__(self, keys: list[Slot], blocks: list[bytes]) -> None:
        self.keys = keys  # sorted
        self.blocks = blocks  # blocks[i] is keys[i]'s
        self.size = sum(len(block) for block in blocks)
        self.version = 0
        self._text: bytes | None = None
        self.deflated: Deflated | None = None

    def changed(self) -> None:
        self.version += 1
        self._text = None
        self.deflated = None

    def text(self) -> bytes:
        if self._text is None:
            self._text = b"".join(self.blocks)
        return self._text


class _Put(enum.IntEnum):
    UNCHANGED = 0
    CHANGED = 1
    RESTRUCTURED = 2  # segments were added or removed


class _FamilySegments:
    """A family's blocks in key order, split into segments; `first[i]` is segment i's first key."""

    __slots__ = ("first", "header", "segments")

    def __init__(self, header: bytes) -> None:
        self.header = _Segment([_HEADER], [header])
        self.segments: list[_Segment] = []
        self.first: list[Slot] = []

    def _find(self, key: Slot) -> int:
        return max(bisect.bisect_right(self.first, key) - 1, 0)

    def put(self, key: Slot, block: bytes) -> _Put:
        """Set `key`'s block."""
        if not self.segments:
            self.segments.append(_Segment([key], [block]))
            self.first.append(key)
            return _Put.RESTRUCTURED
        index = self._find(key)
        segment = self.segments[index]
        at = bisect.bisect_left(segment.keys, key)
        if at < len(segment.keys) and segment.keys[at] == key:
            previous = segment.blocks[at]
            if previous == block:
                return _Put.UNCHANGED
            segment.size -= len(previous)
            segment.blocks[at] = block
        else:
            segment.keys.insert(at, key)
            segment.blocks.insert(at, block)
            if key < self.first[index]:
                self.first[index] = key
        segment.size += len(block)
        segment.changed()
        if segment.size > SEGMENT_MAX and len(segment.keys) > 1:
            self._split(index)
            return _Put.RESTRUCTURED
        return _Put.CHANGED

    def remove(self, key: Slot) -> bool:
        index = self._find(key)
        segment = self.segments[index]
        at = bisect.bisect_left(segment.keys, key)
        del segment.keys[at]
        segment.size -= len(segment.blocks.pop(at))
        segment.changed()
        if not segment.keys:
            del self.segments[index], self.first[index]
            return True
        self.first[index] = segment.keys[0]
        if segment.size < SEGMENT_MIN and index + 1 < len(self.segments):
            following = self.segments[index + 1]
            if segment.size + following.size <= SEGMENT_TARGET:
                segment.keys.extend(following.keys)
                segment.blocks.extend(following.blocks)
                segment.size += following.size
                del self.segments[index + 1], self.first[index + 1]
                return True
        return False

    def _split(self, index: int) -> None:
        """Split segment `index` into pieces of about SEGMENT_TARGET bytes."""
        segment = self.segments[index]
        pieces: list[tuple[list[Slot], list[bytes]]] = [([], [])]
        filled = 0
        for key, block in zip(segment.keys, segment.blocks, strict=True):
            if filled and filled + len(block) > SEGMENT_TARGET:
                pieces.append(([], []))
                filled = 0
            pieces[-1][0].append(key)
            pieces[-1][1].append(block)
            filled += len(block)
        replacement = [_Segment(keys, blocks) for keys, blocks in pieces]
        self.segments[index : index + 1] = replacement
        self.first[index : index + 1] = [piece.keys[0] for piece in replacement]

    def layout(self) -> list[_Segment]:
        return [self.header, *self.segments]


@dataclass(frozen=True, slots=True)
class PlainBody:
    generation: int
    parts: tuple[bytes, ...]  # the exposition is their concatenation
    length: int


@dataclass(frozen=True, slots=True)
class GzipBody:
    """GZIP_HEADER plus every segment compressed: a gzip member without its final block, which
    gzipstream.finish_member appends with the scrape's own trailing text."""

    generation: int
    prefix: bytes
    crc: int  # CRC-32 and length of the uncompressed text so far
    length: int


class _Layout:
    """Every segment in body order, with the combined CRC of their last compressed forms."""

    def __init__(self, segments: list[_Segment]) -> None:
        self.segments = segments
        self.compressed: list[Deflated] | None = None  # as of the last gzip body
        self.crc: CrcTree | None = None


class MetricsStore:
    def __init__(self, families: Iterable[Family]) -> None:
        self.families: tuple[Family, ...] = tuple(families)
        self._family_segments = {family: _FamilySegments(family.header()) for family in self.families}
        self._families_of: dict[Slot, tuple[Family, ...]] = {}
        self._groups: dict[Group, set[Key]] = {}
        self._generation = 0
        self._layout: _Layout | None = None
        self._plain: PlainBody | None = None
        self._gzip: GzipBody | None = None
        self._gzip_lock = asyncio.Lock()

    # --- updates ----------------------------------------------------------------------------

    def set(self, group: Group, key: Key, blocks: Mapping[Family, bytes]) -> bool:
        """Replace everything `key` contributes with `blocks` (families absent from it vanish).
        Returns False, and keeps the cached bodies, when nothing changed."""
        self._groups.setdefault(group, set()).add(key)
        if not self._put((key, group), blocks):
            return False
        self._generation += 1
        return True

    def delete(self, group: Group, key: Key) -> None:
        if (key, group) in self._families_of:
            self._put((key, group), {})
            self._generation += 1
        members = self._groups.get(group)
        if members is not None:
            members.discard(key)

    def replace_group(self, group: Group, items: Mapping[K, Mapping[Family, bytes]]) -> None:
        """A relist: the group's keys become exactly `items`, in one step."""
        for key in self._groups.get(group, set()) - items.keys():
            self._put((key, group), {})
        for key, blocks in items.items():
            self._put((key, group), blocks)
        self._groups[group] = set(items)
        self._generation += 1

    def adopt(self, other: MetricsStore) -> None:
        """Take over every block of `other` in one step (a re-shard renders into a store of its own
        and is swapped in once it has listed everything); `other` must not be used afterwards."""
        self._family_segments = other._family_segments
        self._families_of = other._families_of
        self._groups = other._groups
        self._generation += other._generation + 1
        self._layout = None
        self._plain = None
        self._gzip = None

    def keys(self, group: Group) -> frozenset[Key]:
        return frozenset(self._groups.get(group, ()))

    def _put(self, key: Slot, blocks: Mapping[Family, bytes]) -> bool:
        """Make `key`'s blocks exactly `blocks`; returns whether anything changed."""
        old = self._families_of.pop(key, ())
        present = tuple(family for family, block in blocks.items() if block)
        outcome = _Put.UNCHANGED
        for family in present:
            outcome = max(outcome, self._family_segments[family].put(key, blocks[family]))
        for family in old:
            if family not in present:
                restructured = self._family_segments[family].remove(key)
                outcome = max(outcome, _Put.RESTRUCTURED if restructured else _Put.CHANGED)
        if present:
            self._families_of[key] = present
        if outcome is _Put.RESTRUCTURED:
            self._layout = None
        return outcome is not _Put.UNCHANGED

    # --- reading ----------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        return self._generation

    def object_count(self) -> int:
        return len(self._families_of)

    def body(self) -> bytes:
        """The exposition of every stored block."""
        return b"".join(self.plain().parts)

    def plain(self) -> PlainBody:
        """The exposition as parts to send one after the other; only changed segments are joined
        again, and an unchanged store returns the same object."""
        if self._plain is None or self._plain.generation != self._generation:
            parts = tuple(segment.text() for segment in self._current_layout().segments)
            self._plain = PlainBody(self._generation, parts, sum(len(part) for part in parts))
        return self._plain

    async def gzip(self) -> GzipBody:
        """The exposition compressed, except for the final block (see GzipBody).

        Only segments that changed since the last gzip body are compressed again, in a worker
        thread (zlib releases the GIL), so watch events keep being applied meanwhile; builds run
        one at a time and concurrent scrapes of the same generation share one.
        """
        async with self._gzip_lock:
            if self._gzip is None or self._gzip.generation != self._generation:
                self._gzip = await self._build_gzip()
            return self._gzip

    async def _build_gzip(self) -> GzipBody:
        generation = self._generation
        layout = self._current_layout()
        snapshot = [segment.deflated for segment in layout.segments]
        stale = [index for index, part in enumerate(snapshot) if part is None]
        versions = [layout.segments[index].version for index in stale]
        fresh = await asyncio.to_thread(_deflate_all, [layout.segments[index].text() for index in stale])
        # Changes applied during the await only mark segments stale again; what is built here,
        # the compressed list and the CRC tree all describe the segments as of `generation`.
        for index, version, part in zip(stale, versions, fresh, strict=True):
            segment = layout.segments[index]
            if segment.version == version:
                segment.deflated = part
            snapshot[index] = part
        if layout.compressed is None or layout.crc is None:
            layout.compressed = [part or EMPTY for part in snapshot]
            layout.crc = CrcTree(layout.compressed)
        else:
            for index, part in zip(stale, fresh, strict=True):
                layout.compressed[index] = part
                layout.crc.update(index, part)
        prefix = b"".join([GZIP_HEADER, *(part.data for part in layout.compressed)])
        return GzipBody(generation, prefix, layout.crc.crc, layout.crc.length)

    def _current_layout(self) -> _Layout:
        if self._layout is None:
            segments: list[_Segment] = []
            for family in self.families:
                segments.extend(self._family_segments[family].layout())
            self._layout = _Layout(segments)
        return self._layout


def _deflate_all(texts: list[bytes]) -> list[Deflated]:
    return [deflate_part(text) for text in texts]
