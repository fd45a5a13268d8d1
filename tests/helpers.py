"""Shared test helpers: fixtures from tests/fixtures, exposition parsing, polling with deadlines."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client.parser import text_string_to_metric_families

from exporter.sources.common import go_json_string, sha256_hex

FIXTURES = Path(__file__).parent / "fixtures"

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]

T = TypeVar("T")


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return loaded


def parse_exposition(text: str) -> Series:
    """Every sample of a /metrics body as {(name, labels): value}; fails on duplicate series."""
    series: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in series, f"duplicate series {key}"
            series[key] = sample.value
    return series


def select(series: Series, name: str, **labels: str) -> dict[frozenset[tuple[str, str]], float]:
    """The samples of one metric whose labels include `labels`."""
    wanted = set(labels.items())
    return {lbls: value for (n, lbls), value in series.items() if n == name and wanted <= lbls}


def labels(**kv: str) -> frozenset[tuple[str, str]]:
    return frozenset(kv.items())


def only(series: Series, prefixes: Iterable[str]) -> Series:
    return {k: v for k, v in series.items() if any(k[0].startswith(p) for p in prefixes)}


async def eventually(check: Callable[[], Awaitable[T]], timeout: float = 10.0, interval: float = 0.05) -> T:
    """Poll `check` until it returns without raising AssertionError, or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(interval)


def device_plugin_configmap(node: str, device_list: dict[str, str], update: int) -> dict[str, Any]:
    """A device-plugin ConfigMap `mindx-dl-deviceinfo-<node>` in the producer's exact format, with
    a CheckCode that verifies (sha256 of Go's encoding of DeviceInfo, keys sorted)."""
    canonical = (
        '{"DeviceList":{'
        + ",".join(go_json_string(k) + ":" + go_json_string(device_list[k]) for k in sorted(device_list))
        + '},"UpdateTime":'
        + str(update)
        + "}"
    )
    info = {
        "DeviceInfo": {"DeviceList": device_list, "UpdateTime": update},
        "CheckCode": sha256_hex(canonical),
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"mindx-dl-deviceinfo-{node}",
            "namespace": "kube-system",
            "labels": {"mx-consumer-cim": "true"},
        },
        "data": {"DeviceInfoCfg": json.dumps(info, separators=(",", ":"))},
    }
