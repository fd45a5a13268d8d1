"""The segmented block store: after any sequence of updates, deletions and relists its plain body
is the families' headers and blocks in key order, and its gzip body is one valid gzip member of
exactly that text, even when changes land while a compression is running."""

from __future__ import annotations

import asyncio
import random
import zlib

import pytest

from exporter.metrics import gzipstream
from exporter.metrics import store as store_module
from exporter.metrics.exposition import Family
from exporter.metrics.gzipstream import GZIP_HEADER, crc32_combine, crc32_combine_python, finish_member
from exporter.metrics.store import Group, MetricsStore

FAMILIES = tuple(Family(f"test_family_{n}", "gauge", f"Family {n}.", ("node",)) for n in range(4))


@pytest.fixture(autouse=True)
def small_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    """Segments of a few hundred bytes, so a short test splits and merges them often."""
    monkeypatch.setattr(store_module, "SEGMENT_TARGET", 300)
    monkeypatch.setattr(store_module, "SEGMENT_MAX", 600)
    monkeypatch.setattr(store_module, "SEGMENT_MIN", 75)


def expected_body(state: dict[tuple[str, str], dict[Family, bytes]]) -> bytes:
    out = []
    for family in FAMILIES:
        out.append(family.header())
        out.extend(blocks[family] for key, blocks in sorted(state.items()) if blocks.get(family))
    return b"".join(out)


def gunzip_single_member(data: bytes) -> bytes:
    """Inflate, insisting on exactly one complete member (what curl and Go clients decode)."""
    inflater = zlib.decompressobj(wbits=31)
    text = inflater.decompress(data)
    assert inflater.eof and inflater.unused_data == b""
    return text


async def gzip_text(store: MetricsStore, tail: bytes = b"# tail\n") -> bytes:
    compressed = await store.gzip()
    return gunzip_single_member(compressed.prefix + finish_member(compressed.crc, compressed.length, tail))


