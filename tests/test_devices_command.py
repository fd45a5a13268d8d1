"""`mindx-fault-exporter devices`: the vendor's available-devices procedure as a command, read from
the API test server (LIST only) or from a `kubectl get configmaps,events -A -o json` dump.

Golden files: `UPDATE_GOLDEN=1 python3 -m pytest tests/test_devices_command.py` rewrites them."""

from __future__ import annotations

import asyncio
import copy
import io
import json
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from exporter import cli
from exporter.apiserver import KubeApiTestServer
from exporter.app import SourceSelection
from exporter.devices import (
    clusterd_report,
    compact_names,
    device_plugin_report,
    format_age,
    select_objects,
)
from exporter.kube.client import KubeClient
from exporter.kube.config import load_cluster_access
from exporter.kube.listing import list_all
from exporter.registry import SOURCES_BY_NAME
from exporter.sources.shards import merge_shards, newest
from tests.conftest import StartExporter
from tests.helpers import FIXTURES, fixture, select
from tests.test_sources_e2e import load_all

GOLDEN = Path(__file__).parent / "golden"
NOW = "1744200000"  # 2025-04-09 12:00:00 UTC, some hours after the fixtures' snapshot
CLUSTERD_FIXTURES = ("cluster-info-node-cm.json", "cluster-info-device-0.json", "cluster-info-switch-0.json")
DP_FIXTURES = sorted(p.name for p in FIXTURES.glob("deviceinfo-*.json"))
NODED_FIXTURES = sorted(p.name for p in FIXTURES.glob("nodeinfo-*.json"))


def kubectl_dump(names: Sequence[str] | None = None, extra: Sequence[dict[str, Any]] = ()) -> bytes:
    """The fixtures as `kubectl get configmaps,events -A -o json` prints them: a List of mixed kinds."""
    items = []
    for name in names if names is not None else sorted(p.name for p in FIXTURES.glob("*.json")):
        obj = fixture(name)
        items.append(
            {"apiVersion": "v1", "kind": "Event" if name.startswith("event-") else "ConfigMap", **obj}
        )
    items += [{"apiVersion": "v1", "kind": "ConfigMap", **obj} for obj in extra]
    return json.dumps(
        {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}
    ).encode()


def second_device_shard() -> dict[str, Any]:
    """`cluster-info-device-1`, as ClusterD leaves it mid-report: node134 with an older copy (the
    one in shard 0 must win) and node133 with a newer copy (this one must win)."""
    shard = fixture("cluster-info-device-0.json")
    entries = orjson.loads(shard["data"]["cluster-info-device-0"])
    older = copy.deepcopy(entries["mindx-dl-deviceinfo-node134"])
    older["UpdateTime"] -= 100
    older["DeviceList"]["huawei.com/Ascend910"] = "Ascend910-0"
    newer = copy.deepcopy(entries["mindx-dl-deviceinfo-node133"])
    newer["UpdateTime"] += 100
    newer["DeviceList"]["huawei.com/Ascend910"] = "Ascend910-1,Ascend910-2"
    second = copy.deepcopy(shard)
    second["metadata"]["name"] = "cluster-info-device-1"
    second["metadata"]["resourceVersion"] = "920020"
    second["data"] = {
        "cluster-info-device-1": orjson.dumps(
            {"mindx-dl-deviceinfo-node134": older, "mindx-dl-deviceinfo-node133": newer}
        ).decode()
    }
    return second


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text)
        return
    assert path.exists(), f"{path} missing: run with UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(), f"output differs from {path} (UPDATE_GOLDEN=1 rewrites it)"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["devices", *args])
    out, err = capsys.readouterr()
    return code, out, err


