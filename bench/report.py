"""The benchmark's report: medians per measurement, the performance budget's targets with a
verdict each, bench/results.md and the latency chart bench/results.png."""

from __future__ import annotations

import importlib
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.load import Run

# The bar of the 6 KB pod asking for one template, against the baseline of the same run.
THROUGHPUT_RATIO = 0.45  # throughput ≥ 0.45 x the baseline's
CPU_RATIO = 2.2  # server CPU-ms per admission ≤ 2.2 x the baseline's
P99_RATIO = 2.5  # p99 ≤ 2.5 x the baseline's
RSS_MB = 80  # peak RSS under load (6 KB pods), megabytes
FLAT_TOLERANCE = 0.20  # most templates loaded costs at most 20% more than fewest
FLAT_P99 = 2.0  # ... and its p99 at most 2 x
ONE_MIB_MS = 50.0  # a 1 MiB pod answered within (single request)
MATPLOTLIB = "matplotlib==3.10.8"
SIX = "6kb-1t"
ONE_MIB = "1mib"
INJECTOR = "injector"
BASELINE = "baseline"
NUMBERS = (
    "rps",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "max_ms",
    "mean_ms",
    "cpu_ms",
    "cpu_util",
    "peak_rss_mib",
    "server_p50_ms",
    "server_max_ms",
    "others",
)

Results = dict[str, Any]


@dataclass(frozen=True)
class Verdict:
    target: str
    scope: str
    measured: str
    met: bool


# --- numbers ---


def pick(
    runs: list[dict[str, Any]],
    kind: str,
    server: str,
    scenario: str,
    connections: int | None = None,
) -> dict[str, float] | None:
    """The median of each number over the rounds of one measurement; None if not measured."""
    found = [
        r
        for r in runs
        if r["kind"] == kind
        and r["server"] == server
        and r["scenario"] == scenario
        and (connections is None or r["connections"] == connections)
    ]
    if not found:
        return None
    median = {k: statistics.median(float(r.get(k, 0)) for r in found) for k in NUMBERS}
    # Not the median: the allocator keeps memory that an earlier, larger request shape grew
    # (1 MiB bodies), which later rounds would count as this shape's.
    median["peak_rss_mib"] = min(float(r["peak_rss_mib"]) for r in found)
    median["errors"] = sum(r["errors"] for r in found)
    median["requests"] = sum(r["requests"] for r in found)
    median["logged"] = sum(r["logged"] for r in found)
    median["injected"] = sum(r["injected"] for r in found)
    return median


