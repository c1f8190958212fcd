"""results.json, the Markdown summary, explain.md and the charts under docs/benchmarks/."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ISSUE_LIST_ROWS = (
    "first page",
    "WAITING + a tag on every token",
    "COMPLETED + a tag on 200 tokens",
    "a tag on 1 token",
)
LIST_TARGET_MS = 15.0
LIST_CONCURRENT_TARGET_MS = 40.0  # at LIST_CONNECTIONS
LIST_CONNECTIONS = 8
DASHBOARD_TARGET_MS = 50.0
DEEP_TARGET_RATIO = 1.5
FLOOR_TARGET = 0.8
SWEEP_TARGET_SECONDS = 10.0
ISSUE_CONNECTIONS = 8  # the issue's table: wrk with 8 connections


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _at(rows: list[dict[str, Any]], connections: int) -> dict[str, Any]:
    return next(row for row in rows if row["connections"] == connections)


def summary(results: dict[str, Any], *, kept: bool = False) -> str:
    machine, versions = results["machine"], results["versions"]
    lines = [
        *([] if kept else ["# Benchmarks", ""]),
        RUN_MARKER,
        f"Run {results['date']} ({results['mode']} mode: {results['tokens_per_environment']:,} "
        "tokens in the measured environment and as many in another), "
        f"{results['elapsed_seconds']} s in all. Regenerate with `bench/run` "
        "(see bench/README.md).",
        "",
        f"Machine: {machine['cores']} cores ({machine['cpu']}), {machine['memory_gb']} GB, "
        f"{machine['os']}.",
        "Versions: " + ", ".join(f"{name} {value}" for name, value in versions.items()) + ".",
        "",
        "Load average (1, 5, 15 min) at the start: "
        + ", ".join(str(x) for x in results.get("load_average_at_start", []))
        + "; at the end: "
        + ", ".join(str(x) for x in results.get("load_average_at_end", []))
        + f" (the machine has {machine['cores']} cores: above that, other work competed).",
        "",
        f"Web role as the Procfile runs it: `{results['procfile']['web']}`"
        f" (WEB_CONCURRENCY: {results['web_concurrency']}).",
        "",
        "## The issue's table",
        "",
        "| what | measured | the floor, same run | ratio | target | |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for op in ("create", "complete", "retrieve"):
        service = _at(results["service"][op], ISSUE_CONNECTIONS)
        floor = _at(results["floor"][op], ISSUE_CONNECTIONS)
        ratio = service["rps"] / floor["rps"] if floor["rps"] else 0.0
        lines.append(
            f"| {op}, {ISSUE_CONNECTIONS} connections | {service['rps']:,.0f} req/s | "
            f"{floor['rps']:,.0f} req/s | {ratio:.0%} | ≥ 80% of the floor | "
            f"{_met(ratio >= FLOOR_TARGET)} |"
        )
    listing = results["list"]
    concurrent = results.get("list_concurrent", {})
    for name in ISSUE_LIST_ROWS:
        p95 = listing[name]["p95_ms"]
        lines.append(
            f"| list `page[size]=100`: {name} | p95 {p95:.1f} ms | | | p95 ≤ 15 ms | "
            f"{_met(p95 <= LIST_TARGET_MS)} |"
        )
        if name in concurrent:
            p95 = concurrent[name]["p95_ms"]
            lines.append(
                f"| list `page[size]=100`: {name}, {LIST_CONNECTIONS} connections | "
                f"p95 {p95:.1f} ms | | | p95 ≤ 40 ms | {_met(p95 <= LIST_CONCURRENT_TARGET_MS)} |"
            )
    if concurrent:
        shapes = [
            name
            for name, row in listing.items()
            if row["p95_ms"] <= LIST_TARGET_MS
            and concurrent.get(name, {}).get("p95_ms", float("inf")) <= LIST_CONCURRENT_TARGET_MS
        ]
        lines.append(
            f"| list: every filter shape ({len(listing)}), 1 and {LIST_CONNECTIONS} connections | "
            f"{len(shapes)} of {len(listing)} within both | | | p95 ≤ 15 ms and ≤ 40 ms | "
            f"{_met(len(shapes) == len(listing))} |"
        )
    if "rss_idle" in results:
        idle, after = _web_rss(results["rss_idle"]), _web_rss(results["rss"])
        lines.append(
            f"| memory: RSS per web process, idle → after the runs | "
            f"{idle} → {after} MB | | | no growth over 10 minutes: `python -m bench.memory` | |"
        )
    deep = listing["1,000 pages deep"]["p95_ms"] / max(listing["first page"]["p95_ms"], 0.001)
    lines.append(
        f"| list: a page 1,000 pages deep | {deep:.2f} × first page (p95 "
        f"{listing['1,000 pages deep']['p95_ms']:.1f} ms) | | | ≤ 1.5 × | "
        f"{_met(deep <= DEEP_TARGET_RATIO)} |"
    )
    if "sweep" in results:
        burst = results["sweep"]["burst"]
        lines.append(
            f"| {burst['tokens']:,} tokens due at one instant, all TIMED_OUT | "
            f"{burst['all_timed_out_after_seconds']} s after `timeoutAt` | | | ≤ 10 s | "
            f"{_met(burst['all_timed_out_after_seconds'] <= SWEEP_TARGET_SECONDS)} |"
        )
    if "sweep_error" in results:
        lines.append(
            "| tokens due at one instant | not measured: bench/sweep.py failed | | | ≤ 10 s | |"
        )
    for name, row in results["dashboard"].items():
        lines.append(
            f"| dashboard: {name} | p95 {row['p95_ms']:.1f} ms | | | p95 ≤ 50 ms | "
            f"{_met(row['p95_ms'] <= DASHBOARD_TARGET_MS)} |"
        )
    for name in ("long-poll waiters", "webhook delivery"):
        if name in results:
            lines.append(f"| {name} | {results[name]['summary']} | | | | |")
        else:
            lines.append(f"| {name} | not measured: the service has no such feature yet | | | | |")
    lines += [
        "",
        f"pgbench on the same table shape, 8 clients, same run: "
        f"{results['pgbench']['insert']:,.0f} inserts/s, "
        f"{results['pgbench']['conditional update']:,.0f} conditional updates/s.",
        "",
        "## Throughput against concurrency (req/s; errors in brackets when any)",
        "",
        "![throughput](throughput.png)",
        "",
        "| operation | " + " | ".join(f"{c} conn." for c in _connections(results)) + " |",
        "| --- |" + " --- |" * len(_connections(results)),
    ]
    for source in ("service", "floor"):
        for op, rows in results[source].items():
            cells = [
                f"{row['rps']:,.0f}" + (f" ({row['errors']} errors)" if row["errors"] else "")
                for row in rows
            ]
            lines.append(f"| {op} ({source}) | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## List latency (one connection; ms)",
        "",
        "![list latency](list-latency.png)",
        "",
        f"| shape | p50 | p95 | p99 | p95, {LIST_CONNECTIONS} conn. | targets (p95 ≤ 15 ms; "
        f"≤ 40 ms at {LIST_CONNECTIONS}) | plan (see explain.md) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in listing.items():
        plan = results["explain"].get(name, {})
        flag = "seq scan!" if plan.get("seq_scan_on_tokens") else "index"
        wide = concurrent.get(name)
        verdict = _met(row["p95_ms"] <= LIST_TARGET_MS) + (
            f", {_met(wide['p95_ms'] <= LIST_CONCURRENT_TARGET_MS)}" if wide else ""
        )
        lines.append(
            f"| {name} | {row['p50_ms']:.1f} | {row['p95_ms']:.1f} | {row['p99_ms']:.1f} | "
            + (f"{wide['p95_ms']:.1f}" if wide else "not measured")
            + f" | {verdict} | {flag}, {plan.get('execution_ms', 0):.2f} ms in PostgreSQL |"
        )
    lines += ["", "## Dashboard pages (one connection, logged in; ms)", ""]
    lines += ["| page | p50 | p95 | p99 |", "| --- | --- | --- | --- |"]
    for name, row in results["dashboard"].items():
        figures = f"{row['p50_ms']:.1f} | {row['p95_ms']:.1f} | {row['p99_ms']:.1f}"
        lines.append(f"| {name} | {figures} |")
    lines += ["", "## Memory (RSS per process: idle after start, and after the runs)", ""]
    lines += [
        "| role | pid | RSS MB idle | RSS MB after the runs | command |",
        "| --- | --- | --- | --- | --- |",
    ]
    idle_mb = {
        process["pid"]: process["rss_mb"]
        for processes in results.get("rss_idle", {}).values()
        for process in processes
    }
    for role, processes in results["rss"].items():
        for process in processes:
            lines.append(
                f"| {role} | {process['pid']} | {idle_mb.get(process['pid'], '')} | "
                f"{process['rss_mb']} | `{process['command']}` |"
            )
    lines += [
        "",
        "Idle: 5 s after the web role answered `/healthz`, before any request; after: once the "
        "list, dashboard and throughput runs are done. Growth under a long mixed load is "
        "`python -m bench.memory`'s section.",
    ]
    if "sweep" in results:
        steady = results["sweep"]["steady"]
        lines += [
            "",
            "## Sweep (bench/sweep.py)",
            "",
            f"Burst: {results['sweep']['burst']['tokens']:,} tokens due at one instant, all "
            f"TIMED_OUT {results['sweep']['burst']['all_timed_out_after_seconds']} s after. "
            f"Steady state ({steady['tokens']:,} tokens, 200/s): lag p50 "
            f"{steady['lag_p50_seconds']} s, p99 {steady['lag_p99_seconds']} s.",
        ]
    return "\n".join(lines) + "\n"


def _web_rss(rss: dict[str, list[dict[str, Any]]]) -> str:
    """The web role's processes' RSS, in pid order (the master first)."""
    return ", ".join(str(p["rss_mb"]) for p in sorted(rss.get("web", []), key=lambda p: p["pid"]))


def _connections(results: dict[str, Any]) -> list[int]:
    return [row["connections"] for row in results["service"]["create"]]


def explain_markdown(results: dict[str, Any]) -> str:
    lines = [
        "# EXPLAIN (ANALYZE, BUFFERS) of every list query shape",
        "",
        f"Run {results['date']}, {results['tokens_per_environment']:,} tokens in the measured "
        "environment and as many in another (the same tag names in both). Each shape was requested "
        "through the real API view; these are the token queries it ran. Written by `bench/run`.",
        "",
    ]
    for name, shape in results["explain"].items():
        verdict = "**a sequential scan**" if shape["seq_scan_on_tokens"] else "from an index"
        lines += [
            f"## {name}",
            "",
            f"`GET {shape['path']}` → {shape['status']}; runs {verdict}; "
            f"{shape['execution_ms']} ms in PostgreSQL.",
            "",
        ]
        for query in shape["queries"]:
            lines += ["```sql", query["sql"], "```", "", "```", query["plan"], "```", ""]
    return "\n".join(lines)


def charts(results: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=False)
    for axis, op in zip(axes, ("create", "complete", "retrieve"), strict=True):
        for source, style in (("service", "o-"), ("floor", "s--")):
            rows = results[source][op]
            axis.plot(
                [r["connections"] for r in rows], [r["rps"] for r in rows], style, label=source
            )
        axis.set_title(op)
        axis.set_xscale("log", base=2)
        axis.set_xticks(_connections(results), [str(c) for c in _connections(results)])
        axis.set_xlabel("connections")
        axis.set_ylabel("req/s")
        axis.set_ylim(bottom=0)
        axis.legend()
    figure.suptitle(f"Throughput against concurrency ({results['date']})")
    figure.tight_layout()
    figure.savefig(out / "throughput.png", dpi=90)
    plt.close(figure)

    names = list(results["list"])
    figure, axis = plt.subplots(figsize=(10, 5))
    positions = range(len(names))
    axis.barh(
        [p + 0.2 for p in positions],
        [results["list"][n]["p95_ms"] for n in names],
        height=0.4,
        label="p95",
    )
    axis.barh(
        [p - 0.2 for p in positions],
        [results["list"][n]["p50_ms"] for n in names],
        height=0.4,
        label="p50",
    )
    axis.axvline(LIST_TARGET_MS, color="red", linestyle=":", label="target p95 15 ms")
    concurrent = results.get("list_concurrent", {})
    if concurrent:
        axis.barh(
            [p + 0.2 for p in positions],
            [concurrent.get(n, {}).get("p95_ms", 0) for n in names],
            height=0.15,
            color="black",
            label=f"p95, {LIST_CONNECTIONS} connections",
        )
        axis.axvline(
            LIST_CONCURRENT_TARGET_MS,
            color="black",
            linestyle=":",
            label=f"target p95 40 ms at {LIST_CONNECTIONS}",
        )
    axis.set_yticks(list(positions), names)
    axis.invert_yaxis()
    axis.set_xlabel("ms (page[size]=100; one connection unless said)")
    axis.set_title(
        f"List latency by filter and depth, {results['tokens_per_environment']:,} tokens"
    )
    axis.legend()
    figure.tight_layout()
    figure.savefig(out / "list-latency.png", dpi=90)
    plt.close(figure)


# Where this report begins in docs/benchmarks/README.md: what other benches published above it
# (bench.throughput, bench.aap: their sections and notes) is kept when the report is rewritten.
RUN_MARKER = "<!-- bench.run: start -->"
# The same place in a README written before the marker existed.
OLD_RUN_LINE = re.compile(r"^Run \S+ \(\w+ mode: ", re.MULTILINE)


def kept_sections(readme: Path) -> str:
    """The title and the other benches' sections at the top of the existing README."""
    if not readme.exists():
        return ""
    text = readme.read_text()
    if RUN_MARKER in text:
        return text.partition(RUN_MARKER)[0]
    found = OLD_RUN_LINE.search(text)
    if found is None or "<!-- bench." not in text[: found.start()]:
        return ""
    return text[: found.start()]


def write(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    readme = out / "README.md"
    kept = kept_sections(readme)
    readme.write_text(kept + summary(results, kept=bool(kept)))
    (out / "explain.md").write_text(explain_markdown(results))
    charts(results, out)