async def run_in_thread(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The API test server runs in this test's loop: the command (which runs its own loop) must not."""
    code = await asyncio.to_thread(cli.main, ["devices", *args])
    out, err = capsys.readouterr()
    return code, out, err


def usable_counts(output: str) -> dict[str, int]:
    return {node["node"]: node["usable_count"] for node in json.loads(output)["nodes"]}


# --- the procedure on fixtures -----------------------------------------------------------------


def test_clusterd_procedure_on_fixtures() -> None:
    report = clusterd_report([fixture(name) for name in CLUSTERD_FIXTURES])
    usable = {node: len(r.usable_chips) for node, r in report.nodes.items()}
    assert usable == {"node133": 7, "node134": 7, "node135": 0, "node140": 7, "node150": 8}
    # node135: its switch is UnHealthy, so none of its 7 available chips is usable.
    node135 = report.nodes["node135"]
    assert node135.usable.switch_status == "UnHealthy" and node135.usable.blocked
    assert len(node135.chips_in("available")) == 7
    assert node135.chips_in("manually_separated") == ["Ascend910-3"]
    # node134 is missing from cluster-info-node-cm: healthy for the procedure.
    assert report.nodes["node134"].usable.node_status == ""
    assert not report.nodes["node134"].usable.blocked
    # node133: ClusterD rewrote NodeD's PreSeparate to Healthy.
    assert report.nodes["node133"].usable.node_status == "Healthy"
    # node136 has a status but no chip list: not a node of the report, and the reason says why.
    assert "node136" not in report.nodes
    assert "cluster-info-node-cm" in report.elsewhere["node136"]


def test_clusterd_node_in_two_shards_newest_copy_wins() -> None:
    objects = [fixture(name) for name in CLUSTERD_FIXTURES] + [second_device_shard()]
    report = clusterd_report(objects)
    assert report.nodes["node133"].usable_chips == ["Ascend910-1", "Ascend910-2"]  # newer, shard 1
    assert len(report.nodes["node134"].usable_chips) == 7  # newer, shard 0
    # The same UpdateTime in both shards: the shard with the higher resourceVersion was written later.
    tied = second_device_shard()
    entries = orjson.loads(tied["data"]["cluster-info-device-1"])
    entries["mindx-dl-deviceinfo-node134"]["UpdateTime"] += 100
    tied["data"]["cluster-info-device-1"] = orjson.dumps(entries).decode()
    assert clusterd_report([*objects[:3], tied]).nodes["node134"].usable_chips == ["Ascend910-0"]
    tied["metadata"]["resourceVersion"] = "1"
    assert len(clusterd_report([*objects[:3], tied]).nodes["node134"].usable_chips) == 7


def test_shard_merge_helper() -> None:
    assert newest([]) is None
    assert newest([(5, 1, "a"), (5, 2, "b"), (4, 9, "c")]) == "b"
    assert newest([(5, 2, "first"), (5, 2, "second")]) == "first"  # full tie: the first seen
    merged = merge_shards([(10, {"n1": 3, "n2": 1}), (11, {"n1": 2, "n3": 7})], stamp=lambda e: e)
    assert merged == {"n1": 3, "n2": 1, "n3": 7}


def test_device_plugin_procedure_on_fixtures() -> None:
    report = device_plugin_report(
        [fixture(name) for name in DP_FIXTURES], [fixture(name) for name in NODED_FIXTURES]
    )
    usable = {node: len(r.usable_chips) for node, r in report.nodes.items()}
    # node134 has no NodeD ConfigMap (healthy) and all 8 chips free; node133 is PreSeparate (not blocking).
    assert usable == {"node133": 7, "node134": 8, "node135": 0, "node140": 7, "node150": 8}
    assert report.nodes["node133"].usable.node_status == "PreSeparate"
    assert report.nodes["node135"].usable.switch_status == "UnHealthy"
    assert report.nodes["node150"].usable.switch_status == ""  # A5: empty SwitchInfoCfg struct
    assert "mindx-dl-deviceinfo-node136" in report.elsewhere["node136"]


def test_select_objects_like_a_list() -> None:
    dp = SOURCES_BY_NAME["device-plugin"]
    volcano = SOURCES_BY_NAME["volcano"]  # the one source selected by a field selector
    objects = [fixture(name) for name in sorted(p.name for p in FIXTURES.glob("*.json"))]
    assert {o["metadata"]["name"] for o in select_objects(objects, dp, "kube-system")} == {
        "mindx-dl-deviceinfo-" + n for n in ("node133", "node134", "node135", "node140", "node150")
    }
    assert select_objects(objects, dp, "mindx-dl") == []
    assert [o["metadata"]["name"] for o in select_objects(objects, volcano, "volcano-system")] == [
        "vcjob-fault-npu-cm"
    ]
    renamed = fixture("vcjob-fault-npu-cm.json")
    renamed["metadata"]["name"] = "vcjob-fault-npu-cm-old"
    assert select_objects([renamed], volcano, "volcano-system") == []


def test_output_helpers() -> None:
    names = ["Ascend910-10", "Ascend910-2", "Ascend910-0", "Ascend910-1", "Ascend910-11", "Ascend910-4"]
    assert compact_names(names) == "Ascend910-[0-2,4,10,11]"
    assert compact_names(["npu-5"]) == "npu-5"
    assert compact_names([]) == "-"
    assert compact_names(["Ascend910-4c-100-3", "odd"]) == "Ascend910-4c-100-3,odd"
    assert format_age(0, 100) == "-"
    assert format_age(58, 100) == "42s"
    assert format_age(1e6 - 3 * 86400 - 4 * 3600 - 5, 1e6) == "3d4h"
    assert format_age(1e6 - 3600 - 5, 1e6) == "1h0m"
    assert format_age(200, 100) == "0s"  # raised "in the future" (clock skew)


# --- the command against the API test server -------------------------------------------------


async def test_command_against_api_matches_golden(
    api: KubeApiTestServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    load_all(api)
    kubeconfig = str(api.write_kubeconfig(tmp_path / "kubeconfig"))
    # Page size 1: every source's LIST takes several pages.
    args = ("--kubeconfig", kubeconfig, "--now", NOW, "--kube.page-size", "1")
    code, out, err = await run_in_thread(capsys, *args)
    assert code == 1, err  # node135 has no usable chip
    assert err == ""
    check_golden("devices-clusterd.txt", out)
    code, out, _ = await run_in_thread(capsys, *args, "--source", "device-plugin")
    assert code == 1
    check_golden("devices-device-plugin.txt", out)
    code, out, _ = await run_in_thread(capsys, *args, "--output", "json")
    check_golden("devices-clusterd.json", out)
    assert usable_counts(out) == {"node133": 7, "node134": 7, "node135": 0, "node140": 7, "node150": 8}


async def test_command_falls_back_to_device_plugin_without_clusterd(
    api: KubeApiTestServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in DP_FIXTURES + NODED_FIXTURES:
        api.store.apply("configmaps", fixture(name))
    kubeconfig = str(api.write_kubeconfig(tmp_path / "kubeconfig"))
    code, out, _ = await run_in_thread(capsys, "--kubeconfig", kubeconfig, "--now", NOW)
    assert code == 1
    check_golden("devices-device-plugin.txt", out)
    code, out, _ = await run_in_thread(
        capsys, "--kubeconfig", kubeconfig, "--source", "clusterd", "-o", "json"
    )
    assert code == 1 and json.loads(out)["nodes"] == []


async def test_command_node_selection_and_exit_codes(
    api: KubeApiTestServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    load_all(api)
    kubeconfig = str(api.write_kubeconfig(tmp_path / "kubeconfig"))
    base = ("--kubeconfig", kubeconfig, "--now", NOW)
    code, out, err = await run_in_thread(capsys, *base, "--node", "node133", "--node", "node150")
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()[3:6]] == ["NODE", "node133", "node150"]
    code, out, _ = await run_in_thread(capsys, *base, "--node", "node135", "-o", "json")
    assert code == 1
    document = json.loads(out)
    assert document["ok"] is False
    assert document["nodes"][0]["blocked"] is True and document["nodes"][0]["usable"] == []
    code, out, err = await run_in_thread(capsys, *base, "--node", "node133", "--node", "node999")
    assert code == 1
    assert "node node999: not found in ClusterD's cluster-info-device-* shards in namespace mindx-dl" in err
    code, _, err = await run_in_thread(capsys, *base, "--node", "node136")
    assert code == 1
    assert "node node136: in cluster-info-node-cm (status UnHealthy) but in no cluster-info-device-*" in err
    # The exporter's namespace flags: ClusterD looked for elsewhere finds nothing, so the device
    # plugin answers.
    code, out, _ = await run_in_thread(
        capsys, *base, "--source.clusterd.namespace", "elsewhere", "-o", "json"
    )
    assert json.loads(out)["source"] == "device-plugin"


async def test_command_unreachable_api(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "c", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "c"}}],
                "current-context": "c",
            }
        )
    )
    code, out, err = await run_in_thread(capsys, "--kubeconfig", str(kubeconfig))
    assert code == 2
    assert out == ""
    assert err.startswith(
        f"mindx-fault-exporter devices: cannot reach the Kubernetes API at http://127.0.0.1:{port}"
    )
    assert err.count("\n") == 1 and "Traceback" not in err