def verdicts(results: Results, before: Results | None = None) -> list[Verdict]:
    """Every target of the performance budget that this run measured; with the run of the
    previous version (`before`), also that nothing else got slower."""
    runs = results["runs"]
    out: list[Verdict] = []
    connections = results["meta"]["connections"]
    six = [
        (c, pick(runs, "load", INJECTOR, SIX, c), pick(runs, "load", BASELINE, SIX, c))
        for c in connections
    ]
    for c, ours, base in six:
        if ours and base:
            ratio = ours["rps"] / base["rps"]
            out.append(
                Verdict(
                    f"throughput ≥ {THROUGHPUT_RATIO}x baseline",
                    f"6 KB, 1 template, {c} conns",
                    f"{ratio:.2f}x ({ours['rps']:,.0f} vs {base['rps']:,.0f} req/s)",
                    ratio >= THROUGHPUT_RATIO,
                )
            )
    for c, ours, base in six:
        if ours and base:
            ratio = ours["cpu_ms"] / base["cpu_ms"]
            out.append(
                Verdict(
                    f"CPU-ms per admission ≤ {CPU_RATIO}x baseline's",
                    f"6 KB, 1 template, {c} conns",
                    f"{ratio:.2f}x ({ours['cpu_ms']:.3f} vs {base['cpu_ms']:.3f} ms)",
                    ratio <= CPU_RATIO,
                )
            )
    ratios = [
        (c, ours["p99_ms"] / base["p99_ms"], ours["p99_ms"])
        for c, ours, base in six
        if ours and base
    ]
    if ratios:
        out.append(
            Verdict(
                f"p99 ≤ {P99_RATIO:g}x baseline's",
                "6 KB, 1 template",
                ", ".join(f"{c} conns {r:.2f}x ({ms:.1f} ms)" for c, r, ms in ratios),
                all(r <= P99_RATIO for _, r, _ in ratios),
            )
        )
    rss = [
        (scenario["key"], c, measured["peak_rss_mib"] * 2**20 / 1e6)
        for scenario in results["scenarios"]
        if scenario["key"].startswith("6kb")
        for c in connections
        if (measured := pick(runs, "load", INJECTOR, scenario["key"], c))
    ]
    if rss:
        scenario, conns, peak = max(rss, key=lambda item: item[2])
        out.append(
            Verdict(
                f"peak RSS under load ≤ {RSS_MB} MB",
                "6 KB pods, 1 and 3 templates, every conns count",
                f"at most {peak:.0f} MB ({scenario}, {conns} conns)",
                peak <= RSS_MB,
            )
        )
    if before is not None:
        out += not_slower(results, before)
    flat = flatness(results)
    if flat:
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
                + ", ".join(f"{n:,}: {_ms(flat[n]['p99_ms'])}" for n in counts)
                + f" ({p99_growth:.1f}x)",
                cpu_growth <= 1 + FLAT_TOLERANCE and p99_growth <= FLAT_P99,
            )
        )
    big = pick(runs, "sequential", INJECTOR, ONE_MIB)
    if big:
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
    out = []
    for scenario in results["scenarios"]:
        if scenario["key"] == SIX:
            continue
        changes = []
        for c in results["meta"]["connections"]:
            now, then = relative(results, scenario["key"], c), relative(before, scenario["key"], c)
            if now and then:
                changes.append((c, now, then))
        if changes:
            out.append(
                Verdict(
                    "not slower than before (vs baseline: throughput, CPU-ms)",
                    scenario["title"],
                    "; ".join(
                        f"{c} conns {then[0]:.2f}x → {now[0]:.2f}x, {then[1]:.2f}x → {now[1]:.2f}x"
                        for c, now, then in changes
                    ),
                    all(now[0] >= then[0] and now[1] <= then[1] for _, now, then in changes),
                )
            )
    most = max((int(n) for n in results["templates_loaded"]), default=None)
    if most is not None and str(most) in before.get("templates_loaded", {}):
        now = relative(results, SIX, 16, results["templates_loaded"][str(most)])
        then = relative(before, SIX, 16, before["templates_loaded"][str(most)])
        if now and then:
            out.append(
                Verdict(
                    "not slower than before (vs baseline: throughput, CPU-ms)",
                    f"{most:,} templates loaded, 6 KB, 1 template, 16 conns",
                    f"{then[0]:.2f}x → {now[0]:.2f}x, {then[1]:.2f}x → {now[1]:.2f}x",
                    now[0] >= then[0] and now[1] <= then[1],
                )
            )
    return out


def relative(
    results: Results, scenario: str, connections: int, server: str = INJECTOR
) -> tuple[float, float] | None:
    """Throughput and CPU-ms per admission of `server`, each as a multiple of the baseline's
    in the same run."""
    ours = pick(results["runs"], "load", server, scenario, connections)
    base = pick(results["runs"], "load", BASELINE, scenario, connections)
    if not (ours and base):
        return None
    return ours["rps"] / base["rps"], ours["cpu_ms"] / base["cpu_ms"]


def flatness(results: Results) -> dict[int, dict[str, float]]:
    """The 6 KB / one-template load run at 16 connections, by number of templates loaded."""
    cost = {}
    for count, server in results["templates_loaded"].items():
        measured = pick(results["runs"], "load", server, SIX, 16)
        if measured:
            cost[int(count)] = measured
    return cost if len(cost) >= 2 else {}


def six_kb_targets_met(runs: list[Run]) -> bool:
    """Whether the 6 KB / one-template targets (throughput, CPU) are met: else profile."""
    dicts = [r.as_dict() for r in runs]
    fake = {"runs": dicts, "meta": {"connections": sorted({r.connections for r in runs})}}
    found = verdicts({**fake, "scenarios": [], "templates_loaded": {}})
    return all(v.met for v in found)


