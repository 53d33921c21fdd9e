"""Driving a server: wrk with a Lua script under load, sequential single requests for latency,
and one checked request per server and body before anything is measured."""

from __future__ import annotations

import base64
import http.client
import math
import os
import resource
import ssl
import statistics
import subprocess
import time
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import jsonpatch
import orjson

from bench.servers import HERE, HOST, TICKS, BenchError, Certs, Server

CORES = len(os.sched_getaffinity(0))
WRK_TIMEOUT = "10s"
"""Longer than any answer takes, so a slow 1 MiB answer is a latency, not a dropped request."""


@dataclass
class Run:
    """One measurement of one server with one body: a wrk run or a sequential series."""

    kind: str  # "load" or "sequential"
    server: str
    scenario: str
    connections: int
    seconds: float
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    cpu_ms: float  # server CPU (user + system) per request
    cpu_util: float  # server CPU seconds per wall second (1.0 = one core saturated)
    peak_rss_mib: float  # VmHWM during the run (since a reset), or since start
    logged: int = 0  # canonical `admission` log lines written during the run
    injected: int = 0  # of which with outcome injected
    server_p50_ms: float = 0.0  # duration_ms of the canonical log lines
    server_max_ms: float = 0.0
    steal: float = 0.0  # share of the machine's CPU time taken by the hypervisor meanwhile
    others: float = 0.0  # cores used by other processes (not the server, not wrk/the client)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def machine_ticks() -> tuple[int, int]:
    """(busy, steal) clock ticks of all CPUs since boot: busy is everything but idle and
    iowait; steal is time the hypervisor gave this virtual machine's CPUs to someone else."""
    with open("/proc/stat") as stat:
        fields = [int(f) for f in stat.readline().split()[1:9]]
    fields += [0] * (8 - len(fields))
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return user + nice + system + irq + softirq, steal


def own_cpu_seconds() -> float:
    """CPU time of this process and its finished children (wrk): the load generator's share."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def wait_for_quiet(limit: float, threshold: float = 0.25, window: float = 0.5) -> float:
    """Wait (at most `limit` seconds) until the rest of the machine uses under `threshold`
    cores: other work on a 2-core machine skews a run. Returns the seconds waited."""
    waited = 0.0
    while True:
        busy, _ = machine_ticks()
        time.sleep(window)
        others = (machine_ticks()[0] - busy) / TICKS / window
        if others < threshold or waited >= limit:
            return waited
        waited += window


class Metered(NamedTuple):
    cpu: float  # seconds
    wall: float  # seconds
    peak_rss_mib: float
    log: bytes  # written meanwhile


class Meter:
    """CPU time, peak RSS and log lines of `server` around one measurement. CPU is utime+stime
    from /proc/<pid>/stat; below one second of it (10 ms ticks) the scheduler's nanosecond
    run time of the server's threads is used instead."""

    def __init__(self, server: Server) -> None:
        self.server = server
        server.reset_peak_rss()
        self.log_offset = server.log_size()
        self.busy, self.steal = machine_ticks()
        self.own = own_cpu_seconds()
        self.cpu = server.cpu_seconds()
        self.precise = server.cpu_seconds_precise()
        self.wall = time.monotonic()

    def finish(self) -> Metered:
        """What the server used and logged since the meter started."""
        cpu = self.server.cpu_seconds() - self.cpu
        precise = self.server.cpu_seconds_precise() - self.precise
        wall = time.monotonic() - self.wall
        busy, steal = machine_ticks()
        own = own_cpu_seconds() - self.own
        self.steal_share = (steal - self.steal) / TICKS / wall / CORES
        self.others = max(0.0, ((busy - self.busy) / TICKS - cpu - own) / wall)
        if cpu < 1.0:
            cpu = precise
        peak = self.server.status_kib("VmHWM") / 1024
        time.sleep(0.05)  # the canonical line is written just after the answer is sent
        log = self.server.log_since(self.log_offset)
        self.server.truncate_log()
        return Metered(cpu, wall, peak, log)


def admissions(log: bytes) -> tuple[int, int, list[float]]:
    """(canonical lines, injected outcomes, their duration_ms) in a chunk of the JSON log."""
    lines = injected = 0
    durations: list[float] = []
    for line in log.splitlines():
        if b'"event":"admission"' not in line:
            continue
        lines += 1
        event = orjson.loads(line)
        if event.get("outcome") == "injected":
            injected += 1
        duration = event.get("duration_ms")
        if isinstance(duration, int | float):
            durations.append(float(duration))
    return lines, injected, durations


def wrk_command(
    wrk: str, server: Server, connections: int, seconds: int, threads: int, *flags: str
) -> list[str]:
    """wrk with `connections` keep-alive TLS connections for `seconds`, posting the body in
    $BODY_FILE with bench/wrk.lua (which prints a JSON summary last)."""
    return [
        wrk,
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{seconds}s",
        *flags,
        "-s",
        str(HERE / "wrk.lua"),
        server.url,
    ]


