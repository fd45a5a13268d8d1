"""The Grafana dashboards in dashboards/: generated from code, well-formed, deployable, and every
query they run answers with data from a real Prometheus scraping the real exporter.

The end-to-end test runs the demo's pieces in-process — the Kubernetes API test server, the
cluster simulator at the demo's fault rates but much faster, the exporter — and Debian's
`prometheus` on 127.0.0.1 scraping it every second and evaluating the shipped rule file. Once
every kind of fault has shown up (each chip fault_handling level, NodeD and ClusterD node
statuses, switch faults, fault Events, a retry budget, an invalid ConfigMap, chip faults raised
and cleared while Prometheus watched), it runs every panel target and every template-variable
query of every dashboard through Prometheus's HTTP API with the variables set to real values, and
fails on a query error or an empty result. There is no Grafana here: the structural tests check
what Grafana needs to import the JSON unchanged.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.apiserver import KubeApiTestServer
from exporter.app import SourceSelection
from exporter.demo import DEMO_RATES
from exporter.kube.reflector import ReflectorOptions
from exporter.simulator import ClusterSimulator
from exporter.simulator.job_extra import JOB_NAMESPACES
from exporter.sources.common import CHIP_LEVELS
from tests.conftest import StartExporter
from tests.helpers import eventually
from tests.prometheus_process import PROMETHEUS, PrometheusApiError, PrometheusServer, prometheus

try:
    from dashboards import generate, style
except ImportError as err:  # the SDK comes with the test extras
    if os.environ.get("CI"):
        raise
    pytest.skip(f"{err}: python3 -m pip install -e '.[test]'", allow_module_level=True)

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "dashboards"
DOCS = ROOT / "docs" / "dashboards.md"
DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}
UIDS = {
    "mindx-cluster-overview.json": "mindx-cluster-overview",
    "mindx-node-detail.json": "mindx-node-detail",
    "mindx-exporter-health.json": "mindx-exporter-health",
    "mindx-fault-history.json": "mindx-fault-history",
    "mindx-jobs.json": "mindx-jobs",
}
GRID_WIDTH = 24
VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)(?::(\w+))?\}")
# Grafana's own variables, as a Prometheus data source fills them in for a 1 s scrape interval.
BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m", "__range_s": "300"}
RULES = ROOT / "deploy" / "prometheus" / "alerts.yaml"
JOB = "mindx-fault-exporter"


def load(name: str) -> dict[str, Any]:
    board: dict[str, Any] = json.loads((DASHBOARDS / name).read_text())
    return board


def all_dashboards() -> dict[str, dict[str, Any]]:
    return {name: load(name) for name in UIDS}


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, and the panels inside collapsed rows."""
    for item in board["panels"]:
        yield item
        yield from item.get("panels", ())


def data_panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    return (p for p in panels(board) if p["type"] != "row")


