"""What every registered source must bring (docs/development.md, "Adding a MindX producer"):
a parser test over a fixture the source's watch selects, a simulator producer, families with a
unique exposition position, and (checked elsewhere) a docs row per family
(tests/test_docs_metrics.py) and an RBAC rule (tests/test_deploy.py). A source added to
exporter/registry.py without them fails here."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from exporter.apiserver.store import Store
from exporter.devices import select_objects
from exporter.registry import ALL_FAMILIES, SOURCES
from exporter.simulator import ClusterSimulator
from exporter.sources.base import Source
from tests.helpers import FIXTURES

TESTS = Path(__file__).parent
SOURCE_NAMES = [source.name for source in SOURCES]

# Sources the simulator does not write, each with the reason. Keep this empty where possible:
# the demo and the benchmark show only what the simulator writes.
NOT_SIMULATED: dict[str, str] = {}


def by_name(name: str) -> Source[Any]:
    return next(source for source in SOURCES if source.name == name)


def module_of(source: Source[Any]) -> str:
    """`exporter.sources.deviceplugin` → `deviceplugin`: the name its parser test is filed under."""
    return source.parse.__module__.split(".")[2]


def selected_fixtures(source: Source[Any]) -> list[str]:
    """Fixture files the source's watch selects (in its default namespace) and its parser turns
    into records."""
    chosen = []
    for path in sorted(FIXTURES.glob("*.json")):
        obj = json.loads(path.read_text())
        if select_objects([obj], source, source.namespace) and source.parse(obj).records:
            chosen.append(path.name)
    return chosen


@pytest.mark.parametrize("name", SOURCE_NAMES)
def test_source_has_a_parser_test_over_a_fixture(name: str) -> None:
    source = by_name(name)
    fixtures = selected_fixtures(source)
    assert fixtures, f"no fixture in tests/fixtures is selected by {name}'s watch and parses to records"
    test_file = TESTS / f"test_{module_of(source)}_parser.py"
    assert test_file.exists(), f"{name}: {test_file.name} is missing"
    text = test_file.read_text()
    assert any(fixture in text for fixture in fixtures), (
        f"{test_file.name} tests none of the fixtures {name} selects: {fixtures}"
    )


def simulated_objects() -> dict[str, list[dict[str, Any]]]:
    """Everything a small simulated cluster writes in its first simulated hour, per source."""
    store = Store()
    simulator = ClusterSimulator(store, nodes=40, seed=5, start_time=1_780_000_000.0, shard_limit=6000)
    simulator.populate()
    found: dict[str, list[dict[str, Any]]] = {source.name: [] for source in SOURCES}
    for _ in range(12):
        simulator.report_clusterd()
        simulator.report_volcano()
        for source in SOURCES:
            watch = source.watch
            listed = store.list(
                watch.resource,
                watch.namespace,
                label_selector=watch.label_selector,
                field_selector=watch.field_selector,
            )
            found[source.name] += [obj for obj in listed if watch.wants(obj["metadata"]["name"])]
        simulator.advance(300.0)
    return found


@pytest.fixture(scope="module")
def simulated() -> dict[str, list[dict[str, Any]]]:
    return simulated_objects()


@pytest.mark.parametrize("name", SOURCE_NAMES)
def test_source_has_a_simulator_producer(name: str, simulated: dict[str, list[dict[str, Any]]]) -> None:
    if name in NOT_SIMULATED:
        pytest.skip(NOT_SIMULATED[name])
    source = by_name(name)
    objects = simulated[name]
    assert objects, f"the simulator writes nothing {name} watches ({source.watch})"
    parsed = [source.parse(obj) for obj in objects]
    assert any(p.records for p in parsed), f"nothing the simulator writes for {name} parses to records"
    problems = [(p.key, p.reason, p.detail) for result in parsed for p in result.problems.items]
    assert not problems, f"the simulator writes {name} objects its parser flags: {problems[:3]}"


def test_every_family_has_its_own_exposition_position() -> None:
    orders = [family.order for family in ALL_FAMILIES]
    assert len(set(orders)) == len(orders), "two families share an `order`"
    names = [family.name for family in ALL_FAMILIES]
    assert len(set(names)) == len(names)


def test_the_core_names_no_source() -> None:
    """The wiring, the store, the server and the kube client know sources only through the
    registry's declarations."""
    core = [
        "exporter/app.py",
        "exporter/server.py",
        "exporter/metrics/store.py",
        "exporter/handlers/base.py",
        "exporter/handlers/objects.py",
        "exporter/handlers/joins.py",
        *(str(p.relative_to(TESTS.parent)) for p in (TESTS.parent / "exporter" / "kube").glob("*.py")),
    ]
    names = "|".join(re.escape(source.name) for source in SOURCES)
    pattern = re.compile(rf"[\"'](?:{names})[\"']|isinstance\(\w+, (?:NodeView|NodeStatusRecord)")
    for path in core:
        text = (TESTS.parent / path).read_text()
        assert not pattern.search(text), f"{path} names a source: {pattern.search(text)}"
