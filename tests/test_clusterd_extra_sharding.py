"""ClusterD's `cluster-system` reports split across shards: every shard renders only its part (a
node's public faults and separations with the node, a job's scheduling exception with the job, the
public-fault totals on shard 0, an object's `mindx_configmap_invalid` with the object), and the
shards together serve exactly the unsharded series, each once."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from exporter.handlers.base import HandlerOptions
from exporter.metrics.selfmetrics import ExporterMetrics
from exporter.metrics.store import MetricsStore
from exporter.registry import ALL_FAMILIES, SOURCES_BY_NAME, watch_target
from exporter.sharding import Shard
from tests.helpers import Series, fixture, parse_exposition

BROKEN_JOB = (
    '{"jobName":"x","jobType":"Job","nameSpace":"default","conditions":{"status":"Lost","reason":"R"}}'
)


def objects(source: str) -> list[dict[str, Any]]:
    if source == "clusterd-public-faults":
        cm = fixture("statistic-fault-info-normal.json")
        faults = orjson.loads(cm["data"]["PublicFaults"])
        faults.update({f"node{n:03d}": faults["node140"] for n in range(40)})
        cm["data"]["PublicFaults"] = orjson.dumps(faults).decode()
        cm["data"]["FaultNum"] = orjson.dumps({"publicFaultNum": len(faults)}).decode()
        return [cm]
    if source == "clusterd-manual-separation":
        cm = fixture("clusterd-manual-info-cm-multi.json")
        cm["data"].update(
            {f"node{n:03d}": cm["data"]["node150"].replace("npu-12", f"npu-{n % 8}") for n in range(40)}
        )
        return [cm]
    cm = fixture("scheduling-exception-report-jobs.json")
    template = cm["data"]["bert-8p.5e7a9c1b-0d2f-4b6e-a1c3-e5f7091b2d4f"]
    cm["data"].update({f"job-{n}.uid-{n}": template.replace('"bert-8p"', f'"job-{n}"') for n in range(40)})
    cm["data"]["x.uid-x"] = BROKEN_JOB
    return [cm]


def serve(source: str, shard: Shard) -> Series:
    spec = SOURCES_BY_NAME[source]
    store = MetricsStore(ALL_FAMILIES)
    handler = spec.handler(spec, watch_target(spec), store, ExporterMetrics(), HandlerOptions(shard=shard))
    handler.replace(objects(source))
    return parse_exposition(store.body().decode())


@pytest.mark.parametrize(
    "source", ["clusterd-public-faults", "clusterd-manual-separation", "clusterd-scheduling-exceptions"]
)
def test_shards_together_serve_each_series_once(source: str) -> None:
    whole = serve(source, Shard())
    assert len(whole) > 10
    parts = [serve(source, Shard(ordinal, 3)) for ordinal in range(3)]
    assert all(parts), "a shard with nothing: the split did not happen"
    seen: Series = {}
    for part in parts:
        assert not seen.keys() & part.keys(), "a series served by two shards"
        seen.update(part)
    assert seen == whole
    if source == "clusterd-public-faults":
        totals = [p for p in parts if any(name == "mindx_public_faults" for name, _ in p)]
        assert totals == [parts[0]]