def targets_text(results: Results, before: Results | None = None) -> str:
    lines = ["targets:"]
    for v in verdicts(results, before):
        lines.append(f"  {'met   ' if v.met else 'MISSED'}  {v.target} [{v.scope}]: {v.measured}")
    return "\n".join(lines)


def save_json(results: Results, path: Path) -> None:
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")


def load_json(path: Path) -> Results:
    results: Results = orjson.loads(path.read_bytes())
    return results


# --- markdown ---


def _mark(met: bool) -> str:
    return "✅ met" if met else "❌ missed"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    align = ["---"] + ["---:"] * (len(header) - 1)
    return [_row(header), _row(align), *(_row(r) for r in rows), ""]


def _ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def markdown(results: Results, before: Results | None = None) -> str:
    meta = results["meta"]
    runs = results["runs"]
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    dirty = " with uncommitted changes in injector/" if meta["dirty"] else ""
    lines = [
        "# Load benchmark of `POST /mutate`",
        "",
        f"Generated by `make bench` (`{meta['command'].strip()}`) on {meta['date']}, "
        f"commit `{meta['commit']}`{dirty}.",
        f"Machine: {meta['cores']} cores of {meta['cpu']}, Linux {meta['kernel']}, "
        f"Python {meta['python']}; {versions}; {meta['wrk'].split(' [')[0]}.",
        "",
        "How: one `serve` process with production flags (`--log-level=info`, JSON log lines on "
        "stdout into a file the benchmark drains, examples/templates) and, in the same run, the "
        "baseline (a Starlette endpoint that reads the body and returns a fixed AdmissionReview, "
        "same uvicorn/uvloop/httptools/TLS settings). "
        f"wrk -t{meta['threads']} with a Lua script over keep-alive TLS, {meta['duration']} s per "
        f"run after a {meta['warmup']} s warm-up, {meta['rounds']} round(s), service and "
        "baseline alternating. wrk and the server share the machine's cores, so the ratios to "
        "the baseline are the numbers to compare across machines. CPU-ms per admission is the "
        "server process's utime+stime (/proc/<pid>/stat) over the run divided by the requests "
        "(under one CPU-second, as in the single-request series, the nanosecond run time of "
        "its threads from /proc/<pid>/task/*/schedstat); CPU use is CPU-seconds per second "
        "(100% = one core); peak RSS is its VmHWM, reset before each run, the lowest over the "
        "rounds (memory kept from an earlier, larger request shape would count in later "
        "rounds); others is the cores "
        "used meanwhile by other processes on the machine (neither the server nor wrk/the "
        "client; each run first waits, within a budget, for the machine to be quiet). "
        "Latencies in ms.",
        "",
        "## Targets",
        "",
    ]
    lines += _table(
        ["target", "where", "measured", "verdict"],
        [[v.target, v.scope, v.measured, _mark(v.met)] for v in verdicts(results, before)],
    )
    if before is not None:
        lines += _before_after(results, before)
    lines += ["## Under load (wrk, closed loop)", ""]
    header = [
        "conns",
        "server",
        "req/s",
        "p50",
        "p90",
        "p99",
        "max",
        "CPU-ms/req",
        "CPU use",
        "peak RSS MiB",
        "errors",
        "others",
    ]
    for scenario in results["scenarios"]:
        key = scenario["key"]
        lines += [
            f"### {scenario['title']}",
            "",
            f"Body {scenario['bytes'] / 1024:,.1f} KiB; templates requested: "
            f"`{scenario['templates']}`.",
            "",
        ]
        rows = []
        for c in meta["connections"]:
            ours = pick(runs, "load", INJECTOR, key, c)
            base = pick(runs, "load", BASELINE, key, c)
            for name, m in ((INJECTOR, ours), (BASELINE, base)):
                if m:
                    rows.append(_load_row(str(c), name, m))
            if ours and base:
                rows.append(
                    [
                        str(c),
                        "**ratio**",
                        f"**{ours['rps'] / base['rps']:.2f}x**",
                        f"{ours['p50_ms'] / base['p50_ms']:.2f}x",
                        f"{ours['p90_ms'] / base['p90_ms']:.2f}x",
                        f"**{ours['p99_ms'] / base['p99_ms']:.2f}x**",
                        f"{ours['max_ms'] / base['max_ms']:.2f}x",
                        f"{ours['cpu_ms'] / base['cpu_ms']:.2f}x",
                        "",
                        f"{ours['peak_rss_mib'] / base['peak_rss_mib']:.2f}x",
                        "",
                        "",
                    ]
                )
        lines += _table(header, rows)
    lines += _sequential(results)
    lines += _sizes(results)
    lines += _templates(results)
    lines += _profile(results, before)
    lines += _notes(results)
    return "\n".join(lines).rstrip() + "\n"