async def test_command_api_errors_are_one_line(
    api: KubeApiTestServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api.token = "right"
    kubeconfig = str(api.write_kubeconfig(tmp_path / "kubeconfig", token="wrong"))
    code, out, err = await run_in_thread(capsys, "--kubeconfig", kubeconfig)
    assert code == 2 and out == ""
    assert err.startswith(
        "mindx-fault-exporter devices: LIST /api/v1/namespaces/mindx-dl/configmaps failed: 401"
    )
    assert err.count("\n") == 1
    code, _, err = await run_in_thread(capsys, "--kubeconfig", str(tmp_path / "missing"))
    assert code == 2 and err.count("\n") == 1


# --- the command on a dump ---------------------------------------------------------------------


def test_command_on_dump_file_and_stdin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    dump = tmp_path / "dump.json"
    dump.write_bytes(kubectl_dump())
    code, out, err = run(capsys, "--from-file", str(dump), "--now", NOW)
    assert code == 1 and err == ""
    check_golden("devices-clusterd.txt", out)  # the same objects as the live cluster: the same output
    code, out, _ = run(capsys, "--from-file", str(dump), "--now", NOW, "--source", "device-plugin")
    check_golden("devices-device-plugin.txt", out)

    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(kubectl_dump())))
    code, out, _ = run(capsys, "--from-file", "-", "--now", NOW, "-o", "json")
    assert code == 1
    check_golden("devices-clusterd.json", out)

    # Without ClusterD's objects the device plugin and NodeD answer.
    dump.write_bytes(kubectl_dump(DP_FIXTURES + NODED_FIXTURES))
    code, out, _ = run(capsys, "--from-file", str(dump), "--now", NOW)
    check_golden("devices-device-plugin.txt", out)


