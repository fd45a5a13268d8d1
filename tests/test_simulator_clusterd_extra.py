"""The simulator's ClusterD `cluster-system` producers: Go bytes, lifecycles (public faults arriving
and recovering, separations after repeated faults and their release with the object deleted, stuck
jobs), the overflow patch, and a model untouched by them."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

from exporter.apiserver.store import ApiServerStatusError, Store
from exporter.simulator import ClusterSimulator
from exporter.simulator.clusterd_extra import ClusterDExtraProducer, ExtraRates
from exporter.simulator.model import ClusterModel
from exporter.sources import manualseparation, publicfaults, schedulingexceptions
from exporter.sources.common import go_json_dumps, loads

NS = "cluster-system"
START = 1_780_000_000.0


def get(store: Store, name: str) -> dict[str, Any] | None:
    try:
        return store.get("configmaps", NS, name)
    except ApiServerStatusError:
        return None


def test_values_are_go_bytes_and_parse_without_problems() -> None:
    store = Store()
    simulator = ClusterSimulator(store, nodes=40, seed=3, start_time=START)
    simulator.populate()
    found = dict.fromkeys(
        ("statistic-fault-info", "clusterd-manual-info-cm", "scheduling-exception-report"), 0
    )
    for _ in range(6):
        for name, parse in (
            ("statistic-fault-info", publicfaults.parse_configmap),
            ("clusterd-manual-info-cm", manualseparation.parse_configmap),
            ("scheduling-exception-report", schedulingexceptions.parse_configmap),
        ):
            obj = get(store, name)
            assert obj is not None, name
            parsed = parse(obj)
            assert parsed.records is not None and not parsed.problems.items, name
            found[name] += len(parsed.records)
            for value in obj.get("data", {}).values():
                # Re-marshalled the way Go does, in the decoded key order: byte for byte the same.
                assert go_json_dumps(loads(value)) == value
        simulator.advance(600)
        simulator.report_clusterd()
    assert all(found.values()), found
    labels = get(store, "statistic-fault-info")["metadata"].get("labels")  # type: ignore[index]
    assert labels == {"mc-statistic-fault": "true"}


def test_public_faults_arrive_and_recover() -> None:
    store, model = Store(), ClusterModel(30, seed=2, start_time=START)
    producer = ClusterDExtraProducer(2, ExtraRates(public_per_node_hour=0.2, public_mean_hours=0.5))
    seen: list[set[str]] = []
    for _ in range(12):
        producer.write(store, model)
        faults = loads(get(store, "statistic-fault-info")["data"]["PublicFaults"])  # type: ignore[index]
        seen.append({e["faultId"] for elements in faults.values() for e in elements})
        model.step(900)
    assert any(later - earlier for earlier, later in itertools.pairwise(seen)), "none arrived"
    assert any(earlier - later for earlier, later in itertools.pairwise(seen)), "none recovered"


def test_repeated_faults_separate_a_chip_and_release_deletes_the_object() -> None:
    """With a threshold of 1 every counted fault on a busy chip separates it: the chip and code come
    from the model's faults. After fault_free_hours everything is released and the object deleted."""
    store, model = Store(), ClusterModel(30, seed=4, start_time=START)
    rates = ExtraRates(fault_threshold=1, initial_separations=0, fault_free_hours=2)
    producer = ClusterDExtraProducer(4, rates)
    producer.write(store, model)
    assert get(store, "clusterd-manual-info-cm") is None  # nothing separated: no object
    separated: dict[str, Any] = {}
    for _ in range(20):
        model.step(300)
        producer.write(store, model)
        obj = get(store, "clusterd-manual-info-cm")
        if obj is not None:
            separated = {node: loads(value) for node, value in obj["data"].items()}
            break
    assert separated, "no chip was separated"
    node_name, value = next(iter(separated.items()))
    node = model.node_by_name[node_name]
    chip_name = value["Total"][0]
    chip = node.kind.names.index(chip_name)
    codes = {e["FaultCode"] for e in value["Detail"][chip_name]}
    model_codes = {
        c for faults in (node.chip_faults, node.net_faults) if chip in faults for c in faults[chip].codes
    }
    assert codes and codes <= model_codes, "separated for codes the model raised on that chip"
    producer.rates = replace(rates, fault_threshold=50)
    model.step(3 * 3600)
    producer.write(store, model)
    assert get(store, "clusterd-manual-info-cm") is None


def test_overflow_patches_only_the_count_and_a_full_write_comes_back() -> None:
    store, model = Store(), ClusterModel(20, seed=6, start_time=START)
    rates = ExtraRates(public_per_node_hour=0.0, initial_public=2)
    producer = ClusterDExtraProducer(6, rates)
    producer.write(store, model)
    before = get(store, "statistic-fault-info")["data"]["PublicFaults"]  # type: ignore[index]
    # 5,000 arrivals in one simulated minute, long-lived.
    producer.rates = replace(rates, public_per_node_hour=6000 * 60 / 20, public_mean_hours=100)
    model.step(60)
    producer.write(store, model)
    data = get(store, "statistic-fault-info")["data"]  # type: ignore[index]
    total = loads(data["FaultNum"])["publicFaultNum"]
    assert total > 4500
    assert data["PublicFaults"] == before and "Description" in data
    parsed = publicfaults.parse_configmap(get(store, "statistic-fault-info"))  # type: ignore[arg-type]
    assert parsed.records == {"summary": publicfaults.PublicFaultSummary(total=total, truncated=True)}
    producer.rates = replace(rates, public_per_node_hour=0.0)
    model.step(2000 * 3600)
    producer.write(store, model)
    data = get(store, "statistic-fault-info")["data"]  # type: ignore[index]
    assert data == {"FaultNum": '{"publicFaultNum":0}', "PublicFaults": "{}"}


def test_no_stuck_job_gives_an_object_without_data() -> None:
    store, model = Store(), ClusterModel(10, seed=1, start_time=START)
    producer = ClusterDExtraProducer(
        1, ExtraRates(initial_stuck=1, stuck_per_node_hour=0.0, stuck_mean_hours=0.1)
    )
    producer.write(store, model)
    assert get(store, "scheduling-exception-report")["data"]  # type: ignore[index]
    model.step(100 * 3600)
    producer.write(store, model)
    obj = get(store, "scheduling-exception-report")
    assert obj is not None and "data" not in obj


def test_the_model_is_the_same_with_or_without_these_producers() -> None:
    def run(extra: bool) -> list[Any]:
        store, model = Store(), ClusterModel(20, seed=9, start_time=START)
        producer = ClusterDExtraProducer(9)
        states = []
        for _ in range(10):
            if extra:
                producer.write(store, model)
            model.step(600)
            states.append((model.rng.random(), sorted((n.name, n.version) for n in model.nodes)))
        return states

    assert run(True) == run(False)
