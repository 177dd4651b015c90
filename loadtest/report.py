"""The benchmark's report: one table of absolute numbers with the ratios that issue 4 sets
targets for, as plain text (terminal), Markdown (docs/bench/results.md), JSON and a PNG of
latency percentiles against offered rate, real server against null server.

The ratios are the point: on a shared, noisy machine absolute numbers move from run to run, but
the real server against the null server (the same gRPC stack doing nothing) and against the
Redis step alone (the same script without gRPC) say how much of the machine's ceiling the
server reaches, measured in the same run with the same load generator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loadtest.loadgen import LatencyHistogram

# Issue 4, item 3.
CLOSED_THROUGHPUT_RATIO_MIN = 0.6  # real / null, closed loop, same workers
HALF_RATE_P99_RATIO_MAX = 2.0  # real p99 / null p99, open loop at half the real maximum
WRITER_RATE_RATIO_MIN = 3.0  # ledger writer posted per second / maximum Authorize rate
WRITER_CATCH_UP_S_MAX = 2.0  # lag back to zero after the load stops
HALF_RATE_FRACTION = 0.5


def merge_phases(phases: list[dict[str, Any]]) -> dict[str, Any]:
    """One closed-loop result from several processes that ran at the same time: throughputs
    and counts add up, latency histograms merge."""
    latency = LatencyHistogram()
    for phase in phases:
        latency.merge(LatencyHistogram.from_json(phase["latency_histogram"]))
    decisions: dict[str, int] = {}
    errors: dict[str, int] = {}
    for phase in phases:
        for outcome, n in phase["decisions"].items():
            decisions[outcome] = decisions.get(outcome, 0) + n
        for code, n in phase["errors"].items():
            errors[code] = errors.get(code, 0) + n
    return {
        "phase": "closed",
        "offered_per_s": None,
        "seconds": max(p["seconds"] for p in phases),
        "calls": sum(p["calls"] for p in phases),
        "answered": sum(p["answered"] for p in phases),
        "throughput_per_s": sum(p["throughput_per_s"] for p in phases),
        "decided_per_s": sum(p["decided_per_s"] for p in phases),
        "fail_closed": sum(p["fail_closed"] for p in phases),
        "errors": errors,
        "replayed": sum(p["replayed"] for p in phases),
        "decisions": dict(sorted(decisions.items())),
        "latency_ms": latency.summary_ms(),
        "latency_histogram": latency.to_json(),
        "start_lateness_ms": None,
        "cpu_us_per_call": sum(p["cpu_us_per_call"] * p["calls"] for p in phases) / max(1, latency.count),
        "processes": len(phases),
    }


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


def ratios_and_targets(result: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The ratios of the run, and each target of issue 4 item 3 with its value and verdict."""
    real, null, redis_only, ledger = result["real"], result["null"], result["redis_only"], result["ledger"]
    # Throughput counts decisions: a fail-closed decline is an answer, but a cheap one that says
    # the server could not decide in time, so it must not count towards capacity.
    real_max = real["closed"]["decided_per_s"]
    p99_by_rate = []
    for real_open, null_open in zip(real["open"], null["open"], strict=True):
        p99_by_rate.append(
            {
                "fraction": real_open["fraction_of_real_max"],
                "offered_per_s": real_open["offered_per_s"],
                "real_p99_ms": real_open["latency_ms"]["p99"],
                "null_p99_ms": null_open["latency_ms"]["p99"],
                "p99_real_over_null": _ratio(real_open["latency_ms"]["p99"], null_open["latency_ms"]["p99"]),
            }
        )
    ratios: dict[str, Any] = {
        "closed_throughput_real_over_null": _ratio(real_max, null["closed"]["decided_per_s"]),
        "closed_throughput_real_over_redis_only": _ratio(real_max, redis_only["closed"]["decided_per_s"]),
        "closed_p99_real_over_null": _ratio(real["closed"]["latency_ms"]["p99"], null["closed"]["latency_ms"]["p99"]),
        "open_p99_real_over_null": p99_by_rate,
        "writer_posted_over_real_max": _ratio(ledger["posted_per_s"], real_max) if ledger else None,
    }
    half = next((r for r in p99_by_rate if abs(r["fraction"] - HALF_RATE_FRACTION) < 1e-9), None)
    targets = [
        _target(
            "closed-loop throughput, real / null",
            ratios["closed_throughput_real_over_null"],
            f">= {CLOSED_THROUGHPUT_RATIO_MIN}",
            lambda v: v >= CLOSED_THROUGHPUT_RATIO_MIN,
        ),
        _target(
            "p99 at half the real max rate, real / null",
            half["p99_real_over_null"] if half else None,
            f"<= {HALF_RATE_P99_RATIO_MAX}",
            lambda v: v <= HALF_RATE_P99_RATIO_MAX,
        ),
        _target(
            "ledger writer posted per second / real max Authorize rate",
            ratios["writer_posted_over_real_max"],
            f">= {WRITER_RATE_RATIO_MIN}",
            lambda v: v >= WRITER_RATE_RATIO_MIN,
        ),
        _target(
            "ledger lag back to zero after the burst, s",
            ledger["catch_up_s"] if ledger else None,
            f"<= {WRITER_CATCH_UP_S_MAX}",
            lambda v: v <= WRITER_CATCH_UP_S_MAX,
        ),
    ]
    return ratios, targets


