"""Quick latency check of POST /mutate next to a fixed-response baseline, with wrk.

Starts the real `serve` process (examples/templates, the sample review of dev mode) and the
baseline of bench/quick/baseline.py on the same uvicorn/TLS settings, then runs wrk against
each in turn (alternating, same session: they share the machine's cores with wrk), keep-alive
TLS, 16 connections, 10 s per run. Prints p50/p99, req/s and server CPU-ms per request.

    .venv/bin/python bench/quick/latency.py [--rounds 2] [--duration 10] [--connections 16]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

from injector.service.dev import make_certificates
from injector.service.sample import review

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found: installing Debian's package", file=sys.stderr)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    return shutil.which("wrk") or sys.exit("wrk could not be installed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@contextmanager
def started(argv: list[str], port: int, ca: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    try:
        context = ssl.create_default_context(cafile=str(ca))
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise SystemExit(f"{argv[2]} did not start:\n{log.read_text()}")
        check(port, context)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def check(port: int, context: ssl.SSLContext) -> None:
    request = urllib.request.Request(
        f"https://127.0.0.1:{port}/mutate",
        data=orjson.dumps(review()),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, context=context, timeout=5) as answer:
        assert answer.status == 200, answer.status


def run_wrk(
    wrk: str, port: int, pid: int, args: argparse.Namespace, body: Path
) -> dict[str, float]:
    before = cpu_seconds(pid)
    result = subprocess.run(
        [
            wrk,
            f"-t{args.threads}",
            f"-c{args.connections}",
            f"-d{args.duration}s",
            "--latency",
            "-s",
            str(HERE / "post.lua"),
            f"https://127.0.0.1:{port}/mutate",
        ],
        env={**os.environ, "BODY_FILE": str(body)},
        capture_output=True,
        text=True,
        check=True,
    )
    cpu = cpu_seconds(pid) - before
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    seconds = summary["duration_us"] / 1e6
    return {
        "rps": summary["requests"] / seconds,
        "p50_ms": summary["p50_us"] / 1000,
        "p99_ms": summary["p99_us"] / 1000,
        "cpu_ms_per_request": cpu * 1000 / max(summary["requests"], 1),
        "errors": summary["socket_errors"] + summary["non_2xx"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="sidecar-bench-") as tmp:
        work = Path(tmp)
        ca_pem, cert_pem, key_pem = make_certificates("127.0.0.1")
        for name, blob in (("ca.crt", ca_pem), ("tls.crt", cert_pem), ("tls.key", key_pem)):
            (work / name).write_bytes(blob)
        body = work / "review.json"
        body.write_bytes(orjson.dumps(review()))
        port, metrics_port, base_port = free_port(), free_port(), free_port()
        tls = [f"--tls-cert={work / 'tls.crt'}", f"--tls-key={work / 'tls.key'}"]
        injector = [
            sys.executable,
            "-m",
            "injector.service",
            "--host=127.0.0.1",
            f"--port={port}",
            f"--metrics-port={metrics_port}",
            f"--templates-dir={REPO / 'examples/templates'}",
            "--shutdown-delay=0",
            *tls,
        ]
        baseline = [sys.executable, str(HERE / "baseline.py"), f"--port={base_port}", *tls]
        results: dict[str, list[dict[str, float]]] = {"mutate": [], "baseline": []}
        ca = work / "ca.crt"
        with (
            started(injector, port, ca, work / "injector.log") as served,
            started(baseline, base_port, ca, work / "baseline.log") as base,
        ):
            for _ in range(args.rounds):
                results["mutate"].append(run_wrk(wrk, port, served.pid, args, body))
                results["baseline"].append(run_wrk(wrk, base_port, base.pid, args, body))
    report(results, args, len(body.read_bytes()) if body.exists() else 0)


def report(results: dict[str, list[dict[str, float]]], args: argparse.Namespace, size: int) -> None:
    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, keep-alive TLS, "
        f"{args.rounds} alternating rounds each, sample review (log-shipper)"
    )
    columns = ("req/s", "p50 ms", "p99 ms", "CPU-ms/req", "errors")
    print(f"{'endpoint':<10} " + " ".join(f"{c:>10}" for c in columns))
    medians = {}
    for name, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        medians[name] = med
        for run in runs:
            print(
                f"{name:<10} {run['rps']:>10.0f} {run['p50_ms']:>10.2f} {run['p99_ms']:>10.2f} "
                f"{run['cpu_ms_per_request']:>10.3f} {run['errors']:>10.0f}"
            )
    ratio = medians["mutate"]["rps"] / medians["baseline"]["rps"]
    print(f"median throughput ratio mutate/baseline: {ratio:.2f}")
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "quick.json").write_text(json.dumps({"runs": results, "median": medians}, indent=2))


if __name__ == "__main__":
    main()