def _before_after(results: Results, before: Results) -> list[str]:
    """The previous version's run next to this one: ratios to each run's own baseline (which
    compare across runs), and the absolute numbers for reference."""
    meta = before["meta"]
    rows = []
    for scenario in results["scenarios"]:
        for c in results["meta"]["connections"]:
            now, then = _pair(results, scenario["key"], c), _pair(before, scenario["key"], c)
            if now and then:
                rows.append(
                    [
                        f"{scenario['title']}, {c} conns",
                        f"{then['rps']:.2f}x → **{now['rps']:.2f}x**",
                        f"{then['cpu']:.2f}x → **{now['cpu']:.2f}x**",
                        f"{then['p99']:.2f}x → **{now['p99']:.2f}x**",
                        f"{then['cpu_ms']:.3f} → {now['cpu_ms']:.3f}",
                        f"{then['rss']:.0f} → {now['rss']:.0f}",
                    ]
                )
    lines = [
        "## Before → after",
        "",
        f"Before: commit `{meta['commit']}`, measured by `{meta['command'].strip()}` on "
        f"{meta['date']} on the same machine (bench/before.json). Ratios are to the baseline of "
        "the same run, so they compare across the two runs; the injector's CPU-ms per admission "
        "and peak RSS are absolute.",
        "",
        *_table(
            [
                "request, connections",
                "throughput (x baseline)",
                "CPU-ms/adm (x baseline)",
                "p99 (x baseline)",
                "CPU-ms/adm",
                "peak RSS MiB",
            ],
            rows,
        ),
    ]
    rows = []
    for scenario in results["scenarios"]:
        now = pick(results["runs"], "sequential", INJECTOR, scenario["key"])
        then = pick(before["runs"], "sequential", INJECTOR, scenario["key"])
        if now and then:
            rows.append(
                [
                    scenario["title"],
                    f"{_ms(then['p50_ms'])} → {_ms(now['p50_ms'])}",
                    f"{_ms(then['server_p50_ms'])} → {_ms(now['server_p50_ms'])}",
                    f"{then['cpu_ms']:.3f} → {now['cpu_ms']:.3f}",
                ]
            )
    lines += _table(["single requests", "p50 ms", "server-side p50 ms", "CPU-ms/req"], rows)
    rows = []
    loaded = [("3 (examples)", INJECTOR, INJECTOR)] + [
        (f"{int(n):,}", server, before["templates_loaded"].get(n))
        for n, server in results["templates_loaded"].items()
    ]
    for label, server, old in loaded:
        now_server = results["servers"].get(server)
        then_server = before["servers"].get(old) if old else None
        now = pick(results["runs"], "load", server, SIX, 16)
        then = pick(before["runs"], "load", old, SIX, 16) if old else None
        if now_server and then_server and now and then:
            rows.append(
                [
                    label,
                    f"{then_server['ready_seconds']:.1f} → {now_server['ready_seconds']:.1f}",
                    f"{then_server['idle_rss_mib']:.0f} → {now_server['idle_rss_mib']:.0f}",
                    f"{then['cpu_ms']:.3f} → {now['cpu_ms']:.3f}",
                    f"{then['p99_ms']:.2f} → {now['p99_ms']:.2f}",
                ]
            )
    lines += _table(
        ["templates loaded", "start-up to ready s", "idle RSS MiB", "CPU-ms/adm", "p99 ms"], rows
    )
    return lines


