"""bench/results/latest.{json,md,png} and the README's Performance section, from one run.

`python -m bench.report` rebuilds the table, the chart and the README section from
bench/results/latest.json without measuring again.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

START = "<!-- bench:start (written by make bench) -->"
END = "<!-- bench:end -->"
SCENARIOS = ("create@1", "create@32", "retrieve@1", "retrieve@32")
STACK_ORDER = ("service", "starlette", "fastapi", "connexion")


def _cell(value: float, entry: dict[str, Any], figure: str, digits: int) -> str:
    return (
        f"{value:,.{digits}f} ({entry[f'{figure}_vs_starlette']:.2f}b, "
        f"{entry[f'{figure}_vs_fastapi']:.2f}c)"
    )


def table(results: dict[str, Any]) -> str:
    """The Markdown table: every figure with its ratio to (b) and to (c)."""
    lines = [
        "| stack | scenario | req/s | p50 ms | p99 ms | peak RSS MB | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    summary = results["summary"]
    for scenario in SCENARIOS:
        operation, connections = scenario.split("@")
        for stack in STACK_ORDER:
            entry = summary[stack][scenario]
            lines.append(
                f"| {results['stacks'][stack]} | {operation}, {connections} conn | "
                f"{_cell(entry['rps'], entry, 'rps', 0)} | "
                f"{_cell(entry['p50_ms'], entry, 'p50_ms', 2)} | "
                f"{_cell(entry['p99_ms'], entry, 'p99_ms', 2)} | "
                f"{_cell(entry['peak_rss_mb'], entry, 'peak_rss_mb', 0)} | "
                f"{entry['errors']} |"
            )
    return "\n".join(lines)


def extras_table(results: dict[str, Any]) -> str:
    cost = results["inprocess"]
    lines = [
        "| stack | create, µs/request | retrieve, µs/request | start-up, s |",
        "|---|---|---|---|",
    ]
    for stack in STACK_ORDER:
        lines.append(
            f"| {results['stacks'][stack]} | {cost[stack]['create_us']:,.0f} | "
            f"{cost[stack]['retrieve_us']:,.0f} | {results['summary'][stack]['startup_s']:.2f} |"
        )
    generate, rss, hooks = results["generate"], results["rss"], results["webhooks"]
    samples = ", ".join(f"{s['calls']:,}: {s['rss_mb']} MB" for s in rss["samples"])
    return "\n".join(
        [
            *lines,
            "",
            f"- `make generate`: {generate['noop_s']:.2f} s as a no-op, "
            f"{generate['cold_s']:.2f} s cold (`--force`, everything regenerated).",
            f"- RSS of the service while {rss['calls']:,} calls are created (direct ASGI "
            f"calls): {samples}; {rss['growth_kb_per_1000_calls']} KiB per 1,000 calls "
            "after the first tenth.",
            f"- Webhooks: {hooks['events_delivered']:,} of {hooks['events_expected']:,} "
            f"status events delivered to a local receiver in {hooks['seconds']} s "
            f"({hooks['events_per_second']:,.0f} events/s).",
        ]
    )


def targets(results: dict[str, Any]) -> str:
    """The issue's targets, each with this run's figure and whether it is met."""
    summary, generate = results["summary"], results["generate"]
    rows = []
    for scenario in ("create@32", "retrieve@32"):
        entry = summary["service"][scenario]
        name = scenario.replace("@", " at ") + " connections"
        rows += [
            (f"{name}: req/s vs (c) FastAPI", ">= 1.0x", entry["rps_vs_fastapi"], True),
            (f"{name}: req/s vs (b) Starlette", ">= 0.5x", entry["rps_vs_starlette"], True),
            (f"{name}: p99 vs (c) FastAPI", "<= 1.0x", entry["p99_ms_vs_fastapi"], False),
        ]
    rows += [
        ("`make generate` as a no-op, s", "< 0.3", generate["noop_s"], False),
        ("`make generate` cold, s", "< 3", generate["cold_s"], False),
        ("start-up of (a), s", "< 1.5", summary["service"]["startup_s"], False),
    ]
    lines = ["| target | wanted | this run | met |", "|---|---|---|---|"]
    for name, wanted, value, higher_is_better in rows:
        bound = float(wanted.split()[-1].rstrip("x"))
        if higher_is_better:
            met = value >= bound
        elif wanted.startswith("<="):
            met = value <= bound
        else:
            met = value < bound
        lines.append(f"| {name} | {wanted} | {value:.2f} | {'yes' if met else 'no'} |")
    return "\n".join(lines)


def breakdown_table(results: dict[str, Any]) -> str:
    """Where each stack's CPU goes per request, from a sampled profile (pyinstrument)."""
    found = results.get("breakdown")
    if not found:
        return ""
    lines = [
        "| stack | operation | share of a request's time, by library (sampled profile) |",
        "|---|---|---|",
    ]
    for stack in STACK_ORDER:
        for operation in ("create", "retrieve"):
            shares = found[stack][operation]
            ordered = sorted(shares.items(), key=lambda item: -item[1])
            text = ", ".join(f"{group} {share:.0f}%" for group, share in ordered)
            lines.append(f"| {results['stacks'][stack]} | {operation} | {text} |")
    return "\n".join(lines)


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    load = results["load_average"]
    return "\n".join(
        [
            f"Run of {results['when']}{' (quick mode)' if results['quick'] else ''}: "
            f"{results['rounds']} rounds, {results['seconds_per_measurement']} s per "
            f"measurement after {results['warmup_seconds']} s of warm-up; took "
            f"{results['took_s']:.0f} s.",
            f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GiB, {m['system']}, "
            f"Python {m['python']}; load generator {m['load_generator']} ({m['pinning']}). "
            f"Load average before/after: {load['before'][0]:.2f}/{load['after'][0]:.2f}.",
            "",
            "Each cell: the median over rounds, then (ratio to (b), ratio to (c)), each ratio "
            "taken within a round. Higher req/s is better; lower latency and RSS are better.",
            "",
            table(results),
            "",
            extras_table(results),
            "",
            "Targets (issue 5), from this run:",
            "",
            targets(results),
            "",
            breakdown_table(results),
        ]
    )