def _target(name: str, value: float | None, target: str, met: Any) -> dict[str, Any]:
    return {"target": name, "value": value, "required": target, "met": bool(value is not None and met(value))}


# --- tables ------------------------------------------------------------------------------

COLUMNS = (
    "server", "phase", "offered/s", "answered/s", "decided/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms",
    "fail-closed", "errors", "other CPU",
)  # fmt: skip


def _row(server: str, phase: dict[str, Any], label: str) -> tuple[str, ...]:
    latency = phase["latency_ms"]
    offered = phase.get("offered_per_s")
    return (
        server,
        label,
        f"{offered:,.0f}" if offered else "-",
        f"{phase['throughput_per_s']:,.0f}",
        f"{phase['decided_per_s']:,.0f}",
        f"{latency['p50']:.2f}",
        f"{latency['p90']:.2f}",
        f"{latency['p99']:.2f}",
        f"{latency['p99.9']:.2f}",
        f"{phase['fail_closed']:,}",
        f"{sum(phase['errors'].values()):,}",
        f"{phase['background_cores']:.2f}{' !' if phase.get('noisy') else ''}",
    )


def table_rows(result: dict[str, Any]) -> list[tuple[str, ...]]:
    config = result["config"]
    closed = f"closed, {config['concurrency']} in flight"
    rows = [
        _row("real", result["real"]["closed"], closed),
        _row("null", result["null"]["closed"], closed),
        _row("redis-only", result["redis_only"]["closed"], closed),
    ]
    for real_open, null_open in zip(result["real"]["open"], result["null"]["open"], strict=True):
        label = f"open, {100 * real_open['fraction_of_real_max']:.0f} % of real max"
        rows.append(_row("real", real_open, label))
        rows.append(_row("null", null_open, label))
    return rows


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def summary_lines(result: dict[str, Any]) -> list[str]:
    ratios, ledger, warm, machine = result["ratios"], result["ledger"], result["real"]["warm"], result["machine"]
    measured = [result["real"]["closed"], result["null"]["closed"], *result["real"]["open"], *result["null"]["open"]]
    noisy = sum(1 for phase in measured if phase.get("noisy"))
    lines = [
        f"machine: {machine['cpus']} CPUs ({machine['cpu_model']}), {machine['memory_gib']} GiB, Python "
        f"{machine['python']}, {machine['redis']}, PostgreSQL {machine['postgres']}; "
        f"{result['config']['workers']} server workers; {noisy} of {len(measured)} server phases noisy",
        f"warm-up: {warm['calls']:,} calls (every card through every real worker) in {warm['seconds']:.1f} s; "
        f"closed loop then re-planned {result['real']['closed']['server']['policy_refreshes']:,} stale policies",
        "throughput = decided/s (fail-closed declines are answers, not decisions); latency from the scheduled "
        "send in open loop; 'other CPU' = cores other processes on the machine took meanwhile ('!': noisy)",
        f"closed-loop throughput real / null: {_fmt(ratios['closed_throughput_real_over_null'])}",
        f"closed-loop throughput real / redis-only: {_fmt(ratios['closed_throughput_real_over_redis_only'])}",
        f"closed-loop p99 real / null: {_fmt(ratios['closed_p99_real_over_null'])}",
    ]
    for r in ratios["open_p99_real_over_null"]:
        lines.append(
            f"open loop at {r['offered_per_s']:,.0f}/s ({100 * r['fraction']:.0f} % of real max): "
            f"p99 real / null = {_fmt(r['p99_real_over_null'])}"
        )
    repeats = result.get("repeats") or {}
    if len(repeats.get("closed", [])) > 1:
        lines.append(
            f"closed loop measured in {len(repeats['closed'])} pairs, the order alternating; real / null per pair: "
            + _pairs_text(repeats["closed"], "real_per_s", "null_per_s", "{:,.0f}/s")
            + "; the table and the targets report the median pair"
        )
    for repeated in repeats.get("open", []):
        lines.append(
            f"open loop at {100 * repeated['fraction']:.0f} % of real max measured in {len(repeated['pairs'])} "
            "pairs; p99 real / null per pair: "
            + _pairs_text(repeated["pairs"], "real_p99_ms", "null_p99_ms", "{:.2f} ms")
            + "; the table and the targets report the median pair"
        )
    if ledger:
        lines.append(
            f"ledger writer: {ledger['posted_per_s']:,.0f} decisions posted/s draining a backlog "
            f"({_fmt(ratios['writer_posted_over_real_max'])} x the real max Authorize rate); after a "
            f"{ledger['burst_s']:.1f} s burst at {ledger['burst_achieved_per_s']:,.0f}/s the lag was "
            f"{ledger['backlog_at_stop_entries']:,} entries and back to zero in {ledger['catch_up_s']:.2f} s"
        )
    return lines