def test_dump_respects_namespaces_and_selectors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    moved = [fixture(name) for name in CLUSTERD_FIXTURES]
    for obj in moved:
        obj["metadata"]["namespace"] = "cluster-d"
    unlabelled = fixture("deviceinfo-node134-healthy.json")
    unlabelled["metadata"]["name"] = "mindx-dl-deviceinfo-node999"
    del unlabelled["metadata"]["labels"]  # a LIST with the exporter's label selector would not return it
    dump = tmp_path / "dump.json"
    dump.write_bytes(kubectl_dump(DP_FIXTURES, extra=[*moved, unlabelled]))
    code, out, _ = run(capsys, "--from-file", str(dump), "-o", "json")
    assert code == 1  # node135: switch UnHealthy
    assert json.loads(out)["source"] == "device-plugin"  # no ClusterD object in mindx-dl
    assert "node999" not in usable_counts(out)
    _, out, _ = run(
        capsys, "--from-file", str(dump), "-o", "json", "--source.clusterd.namespace", "cluster-d"
    )
    assert json.loads(out)["source"] == "clusterd"
    assert usable_counts(out)["node135"] == 0


def test_dump_two_shards(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dump = tmp_path / "dump.json"
    dump.write_bytes(kubectl_dump(list(CLUSTERD_FIXTURES), extra=[second_device_shard()]))
    code, out, _ = run(
        capsys, "--from-file", str(dump), "-o", "json", "--node", "node133", "--node", "node134"
    )
    assert code == 0
    nodes = {n["node"]: n for n in json.loads(out)["nodes"]}
    assert nodes["node133"]["usable"] == ["Ascend910-1", "Ascend910-2"]
    assert nodes["node134"]["usable_count"] == 7


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x00\x01garbage", "is not valid JSON"),
        (b"", "is not valid JSON"),
        (b'{"kind": "Pod", "metadata": {}}', "is not a Kubernetes List"),
        (b"[1, 2]", "is not a Kubernetes List"),
        (b"apiVersion: v1\nkind: List\nitems: []\n", "make it with -o json"),
    ],
)
def test_invalid_dump_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    dump = tmp_path / "dump"
    dump.write_bytes(content)
    code, out, err = run(capsys, "--from-file", str(dump))
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1