def random_blocks(rng: random.Random, node: str) -> dict[Family, bytes]:
    size = rng.choice((10, 60, 200, 900))
    return {
        family: f'{family.name}{{node="{node}"}} {rng.random()}\n'.encode() * rng.randint(1, size // 40 + 1)
        for family in FAMILIES
        if rng.random() < 0.7
    }


async def test_random_changes_keep_body_and_gzip_exact() -> None:
    rng = random.Random(7)
    store = MetricsStore(FAMILIES)
    state: dict[tuple[str, str], dict[Family, bytes]] = {}
    groups = ("a", "b")
    for step in range(400):
        group = rng.choice(groups)
        action = rng.random()
        if action < 0.6:
            key = (group, f"node-{rng.randrange(120):03d}")
            blocks = random_blocks(rng, key[1])
            store.set(group, key, blocks)
            state[key] = blocks
        elif action < 0.85:
            key = (group, f"node-{rng.randrange(120):03d}")
            store.delete(group, key)
            state.pop(key, None)
        else:
            nodes = [f"node-{n:03d}" for n in rng.sample(range(120), 40)]
            items = {(group, node): random_blocks(rng, node) for node in nodes}
            store.replace_group(group, items)
            state = {key: blocks for key, blocks in state.items() if key[0] != group} | items
        if step % 7 == 0:
            want = expected_body(state)
            assert store.body() == want
            assert await gzip_text(store) == want + b"# tail\n"
    assert len(store.plain().parts) > 20  # the body really is spread over many segments


async def test_unchanged_store_reuses_its_bodies() -> None:
    store = MetricsStore(FAMILIES)
    store.set("g", ("g", "n1"), {FAMILIES[0]: b'test_family_0{node="n1"} 1\n'})
    first_plain, first_gzip = store.plain(), await store.gzip()
    assert store.set("g", ("g", "n1"), {FAMILIES[0]: b'test_family_0{node="n1"} 1\n'}) is False
    assert store.plain() is first_plain and await store.gzip() is first_gzip
    store.set("g", ("g", "n1"), {FAMILIES[0]: b'test_family_0{node="n1"} 2\n'})
    assert store.plain() is not first_plain and await store.gzip() is not first_gzip


async def test_changes_during_compression_do_not_leak_into_that_body(monkeypatch: pytest.MonkeyPatch) -> None:
    """A scrape's gzip body is the store as of when it asked, and the next one is current."""
    rng = random.Random(3)
    store = MetricsStore(FAMILIES)
    state = {("g", f"n{n:02d}"): random_blocks(rng, f"n{n:02d}") for n in range(60)}
    store.replace_group("g", state)
    await store.gzip()
    release = asyncio.Event()
    started = asyncio.Event()
    original = store_module._deflate_all

    def slow_deflate(texts: list[bytes]) -> list[gzipstream.Deflated]:
        started.set()
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result()
        return original(texts)

    loop = asyncio.get_running_loop()
    monkeypatch.setattr(store_module, "_deflate_all", slow_deflate)
    store.set("g", ("g", "n05"), random_blocks(rng, "n05") | {FAMILIES[0]: b"changed-before\n"})
    before = store.body()
    scrape = asyncio.create_task(gzip_text(store))
    await started.wait()
    for n in (5, 17, 33):  # changes and a removal while the first compression runs
        store.set("g", ("g", f"n{n:02d}"), {FAMILIES[1]: f"changed-during-{n}\n".encode()})
    store.delete("g", ("g", "n40"))
    store.set("g", ("g", "n99"), {FAMILIES[2]: b"added-during\n" * 40})
    release.set()
    assert await scrape == before + b"# tail\n"
    assert await gzip_text(store) == store.body() + b"# tail\n"
    assert b"changed-during-17" in store.body() and b"added-during" in store.body()


def test_crc32_combination_matches_zlib() -> None:
    rng = random.Random(11)
    for _ in range(200):
        a, b = rng.randbytes(rng.randrange(0, 300)), rng.randbytes(rng.randrange(0, 70000))
        want = zlib.crc32(a + b)
        assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == want
        assert crc32_combine_python(zlib.crc32(a), zlib.crc32(b), len(b)) == want


def test_crc_tree_tracks_updated_parts() -> None:
    rng = random.Random(5)
    texts = [rng.randbytes(rng.randrange(0, 500)) for _ in range(37)]
    parts = [gzipstream.deflate_part(text) for text in texts]
    tree = gzipstream.CrcTree(parts)
    for _ in range(50):
        index = rng.randrange(len(texts))
        texts[index] = rng.randbytes(rng.randrange(0, 500))
        parts[index] = gzipstream.deflate_part(texts[index])
        tree.update(index, parts[index])
        whole = b"".join(texts)
        assert (tree.crc, tree.length) == (zlib.crc32(whole), len(whole))
        ending = finish_member(tree.crc, tree.length, b"")
        assert gunzip_single_member(GZIP_HEADER + b"".join(part.data for part in parts) + ending) == whole


async def test_a_change_recompresses_only_the_segments_holding_it(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(9)
    store = MetricsStore(FAMILIES)
    everywhere = {family: b"x" * 100 for family in FAMILIES}
    store.replace_group("g", {("g", f"n{n:03d}"): everywhere for n in range(200)})
    compressed: list[int] = []
    original = store_module._deflate_all

    def counting(texts: list[bytes]) -> list[gzipstream.Deflated]:
        compressed.append(len(texts))
        return original(texts)

    monkeypatch.setattr(store_module, "_deflate_all", counting)
    await store.gzip()
    assert compressed[-1] > 4 * len(FAMILIES)  # first build: every segment and header
    for _ in range(5):
        node = f"n{rng.randrange(200):03d}"
        store.set("g", ("g", node), {family: b"y" * 100 for family in FAMILIES[:2]})
        await store.gzip()
        # one segment per family the node was in: two changed, two lost the node
        assert compressed[-1] <= len(FAMILIES)
    assert await gzip_text(store) == store.body() + b"# tail\n"


def test_equal_keys_of_two_groups_do_not_overwrite_each_other() -> None:
    """Keys are typed per group, and two key types can compare equal as tuples (a source's
    problem key and its fault-history key): each group's blocks stay its own."""
    store = MetricsStore(FAMILIES)
    first, second = Group("a", "x"), Group("b", "x")
    store.set(first, ("s", "n1"), {FAMILIES[0]: b"from-a\n"})
    store.set(second, ("s", "n1"), {FAMILIES[1]: b"from-b\n"})
    store.set(first, ("s", "n1"), {FAMILIES[0]: b"from-a-again\n"})
    assert b"from-a-again\n" in store.body() and b"from-b\n" in store.body()
    store.replace_group(first, {})
    assert b"from-a" not in store.body() and b"from-b\n" in store.body()
    store.delete(second, ("s", "n1"))
    assert store.body() == b"".join(family.header() for family in FAMILIES)
