"""Markdown tables for docs/benchmarks.md from a `benchmarks/scale.py --json` file::

    python3 -m benchmarks.tables results.json

Prints the results table (one column per size), the shards table of each size run with
`--shards`, the per-node table and the targets, so the published figures are the measured ones.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

MB = 1_000_000
TIMES, NONE = "\u00d7", "\u2013"  # multiplication sign, en dash (as in the docs)


def _lat(size: dict[str, Any], key: str) -> dict[str, Any]:
    found: dict[str, Any] = size["scrapes"].get(key, {})
    return found


def _p50_p99(size: dict[str, Any], key: str, cpu: bool = True) -> str:
    lat = _lat(size, key)
    if not lat.get("n"):
        return "not measured"
    text = f"{lat['p50_ms']:,.1f} / {lat['p99_ms']:,.1f} ms"
    if cpu and "server_cpu_ms_per_request" in lat:
        text += f" ({lat['server_cpu_ms_per_request']:.2f} ms)"
    return text


def _ratio(a: float | None, b: float | None, fmt: str = "{:.2f}" + TIMES) -> str:
    if not a or not b:
        return NONE
    return fmt.format(a / b)


def _p50(size: dict[str, Any], key: str) -> float | None:
    value: float | None = _lat(size, key).get("p50_ms")
    return value


def _split(size: dict[str, Any], key: str) -> str:
    split = size["cpu_split_ms_per_request"].get(key)
    return f"{split['user']:.3f} + {split['system']:.3f} ms" if split else NONE


def row(name: str, cells: list[str]) -> str:
    return f"| {name} | " + " | ".join(cells) + " |"


def results_table(sizes: list[dict[str, Any]]) -> str:
    head = "| figure | " + " | ".join(f"{s['nodes']:,} nodes" for s in sizes) + " |"
    lines = [head, "|---|" + "---:|" * len(sizes)]

    def add(name: str, fn: Any) -> None:
        lines.append(row(name, [fn(s) for s in sizes]))

    add(
        "machine load average, start → end",
        lambda s: " → ".join(f"{v:.1f}" for v in s.get("load_average_before_after", [])),
    )
    add("ConfigMaps in the API", lambda s: f"{s['configmaps']:,}")
    add("series (of which data)", lambda s: f"{s['series']:,} ({s.get('data_series', 0):,})")
    add(
        "body plain / gzip",
        lambda s: f"{s['body_plain_bytes'] / MB:.2f} MB / {s['body_gzip_bytes'] / MB:.2f} MB",
    )
    add(
        "process start → `/readyz` 200 (CPU)",
        lambda s: f"{s['start_to_ready_s']:.2f} s ({s['cpu_to_ready_s']:.2f} s)",
    )
    add("RSS when ready", lambda s: f"{s['rss_ready_mb']:.0f} MB")
    add("**peak RSS (whole run)**", lambda s: f"**{s['rss_peak_mb']:.0f} MB**")
    for phase, label in (("quiet", "quiet"), ("load", "under load")):
        for encoding in ("plain", "gzip"):
            add(
                f"`/metrics` {encoding}, {label}: p50 / p99 (CPU per request)",
                lambda s, k=f"ours/{phase}/{encoding}": _p50_p99(s, k),
            )
    add("gzip CPU per request, user + system: quiet", lambda s: _split(s, "ours/quiet/gzip"))
    add("… under load", lambda s: _split(s, "ours/load/gzip"))
    add("… limit reference", lambda s: _split(s, "limit/quiet/gzip"))
    for design in ("limit", "obvious"):
        for encoding in ("plain", "gzip"):
            add(f"{design}, {encoding}", lambda s, k=f"{design}/quiet/{encoding}": _p50_p99(s, k, cpu=False))
    for encoding in ("plain", "gzip"):
        add(
            f"exporter ÷ limit p50: {encoding} quiet / {encoding} load",
            lambda s, e=encoding: (
                _ratio(_p50(s, f"ours/quiet/{e}"), _p50(s, f"limit/quiet/{e}"))
                + " / "
                + _ratio(_p50(s, f"ours/load/{e}"), _p50(s, f"limit/quiet/{e}"))
            ),
        )
    add(
        "obvious ÷ exporter p50: plain / gzip",
        lambda s: (
            _ratio(_p50(s, "obvious/quiet/plain"), _p50(s, "ours/quiet/plain"), "{:,.0f}" + TIMES)
            + " / "
            + _ratio(_p50(s, "obvious/quiet/gzip"), _p50(s, "ours/quiet/gzip"), "{:,.0f}" + TIMES)
        ),
    )

    def visible(s: dict[str, Any]) -> str:
        v = s["update_to_visible"]
        text = f"{v['p50_ms']:.1f} / {v['p99_ms']:.1f} ms"
        return text + (f" ({v['missed']} missed)" if v.get("missed") else "")

    add("update → visible under load: p50 / p99", visible)
    add(
        "… of which near a ClusterD report: n, p99",
        lambda s: (
            f"{s['update_to_visible_near_clusterd_report']['n']}, "
            f"{s['update_to_visible_near_clusterd_report']['p99_ms']:.1f} ms"
            if s["update_to_visible_near_clusterd_report"]["n"]
            else "0"
        ),
    )
    add(
        "… others: n, p99",
        lambda s: f"{s['update_to_visible_other']['n']}, {s['update_to_visible_other']['p99_ms']:.1f} ms",
    )
    add("exporter CPU per 1,000 watch events", lambda s: f"{s['ingest']['cpu_s_per_1000_events']:.2f} s")
    add("exporter CPU while ingesting the write load", lambda s: f"{s['ingest']['cpu_share']:.0%} of a core")
    add(
        "benchmark process peak RSS (API server, simulator)",
        lambda s: f"{s['benchmark_process_peak_rss_mb']:.0f} MB",
    )
    return "\n".join(lines)


def shards_table(size: dict[str, Any]) -> str:
    shards = size["shards"]
    single_plain_q, single_gzip_q = _p50(size, "ours/quiet/plain"), _p50(size, "ours/quiet/gzip")
    single_plain_l, single_gzip_l = _p50(size, "ours/load/plain"), _p50(size, "ours/load/gzip")
    single_cpu = {
        e: _lat(size, f"ours/quiet/{e}").get("server_cpu_ms_per_request") for e in ("plain", "gzip")
    }
    lines = [
        f"{size['nodes']:,} nodes, {shards['total_shards']} shards: data series "
        f"{shards['shards_data_series_sum']:,} against {shards['control_data_series']:,} for one process "
        f"({shards['missing']} missing, {shards['extra']} extra, {shards['duplicated']} duplicated).",
        "",
        "| shard | series | ready | peak RSS (÷ one) | plain p50 quiet / load (÷ one) "
        "| gzip p50 quiet / load (÷ one) | CPU per scrape ÷ one, plain / gzip | ingest CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for shard in shards["shards"]:
        sc = shard["scrapes"]
        pq, pl = sc["quiet/plain"]["p50_ms"], sc["load/plain"]["p50_ms"]
        gq, gl = sc["quiet/gzip"]["p50_ms"], sc["load/gzip"]["p50_ms"]
        cpu = " / ".join(
            _ratio(sc[f"quiet/{e}"].get("server_cpu_ms_per_request"), single_cpu[e], "{:.0%}")
            for e in ("plain", "gzip")
        )
        ingest = shard["ingest_cpu_s"] / shard["ingest_seconds"] if shard.get("ingest_seconds") else 0.0
        lines.append(
            row(
                str(shard["shard"]),
                [
                    f"{shard['data_series']:,}",
                    f"{shard['start_to_ready_s']:.2f} s",
                    f"{shard['rss_peak_mb']:.0f} MB "
                    f"({_ratio(shard['rss_peak_mb'], size['rss_peak_mb'], '{:.0%}')})",
                    f"{pq:.1f} / {pl:.1f} ms ({_ratio(pq, single_plain_q, '{:.0%}')} / "
                    f"{_ratio(pl, single_plain_l, '{:.0%}')})",
                    f"{gq:.1f} / {gl:.1f} ms ({_ratio(gq, single_gzip_q, '{:.0%}')} / "
                    f"{_ratio(gl, single_gzip_l, '{:.0%}')})",
                    cpu,
                    f"{ingest:.0%}",
                ],
            )
        )
    lines.append(
        row(
            "one process",
            [
                f"{size.get('data_series', 0):,}",
                f"{size['start_to_ready_s']:.2f} s",
                f"{size['rss_peak_mb']:.0f} MB",
                f"{single_plain_q:.1f} / {single_plain_l:.1f} ms",
                f"{single_gzip_q:.1f} / {single_gzip_l:.1f} ms",
                " / ".join(f"{single_cpu[e]:.2f} ms" for e in ("plain", "gzip")),
                f"{size['ingest']['cpu_share']:.0%}",
            ],
        )
    )
    return "\n".join(lines)


def targets_table(targets: list[dict[str, Any]]) -> str:
    lines = ["| target | measured | | |", "|---|---:|---|---|"]
    for t in targets:
        mark = "" if t["ok"] is None else ("✓" if t["ok"] else "✗")
        lines.append(f"| {t['name']} | {t['value']} | {t['target']} | {mark} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.tables", description=__doc__)
    parser.add_argument("json", type=Path, help="a file written by `python3 -m benchmarks.scale --json`")
    args = parser.parse_args(argv)
    try:
        document = json.loads(args.json.read_text())
    except (OSError, ValueError) as err:
        print(
            f"{args.json}: cannot read the results ({err}): give a file written by scale.py --json",
            file=sys.stderr,
        )
        return 2
    sizes = document["sizes"]
    print(f"run: {document['run_seconds']:.0f} s, machine {document['machine']}\n")
    print(results_table(sizes))
    for size in sizes:
        if size.get("shards"):
            print()
            print(shards_table(size))
    print()
    print(targets_table(document["targets"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