def test_unreadable_dump_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--from-file", str(tmp_path / "absent.json"))
    assert code == 2 and out == ""
    absent = tmp_path / "absent.json"
    assert err == f"mindx-fault-exporter devices: cannot read dump {absent}: No such file or directory\n"


def test_empty_dump_has_no_usable_node(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dump = tmp_path / "dump.json"
    dump.write_bytes(kubectl_dump([]))
    code, out, err = run(capsys, "--from-file", str(dump))
    assert code == 1
    assert "No node found." in out
    assert "no node with a chip list found" in err


# --- the command agrees with the exporter ------------------------------------------------------


def exporter_usable(series: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for lbls, value in select(series, "mindx_node_npu_usable_chips").items():
        node = dict(lbls)["node"]
        counts[node] = counts.get(node, 0) + int(value)
    return counts


async def test_command_counts_equal_exporter_series(
    api: KubeApiTestServer, start_exporter: StartExporter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    load_all(api)
    api.store.apply("configmaps", second_device_shard())
    unhealthy = fixture("nodeinfo-node136-unhealthy.json")
    unhealthy["metadata"]["name"] = "mindx-dl-nodeinfo-node134"  # NodeD: node134 UnHealthy
    api.store.apply("configmaps", unhealthy)
    kubeconfig = str(api.write_kubeconfig(tmp_path / "kubeconfig"))

    exporter = await start_exporter()
    expected = exporter_usable(await exporter.scrape())
    code, out, _ = await run_in_thread(capsys, "--kubeconfig", kubeconfig, "-o", "json")
    assert code == 1  # node135: switch UnHealthy
    assert json.loads(out)["source"] == "clusterd"
    assert usable_counts(out) == expected
    assert expected["node133"] == 2  # the newer copy in the second shard

    without_clusterd = await start_exporter(sources=SourceSelection(enabled={"clusterd": False}))
    expected = exporter_usable(await without_clusterd.scrape())
    _, out, _ = await run_in_thread(
        capsys, "--kubeconfig", kubeconfig, "-o", "json", "--source", "device-plugin"
    )
    assert usable_counts(out) == expected
    assert expected["node134"] == 0  # NodeD UnHealthy blocks in the device-plugin view


async def test_list_all_pages(api: KubeApiTestServer, tmp_path: Path) -> None:
    load_all(api)
    access = load_cluster_access(str(api.write_kubeconfig(tmp_path / "kubeconfig")))
    async with KubeClient(access) as client:
        paged = await list_all(client, "/api/v1/namespaces/kube-system/configmaps", {}, 1)
        whole = await list_all(client, "/api/v1/namespaces/kube-system/configmaps", {}, 500)
    assert [o["metadata"]["name"] for o in paged.objects] == [o["metadata"]["name"] for o in whole.objects]
    # Every kube-system ConfigMap fixture: the device plugin's and the RDMA plugin's dpuinfo-<node>.
    assert len(paged.objects) == len(DP_FIXTURES) + len(list(FIXTURES.glob("dpuinfo-*.json")))
    assert paged.resource_version and paged.resource_version == whole.resource_version
