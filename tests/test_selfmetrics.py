"""The exporter's own series: rendered as prometheus_client would, current for everything the
exporter counts, and shared between scrapes only for the continuously moving process series."""

from __future__ import annotations

from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.kube.reflector import WatchTarget
from exporter.metrics.selfmetrics import ExporterMetrics

TARGET = WatchTarget(source="device-plugin", namespace="kube-system", resource="configmaps")


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample except the process ones, which move between two renders."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
        if not sample.name.startswith("process_")
    }


def test_render_matches_prometheus_client() -> None:
    metrics = ExporterMetrics(render_max_age=0)
    metrics.register_target(TARGET)
    metrics.listed(TARGET, "start", 3)
    metrics.parse_error("noded", 'bad "quote"\\ and\nnewline', 2)
    metrics.observe_render(0.003)
    ours, reference = metrics.render(), generate_latest(metrics.registry)
    assert samples(ours) == samples(reference)
    headers = [line for line in ours.decode().splitlines() if line.startswith("# TYPE")]
    assert headers == [line for line in reference.decode().splitlines() if line.startswith("# TYPE")]
    assert (
        samples(ours)[
            (
                "mindx_exporter_parse_errors_total",
                (("reason", 'bad "quote"\\ and\nnewline'), ("source", "noded")),
            )
        ]
        == 2
    )


def test_counted_changes_show_at_once_process_series_within_max_age() -> None:
    metrics = ExporterMetrics(render_max_age=3600)
    metrics.register_target(TARGET)
    first = metrics.render()
    assert metrics.render() is first  # nothing counted changed: shared
    metrics.observe_render(0.002)
    assert metrics.render() is first  # a render time alone waits for the max age
    metrics.parse_error("noded", "invalid_json")
    metrics.watch_up(TARGET, True)
    current = samples(metrics.render())
    errors = ("mindx_exporter_parse_errors_total", (("reason", "invalid_json"), ("source", "noded")))
    up = ("mindx_exporter_watch_up", (("namespace", "kube-system"), ("source", "device-plugin")))
    assert current[errors] == 1 and current[up] == 1
    assert current[("mindx_exporter_scrape_render_seconds_count", ())] == 1


def test_object_counts_rerender_only_when_they_change() -> None:
    metrics = ExporterMetrics(render_max_age=3600)
    metrics.register_target(TARGET)
    metrics.set_objects(TARGET, 5)
    first = metrics.render()
    metrics.set_objects(TARGET, 5)  # every watch event reports the count, mostly unchanged
    assert metrics.render() is first
    metrics.set_objects(TARGET, 6)
    objects = ("mindx_exporter_objects", (("namespace", "kube-system"), ("source", "device-plugin")))
    assert samples(metrics.render())[objects] == 6
