"""Load benchmark of POST /mutate against a fixed-response baseline: `make bench`.

Starts, on 127.0.0.1 only, the real `serve` process (production flags: info level, JSON log
lines on stdout into a file the benchmark drains; examples/templates) and a baseline (a
Starlette endpoint that reads the body and returns a fixed AdmissionReview, same uvicorn/TLS
settings), plus one service per templates-loaded count (10, 100, 1,000 generated templates).
Then, in one session and alternating between the service and the baseline:

  1. sequential single requests (one keep-alive TLS connection) per request shape;
  2. wrk (Lua script, keep-alive TLS) at 16 and 64 connections per request shape: a 6 KB pod
     with one template, the same pod with three, a 100 KB pod, a 1 MiB pod;
  3. the 6 KB / one-template request against 10, 100, 1,000 loaded templates;
  4. a py-spy profile of the service under the 6 KB load (when a 6 KB target is missed, or
     with --profile=always).

It reports req/s, p50/p90/p99/max latency, server CPU-ms per admission (/proc utime+stime),
peak RSS (VmHWM), ratios to the baseline, and whether each target of the performance budget
is met: bench/results.md, bench/results.png (matplotlib, pip-installed into the venv on
demand), raw numbers in bench/out/results.json.

    .venv/bin/python bench/run.py [--quick] [--duration 10] [--rounds 1] [--profile auto]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script (make bench): make `bench.*` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import chart, report, targets, tools
from bench.load import (
    Run,
    check_answers,
    check_injection,
    run_wrk,
    sequential,
    wait_for_quiet,
    wrk_command,
)
from bench.profile import Profile, record
from bench.scenarios import EXAMPLES, ONE_TEMPLATE, Scenario, scenarios, template_dir
from bench.servers import HERE, REPO, BenchError, Certs, Server, baseline, running, service
from bench.targets import INJECTOR, SIX

OUT = HERE / "out"
SEQUENTIAL = {"6kb-1t": 400, "6kb-3t": 400, "100kb": 200, "1mib": 60}
"""Sequential requests per shape (halved with --quick)."""
VERSIONS = ("uvicorn", "starlette", "uvloop", "httptools", "orjson", "msgspec", "structlog")
"""The packages whose versions the report names."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py", description="Load benchmark of POST /mutate against a baseline."
    )
    parser.add_argument("--duration", type=int, default=None, help="seconds per wrk run (10)")
    parser.add_argument("--warmup", type=int, default=None, help="seconds of warm-up (2)")
    parser.add_argument("--quick", action="store_true", help="3 s runs, 1 s warm-up")
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds per pair")
    parser.add_argument("--connections", default="16,64", help="wrk connection counts")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--templates", default="10,100,1000", help="templates-loaded counts")
    parser.add_argument(
        "--scenarios", default="", help="only these request shapes (6kb-1t,6kb-3t,100kb,1mib)"
    )
    parser.add_argument(
        "--profile",
        choices=["auto", "always", "never"],
        default="auto",
        help="py-spy profile under the 6 KB load: auto = when a 6 KB target is missed",
    )
    parser.add_argument(
        "--max-wait",
        type=float,
        default=None,
        help="seconds in all to wait for other processes to go quiet before runs (120)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="measure nothing: write results.md/png again from bench/out/results.json",
    )
    parser.add_argument(
        "--before",
        type=Path,
        default=HERE / "before.json",
        help="results.json of the previous version's run, for the before → after comparison "
        "(bench/before.json; skipped when absent)",
    )
    parser.add_argument("--no-chart", action="store_true", help="skip bench/results.png")
    parser.add_argument("--output", type=Path, default=HERE, help="where results.md/png go")
    args = parser.parse_args(argv)
    args.duration = args.duration or (3 if args.quick else 10)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    args.max_wait = args.max_wait if args.max_wait is not None else (30 if args.quick else 120)
    args.connections = [int(c) for c in args.connections.split(",") if c]
    args.templates = [int(c) for c in args.templates.split(",") if c]
    if not 1 <= args.duration <= 120 or args.rounds < 1 or args.rounds > 5:
        parser.error("--duration must be 1..120 seconds and --rounds 1..5")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    if args.report_only:
        results = report.load_json(OUT / "results.json")
    else:
        # SIGTERM unwinds like Ctrl-C, so every server is stopped on the way out.
        signal.signal(signal.SIGTERM, _terminated)
        try:
            results = bench(args)
        except BenchError as exc:
            print(f"bench: error: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("bench: interrupted; servers stopped", file=sys.stderr)
            return 130
        OUT.mkdir(exist_ok=True)
        report.save_json(results, OUT / "results.json")
    before = report.load_json(args.before) if args.before.exists() else None
    args.output.mkdir(parents=True, exist_ok=True)
    markdown = args.output / "results.md"
    markdown.write_text(report.markdown(results, before))
    print(f"bench: wrote {markdown}", file=sys.stderr)
    if not args.no_chart:
        png = args.output / "results.png"
        chart.chart(results, png)
        print(f"bench: wrote {png}", file=sys.stderr)
    print(targets.text(results, before))
    print(f"bench: done in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def bench(args: argparse.Namespace) -> dict[str, Any]:
    wrk = tools.wrk()
    every = scenarios()
    shapes = [s for s in every if not args.scenarios or s.key in args.scenarios.split(",")]
    if not shapes:
        raise BenchError(f"no scenario matches {args.scenarios!r}")
    six = next(s for s in every if s.key == SIX)
    with tempfile.TemporaryDirectory(prefix="sidecar-bench-") as tmp:
        work = Path(tmp)
        certs = Certs.create(work)
        bodies = {}
        for shape in every:
            bodies[shape.key] = work / f"{shape.key}.json"
            bodies[shape.key].write_bytes(shape.body)
        session = Session(args, wrk, certs)
        injector = service(INJECTOR, EXAMPLES, certs, work)
        base = baseline(certs, work)
        log("starting the service (examples/templates) and the baseline")
        with running([base, injector]):
            for shape in shapes:
                check_injection(injector, certs, shape.body, shape.templates)
                check_answers(base, certs, shape.body)
            session.describe(base)
            session.describe(injector)
            session.sequential_phase(shapes, injector, base)
            session.load_phase(shapes, bodies, injector, base)
            profile = session.profile_phase(injector, bodies[SIX])
        loaded = session.templates_phase(work, six, bodies[SIX])
    return {
        "meta": meta(args, wrk, shapes),
        "scenarios": [
            {"key": s.key, "title": s.title, "templates": s.templates, "bytes": len(s.body)}
            for s in shapes
        ],
        "servers": session.servers,
        "templates_loaded": loaded,
        "runs": [r.as_dict() for r in session.runs],
        "profile": profile.as_dict() if profile else None,
    }


class Session:
    """The measurements of one benchmark run, in order."""

    def __init__(self, args: argparse.Namespace, wrk: str, certs: Certs) -> None:
        self.args = args
        self.wrk = wrk
        self.certs = certs
        self.runs: list[Run] = []
        self.servers: dict[str, dict[str, float]] = {}
        self.wait_left = float(args.max_wait)

    def quiet(self) -> None:
        """Before a run: let other work on the machine (a test suite, a build) finish first,
        within the --max-wait budget; runs that still overlap it are flagged in the report."""
        if self.wait_left <= 0:
            return
        waited = wait_for_quiet(min(self.wait_left, 30.0))
        self.wait_left -= waited
        if waited:
            log(f"waited {waited:.1f} s for other processes to go quiet")

    def describe(self, server: Server) -> None:
        """Start-up time, and RSS and CPU use while idle (the file watchers' polling)."""
        seconds = 1.0 if self.args.quick else 3.0
        before = server.cpu_seconds_precise()
        time.sleep(seconds)
        idle_cpu = (server.cpu_seconds_precise() - before) / seconds
        self.servers[server.name] = {
            "ready_seconds": server.ready_seconds,
            "idle_rss_mib": server.status_kib("VmRSS") / 1024,
            "idle_cpu": idle_cpu,
        }
        log(f"{server.name}: ready in {server.ready_seconds:.1f} s, idle CPU {idle_cpu:.1%}")

    def add(self, run: Run | None) -> None:
        if run is None:
            return
        self.runs.append(run)
        log(
            f"{run.kind:<10} {run.server:<15} {run.scenario:<7} c{run.connections:<3} "
            f"{run.rps:>8.0f} req/s  p50 {run.p50_ms:7.2f}  p99 {run.p99_ms:7.2f}  "
            f"max {run.max_ms:7.2f} ms  {run.cpu_ms:.3f} CPU-ms/req  "
            f"{run.peak_rss_mib:.0f} MiB  errors {run.errors}"
        )

    def count(self, shape: Scenario) -> int:
        """Sequential requests of `shape`: halved with --quick."""
        return SEQUENTIAL[shape.key] // (2 if self.args.quick else 1)

    def pair(self, round_: int, first: Server, second: Server) -> tuple[Server, Server]:
        """Alternate which one goes first, so drift does not favour either."""
        return (first, second) if round_ % 2 == 0 else (second, first)

    def sequential_phase(self, shapes: list[Scenario], injector: Server, base: Server) -> None:
        for round_ in range(self.args.rounds):
            for shape in shapes:
                for server in self.pair(round_, injector, base):
                    self.quiet()
                    self.add(
                        sequential(server, self.certs, shape.key, shape.body, self.count(shape))
                    )

    def load_phase(
        self, shapes: list[Scenario], bodies: dict[str, Path], injector: Server, base: Server
    ) -> None:
        args = self.args
        for round_ in range(args.rounds):
            # Smallest request shape first, every connection count: the first round's small
            # pods are measured before any large body has grown the heap (see peak RSS).
            for shape in shapes:
                for connections in args.connections:
                    for server in self.pair(round_, injector, base):
                        self.wrk_run(server, shape.key, bodies[shape.key], connections)

    def templates_phase(self, work: Path, six: Scenario, body: Path) -> dict[str, str]:
        """The 6 KB / one-template request against 10, 100, 1,000 loaded templates: one
        service at a time (an idle one still polls its files), alternating order by round."""
        counts = self.args.templates
        directories = {n: template_dir(work, n) for n in counts}
        for round_ in range(self.args.rounds):
            for count in counts if round_ % 2 == 0 else counts[::-1]:
                server = service(f"templates-{count}", directories[count], self.certs, work)
                log(f"starting {server.name}")
                with running([server]):
                    check_injection(server, self.certs, six.body, ONE_TEMPLATE)
                    self.describe(server)
                    self.wrk_run(server, six.key, body, 16)
                    self.quiet()
                    self.add(sequential(server, self.certs, six.key, six.body, self.count(six)))
        return {str(n): f"templates-{n}" for n in counts}

    def wrk_run(self, server: Server, scenario: str, body: Path, connections: int) -> None:
        """A warm-up run (not measured), then the measured one."""
        self.quiet()
        for seconds, measure in ((self.args.warmup, False), (self.args.duration, True)):
            if seconds:
                run = run_wrk(
                    self.wrk,
                    server,
                    scenario,
                    body,
                    connections=connections,
                    duration=seconds,
                    threads=self.args.threads,
                    measure=measure,
                )
                self.add(run)

    def profile_phase(self, injector: Server, body: Path) -> Profile | None:
        mode = self.args.profile
        if mode == "never" or (
            mode == "auto" and targets.six_kb_targets_met([r.as_dict() for r in self.runs])
        ):
            return None
        seconds = self.args.duration
        log(f"profiling {injector.name} with py-spy for {seconds} s under the 6 KB load")
        load = subprocess.Popen(
            wrk_command(self.wrk, injector, 16, seconds + 3, 1),
            env={"BODY_FILE": str(body), "PATH": "/usr/bin:/bin"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(1)
            OUT.mkdir(exist_ok=True)
            return record(injector, seconds, OUT / "profile.collapsed.txt")
        finally:
            try:
                load.wait(seconds + 30)
            except subprocess.TimeoutExpired:
                load.kill()
                load.wait()
            injector.truncate_log()


def meta(args: argparse.Namespace, wrk: str, shapes: list[Scenario]) -> dict[str, Any]:
    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "?"

    def git(*command: str) -> str:
        try:
            done = subprocess.run(
                ["git", *command], check=False, cwd=REPO, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout.strip()

    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    wrk_version = subprocess.run(
        [wrk, "-v"], capture_output=True, text=True, check=False
    ).stdout.split("\n", 1)[0]
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "bench/run.py " + " ".join(sys.argv[1:]),
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--", "injector")),
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": {name: installed(name) for name in VERSIONS},
        "wrk": wrk_version.strip(),
        "duration": args.duration,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "threads": args.threads,
        "connections": args.connections,
        "quick": args.quick,
        "scenarios": [s.key for s in shapes],
    }


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