def variables(board: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = board["templating"]["list"]
    return result


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield f"{path}/{key}", inner
            yield from walk(inner, f"{path}/{key}")
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from walk(inner, f"{path}/{i}")


# ------------------------------------------------------------------------------------------------
# Generated from code


def test_committed_json_is_what_the_generator_writes() -> None:
    rendered = generate.render_all()
    assert set(rendered) == set(UIDS)
    committed = {p.name for p in DASHBOARDS.glob("*.json")}
    assert committed == set(rendered), "dashboards/*.json not made by dashboards/generate.py"
    for name, text in rendered.items():
        assert (DASHBOARDS / name).read_text() == text, f"{name} is stale: run python3 -m dashboards.generate"


def test_generate_check_detects_drift(tmp_path: Path) -> None:
    assert generate.main(["-o", str(tmp_path)]) == 0
    assert generate.main(["--check", "-o", str(tmp_path)]) == 0
    board = tmp_path / "mindx-node-detail.json"
    board.write_text(board.read_text().replace("Node detail", "Node details"))
    assert generate.main(["--check", "-o", str(tmp_path)]) == 1


def test_level_names_are_the_exporters() -> None:
    """The dashboards name and colour chip levels from the exporter's own level table."""
    assert [name for rank, name, _ in style.CHIP_LEVELS if rank >= 0] == list(CHIP_LEVELS)
    assert [rank for rank, _, _ in style.CHIP_LEVELS] == list(range(-1, len(CHIP_LEVELS)))


# ------------------------------------------------------------------------------------------------
# Structure: what Grafana needs to import the JSON without edits


def _overlaps(a: dict[str, int], b: dict[str, int]) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


@pytest.mark.parametrize("name", sorted(UIDS))
def test_dashboard_structure(name: str) -> None:
    board = load(name)
    assert board["uid"] == UIDS[name] and len(board["uid"]) <= 40
    assert board["title"].startswith("MindX DL / ")
    assert board["schemaVersion"] >= 39  # Grafana 11
    assert "id" not in board or board["id"] is None, "an id would make an import overwrite another dashboard"
    assert "__inputs" not in board and "__requires" not in board
    assert "mindx" in board["tags"]

    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) and i > 0 for i in ids), ids

    # Grid: inside the 24 columns, no two panels overlap; expanded rows own the panels below them,
    # collapsed rows carry theirs inside (checked among themselves).
    groups = [board["panels"]] + [
        p["panels"] for p in board["panels"] if p["type"] == "row" and p.get("panels")
    ]
    for group in groups:
        for panel in group:
            pos = panel["gridPos"]
            assert pos["w"] > 0 and pos["h"] > 0 and pos["x"] >= 0 and pos["y"] >= 0, panel["title"]
            assert pos["x"] + pos["w"] <= GRID_WIDTH, f"{panel['title']} is wider than the grid: {pos}"
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                assert not _overlaps(a["gridPos"], b["gridPos"]), f"{a['title']} overlaps {b['title']}"
    for row in (p for p in board["panels"] if p["type"] == "row"):
        assert row["collapsed"] == bool(row.get("panels")), (
            f"row {row['title']}: collapsed iff it holds panels"
        )

    titles = [p["title"] for p in data_panels(board)]
    assert len(titles) == len(set(titles)), "panel titles are unique within a dashboard"
    for panel in data_panels(board):
        where = f"{name}: {panel['title']}"
        assert panel.get("description"), f"{where}: no description"
        assert panel["datasource"] == DATASOURCE_REF, where
        assert panel["targets"], where
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids) and all(ref_ids), where
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE_REF, where
            assert target["expr"].strip(), where
            assert "datasource" not in target["expr"], where

    # No data source is named by UID anywhere: only the variable.
    for path, value in walk(board):
        if path.endswith("/datasource") and isinstance(value, dict):
            assert value.get("uid") == "${datasource}", f"{name}{path}: {value}"


@pytest.mark.parametrize("name", sorted(UIDS))
def test_json_reads_back_into_the_sdk_models(name: str) -> None:
    """The committed JSON has the shape of Grafana's dashboard schema (the SDK's models, generated
    from it), panel options included."""
    from grafana_foundation_sdk.cog import plugins
    from grafana_foundation_sdk.models import dashboard as model

    plugins.register_default_plugins()
    board = model.Dashboard.from_json(load(name))
    assert board.uid == UIDS[name]
    assert board.panels is not None and len(board.panels) == len(load(name)["panels"])