def _pairs_text(pairs: list[dict[str, Any]], real_key: str, null_key: str, unit: str) -> str:
    return ", ".join(
        f"{_fmt(pair['ratio'])} ({unit.format(pair[real_key])} vs {unit.format(pair[null_key])}, {pair['first']} first)"
        for pair in pairs
    )


def text_report(result: dict[str, Any]) -> str:
    rows = [COLUMNS, *table_rows(result)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    out = []
    for n, row in enumerate(rows):
        cells = [cell.ljust(widths[i]) if i < 2 else cell.rjust(widths[i]) for i, cell in enumerate(row)]
        out.append("  ".join(cells))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    out.append("")
    out.extend(summary_lines(result))
    out.append("")
    for target in result["targets"]:
        verdict = "met" if target["met"] else "MISSED"
        out.append(f"target: {target['target']}: {_fmt(target['value'], 3)} (needs {target['required']}): {verdict}")
    return "\n".join(out)


def markdown_report(result: dict[str, Any]) -> str:
    rows = table_rows(result)
    out = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" if i < 2 else "---:" for i in range(len(COLUMNS))) + "|",
    ]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    out.append("")
    out += [f"- {line}" for line in summary_lines(result)]
    out.append("")
    out.append("| target (issue 4, item 3) | value | required | verdict |")
    out.append("|---|---:|---|---|")
    for target in result["targets"]:
        verdict = "met" if target["met"] else "**missed**"
        out.append(f"| {target['target']} | {_fmt(target['value'], 3)} | {target['required']} | {verdict} |")
    return "\n".join(out) + "\n"


# --- the picture -------------------------------------------------------------------------


def draw_latency(result: dict[str, Any], path: Path) -> None:
    """p50, p99 and p99.9 against offered rate, real (solid) and null (dashed), log latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5), dpi=110)
    markers = {"p50": "o", "p99": "s", "p99.9": "^"}
    for server, line, colour in (("real", "-", "tab:blue"), ("null", "--", "tab:gray")):
        phases = result[server]["open"]
        rates = [p["offered_per_s"] for p in phases]
        for percentile, marker in markers.items():
            axes.plot(
                rates,
                [p["latency_ms"][percentile] for p in phases],
                linestyle=line,
                marker=marker,
                color=colour,
                label=f"{server} {percentile}",
            )
    axes.set_yscale("log")
    axes.set_xlabel("offered rate, Authorize calls per second (open loop)")
    axes.set_ylabel("latency from scheduled send, ms (log)")
    config = result["config"]
    axes.set_title(
        f"Authorize latency, real vs null server ({config['workers']} workers, {result['machine']['cpus']} CPUs)"
    )
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(ncol=2, fontsize="small")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
