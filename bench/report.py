"""bench/results.md from the saved results of a run (and of the previous version's run): each
table a list of columns (title, key, format) over rows of plain data, and one renderer."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from bench.targets import (
    BASELINE,
    CPU_RATIO,
    INJECTOR,
    SIX,
    THROUGHPUT_RATIO,
    Measured,
    Results,
    flatness,
    load,
    ms,
    pick,
    relative,
    verdicts,
)

Columns = Sequence[tuple[str, str, str]]
"""A table: per column its title, the key of its cell in each row and the cell's format (a
format spec, `ms` for a latency, `x` for a ratio; `**` first for bold). A cell that is a
string stands as it is, a missing one is empty."""


def cell(value: Any, spec: str) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    if spec.startswith("**"):
        return f"**{cell(value, spec[2:])}**"
    if spec == "ms":
        return ms(value)
    return f"{value:.2f}x" if spec == "x" else format(value, spec)


def table(columns: Columns, rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """A markdown table: the first column left-aligned, the others right."""
    lines = [[title for title, _, _ in columns], ["---"] + ["---:"] * (len(columns) - 1)]
    lines += [[cell(row.get(key), spec) for _, key, spec in columns] for row in rows]
    return ["| " + " | ".join(cells) + " |" for cells in lines] + [""]


def changes(
    first: str, columns: Columns, rows: Iterable[tuple[str, Measured, Measured]]
) -> list[str]:
    """A before → after table: a label, then per column `then → now` (`now` alone in bold)."""
    return table(
        [(first, "", "")] + [(title, key, "") for title, key, _ in columns],
        (
            {"": label}
            | {
                key: f"{cell(then[key], spec.lstrip('*'))} → {cell(now[key], spec)}"
                for _, key, spec in columns
            }
            for label, then, now in rows
        ),
    )


def save_json(results: Results, path: Path) -> None:
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")


def load_json(path: Path) -> Results:
    results: Results = orjson.loads(path.read_bytes())
    return results


# The tables, a few columns a line.
LATENCIES = [("p50", "p50_ms", "ms"), ("p90", "p90_ms", "ms"), ("p99", "p99_ms", "ms")]
LATENCIES += [("max", "max_ms", "ms")]
LOAD = [("conns", "conns", ""), ("server", "server", ""), ("req/s", "rps", ",.0f"), *LATENCIES]
LOAD += [("CPU-ms/req", "cpu_ms", ".3f"), ("CPU use", "cpu_util", ".0%")]
LOAD += [("peak RSS MiB", "peak_rss_mib", ".0f"), ("errors", "errors", ".0f")]
LOAD += [("others", "others", ".2f")]
RATIOS = dict.fromkeys(["p50_ms", "p90_ms", "max_ms", "cpu_ms", "peak_rss_mib"], "x")
RATIOS |= {"rps": "**x", "p99_ms": "**x"}
"""The ratio row under each load table: the injector's numbers over the baseline's."""
SEQUENTIAL = [("request", "title", ""), ("server", "server", ""), ("requests", "requests", ".0f")]
SEQUENTIAL += [*LATENCIES, ("server-side p50", "server_p50_ms", "ms")]
SEQUENTIAL += [("CPU-ms/req", "cpu_ms", ".3f")]
SIZES = [("body", "body", ""), ("CPU-ms/adm", "cpu_ms", ".3f")]
SIZES += [("baseline CPU-ms", "base_cpu_ms", ".3f"), ("injector's own", "own", ".3f")]
SIZES += [("own CPU-ms per MiB", "own_per_mib", ".1f"), ("single p50", "single_p50", "ms")]
SIZES += [("baseline single p50", "base_single_p50", "ms")]
SIZES += [("peak RSS MiB (16 conns)", "peak_rss_mib", ".0f")]
IDLE = [("start-up to ready s", "ready_seconds", ".1f"), ("idle RSS MiB", "idle_rss_mib", ".0f")]
TEMPLATES = [("templates loaded", "label", ""), *IDLE, ("idle CPU", "idle_cpu", ".1%")]
TEMPLATES += [("req/s", "rps", ",.0f"), ("p50", "p50_ms", "ms"), ("p99", "p99_ms", "ms")]
TEMPLATES += [("CPU-ms/adm", "cpu_ms", ".3f"), ("single p50", "single_p50", "ms")]
TEMPLATES += [("single p99", "single_p99", "ms")]
BEFORE_LOAD = [("throughput (x baseline)", "rps", "**x")]
BEFORE_LOAD += [("CPU-ms/adm (x baseline)", "cpu", "**x"), ("p99 (x baseline)", "p99", "**x")]
BEFORE_LOAD += [("CPU-ms/adm", "cpu_ms", ".3f"), ("peak RSS MiB", "rss", ".0f")]
BEFORE_SEQUENTIAL = [("p50 ms", "p50_ms", "ms"), ("server-side p50 ms", "server_p50_ms", "ms")]
BEFORE_SEQUENTIAL += [("CPU-ms/req", "cpu_ms", ".3f")]
BEFORE_TEMPLATES = [*IDLE, ("CPU-ms/adm", "cpu_ms", ".3f"), ("p99 ms", "p99_ms", ".2f")]
SHARES = [("component (leaf frame)", "name", "")]
SHARES += [("share before", "then", ".1%"), ("share after", "now", ".1%")]
SHARES += [("µs/adm before", "then_us", ".1f"), ("µs/adm after", "now_us", ".1f")]
VERDICTS = [("target", "target", ""), ("where", "scope", ""), ("measured", "measured", "")]
VERDICTS += [("verdict", "verdict", "")]

HOW = (
    "How: one `serve` process with production flags (`--log-level=info`, JSON log lines on "
    "stdout into a file the benchmark drains, examples/templates) and, in the same run, the "
    "baseline (a Starlette endpoint that reads the body and returns a fixed AdmissionReview, "
    "same uvicorn/uvloop/httptools/TLS settings). "
    "wrk -t{threads} with a Lua script over keep-alive TLS, {duration} s per "
    "run after a {warmup} s warm-up, {rounds} round(s), service and "
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
    "Latencies in ms."
)


def markdown(results: Results, before: Results | None = None) -> str:
    meta = results["meta"]
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
        HOW.format_map(meta),
        "",
        "## Targets",
        "",
    ]
    lines += table(
        VERDICTS,
        (
            vars(v) | {"verdict": "✅ met" if v.met else "❌ missed"}
            for v in verdicts(results, before)
        ),
    )
    if before is not None:
        lines += _before_after(results, before)
    lines += ["## Under load (wrk, closed loop)", ""]
    for scenario in results["scenarios"]:
        lines += [
            f"### {scenario['title']}",
            "",
            f"Body {scenario['bytes'] / 1024:,.1f} KiB; templates requested: "
            f"`{scenario['templates']}`.",
            "",
            *table(LOAD, _load_rows(results, scenario["key"])),
        ]
    lines += _sequential(results)
    lines += _sizes(results)
    lines += _templates(results)
    lines += _profile(results, before)
    lines += _notes(results)
    return "\n".join(lines).rstrip() + "\n"


def _load_rows(results: Results, key: str) -> Iterable[Mapping[str, Any]]:
    for c in results["meta"]["connections"]:
        ours, base = load(results, INJECTOR, key, c), load(results, BASELINE, key, c)
        for name, measured in ((INJECTOR, ours), (BASELINE, base)):
            if measured:
                yield measured | {"conns": c, "server": name}
        if ours and base:
            ratios = {k: cell(ours[k] / base[k], spec) for k, spec in RATIOS.items()}
            yield ratios | {"conns": c, "server": "**ratio**"}


def _before_after(results: Results, before: Results) -> list[str]:
    """The previous version's run next to this one: ratios to each run's own baseline (which
    compare across runs), and the absolute numbers for reference."""
    meta = before["meta"]
    lines = [
        "## Before → after",
        "",
        f"Before: commit `{meta['commit']}`, measured by `{meta['command'].strip()}` on "
        f"{meta['date']} on the same machine (bench/before.json). Ratios are to the baseline of "
        "the same run, so they compare across the two runs; the injector's CPU-ms per admission "
        "and peak RSS are absolute.",
        "",
    ]
    lines += changes(
        "request, connections",
        BEFORE_LOAD,
        (
            (f"{scenario['title']}, {c} conns", then, now)
            for scenario in results["scenarios"]
            for c in results["meta"]["connections"]
            if (now := relative(results, scenario["key"], c))
            and (then := relative(before, scenario["key"], c))
        ),
    )
    lines += changes(
        "single requests",
        BEFORE_SEQUENTIAL,
        (
            (scenario["title"], then, now)
            for scenario in results["scenarios"]
            if (now := pick(results["runs"], "sequential", INJECTOR, scenario["key"]))
            and (then := pick(before["runs"], "sequential", INJECTOR, scenario["key"]))
        ),
    )
    loaded = [("3 (examples)", INJECTOR, INJECTOR)] + [
        (f"{int(n):,}", server, before["templates_loaded"].get(n))
        for n, server in results["templates_loaded"].items()
    ]
    lines += changes(
        "templates loaded",
        BEFORE_TEMPLATES,
        (
            (label, then_server | then, now_server | now)
            for label, server, old in loaded
            if (now_server := results["servers"].get(server))
            and old
            and (then_server := before["servers"].get(old))
            and (now := load(results, server, SIX, 16))
            and (then := load(before, old, SIX, 16))
        ),
    )
    return lines


def _sequential(results: Results) -> list[str]:
    rows = [
        measured | {"title": scenario["title"], "server": name}
        for scenario in results["scenarios"]
        for name in (INJECTOR, BASELINE)
        if (measured := pick(results["runs"], "sequential", name, scenario["key"]))
    ]
    for row in rows:
        if row["server"] != INJECTOR:
            row["server_p50_ms"] = None
    return [
        "## Single requests (sequential, one keep-alive TLS connection)",
        "",
        "One request at a time, timed by a Python client (so it includes sending the body and "
        "reading the answer); server-side is the `duration_ms` of the canonical log line (from "
        "reading the body to handing the answer to the connection, whose TLS write follows in "
        "the same event-loop turn).",
        "",
        *table(SEQUENTIAL, rows),
    ]


def _sizes(results: Results) -> list[str]:
    rows = []
    for scenario in results["scenarios"]:
        key = scenario["key"]
        ours, base = load(results, INJECTOR, key, 16), load(results, BASELINE, key, 16)
        seq = pick(results["runs"], "sequential", INJECTOR, key)
        seq_base = pick(results["runs"], "sequential", BASELINE, key)
        if "," in scenario["templates"] or not (ours and base and seq and seq_base):
            continue
        own = ours["cpu_ms"] - base["cpu_ms"]
        rows.append(
            {
                "body": f"{scenario['bytes'] / 1024:,.0f} KiB",
                "cpu_ms": ours["cpu_ms"],
                "base_cpu_ms": base["cpu_ms"],
                "own": own,
                "own_per_mib": own / (scenario["bytes"] / 1024 / 1024),
                "single_p50": seq["p50_ms"],
                "base_single_p50": seq_base["p50_ms"],
                "peak_rss_mib": ours["peak_rss_mib"],
            }
        )
    return _section(
        "## Cost vs pod size (one template, 16 connections)",
        "The injector's own cost is its CPU-ms per admission minus the baseline's for the same "
        "body (uvicorn, TLS and reading the body are in both).",
        SIZES,
        rows,
    )


def _templates(results: Results) -> list[str]:
    flat = flatness(results)
    first = min(flat) if flat else None
    loaded = [("3 (examples)", INJECTOR)] + [
        (f"{int(n):,}", server) for n, server in results["templates_loaded"].items()
    ]
    rows = [
        {"ready_seconds": 0, "idle_rss_mib": 0, "idle_cpu": 0}
        | results["servers"].get(server, {})
        | now
        | {"label": label, "single_p50": seq["p50_ms"], "single_p99": seq["p99_ms"]}
        | {
            "vs": f"{now['cpu_ms'] / flat[first]['cpu_ms']:.2f}x"
            if first and server != INJECTOR
            else ""
        }
        for label, server in loaded
        if (now := load(results, server, SIX, 16))
        and (seq := pick(results["runs"], "sequential", server, SIX))
    ]
    return _section(
        "## Cost vs templates loaded (6 KB pod, 1 template, 16 connections)",
        "Generated templates (parameters, templated strings, env, volumes, labels; ~1.5 KB each) "
        "plus log-shipper, laid out as the kubelet mounts a ConfigMap; the request is the same.",
        [*TEMPLATES, (f"CPU vs {first or '-'}", "vs", "")],
        rows,
    )


def _section(heading: str, intro: str, columns: Columns, rows: list[dict[str, Any]]) -> list[str]:
    """A heading, a paragraph and a table; nothing without rows."""
    return [heading, "", intro, "", *table(columns, rows)] if rows else []


def _profile(results: Results, before: Results | None = None) -> list[str]:
    profile = results.get("profile")
    if not profile:
        return []
    stacks = Path(profile["stacks_file"]).relative_to(Path(__file__).resolve().parent.parent)
    lines = [
        "## Where the CPU goes (py-spy, 6 KB / one template, 16 connections)",
        "",
        f"{profile['samples']:,} samples over {profile['seconds']} s of the service's on-CPU "
        "Python stacks (`py-spy record`, idle excluded; sampling pauses the process briefly, "
        "so it runs a little slower than in the tables above). Time in C code (uvloop's "
        "sockets and TLS, httptools, orjson) counts for the innermost Python frame, "
        f"`Runner.run` for the event loop itself. Collapsed stacks: `{stacks}`.",
        "",
    ]
    then = before.get("profile") if before else None
    now_ms = _six_cpu_ms(results)
    then_ms = _six_cpu_ms(before) if before else None
    if then and now_ms and then_ms:
        # A share of the samples times the CPU-ms per admission: µs of CPU per admission.
        now_shares, then_shares = dict(profile["components"]), dict(then["components"])
        names = list(now_shares) + [n for n in then_shares if n not in now_shares]
        lines += [
            "Per component, before and after: its share of the samples, and that share of the "
            "CPU-ms per admission of the same load run (µs per admission).",
            "",
            *table(
                SHARES,
                (
                    {"name": name, "then": t, "now": n, "then_us": t * then_ms * 1000}
                    | {"now_us": n * now_ms * 1000}
                    for name in names
                    for t, n in [(then_shares.get(name, 0), now_shares.get(name, 0))]
                ),
            ),
        ]
    else:
        lines += _shares("component (leaf frame)", profile["components"], code=False)
    lines += _shares("function (self)", profile["self_top"])
    lines += _shares("injector function (inclusive)", profile["inclusive_top"])
    if then:
        lines += _shares("function (self), before", then["self_top"])
    return lines


def _shares(title: str, shares: list[tuple[str, float]], code: bool = True) -> list[str]:
    rows = ({"name": f"`{name}`" if code else name, "share": share} for name, share in shares)
    return table([(title, "name", ""), ("share", "share", ".1%")], rows)


def _six_cpu_ms(results: Results) -> float | None:
    measured = load(results, INJECTOR, SIX, 16)
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
        where = f"{run['server']} {run['scenario']}"
        if run["errors"]:
            notes.append(
                f"{where} {run['kind']} c{run['connections']}: "
                f"{run['errors']} errors (socket errors, timeouts or non-2xx)."
            )
        if run["server"] != BASELINE and run["logged"] < run["requests"]:
            notes.append(
                f"{where} c{run['connections']}: {run['logged']} "
                f"canonical log lines for {run['requests']} requests."
            )
        if run["server"] != BASELINE and run["injected"] < run["logged"]:
            notes.append(f"{where}: only {run['injected']} of {run['logged']} admissions injected.")
    if busy := [r for r in results["runs"] if r.get("others", 0) > 0.15]:
        worst = max(busy, key=lambda r: r["others"])
        notes.append(
            f"Other processes on the machine were busy during {len(busy)} run(s) (up to "
            f"{worst['others']:.2f} cores in {worst['server']} {worst['scenario']} "
            f"c{worst['connections']}): those numbers are noisier; CPU-ms per admission is "
            "the least affected."
        )
    if stolen := [r for r in results["runs"] if r.get("steal", 0) > 0.05]:
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