def _pair(results: Results, scenario: str, connections: int) -> dict[str, float] | None:
    ours = pick(results["runs"], "load", INJECTOR, scenario, connections)
    base = pick(results["runs"], "load", BASELINE, scenario, connections)
    if not (ours and base):
        return None
    return {
        "rps": ours["rps"] / base["rps"],
        "cpu": ours["cpu_ms"] / base["cpu_ms"],
        "p99": ours["p99_ms"] / base["p99_ms"],
        "cpu_ms": ours["cpu_ms"],
        "rss": ours["peak_rss_mib"],
    }


def _load_row(conns: str, name: str, m: dict[str, float]) -> list[str]:
    return [
        conns,
        name,
        f"{m['rps']:,.0f}",
        _ms(m["p50_ms"]),
        _ms(m["p90_ms"]),
        _ms(m["p99_ms"]),
        _ms(m["max_ms"]),
        f"{m['cpu_ms']:.3f}",
        f"{m['cpu_util']:.0%}",
        f"{m['peak_rss_mib']:.0f}",
        f"{m['errors']:.0f}",
        f"{m['others']:.2f}",
    ]


def _sequential(results: Results) -> list[str]:
    runs = results["runs"]
    lines = [
        "## Single requests (sequential, one keep-alive TLS connection)",
        "",
        "One request at a time, timed by a Python client (so it includes sending the body and "
        "reading the answer); server-side is the `duration_ms` of the canonical log line (from "
        "reading the body to handing the answer to the connection, whose TLS write follows in "
        "the same event-loop turn).",
        "",
    ]
    rows = []
    for scenario in results["scenarios"]:
        for name in (INJECTOR, BASELINE):
            m = pick(runs, "sequential", name, scenario["key"])
            if m:
                rows.append(
                    [
                        scenario["title"],
                        name,
                        f"{m['requests']:.0f}",
                        _ms(m["p50_ms"]),
                        _ms(m["p90_ms"]),
                        _ms(m["p99_ms"]),
                        _ms(m["max_ms"]),
                        _ms(m["server_p50_ms"]) if name == INJECTOR else "",
                        f"{m['cpu_ms']:.3f}",
                    ]
                )
    header = [
        "request",
        "server",
        "requests",
        "p50",
        "p90",
        "p99",
        "max",
        "server-side p50",
        "CPU-ms/req",
    ]
    return lines + _table(header, rows)


def _sizes(results: Results) -> list[str]:
    runs = results["runs"]
    rows = []
    for scenario in results["scenarios"]:
        if "," in scenario["templates"]:
            continue
        key = scenario["key"]
        ours = pick(runs, "load", INJECTOR, key, 16)
        base = pick(runs, "load", BASELINE, key, 16)
        seq = pick(runs, "sequential", INJECTOR, key)
        seq_base = pick(runs, "sequential", BASELINE, key)
        if not (ours and base and seq and seq_base):
            continue
        extra = ours["cpu_ms"] - base["cpu_ms"]
        rows.append(
            [
                f"{scenario['bytes'] / 1024:,.0f} KiB",
                f"{ours['cpu_ms']:.3f}",
                f"{base['cpu_ms']:.3f}",
                f"{extra:.3f}",
                f"{extra / (scenario['bytes'] / 1024 / 1024):.1f}",
                _ms(seq["p50_ms"]),
                _ms(seq_base["p50_ms"]),
                f"{ours['peak_rss_mib']:.0f}",
            ]
        )
    if not rows:
        return []
    header = [
        "body",
        "CPU-ms/adm",
        "baseline CPU-ms",
        "injector's own",
        "own CPU-ms per MiB",
        "single p50",
        "baseline single p50",
        "peak RSS MiB (16 conns)",
    ]
    return [
        "## Cost vs pod size (one template, 16 connections)",
        "",
        "The injector's own cost is its CPU-ms per admission minus the baseline's for the same "
        "body (uvicorn, TLS and reading the body are in both).",
        "",
        *_table(header, rows),
    ]


