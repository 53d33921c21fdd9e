"""The performance budget: the median of each measurement over the rounds, and every target
with its verdict, from the saved results of a run (bench/out/results.json)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

# The bar of the 6 KB pod asking for one template, against the baseline of the same run.
THROUGHPUT_RATIO = 0.45  # throughput ≥ 0.45 x the baseline's
CPU_RATIO = 2.2  # server CPU-ms per admission ≤ 2.2 x the baseline's
P99_RATIO = 2.5  # p99 ≤ 2.5 x the baseline's
RSS_MB = 80  # peak RSS under load (6 KB pods), megabytes
FLAT_TOLERANCE = 0.20  # most templates loaded costs at most 20% more than fewest
FLAT_P99 = 2.0  # ... and its p99 at most 2 x
ONE_MIB_MS = 50.0  # a 1 MiB pod answered within (single request)
SIX = "6kb-1t"
ONE_MIB = "1mib"
INJECTOR = "injector"
BASELINE = "baseline"
MEDIANS = ["rps", "p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms", "cpu_ms", "cpu_util"]
MEDIANS += ["peak_rss_mib", "server_p50_ms", "server_max_ms", "others"]
SUMS = ("errors", "requests", "logged", "injected")
"""Over the rounds: the median of each number, the sum of each count."""

Results = dict[str, Any]
"""What bench/run.py measured: meta, scenarios, servers, templates_loaded, runs, profile."""
Measured = dict[str, float]


@dataclass(frozen=True)
class Verdict:
    target: str
    scope: str
    measured: str
    met: bool


def pick(
    runs: list[dict[str, Any]],
    kind: str,
    server: str,
    scenario: str,
    connections: int | None = None,
) -> Measured | None:
    """The median of each number over the rounds of one measurement; None if not measured."""
    found = [
        r
        for r in runs
        if (r["kind"], r["server"], r["scenario"]) == (kind, server, scenario)
        and connections in (None, r["connections"])
    ]
    if not found:
        return None
    median = {k: statistics.median(float(r.get(k, 0)) for r in found) for k in MEDIANS}
    # Not the median: the allocator keeps memory that an earlier, larger request shape grew
    # (1 MiB bodies), which later rounds would count as this shape's.
    median["peak_rss_mib"] = min(float(r["peak_rss_mib"]) for r in found)
    return median | {k: sum(r[k] for r in found) for k in SUMS}


def load(results: Results, server: str, scenario: str, connections: int) -> Measured | None:
    return pick(results["runs"], "load", server, scenario, connections)


def ms(value: float) -> str:
    """A latency in ms: two decimals below 10 ms, one above."""
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def verdicts(results: Results, before: Results | None = None) -> list[Verdict]:
    """Every target of the performance budget that this run measured; with the run of the
    previous version (`before`), also that nothing else got slower."""
    connections = results["meta"]["connections"]
    six = [
        (c, ours, base)
        for c in connections
        if (ours := load(results, INJECTOR, SIX, c)) and (base := load(results, BASELINE, SIX, c))
    ]
    out = [
        Verdict(
            f"throughput ≥ {THROUGHPUT_RATIO}x baseline",
            f"6 KB, 1 template, {c} conns",
            f"{r:.2f}x ({ours['rps']:,.0f} vs {base['rps']:,.0f} req/s)",
            r >= THROUGHPUT_RATIO,
        )
        for c, ours, base in six
        for r in [ours["rps"] / base["rps"]]
    ]
    out += [
        Verdict(
            f"CPU-ms per admission ≤ {CPU_RATIO}x baseline's",
            f"6 KB, 1 template, {c} conns",
            f"{r:.2f}x ({ours['cpu_ms']:.3f} vs {base['cpu_ms']:.3f} ms)",
            r <= CPU_RATIO,
        )
        for c, ours, base in six
        for r in [ours["cpu_ms"] / base["cpu_ms"]]
    ]
    if six:
        p99 = [(c, ours["p99_ms"] / base["p99_ms"], ours["p99_ms"]) for c, ours, base in six]
        out.append(
            Verdict(
                f"p99 ≤ {P99_RATIO:g}x baseline's",
                "6 KB, 1 template",
                ", ".join(f"{c} conns {r:.2f}x ({v:.1f} ms)" for c, r, v in p99),
                all(r <= P99_RATIO for _, r, _ in p99),
            )
        )
    rss = [
        (scenario["key"], c, measured["peak_rss_mib"] * 2**20 / 1e6)
        for scenario in results["scenarios"]
        if scenario["key"].startswith("6kb")
        for c in connections
        if (measured := load(results, INJECTOR, scenario["key"], c))
    ]
    if rss:
        key, conns, peak = max(rss, key=lambda item: item[2])
        out.append(
            Verdict(
                f"peak RSS under load ≤ {RSS_MB} MB",
                "6 KB pods, 1 and 3 templates, every conns count",
                f"at most {peak:.0f} MB ({key}, {conns} conns)",
                peak <= RSS_MB,
            )
        )
    if before is not None:
        out += not_slower(results, before)
    if flat := flatness(results):
        counts = sorted(flat)
        first, last = flat[counts[0]], flat[counts[-1]]
        cpu_growth = last["cpu_ms"] / first["cpu_ms"]
        p99_growth = last["p99_ms"] / first["p99_ms"]
        out.append(
            Verdict(
                f"flat in templates loaded (CPU ≤ +{FLAT_TOLERANCE:.0%}, p99 ≤ {FLAT_P99:g}x)",
                "6 KB, 1 template, 16 conns",
                "CPU-ms "
                + ", ".join(f"{n:,}: {flat[n]['cpu_ms']:.3f}" for n in counts)
                + f" ({cpu_growth:.2f}x); p99 ms "
                + ", ".join(f"{n:,}: {ms(flat[n]['p99_ms'])}" for n in counts)
                + f" ({p99_growth:.1f}x)",
                cpu_growth <= 1 + FLAT_TOLERANCE and p99_growth <= FLAT_P99,
            )
        )
    if big := pick(results["runs"], "sequential", INJECTOR, ONE_MIB):
        out.append(
            Verdict(
                f"1 MiB pod answered < {ONE_MIB_MS:g} ms",
                "single requests, one at a time",
                f"p50 {big['p50_ms']:.1f}, p99 {big['p99_ms']:.1f}, max {big['max_ms']:.1f} ms",
                big["p99_ms"] < ONE_MIB_MS,
            )
        )
    return out


def not_slower(results: Results, before: Results) -> list[Verdict]:
    """Every other request shape, and the most templates loaded, against the previous
    version: throughput and CPU-ms per admission relative to each run's own baseline, so that
    the two runs compare however busy the machine was."""

    def verdict(scope: str, changes: list[tuple[str, Measured, Measured]]) -> Verdict:
        return Verdict(
            "not slower than before (vs baseline: throughput, CPU-ms)",
            scope,
            "; ".join(
                f"{label}{then['rps']:.2f}x → {now['rps']:.2f}x, "
                f"{then['cpu']:.2f}x → {now['cpu']:.2f}x"
                for label, now, then in changes
            ),
            all(
                now["rps"] >= then["rps"] and now["cpu"] <= then["cpu"] for _, now, then in changes
            ),
        )

    out = []
    for scenario in results["scenarios"]:
        if scenario["key"] == SIX:  # the 6 KB / one-template targets are above
            continue
        changes = [
            (f"{c} conns ", now, then)
            for c in results["meta"]["connections"]
            if (now := relative(results, scenario["key"], c))
            and (then := relative(before, scenario["key"], c))
        ]
        if changes:
            out.append(verdict(scenario["title"], changes))
    most = max((int(n) for n in results["templates_loaded"]), default=None)
    if most is not None and str(most) in before.get("templates_loaded", {}):
        now = relative(results, SIX, 16, results["templates_loaded"][str(most)])
        then = relative(before, SIX, 16, before["templates_loaded"][str(most)])
        if now and then:
            scope = f"{most:,} templates loaded, 6 KB, 1 template, 16 conns"
            out.append(verdict(scope, [("", now, then)]))
    return out


def relative(
    results: Results, scenario: str, connections: int, server: str = INJECTOR
) -> Measured | None:
    """`server`'s throughput, CPU-ms per admission and p99, each as a multiple of the
    baseline's in the same run, and its own CPU-ms per admission and peak RSS."""
    ours = load(results, server, scenario, connections)
    base = load(results, BASELINE, scenario, connections)
    if not (ours and base):
        return None
    return {
        "rps": ours["rps"] / base["rps"],
        "cpu": ours["cpu_ms"] / base["cpu_ms"],
        "p99": ours["p99_ms"] / base["p99_ms"],
        "cpu_ms": ours["cpu_ms"],
        "rss": ours["peak_rss_mib"],
    }


def flatness(results: Results) -> dict[int, Measured]:
    """The 6 KB / one-template load run at 16 connections, by number of templates loaded."""
    cost = {
        int(count): measured
        for count, server in results["templates_loaded"].items()
        if (measured := load(results, server, SIX, 16))
    }
    return cost if len(cost) >= 2 else {}


def six_kb_targets_met(runs: list[dict[str, Any]]) -> bool:
    """Whether the 6 KB / one-template targets (throughput, CPU) are met: else profile."""
    meta = {"connections": sorted({r["connections"] for r in runs})}
    found = verdicts({"runs": runs, "meta": meta, "scenarios": [], "templates_loaded": {}})
    return all(v.met for v in found)


def text(results: Results, before: Results | None = None) -> str:
    """The verdicts as `make bench` prints them at the end."""
    lines = ["targets:"]
    for v in verdicts(results, before):
        lines.append(f"  {'met   ' if v.met else 'MISSED'}  {v.target} [{v.scope}]: {v.measured}")
    return "\n".join(lines)
