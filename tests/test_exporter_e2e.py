"""The real exporter against the API test server over HTTP: what a user sees on /metrics."""

from __future__ import annotations

import gzip

from exporter.apiserver import KubeApiTestServer
from tests.conftest import StartExporter
from tests.helpers import eventually, fixture, labels, parse_exposition, select

DP_FIXTURES = (
    "deviceinfo-node133.json",
    "deviceinfo-node134-healthy.json",
    "deviceinfo-node135-a3-switchfault.json",
    "deviceinfo-node140-ascend310.json",
    "deviceinfo-node150-a5-npu.json",
)
SRC = "device-plugin"
DP_WATCH = labels(source=SRC, namespace="kube-system")


def load_device_plugin(api: KubeApiTestServer) -> None:
    for name in DP_FIXTURES:
        api.store.apply("configmaps", fixture(name))


def level(node: str, npu: str, ident: str) -> frozenset:
    return labels(source=SRC, node=node, npu=npu, id=ident)


def with_fault(cm: dict) -> dict:
    """node134 with Ascend910-2 raised to SeparateNPU (a valid CheckCode, as the producer writes)."""
    import orjson

    from exporter.sources.common import go_json_dumps, sha256_hex

    info = orjson.loads(cm["data"]["DeviceInfoCfg"])
    device_list = info["DeviceInfo"]["DeviceList"]
    device_list["huawei.com/Ascend910"] = (
        "Ascend910-0,Ascend910-1,Ascend910-3,Ascend910-4,Ascend910-5,Ascend910-6,Ascend910-7"
    )
    device_list["huawei.com/Ascend910-Unhealthy"] = "Ascend910-2"
    device_list["huawei.com/Ascend910-Fault"] = orjson.dumps(
        [
            {
                "fault_type": "CardUnhealthy",
                "npu_name": "Ascend910-2",
                "large_model_fault_level": "SeparateNPU",
                "fault_level": "SeparateNPU",
                "fault_handling": "SeparateNPU",
                "fault_code": "80E18402",
                "fault_time_and_level_map": {
                    "80E18402": {"fault_time": 1744190000000, "fault_level": "SeparateNPU"}
                },
            }
        ]
    ).decode()
    info["DeviceInfo"]["UpdateTime"] += 60
    info["CheckCode"] = sha256_hex(
        go_json_dumps(
            {"DeviceList": dict(sorted(device_list.items())), "UpdateTime": info["DeviceInfo"]["UpdateTime"]}
        )
    )
    cm = dict(cm, data=dict(cm["data"], DeviceInfoCfg=orjson.dumps(info).decode()))
    return cm