def _templates(results: Results) -> list[str]:
    runs = results["runs"]
    servers = results["servers"]
    flat = flatness(results)
    rows = []
    reference = pick(runs, "load", INJECTOR, SIX, 16)
    seq_reference = pick(runs, "sequential", INJECTOR, SIX)
    if reference and seq_reference:
        rows.append(
            _templates_row("3 (examples)", servers.get(INJECTOR, {}), reference, seq_reference, "")
        )
    first = min(flat) if flat else None
    for count, server in results["templates_loaded"].items():
        load = pick(runs, "load", server, SIX, 16)
        seq = pick(runs, "sequential", server, SIX)
        if load and seq:
            growth = f"{load['cpu_ms'] / flat[first]['cpu_ms']:.2f}x" if first and flat else ""
            rows.append(_templates_row(f"{int(count):,}", servers[server], load, seq, growth))
    if not rows:
        return []
    header = [
        "templates loaded",
        "start-up to ready s",
        "idle RSS MiB",
        "idle CPU",
        "req/s",
        "p50",
        "p99",
        "CPU-ms/adm",
        "single p50",
        "single p99",
        f"CPU vs {first or '-'}",
    ]
    return [
        "## Cost vs templates loaded (6 KB pod, 1 template, 16 connections)",
        "",
        "Generated templates (parameters, templated strings, env, volumes, labels; ~1.5 KB each) "
        "plus log-shipper, laid out as the kubelet mounts a ConfigMap; the request is the same.",
        "",
        *_table(header, rows),
    ]


def _templates_row(
    label: str, server: dict[str, float], load: dict[str, float], seq: dict[str, float], vs: str
) -> list[str]:
    return [
        label,
        f"{server.get('ready_seconds', 0):.1f}",
        f"{server.get('idle_rss_mib', 0):.0f}",
        f"{server.get('idle_cpu', 0):.1%}",
        f"{load['rps']:,.0f}",
        _ms(load["p50_ms"]),
        _ms(load["p99_ms"]),
        f"{load['cpu_ms']:.3f}",
        _ms(seq["p50_ms"]),
        _ms(seq["p99_ms"]),
        vs,
    ]


def _profile(results: Results, before: Results | None = None) -> list[str]:
    profile = results.get("profile")
    if not profile:
        return []
    lines = [
        "## Where the CPU goes (py-spy, 6 KB / one template, 16 connections)",
        "",
        f"{profile['samples']:,} samples over {profile['seconds']} s of the service's on-CPU "
        "Python stacks (`py-spy record`, idle excluded; sampling pauses the process briefly, "
        "so it runs a little slower than in the tables above). Time in C code (uvloop's "
        "sockets and TLS, httptools, orjson) counts for the innermost Python frame, "
        "`Runner.run` for the event loop itself. Collapsed stacks: "
        f"`{Path(profile['stacks_file']).relative_to(Path(__file__).resolve().parent.parent)}`.",
        "",
    ]
    now_ms = _six_cpu_ms(results)
    then = before.get("profile") if before else None
    then_ms = _six_cpu_ms(before) if before else None
    if then and now_ms and then_ms:
        # A share of the samples times the CPU-ms per admission: µs of CPU per admission.
        shares = dict(then["components"])
        names = [n for n, _ in profile["components"]] + [
            n for n in shares if n not in dict(profile["components"])
        ]
        now_shares = dict(profile["components"])
        lines += [
            "Per component, before and after: its share of the samples, and that share of the "
            "CPU-ms per admission of the same load run (µs per admission).",
            "",
        ]
        lines += _table(
            [
                "component (leaf frame)",
                "share before",
                "share after",
                "µs/adm before",
                "µs/adm after",
            ],
            [
                [
                    name,
                    f"{shares.get(name, 0):.1%}",
                    f"{now_shares.get(name, 0):.1%}",
                    f"{shares.get(name, 0) * then_ms * 1000:.1f}",
                    f"{now_shares.get(name, 0) * now_ms * 1000:.1f}",
                ]
                for name in names
            ],
        )
    else:
        lines += _table(
            ["component (leaf frame)", "share"],
            [[name, f"{share:.1%}"] for name, share in profile["components"]],
        )
    lines += _table(
        ["function (self)", "share"],
        [[f"`{name}`", f"{share:.1%}"] for name, share in profile["self_top"]],
    )
    lines += _table(
        ["injector function (inclusive)", "share"],
        [[f"`{name}`", f"{share:.1%}"] for name, share in profile["inclusive_top"]],
    )
    if then:
        lines += _table(
            ["function (self), before", "share"],
            [[f"`{name}`", f"{share:.1%}"] for name, share in then["self_top"]],
        )
    return lines


