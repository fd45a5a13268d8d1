"""The alert rules (deploy/prometheus), their unit tests, runbooks and the Alertmanager example.

Runs `promtool` and `amtool` (Debian packages `prometheus` and `prometheus-alertmanager`; .ci/run
installs them); the tests that need one skip when it is missing.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from exporter.metrics.selfmetrics import ExporterMetrics
from exporter.registry import ALL_FAMILIES, SOURCES
from exporter.sources.common import CHIP_LEVEL_RANK

ROOT = Path(__file__).resolve().parent.parent
PROM_DIR = ROOT / "deploy" / "prometheus"
RULES = PROM_DIR / "alerts.yaml"
PROMETHEUSRULE = PROM_DIR / "prometheusrule.yaml"
UNIT_TESTS = sorted((PROM_DIR / "tests").glob("*.yaml"))
ALERTMANAGER = ROOT / "deploy" / "alertmanager" / "alertmanager.yaml"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
ALERTS_DOC = ROOT / "docs" / "alerts.md"

SEVERITIES = {"critical", "warning"}
SUBJECTS = {"chip", "node", "switch", "job", "data", "exporter"}
# The labels that say where the problem is, per subject: every firing unit test must show them.
LOCATING_LABELS = {
    "chip": {"node"},
    "node": {"node"},
    "switch": {"node"},
    "job": {"namespace"},  # and the job: `podgroup`, or `job` (its name) where ClusterD names it
    "data": set(),
    "exporter": set(),
}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (apt-get install prometheus prometheus-alertmanager)")
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


@cache
def generate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mindx_generate_rules", PROM_DIR / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def all_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def alert_rules() -> list[dict[str, Any]]:
    return [rule for rule in all_rules() if "alert" in rule]


def recorded_names() -> set[str]:
    return {rule["record"] for rule in all_rules() if "record" in rule}


def alert_names() -> list[str]:
    return [rule["alert"] for rule in alert_rules()]


def github_anchors(markdown: str) -> set[str]:
    """Anchors GitHub generates for the headings of a Markdown file."""
    anchors = set()
    for line in markdown.splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


# --- promtool / amtool -------------------------------------------------------------------------


def test_promtool_check_rules(tmp_path: Path) -> None:
    promtool = tool("promtool")
    result = run(promtool, "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(all_rules())} rules found" in result.stdout
    # The PrometheusRule's spec is a valid rule file too.
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(yaml.safe_load(PROMETHEUSRULE.read_text())["spec"]))
    result = run(promtool, "check", "rules", str(spec))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests() -> None:
    promtool = tool("promtool")
    assert UNIT_TESTS
    result = run(promtool, "test", "rules", *map(str, UNIT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(UNIT_TESTS)


def test_amtool_check_config() -> None:
    amtool = tool("amtool")
    result = run(amtool, "check-config", str(ALERTMANAGER))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (
            ["alertname=MindXNPUChipSeparated", "severity=critical", "fault_handling=SeparateNPU"],
            "npu-hardware,mindx-pager",
        ),
        (
            ["alertname=MindXNPUChipSeparated", "severity=critical", "fault_handling=ManuallySeparateNPU"],
            "npu-hardware,mindx-pager",
        ),
        (["alertname=MindXNodeUnhealthy", "severity=critical", "subject=node"], "mindx-pager"),
        (
            ["alertname=MindXNPUChipPreSeparate", "severity=warning", "fault_handling=PreSeparateNPU"],
            "npu-operations",
        ),
        (
            ["alertname=MindXNPUChipRestartFaultPersists", "severity=warning", "fault_handling=RestartNPU"],
            "npu-operations",
        ),
        (["alertname=MindXDevicePluginStale", "severity=warning", "subject=data"], "mindx-chat"),
    ],
)
def test_alertmanager_routes(labels: list[str], receivers: str) -> None:
    amtool = tool("amtool")
    result = run(
        amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER}",
        f"--verify.receivers={receivers}", *labels,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_inhibitions_name_real_alerts() -> None:
    config = yaml.safe_load(ALERTMANAGER.read_text())
    names = set(alert_names())
    for rule in config["inhibit_rules"]:
        for matcher in rule["source_matchers"]:
            match = re.fullmatch(r'alertname(=~?)"(.*)"', matcher)
            if match:
                pattern = re.compile(match.group(2) if match.group(1) == "=~" else re.escape(match.group(2)))
                assert any(pattern.fullmatch(n) for n in names), matcher
    node_rule = next(
        r for r in config["inhibit_rules"] if r["source_matchers"] == ['alertname="MindXNodeUnhealthy"']
    )
    assert node_rule["target_matchers"] == ['subject="chip"'] and node_rule["equal"] == ["node"]
    assert config["route"]["group_by"] == ["alertname", "node"]


# --- the rules themselves ----------------------------------------------------------------------


def test_every_alert_is_labelled_annotated_and_has_a_runbook() -> None:
    anchors = github_anchors(RUNBOOKS.read_text())
    base = generate().DEFAULT_RUNBOOK_BASE
    assert len(set(alert_names())) == len(alert_names()), "duplicate alert names"
    for rule in alert_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert rule["labels"]["subject"] in SUBJECTS, name
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url"}, name
        assert annotations["summary"].strip() and annotations["description"].strip(), name
        url, _, anchor = annotations["runbook_url"].partition("#")
        assert url == base, name
        assert anchor == name.lower(), f"{name}: runbook anchor {anchor!r}"
        assert anchor in anchors, f"{name}: no heading for #{anchor} in docs/runbooks.md"


def test_every_alert_has_a_firing_test_and_a_near_miss() -> None:
    firing: dict[str, list[dict[str, Any]]] = {}
    quiet: set[str] = set()
    for path in UNIT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                expected = check.get("exp_alerts") or []
                if expected:
                    firing.setdefault(check["alertname"], []).extend(expected)
                else:
                    quiet.add(check["alertname"])
    rules = {rule["alert"]: rule for rule in alert_rules()}
    assert set(firing) | quiet <= set(rules), "unit tests for alerts that do not exist"
    for name, rule in rules.items():
        assert name in firing, f"{name}: no promtool test where it fires"
        assert name in quiet, f"{name}: no promtool near-miss test"
        for alert in firing[name]:
            labels = alert["exp_labels"]
            assert labels["severity"] == rule["labels"]["severity"], name
            assert LOCATING_LABELS[rule["labels"]["subject"]] <= set(labels), name
            if rule["labels"]["subject"] == "job":
                assert {"podgroup", "job"} & set(labels), name
            assert set(alert.get("exp_annotations", {})) == {"summary", "description", "runbook_url"}, name


def test_chip_alerts_keep_chip_labels() -> None:
    """Chip alerts must say where (node, npu, id) and, for alerts on the chip's current faults,
    at which fault_handling."""
    rules = {rule["alert"]: rule for rule in alert_rules()}
    for path in UNIT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                name = check["alertname"]
                if name.startswith("MindXNPUChip"):
                    current = re.search(r"mindx_npu_chip_fault(_level|_code)?\b", rules[name]["expr"])
                    wanted = {"node", "npu", "id"} | ({"fault_handling"} if current else set())
                    for alert in check.get("exp_alerts") or []:
                        assert wanted <= set(alert["exp_labels"]), name


def test_rules_use_only_served_metrics_labels_and_sources() -> None:
    families = {f.name: set(f.labels) for f in ALL_FAMILIES}
    self_metrics = set()
    for family in ExporterMetrics().registry.collect():
        self_metrics.add(family.name + ("_total" if family.type == "counter" else ""))
    sources = {spec.name for spec in SOURCES}
    prometheus_labels = {"job", "instance"}
    checked = 0
    for rule in alert_rules():
        name = rule["alert"]
        text = rule["expr"] + " ".join(rule["annotations"].values())
        for recorded in set(re.findall(r"\b\w+:\w+:\w+", text)):
            assert recorded in recorded_names(), f"{name}: unknown recording rule {recorded}"
        text = re.sub(r"\b\w+:\w+:\w+", "", text)
        for metric in set(re.findall(r"\bmindx_[a-z_]+", text)):
            assert metric in families or metric in self_metrics, f"{name}: unknown metric {metric}"
        for metric, selector in re.findall(r"\b(mindx_[a-z_]+)\{([^}]*)\}", text):
            for label, value in re.findall(r'(\w+)\s*(?:=~|!~|!=|=)\s*(?:"([^"]*)"|%q)', selector):
                checked += 1
                if metric in families:
                    assert label in families[metric] | prometheus_labels, f"{name}: {metric}{{{label}}}"
                if label == "source" and value:
                    assert set(value.split("|")) <= sources, f"{name}: source {value}"
    assert checked > 20


def test_unknown_fault_handling_list_matches_the_exporter() -> None:
    rule = next(r for r in alert_rules() if r["alert"] == "MindXNPUChipUnknownFaultHandling")
    known = re.search(r'fault_handling!~"([^"]+)"', rule["expr"])
    assert known is not None
    assert set(known.group(1).split("|")) == set(CHIP_LEVEL_RANK)


def test_alerts_doc_lists_every_alert_with_its_severity_and_for() -> None:
    rows = {}
    for line in ALERTS_DOC.read_text().splitlines():
        match = re.match(r"^\| \[(\w+)\]\(runbooks\.md#(\w+)\) \| (\w+) \|[^|]*\| (\w+) \|", line)
        if match:
            rows[match.group(1)] = match.groups()[1:]
    for rule in alert_rules():
        name = rule["alert"]
        assert name in rows, f"{name} missing from docs/alerts.md"
        anchor, severity, duration = rows[name]
        assert (anchor, severity, duration) == (name.lower(), rule["labels"]["severity"], rule["for"]), name
    assert set(rows) == set(alert_names())


# --- the PrometheusRule -------------------------------------------------------------------------


def test_prometheusrule_is_generated_from_alerts_yaml() -> None:
    gen = generate()
    rendered = gen.render_prometheusrule()
    assert PROMETHEUSRULE.read_text() == rendered, "run: python3 deploy/prometheus/generate.py"
    document = yaml.safe_load(PROMETHEUSRULE.read_text())
    assert document["apiVersion"] == "monitoring.coreos.com/v1"
    assert document["kind"] == "PrometheusRule"
    assert document["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    assert gen.main(["--check"]) == 0


def test_generate_check_detects_drift(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gen = generate()
    stale = tmp_path / "prometheusrule.yaml"
    stale.write_text(PROMETHEUSRULE.read_text().replace("for: 5m", "for: 6m", 1))
    monkeypatch.setattr(gen, "PROMETHEUSRULE_FILE", stale)
    assert gen.main(["--check"]) == 1


def test_generate_customizes_job_matcher_and_runbook_base(tmp_path: Path) -> None:
    gen = generate()
    out = tmp_path / "rules.yaml"
    assert gen.main([
        "--format", "rules", "--job-regex", 'my-npu\\.exporter', "--runbook-base", "https://wiki.example/rb/",
        "-o", str(out),
    ]) == 0  # fmt: skip
    rules = [r for g in yaml.safe_load(out.read_text())["groups"] for r in g["rules"]]
    down = next(r for r in rules if r.get("alert") == "MindXExporterDown")
    assert down["expr"].strip() == 'up{job=~"my-npu\\\\.exporter"} == 0'
    assert all(
        r["annotations"]["runbook_url"].startswith("https://wiki.example/rb#") for r in rules if "alert" in r
    )
    assert not any(gen.DEFAULT_JOB_MATCHER in yaml.safe_dump(r) for r in rules)
    if shutil.which("promtool"):
        result = run("promtool", "check", "rules", str(out))
        assert result.returncode == 0, result.stdout + result.stderr
    manifest = tmp_path / "pr.yaml"
    assert gen.main(["--label", "release=kps", "--namespace", "monitoring", "-o", str(manifest)]) == 0
    metadata = yaml.safe_load(manifest.read_text())["metadata"]
    assert metadata["namespace"] == "monitoring" and metadata["labels"]["release"] == "kps"