async def test_fixtures_served_with_exact_levels(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    load_device_plugin(api)
    exporter = await start_exporter()
    series = await exporter.scrape()
    levels = select(series, "mindx_npu_chip_fault_level")
    assert levels[level("node133", "Ascend910-4", "4")] == 8
    assert levels[level("node135", "Ascend910-3", "3")] == 9
    assert levels[level("node140", "Ascend310-6", "6")] == 6
    assert levels[level("node150", "npu-5", "5")] == 1
    assert {dict(k)["node"] for k in levels} == {"node133", "node134", "node135", "node140", "node150"}
    assert select(series, "mindx_exporter_objects", source=SRC) == {DP_WATCH: 5}
    assert select(series, "mindx_exporter_watch_up", source=SRC) == {DP_WATCH: 1}
    assert select(series, "mindx_exporter_relists_total", source=SRC, reason="start") == {
        labels(source=SRC, namespace="kube-system", reason="start"): 1
    }
    # The watch asks for only the producer's objects, paginated, then watches with bookmarks.
    lists = [p for m, p in api.request_log if "/namespaces/kube-system/configmaps" in p]
    assert any(
        "labelSelector=mx-consumer-cim%3Dtrue" in p and "limit=2" in p and "continue=" in p for p in lists
    )
    assert any("watch=1" in p and "allowWatchBookmarks=true" in p and "timeoutSeconds=" in p for p in lists)


async def test_create_modify_delete_followed(api: KubeApiTestServer, start_exporter: StartExporter) -> None:
    exporter = await start_exporter()
    assert select(await exporter.scrape(), "mindx_npu_chip_fault_level") == {}

    healthy = fixture("deviceinfo-node134-healthy.json")
    api.store.apply("configmaps", healthy)

    async def healthy_seen() -> None:
        levels = select(await exporter.scrape(), "mindx_npu_chip_fault_level", node="node134")
        assert len(levels) == 8 and set(levels.values()) == {0}

    await eventually(healthy_seen)

    api.store.apply("configmaps", with_fault(healthy))

    async def fault_seen() -> None:
        series = await exporter.scrape()
        assert select(series, "mindx_npu_chip_fault_level", node="node134", npu="Ascend910-2") == {
            level("node134", "Ascend910-2", "2"): 8
        }
        assert select(series, "mindx_npu_chip_fault_code", node="node134") == {
            labels(
                source=SRC,
                node="node134",
                npu="Ascend910-2",
                id="2",
                fault_type="CardUnhealthy",
                fault_code="80E18402",
                fault_level="SeparateNPU",
            ): 1744190000.0
        }

    await eventually(fault_seen)

    api.store.delete("configmaps", "kube-system", "mindx-dl-deviceinfo-node134")

    async def gone() -> None:
        series = await exporter.scrape()
        assert [k for k in series if ("node", "node134") in k[1]] == []

    await eventually(gone)


async def test_other_configmaps_in_namespace_are_not_ours(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    foreign = fixture("deviceinfo-node134-healthy.json")
    foreign["metadata"]["name"] = "some-other-config"  # right label, wrong name
    api.store.apply("configmaps", foreign)
    unlabelled = fixture("deviceinfo-node133.json")
    unlabelled["metadata"]["labels"] = {}
    api.store.apply("configmaps", unlabelled)
    exporter = await start_exporter()
    series = await exporter.scrape()
    assert select(series, "mindx_npu_chip_fault_level") == {}
    assert select(series, "mindx_exporter_objects", source=SRC) == {DP_WATCH: 0}


async def test_expired_watch_relists_and_drops_objects_deleted_meanwhile(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    load_device_plugin(api)
    exporter = await start_exporter()
    # Disconnect the exporter and keep it out while objects change, then compact history so its
    # resourceVersion is too old: only a relist can show the truth.
    api.fail_next(1000, status=503, path="watch=1")
    api.drop_streams()
    api.store.delete("configmaps", "kube-system", "mindx-dl-deviceinfo-node133")
    api.store.apply("configmaps", with_fault(fixture("deviceinfo-node134-healthy.json")))
    api.compact()
    api.clear_failures()

    async def relisted() -> None:
        series = await exporter.scrape()
        assert select(series, "mindx_npu_chip_fault_level", node="node133") == {}
        assert select(series, "mindx_npu_chip_fault_level", node="node134", npu="Ascend910-2") == {
            level("node134", "Ascend910-2", "2"): 8
        }
        assert select(series, "mindx_exporter_relists_total", reason="expired")
        assert select(series, "mindx_exporter_watch_up", source=SRC) == {DP_WATCH: 1}
        assert select(series, "mindx_exporter_objects", source=SRC) == {DP_WATCH: 4}

    await eventually(relisted)
    # Untouched objects were served throughout and still are.
    assert select(await exporter.scrape(), "mindx_npu_chip_fault_level", node="node135")


async def test_compaction_on_open_watch_sends_error_and_relists(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    load_device_plugin(api)
    exporter = await start_exporter()
    api.compact()
    api.store.delete("configmaps", "kube-system", "mindx-dl-deviceinfo-node150")

    async def recovered() -> None:
        series = await exporter.scrape()
        assert select(series, "mindx_exporter_relists_total", reason="expired")
        assert select(series, "mindx_npu_chip_fault_level", node="node150") == {}

    await eventually(recovered)


async def test_dropped_stream_and_server_errors_recover(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    load_device_plugin(api)
    exporter = await start_exporter()
    api.fail_next(3, status=500)
    api.drop_streams()
    api.store.delete("configmaps", "kube-system", "mindx-dl-deviceinfo-node140")

    async def recovered() -> None:
        series = await exporter.scrape()
        assert select(series, "mindx_npu_chip_fault_level", node="node140") == {}
        assert select(series, "mindx_exporter_watch_errors_total", reason="server_error")
        assert select(series, "mindx_exporter_watch_up", source=SRC) == {DP_WATCH: 1}

    await eventually(recovered)


async def test_throttled_with_retry_after_recovers(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    exporter = await start_exporter()
    api.fail_next(2, status=429, retry_after=1)
    api.drop_streams()
    api.store.apply("configmaps", fixture("deviceinfo-node150-a5-npu.json"))

    async def recovered() -> None:
        series = await exporter.scrape()
        assert select(series, "mindx_npu_chip_fault_level", node="node150")
        assert select(series, "mindx_exporter_watch_errors_total", reason="throttled")

    await eventually(recovered)


async def test_readyz_waits_for_first_list(api: KubeApiTestServer, start_exporter: StartExporter) -> None:
    api.fail_next(1000, status=500, path="/configmaps")
    exporter = await start_exporter(wait_ready=False)
    status, body, _ = await exporter.get("/readyz")
    assert status == 503 and b"device-plugin/kube-system" in body
    assert (await exporter.get("/healthz"))[0] == 200
    series = await exporter.scrape()
    assert select(series, "mindx_exporter_watch_up", source=SRC) == {DP_WATCH: 0}
    api.clear_failures()

    async def ready() -> None:
        assert (await exporter.get("/readyz"))[0] == 200

    await eventually(ready)


async def test_gzip_body_matches_plain(api: KubeApiTestServer, start_exporter: StartExporter) -> None:
    load_device_plugin(api)
    exporter = await start_exporter()
    status, raw, headers = await exporter.get(
        "/metrics", headers={"Accept-Encoding": "gzip"}, auto_decompress=False
    )
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    zipped = parse_exposition(gzip.decompress(raw).decode())
    plain = await exporter.scrape()
    mindx = {k: v for k, v in plain.items() if k[0].startswith("mindx_npu")}
    assert mindx and {k: v for k, v in zipped.items() if k[0].startswith("mindx_npu")} == mindx
    # A second gzip scrape of an unchanged cache is still a valid, complete stream.
    _, raw2, _ = await exporter.get("/metrics", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert "mindx_exporter_build_info" in gzip.decompress(raw2).decode()


async def test_landing_page_and_unknown_path(api: KubeApiTestServer, start_exporter: StartExporter) -> None:
    exporter = await start_exporter()
    status, body, _ = await exporter.get("/")
    assert status == 200 and b'href="/metrics"' in body
    assert (await exporter.get("/nope"))[0] == 404


async def test_stalled_stream_is_restarted(start_exporter: StartExporter, tmp_path) -> None:
    # A server that never sends bookmarks and no events: the exporter must notice the silence.
    async with KubeApiTestServer(bookmark_interval=3600) as quiet:
        from exporter.app import Exporter, ExporterConfig
        from exporter.kube.config import load_cluster_access
        from exporter.kube.reflector import ReflectorOptions

        access = load_cluster_access(str(quiet.write_kubeconfig(tmp_path / "quiet")))
        options = ReflectorOptions(stall_timeout=0.3, backoff_initial=0.01, backoff_max=0.05)
        async with Exporter(
            access, ExporterConfig(listen_address="127.0.0.1:0", reflector=options)
        ) as exporter:
            await exporter.wait_ready(5)

            async def stalled() -> None:
                relists = exporter.metrics.relists.labels(SRC, "kube-system", "stalled")._value.get()
                assert relists >= 1

            await eventually(stalled)


async def test_bearer_token_from_kubeconfig(tmp_path) -> None:
    async with KubeApiTestServer(token="s3cret-token") as secured:
        from exporter.app import Exporter, ExporterConfig
        from exporter.kube.config import load_cluster_access

        secured.store.apply("configmaps", fixture("deviceinfo-node133.json"))
        access = load_cluster_access(str(secured.write_kubeconfig(tmp_path / "kc", token="s3cret-token")))
        async with Exporter(access, ExporterConfig(listen_address="127.0.0.1:0")) as exporter:
            await exporter.wait_ready(5)
            assert exporter.store.object_count() == 1


async def test_garbage_collection_is_paused_only_while_the_first_lists_run(tmp_path) -> None:
    import gc

    from exporter.app import Exporter, ExporterConfig
    from exporter.kube.config import load_cluster_access

    assert gc.isenabled()
    async with KubeApiTestServer() as api:
        api.store.apply("configmaps", fixture("deviceinfo-node133.json"))
        access = load_cluster_access(str(api.write_kubeconfig(tmp_path / "kc")))
        async with Exporter(access, ExporterConfig(listen_address="127.0.0.1:0")) as exporter:
            assert not gc.isenabled()  # the first lists are running
            await exporter.wait_ready(5)

            async def resumed() -> None:
                assert gc.isenabled() and gc.get_freeze_count() > 0

            await eventually(resumed, timeout=5)
        gc.unfreeze()
    # Stopped before its first lists completed (the API server is gone): the collector is back.
    async with Exporter(access, ExporterConfig(listen_address="127.0.0.1:0")):
        assert not gc.isenabled()
    assert gc.isenabled()