def _six_cpu_ms(results: Results) -> float | None:
    measured = pick(results["runs"], "load", INJECTOR, SIX, 16)
    return measured["cpu_ms"] if measured else None


def _notes(results: Results) -> list[str]:
    notes = [
        "Under a closed loop (each wrk connection waits for its answer) a saturated server's "
        "latency is about connections ÷ throughput, so the p99 ratio follows the throughput "
        "ratio; the single-request table shows the latency of one admission on an idle server."
    ]
    base = pick(results["runs"], "load", BASELINE, SIX)
    if base:
        notes.append(
            f"The baseline costs {base['cpu_ms']:.3f} CPU-ms per request here: the bar allows "
            f"{base['cpu_ms'] * CPU_RATIO:.3f} CPU-ms per admission ({CPU_RATIO}x), and "
            f"throughput >= {THROUGHPUT_RATIO}x the baseline's needs about "
            f"{base['cpu_ms'] / THROUGHPUT_RATIO:.3f} or less once both saturate a core."
        )
    for run in results["runs"]:
        if run["errors"]:
            notes.append(
                f"{run['server']} {run['scenario']} {run['kind']} c{run['connections']}: "
                f"{run['errors']} errors (socket errors, timeouts or non-2xx)."
            )
        if run["server"] != BASELINE and run["logged"] < run["requests"]:
            notes.append(
                f"{run['server']} {run['scenario']} c{run['connections']}: {run['logged']} "
                f"canonical log lines for {run['requests']} requests."
            )
        if run["server"] != BASELINE and run["injected"] < run["logged"]:
            notes.append(
                f"{run['server']} {run['scenario']}: only {run['injected']} of {run['logged']} "
                "admissions injected."
            )
    busy = [r for r in results["runs"] if r.get("others", 0) > 0.15]
    if busy:
        worst = max(busy, key=lambda r: r["others"])
        notes.append(
            f"Other processes on the machine were busy during {len(busy)} run(s) (up to "
            f"{worst['others']:.2f} cores in {worst['server']} {worst['scenario']} "
            f"c{worst['connections']}): those numbers are noisier; CPU-ms per admission is "
            "the least affected."
        )
    stolen = [r for r in results["runs"] if r.get("steal", 0) > 0.05]
    if stolen:
        worst = max(stolen, key=lambda r: r["steal"])
        notes.append(
            f"The hypervisor took CPU time from this machine during {len(stolen)} run(s) (up to "
            f"{worst['steal']:.0%} in {worst['server']} {worst['scenario']} "
            f"c{worst['connections']}): those numbers are noisier."
        )
    idle = ", ".join(
        f"{name} {server['idle_cpu']:.1%}" for name, server in results["servers"].items()
    )
    notes.append(f"CPU use of each server while idle (file-watch polling): {idle} of a core.")
    if len(notes) == 2 + bool(base):  # nothing but the general notes
        notes.append(
            "Checks passed: no errors; every request has its canonical log line with outcome "
            "`injected`; each request shape was checked first (the patch applies, the status "
            "annotation names every requested template)."
        )
    return ["## Notes", "", *(f"- {n}" for n in notes), ""]


# --- chart ---