def run_wrk(
    wrk: str,
    server: Server,
    scenario: str,
    body: Path,
    *,
    connections: int,
    duration: int,
    threads: int,
    measure: bool = True,
) -> Run | None:
    """wrk -c`connections` for `duration` seconds over keep-alive TLS; None when warming up."""
    meter = Meter(server) if measure else None
    flags = (f"--timeout={WRK_TIMEOUT}", "--latency")
    argv = wrk_command(wrk, server, connections, duration, threads, *flags)
    try:
        done = subprocess.run(
            argv,
            env={**os.environ, "BODY_FILE": str(body)},
            capture_output=True,
            text=True,
            check=True,
            timeout=duration + 60,
        )
    except subprocess.SubprocessError as exc:
        raise BenchError(f"wrk failed against {server.name}: {exc}") from None
    if meter is None:
        server.truncate_log()
        return None
    measured = meter.finish()
    summary = orjson.loads(done.stdout.strip().splitlines()[-1])
    requests = int(summary["requests"])
    errors = sum(
        int(summary[k])
        for k in ("connect_errors", "read_errors", "write_errors", "timeouts", "non_2xx")
    )
    latency = {f"{k}_ms": summary[f"{k}_us"] / 1000 for k in ("p50", "p90", "p99", "max", "mean")}
    return _run(
        meter,
        measured,
        kind="load",
        scenario=scenario,
        connections=connections,
        requests=requests,
        seconds=summary["duration_us"] / 1e6,
        errors=errors,
        latency=latency,
    )


def _run(
    meter: Meter,
    measured: Metered,
    *,
    kind: str,
    scenario: str,
    connections: int,
    requests: int,
    seconds: float,
    errors: int,
    latency: dict[str, float],
) -> Run:
    """One measurement from what the client saw (`latency`: p50_ms ... mean_ms) and what the
    meter saw of the server meanwhile."""
    cpu = measured.cpu
    lines, injected, durations = admissions(measured.log)
    return Run(
        kind=kind,
        server=meter.server.name,
        scenario=scenario,
        connections=connections,
        seconds=seconds,
        requests=requests,
        errors=errors,
        rps=requests / seconds,
        **latency,
        cpu_ms=cpu * 1000 / max(requests, 1),
        cpu_util=cpu / seconds,
        peak_rss_mib=measured.peak_rss_mib,
        logged=lines,
        injected=injected,
        server_p50_ms=statistics.median(durations) if durations else 0.0,
        server_max_ms=max(durations, default=0.0),
        steal=meter.steal_share,
        others=meter.others,
    )


def _connection(server: Server, certs: Certs) -> http.client.HTTPSConnection:
    context = ssl.create_default_context(cafile=str(certs.ca))
    return http.client.HTTPSConnection(HOST, server.port, context=context, timeout=30)


def _post(connection: http.client.HTTPSConnection, body: bytes) -> bytes:
    connection.request("POST", "/mutate", body, {"Content-Type": "application/json"})
    answer = connection.getresponse()
    data = answer.read()
    if answer.status != 200:
        raise BenchError(f"POST /mutate answered {answer.status}: {data[:300]!r}")
    return data


def sequential(server: Server, certs: Certs, scenario: str, body: bytes, count: int) -> Run:
    """`count` requests one after the other on one keep-alive TLS connection (after two warm-up
    requests): the latency of a single admission, measured by the client."""
    with closing(_connection(server, certs)) as connection:
        for _ in range(2):
            _post(connection, body)
        server.truncate_log()
        meter = Meter(server)
        latencies = []
        for _ in range(count):
            started = time.perf_counter()
            _post(connection, body)
            latencies.append((time.perf_counter() - started) * 1000)
        measured = meter.finish()
    latencies.sort()
    latency = {f"p{p}_ms": _percentile(latencies, p) for p in (50, 90, 99)}
    latency |= {"max_ms": latencies[-1], "mean_ms": statistics.fmean(latencies)}
    return _run(
        meter,
        measured,
        kind="sequential",
        scenario=scenario,
        connections=1,
        requests=count,
        seconds=measured.wall,
        errors=0,
        latency=latency,
    )


def _percentile(ordered: list[float], percent: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def check_injection(server: Server, certs: Certs, body: bytes, templates: str) -> None:
    """One request before measuring: allowed, a JSON Patch that applies to the pod, and the
    status annotation naming every requested template (or the benchmark measures a denial)."""
    with closing(_connection(server, certs)) as connection:
        answer = orjson.loads(_post(connection, body))
    response = answer.get("response", {})
    if not response.get("allowed") or response.get("patchType") != "JSONPatch":
        raise BenchError(f"{server.name} did not inject {templates}: {str(response)[:500]}")
    pod = orjson.loads(body)["request"]["object"]
    patched = jsonpatch.apply_patch(pod, orjson.loads(base64.b64decode(response["patch"])))
    status = patched["metadata"]["annotations"].get("sidecar-injector.io/status", "")
    missing = [name for name in templates.split(",") if name not in status]
    if missing:
        raise BenchError(f"{server.name}: the patched pod lacks {missing}: status {status!r}")
    server.truncate_log()


def check_answers(server: Server, certs: Certs, body: bytes) -> None:
    """The baseline answers 200 with its fixed review."""
    with closing(_connection(server, certs)) as connection:
        _post(connection, body)