@pytest.mark.parametrize("name", sorted(UIDS))
def test_template_variables(name: str) -> None:
    board = load(name)
    found = {v["name"]: v for v in variables(board)}
    datasource = found["datasource"]
    assert datasource["type"] == "datasource" and datasource["query"] == "prometheus"
    cluster = found["cluster"]
    # Optional external label: "All" is .*, which also matches series without the label.
    assert cluster["includeAll"] and cluster["allValue"] == ".*"
    assert {"datasource", "cluster"} < set(found)
    defined: set[str] = set()
    for variable in variables(board):
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE_REF, variable["name"]
            assert variable["query"].startswith("label_values("), variable["name"]
            used = {m.group(1) or m.group(2) for m in VARIABLE.finditer(variable["query"])}
            assert used <= defined, f"{variable['name']} uses variables defined after it: {used - defined}"
            if variable.get("multi"):
                assert variable["includeAll"] and variable["allValue"] == ".*", variable["name"]
        defined.add(variable["name"])
    # Every variable a query uses exists (or is Grafana's own).
    for panel in data_panels(board):
        for target in panel["targets"]:
            for match in VARIABLE.finditer(target["expr"]):
                var = match.group(1) or match.group(2)
                assert var in defined or var in BUILTINS, f"{panel['title']}: unknown variable ${var}"


def _level_mapping(mappings: list[dict[str, Any]]) -> dict[str, dict[str, Any]] | None:
    for mapping in mappings:
        options = mapping.get("options", {})
        if mapping["type"] == "value" and "8" in options and "SeparateNPU" in options["8"].get("text", ""):
            return dict(options)
    return None


def test_levels_are_named_and_coloured_by_severity() -> None:
    expected = {str(rank): (f"{rank} {name}", color) for rank, name, color in style.CHIP_LEVELS}
    # The severity order the issue asks for: healthy green, PreSeparateNPU orange, separated red,
    # unknown purple/blue.
    assert expected["0"][1] == "green" and expected["7"][1] == "orange"
    assert "red" in expected["8"][1] and "red" in expected["9"][1]
    assert expected["-1"][1] in ("purple", "blue")
    seen = 0
    for board in all_dashboards().values():
        for _, value in walk(board):
            if isinstance(value, list) and value and isinstance(value[0], dict) and "type" in value[0]:
                found = _level_mapping(value)
                if found is not None:
                    seen += 1
                    assert {k: (v["text"], v["color"]) for k, v in found.items()} == expected
    assert seen >= 3  # node detail's timeline, grid and worst level; the overview's nodes table

    # Thresholds in the same colours (a step at every rank, below 0 the unknown level's colour).
    steps = [(None, style.LEVEL_COLOR[-1])] + [
        (rank, color) for rank, _, color in style.CHIP_LEVELS if rank >= 0
    ]
    level_steps = [
        [(step["value"], step["color"]) for step in value["steps"]]
        for board in all_dashboards().values()
        for _, value in walk(board)
        if isinstance(value, dict) and len(value.get("steps", ())) == len(steps)
    ]
    assert len(level_steps) >= 3 and all(found == steps for found in level_steps), level_steps


def test_docs_describe_every_panel() -> None:
    text = DOCS.read_text()
    for name, board in all_dashboards().items():
        assert name in text, name
        assert board["title"] in text, board["title"]
        for panel in data_panels(board):
            assert f"**{panel['title']}**" in text, (
                f"docs/dashboards.md misses {board['title']}: {panel['title']}"
            )


def test_provisioning_file() -> None:
    config = yaml.safe_load((DASHBOARDS / "provisioning" / "dashboards.yaml").read_text())
    assert config["apiVersion"] == 1
    (provider,) = config["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]


def test_sidecar_configmaps_hold_the_committed_json() -> None:
    from tests.test_deploy import BASE, build

    objects = build(BASE)
    configmaps = [
        o for o in objects if o["kind"] == "ConfigMap" and "grafana_dashboard" in o["metadata"]["labels"]
    ]
    data: dict[str, str] = {}
    for cm in configmaps:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["namespace"] == "mindx-fault-exporter"
        data.update(cm["data"])
    assert data == {name: (DASHBOARDS / name).read_text() for name in UIDS}
    for name, text in data.items():
        # kubectl apply keeps a copy in an annotation limited to 256 KiB.
        assert len(text.encode()) < 200 * 1024, f"{name}: too large for a ConfigMap applied with kubectl"


# ------------------------------------------------------------------------------------------------
# End to end: every query against a real Prometheus


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    ref_id: str
    expr: str
    instant: bool

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref_id}: {self.expr}"