def _pyplot() -> Any:
    """matplotlib's pyplot (Agg), pip-installed (pinned) into the venv the first time."""
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ImportError:
        print(f"bench: installing {MATPLOTLIB} into the venv for the chart", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", MATPLOTLIB], check=True, timeout=600
        )
        importlib.invalidate_caches()
        matplotlib = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    return importlib.import_module("matplotlib.pyplot")


PERCENTILES = (("p50_ms", "p50"), ("p90_ms", "p90"), ("p99_ms", "p99"))
COLORS = ("#4c72b0", "#dd8452", "#c44e52")


def chart(results: Results, path: Path) -> None:
    plt = _pyplot()
    runs = results["runs"]
    scenarios = results["scenarios"]
    connections = results["meta"]["connections"]
    panels = len(connections) + 1 + (1 if results["templates_loaded"] else 0)
    columns = 2
    rows = (panels + 1) // 2
    figure, axes = plt.subplots(rows, columns, figsize=(14, 5 * rows), squeeze=False)
    flat_axes = [ax for row in axes for ax in row]
    labels = [s["title"].replace(", ", "\n") for s in scenarios]
    for ax, c in zip(flat_axes, connections, strict=False):
        groups = [
            (pick(runs, "load", INJECTOR, s["key"], c), pick(runs, "load", BASELINE, s["key"], c))
            for s in scenarios
        ]
        _bars(ax, labels, groups)
        ax.set_title(f"Under load: wrk, {c} keep-alive TLS connections")
    ax = flat_axes[len(connections)]
    groups = [
        (pick(runs, "sequential", INJECTOR, s["key"]), pick(runs, "sequential", BASELINE, s["key"]))
        for s in scenarios
    ]
    _bars(ax, labels, groups)
    ax.axhline(ONE_MIB_MS, color="black", linestyle="--", linewidth=1)
    ax.text(
        len(labels) - 0.55,
        ONE_MIB_MS * 1.08,
        f"{ONE_MIB_MS:g} ms: 1 MiB target",
        ha="right",
        fontsize=8,
    )
    ax.set_title("Single requests, one at a time")
    if results["templates_loaded"]:
        ax = flat_axes[len(connections) + 1]
        counts = list(results["templates_loaded"].items())
        groups = [(pick(runs, "load", server, SIX, 16), None) for _, server in counts]
        names = [
            f"{int(n):,} templates\n{g[0]['cpu_ms']:.3f} CPU-ms/adm" if g[0] else f"{int(n):,}"
            for (n, _), g in zip(counts, groups, strict=True)
        ]
        _bars(ax, names, groups)
        ax.set_title("Templates loaded: 6 KB pod, 1 template, 16 connections")
    for ax in flat_axes[panels:]:
        ax.set_visible(False)
    figure.suptitle(
        f"POST /mutate latency percentiles (injector solid, baseline hatched; — = max) · "
        f"{results['meta']['date']}",
        fontsize=12,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _bars(
    ax: Any,
    labels: list[str],
    groups: list[tuple[dict[str, float] | None, dict[str, float] | None]],
) -> None:
    width = 0.13
    for index, (ours, base) in enumerate(groups):
        for side, (measured, hatch, alpha) in enumerate(((ours, "", 0.95), (base, "//", 0.45))):
            if not measured:
                continue
            for p, (key, name) in enumerate(PERCENTILES):
                x = index + (side * 3 + p - 2.5) * width
                ax.bar(
                    x,
                    measured[key],
                    width,
                    color=COLORS[p],
                    alpha=alpha,
                    hatch=hatch,
                    edgecolor="white" if not hatch else COLORS[p],
                    label=(name if side == 0 else f"{name} baseline") if index == 0 else None,
                )
            middle = index + (side * 3 - 1.5) * width
            ax.plot(
                [middle - 1.5 * width, middle + 1.5 * width],
                [measured["max_ms"]] * 2,
                color="black",
                linewidth=1.2,
            )
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, fontsize=9)
    ax.set_yscale("log")
    ticker = importlib.import_module("matplotlib.ticker")
    ax.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_ylabel("latency, ms (log)")
    ax.grid(axis="y", which="both", alpha=0.25)
    ax.legend(fontsize=8, ncol=2, loc="upper left")