def chart(results: dict[str, Any], path: Path) -> None:
    """Bars of req/s relative to (b) and to (c), per scenario and stack."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = results["summary"]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    width = 0.2
    for axis, base in zip(axes, ("starlette", "fastapi"), strict=True):
        for index, stack in enumerate(STACK_ORDER):
            values = [summary[stack][s][f"rps_vs_{base}"] for s in SCENARIOS]
            xs = [i + (index - 1.5) * width for i in range(len(SCENARIOS))]
            bars = axis.bar(xs, values, width, label=results["stacks"][stack])
            axis.bar_label(bars, fmt="%.2f", fontsize=7)
        axis.axhline(1.0, color="grey", linewidth=0.8)
        axis.set_xticks(range(len(SCENARIOS)))
        axis.set_xticklabels([s.replace("@", ", c=") for s in SCENARIOS])
        axis.set_title(f"requests/s relative to {results['stacks'][base]}")
    axes[0].set_ylabel("ratio (median over rounds)")
    axes[0].legend(fontsize=8, loc="upper left")
    figure.suptitle(f"make bench, {results['when']}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def readme_section(results: dict[str, Any]) -> str:
    return "\n".join(
        [
            START,
            markdown(results),
            "",
            "![requests/s relative to Starlette and FastAPI](bench/results/latest.png)",
            END,
        ]
    )


def update_readme(results: dict[str, Any], readme: Path) -> None:
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{readme.name} has no {START} ... {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(head + readme_section(results) + tail)


def write_all(results: dict[str, Any], root: Path) -> None:
    folder = root / "bench" / "results"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "latest.json").write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    rebuild(root)


def rebuild(root: Path) -> None:
    folder = root / "bench" / "results"
    results = json.loads((folder / "latest.json").read_text())
    text = markdown(results)
    (folder / "latest.md").write_text(text + "\n")
    chart(results, folder / "latest.png")
    update_readme(results, root / "README.md")
    print(text)


if __name__ == "__main__":
    rebuild(Path(__file__).resolve().parent.parent)
    sys.exit(0)