def panel_queries() -> list[Query]:
    return [
        Query(board["title"], panel["title"], target["refId"], target["expr"], bool(target.get("instant")))
        for board in all_dashboards().values()
        for panel in data_panels(board)
        for target in panel["targets"]
    ]


def promql_regex(values: list[str]) -> str:
    """A multi-value selection as Grafana writes it into a PromQL `=~` string."""
    escaped = [re.escape(v).replace("\\", "\\\\") for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def substitute(expr: str, values: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in values, f"no value for ${name} in {expr}"
        return values[name]

    result = VARIABLE.sub(one, expr)
    assert "$" not in result, result
    return result


LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")


async def label_values(prom: PrometheusServer, query: str, start: float) -> list[str]:
    """Grafana's `label_values(selector, label)` for a Prometheus data source: the label's values
    on the series the selector matches."""
    match = LABEL_VALUES.match(query)
    assert match, f"not a label_values() query: {query}"
    series = await prom.series(match["selector"], start, time.time())
    return sorted({s[match["label"]] for s in series if s.get(match["label"])})


async def run(prom: PrometheusServer, query: Query, values: dict[str, str], start: float) -> bool:
    """True when the query answers with at least one series (errors raise)."""
    expr = substitute(query.expr, values)
    if query.instant:
        return bool(await prom.query(expr))
    end = time.time()
    return bool(await prom.query_range(expr, max(start, end - 120), end, 2))


# What the simulated cluster must have shown before the panels are judged (PromQL over the test).
async def _seen(prom: PrometheusServer, expr: str, label: str) -> set[str]:
    return {r["metric"].get(label, "") for r in await prom.query(expr)}


def grew_since(metric: str, since: float) -> str:
    """Series of `metric` that grew after `since` or were born after it (a fault-history counter
    series appears with its first raise, a step increase() cannot see)."""
    then = f"{metric} @ {since:.3f}"
    return f"({metric} - {then} > 0) or ({metric} unless {then})"


async def first_scrape(prom: PrometheusServer) -> float:
    """The time of a scrape of the exporter: what Prometheus holds from then on, it watched."""

    async def scraped() -> float:
        result = await prom.query(f'timestamp(up{{job="{JOB}"}} == 1)')
        assert result, "the exporter was not scraped yet"
        return float(result[0]["value"][1])

    return await eventually(scraped, timeout=10, interval=0.2)


async def missing_fault_kinds(prom: PrometheusServer, watched_since: float) -> list[str]:
    missing: list[str] = []

    def want(what: str, needed: set[str], seen: set[str]) -> None:
        if not needed <= seen:
            missing.append(f"{what}: {sorted(needed - seen)}")

    window = "[10m]"
    want(
        "chip fault_handling",
        set(CHIP_LEVELS[1:]),
        await _seen(
            prom,
            f"group by (fault_handling) (last_over_time(mindx_npu_chip_fault{window}))",
            "fault_handling",
        ),
    )
    want(
        "chip level",
        {"9"},
        await _seen(
            prom, f'count_values("level", max_over_time(mindx_npu_chip_fault_level{window}))', "level"
        ),
    )
    for source, statuses in (("noded", {"PreSeparate", "UnHealthy"}), ("clusterd", {"Healthy", "UnHealthy"})):
        expr = f'group by (status) (max_over_time(mindx_node_status{{source="{source}"}}{window}) == 1)'
        want(f"{source} node status", statuses, await _seen(prom, expr, "status"))
    want(
        "switch status",
        {"UnHealthy"},
        await _seen(prom, f"group by (status) (max_over_time(mindx_switch_status{window}) == 1)", "status"),
    )
    want(
        "fault Events",
        {"Occur", "Recovery"},
        await _seen(prom, "group by (reason) (mindx_npu_fault_events_total)", "reason"),
    )
    for what, expr in (
        ("switch faults now", "mindx_switch_fault_code"),
        ("node device faults now", "mindx_node_fault_code"),
        ("a retry budget", "mindx_job_remaining_retries > 0"),
    ):
        if not await prom.query(expr):
            missing.append(what)
    want(
        "invalid ConfigMap",
        {"json"},
        await _seen(prom, "group by (reason) (mindx_configmap_invalid)", "reason"),
    )
    # Fault history: raises counted and faults timed as they clear while Prometheus watches (the
    # exporter counts only after its first list, so these are the simulator's later moves), and
    # the recording rules evaluated over them.
    for what, expr in (
        ("chip fault raises counted", grew_since("mindx_npu_chip_faults_total", watched_since)),
        (
            "chip faults cleared and timed",
            grew_since("mindx_npu_fault_duration_seconds_count", watched_since),
        ),
        ("fault history rules", "fault_level:mindx_npu_fault_duration_seconds:mean24h >= 0"),
        # ClusterD's reports, Volcano's reschedule records, the recovery files and the DPUs.
        ("a public fault now", "mindx_public_fault"),
        ("a chip separated by ClusterD now", "mindx_npu_chip_manual_separation"),
        ("a job not running now", "mindx_job_scheduling_exception"),
        ("a reschedule's reason and node", "mindx_job_last_reschedule_reason"),
        ("a recovery in progress", f'max_over_time(mindx_job_recovery_ranks{{status="fault"}}{window}) > 0'),
        ("a NIC down now", "mindx_dpu_fault_code"),
    ):
        if not await prom.query(expr):
            missing.append(what)
    return missing


def shipped_rules(cluster: str) -> dict[str, Any]:
    """The shipped rule file, its recorded series labelled with `cluster` as the external label of
    the Prometheus evaluating them shows on a central query (the rules aggregate within one
    Prometheus, so their results carry no target label of their own)."""
    rules: dict[str, Any] = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "record" in rule:
                rule["labels"] = {**rule.get("labels", {}), "cluster": cluster}
    return rules


def broken_configmap(store_cm: dict[str, Any]) -> dict[str, Any]:
    """A device-plugin ConfigMap for a node outside the simulation whose JSON is cut short."""
    cm = copy.deepcopy(store_cm)
    for key in ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation"):
        cm["metadata"].pop(key, None)
    cm["metadata"]["name"] = "mindx-dl-deviceinfo-broken-node"
    cm["data"]["DeviceInfoCfg"] = cm["data"]["DeviceInfoCfg"][:40]
    return cm


@pytest.mark.skipif(PROMETHEUS is None, reason="needs prometheus (Debian package of that name)")
async def test_every_panel_and_variable_query_returns_data(
    api: KubeApiTestServer, start_exporter: StartExporter, tmp_path: Path
) -> None:
    began = time.time()
    # The demo's fault rates, ten simulated minutes per second: every kind of fault within seconds.
    # The clock starts an hour back so the producers' times are not far in the future when it stops
    # racing (most kinds are there after the hour of warm-up; the rest take seconds).
    simulator = ClusterSimulator(
        api.store,
        nodes=40,
        seed=3,
        rates=DEMO_RATES,
        start_time=began - 3600,
        warmup=3600.0,
        time_scale=600.0,
        tick=0.2,
        clusterd_interval=1.0,
        volcano_interval=1.0,
    )
    simulator.populate()
    sample = api.store.list("configmaps", "kube-system", label_selector="mx-consumer-cim=true")[0]
    api.store.apply("configmaps", broken_configmap(sample))

    reflector = ReflectorOptions(
        page_size=500, watch_timeout=30, stall_timeout=10, backoff_initial=0.02, backoff_max=0.2
    )
    # As the demo: the opt-in job-recovery source watches the simulated jobs' namespaces.
    sources = SourceSelection(
        enabled={"job-recovery": True}, namespaces={"job-recovery": ",".join(JOB_NAMESPACES)}
    )
    exporter = await start_exporter(reflector=reflector, sources=sources)
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(shipped_rules("demo")))
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        # The fault history dashboard reads the recording rules.
        "rule_files": [str(rules)],
        "scrape_configs": [
            {
                "job_name": JOB,
                "honor_labels": True,
                # The external label the dashboards' `cluster` variable selects on.
                "static_configs": [
                    {"targets": [f"127.0.0.1:{exporter.exporter.port}"], "labels": {"cluster": "demo"}}
                ],
            }
        ],
    }
    async with simulator, prometheus(config, tmp_path / "prometheus") as prom:
        start = time.time()
        try:
            watched_since = await first_scrape(prom)
            deadline = start + 45
            while missing := await missing_fault_kinds(prom, watched_since):
                assert time.time() < deadline, f"not every kind of fault appeared: {missing}"
                await asyncio.sleep(0.5)
            # From here on the cluster moves at wall-clock speed, so "now" stays put for the panels.
            simulator.time_scale = 1.0

            selection = await resolve_variables(prom, start)
            failing = await failing_queries(prom, selection, start)
            deadline = time.time() + 15
            while failing and time.time() < deadline:
                await asyncio.sleep(1.0)
                failing = await failing_queries(prom, selection, start, only=failing)
            assert not failing, "queries without data:\n" + "\n".join(map(str, failing))
        except AssertionError as err:
            raise AssertionError(f"{err}\n{prom.process.tail()}") from err
    assert time.time() - began < 90, "keep this test under 90 s"


