"""A source the API server refuses (403 Forbidden: no Role in its namespace; 404: no such
namespace or resource) stops holding readiness back after `ReflectorOptions.denied_grace`, while
the other sources are served; `/readyz`, the log and `mindx_exporter_watch_up` say what is
missing. Through real HTTP: the exporter against the Kubernetes API test server refusing one
namespace."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import orjson
import pytest

from exporter.apiserver import KubeApiTestServer
from exporter.app import SourceSelection
from exporter.logs import JsonFormatter
from exporter.registry import SOURCES
from tests.conftest import TEST_REFLECTOR, StartExporter
from tests.helpers import eventually, labels, select
from tests.test_fault_injection import dp_cm

GRACE = 1.0
OPTIONS = dataclasses.replace(TEST_REFLECTOR, denied_grace=GRACE)
TWO_SOURCES = SourceSelection(
    enabled={spec.name: spec.name in ("device-plugin", "volcano") for spec in SOURCES}
)
VOLCANO = labels(source="volcano", namespace="volcano-system")
DEVICE_PLUGIN = labels(source="device-plugin", namespace="kube-system")


def log_lines(caplog: pytest.LogCaptureFixture, message: str) -> list[dict[str, object]]:
    formatter = JsonFormatter()
    return [
        orjson.loads(formatter.format(record)) for record in caplog.records if record.getMessage() == message
    ]


@pytest.mark.parametrize(
    ("status", "says"),
    [
        (
            403,
            [
                "403 Forbidden: grant the exporter's service account",
                '"list" and "watch" on configmaps in namespace volcano-system',
                "or set --source.volcano.enabled=false",
            ],
        ),
        (
            404,
            [
                "404 Not Found for configmaps in namespace volcano-system",
                "set --source.volcano.namespace",
                "or --source.volcano.enabled=false",
            ],
        ),
    ],
)
async def test_refused_source_stops_blocking_readiness_and_says_what_to_do(
    api: KubeApiTestServer,
    start_exporter: StartExporter,
    caplog: pytest.LogCaptureFixture,
    status: int,
    says: list[str],
) -> None:
    caplog.set_level(logging.INFO, logger="exporter.reflector")
    api.store.apply("configmaps", dp_cm("node-1", {2: ("SeparateNPU", "80E18402")}, 1744181950))
    api.refuse("volcano-system", "configmaps", status=status)
    exporter = await start_exporter(reflector=OPTIONS, sources=TWO_SOURCES, wait_ready=False)

    async def ready() -> None:
        code, body, _ = await exporter.get("/readyz")
        assert code == 200, body

    await eventually(ready, timeout=10)
    _, body, _ = await exporter.get("/readyz")
    text = body.decode()
    assert text.startswith("ok\nnot served: volcano/volcano-system: ") and text.count("\n") == 2
    assert all(part in text for part in says), text

    series = await exporter.scrape()
    assert select(series, "mindx_exporter_watch_up") == {VOLCANO: 0, DEVICE_PLUGIN: 1}
    reason = "forbidden" if status == 403 else "not_found"
    errors = select(series, "mindx_exporter_watch_errors_total", source="volcano")
    assert set(errors) == {labels(source="volcano", namespace="volcano-system", reason=reason)}
    assert select(series, "mindx_npu_chip_fault_level", node="node-1"), "the other source is not served"

    (given_up,) = log_lines(caplog, "source refused by the API server, no longer blocking readiness")
    assert given_up["level"] == "warning" and given_up["source"] == "volcano"
    assert all(part in str(given_up["fix"]) for part in says), given_up
    failures = log_lines(caplog, "list/watch failed")
    assert failures and all(line["status"] == status and line["fix"] == given_up["fix"] for line in failures)

    # The Role is granted: the source lists, streams, and /readyz no longer mentions it.
    api.allow()

    async def served() -> None:
        code, body, _ = await exporter.get("/readyz")
        assert (code, body) == (200, b"ok\n")
        assert select(await exporter.scrape(), "mindx_exporter_watch_up", source="volcano") == {VOLCANO: 1}

    await eventually(served, timeout=10)


async def test_refused_source_blocks_readiness_during_the_grace(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    """RBAC created with the Deployment may take a moment: a refusal does not release readiness
    at once, but /readyz already says what is refused."""
    api.refuse("volcano-system", "configmaps")
    options = dataclasses.replace(OPTIONS, denied_grace=600)
    exporter = await start_exporter(reflector=options, sources=TWO_SOURCES, wait_ready=False)

    async def refused_three_times() -> None:
        series = await exporter.scrape()
        errors = select(series, "mindx_exporter_watch_errors_total", source="volcano", reason="forbidden")
        assert sum(errors.values()) >= 3

    await eventually(refused_three_times, timeout=10)
    code, body, _ = await exporter.get("/readyz")
    assert code == 503
    assert body.startswith(b"not ready: waiting for first list of volcano/volcano-system\nnot served: ")


async def test_other_failures_keep_blocking_readiness(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    """Only a refusal stops blocking readiness: an API server answering 503 for the namespace is
    not a configuration problem, and the exporter must not report ready without the data."""
    api.fail_next(10**6, 503, path="/namespaces/volcano-system/")
    exporter = await start_exporter(reflector=OPTIONS, sources=TWO_SOURCES, wait_ready=False)
    await asyncio.sleep(3 * GRACE)  # three times as long as a refused source would block
    code, body, _ = await exporter.get("/readyz")
    assert (code, body) == (503, b"not ready: waiting for first list of volcano/volcano-system\n")
    series = await exporter.scrape()
    assert select(series, "mindx_exporter_watch_errors_total", source="volcano", reason="server_error")
    assert select(series, "mindx_exporter_watch_up", source="volcano") == {VOLCANO: 0}