@dataclass
class Selection:
    """Real values for each dashboard's variables, and the nodes to try for `$node`: the node
    detail dashboard shows one node, and a panel passes when some node has its data (no node has
    every kind of fault at once). Busiest nodes first."""

    values: dict[str, dict[str, str]]  # dashboard title → variable → value as Grafana substitutes it
    nodes: list[str]


async def resolve_variables(prom: PrometheusServer, start: float) -> Selection:
    """Run every dashboard's variable queries in order, each with the values of the variables
    before it, as Grafana does; every one must offer values. A multi-value variable takes all its
    values (what Grafana writes when every value is ticked)."""
    values: dict[str, dict[str, str]] = {}
    nodes: list[str] = []
    for board in all_dashboards().values():
        chosen = dict(BUILTINS)
        for variable in variables(board):
            if variable["type"] != "query":
                continue
            found = await label_values(prom, substitute(variable["query"], chosen), start)
            assert found, f"{board['title']}: variable ${variable['name']} has no values: {variable['query']}"
            if variable["name"] == "cluster":
                assert found == ["demo"]
            if variable["name"] == "node":
                nodes = found
            chosen[variable["name"]] = promql_regex(found) if variable.get("multi") else found[0]
        values[board["title"]] = chosen
    assert nodes, "no dashboard has a node variable"
    busiest = await prom.query(
        "sort_desc(count by (node) "
        '({__name__=~"mindx_npu_chip_fault_code|mindx_node_fault_code|mindx_switch_fault_code"}))'
    )
    ranked = [r["metric"]["node"] for r in busiest if r["metric"].get("node") in nodes]
    return Selection(values, ranked + [n for n in nodes if n not in ranked])


async def failing_queries(
    prom: PrometheusServer, selection: Selection, start: float, only: list[Query] | None = None
) -> list[Query]:
    failing: list[Query] = []
    for query in only if only is not None else panel_queries():
        values = selection.values[query.dashboard]
        candidates = selection.nodes if "$node" in query.expr else [values.get("node", "")]
        try:
            for node in candidates:
                if await run(prom, query, {**values, "node": node}, start):
                    break
            else:
                failing.append(query)
        except PrometheusApiError as err:
            raise AssertionError(f"query error in {query}: {err}") from err
    return failing
