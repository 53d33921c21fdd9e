"""`sidecar-injector outdated` over thousands of stored pods, against a real cluster.

    .venv/bin/python bench/outdated.py --kubeconfig FILE [--pods 20000] [--runs 3] \
        [--events 2000] [--before DIR] [--keep]

Needs a throwaway cluster (an apiserver is enough: pods are stored, never run). Installs the
chart as release `bench-outdated` (its webhook pointed nowhere, `failurePolicy: Ignore`, so
the opted-in pods created here are admitted as they are), creates the pods in namespace
`bench-outdated-pods` in batches — pods of a realistic size (~6 KB: two containers with env,
mounts, probes and resources, volumes), all opted in: a third recording an old digest, a
tenth never injected (missed), the rest current; owned by a few ReplicaSets (no Deployment
above them) — then times `outdated -A -o json` (wall clock) and reads its peak memory
(/usr/bin/time's maximum resident set); runs `audit` over them (`measure_audit`: seconds to
ready, memory, CPU per watch event; its memory with no pod too, before they are created), and
removes everything again (`--keep`: not; the next run reads the same pods). With `--before DIR` (a
checkout of another commit, e.g. `git worktree add /tmp/before main`) the same pods are also
read by that commit's command, alternating, in the same run. The numbers go to
bench/outdated.json (the data) and bench/outdated.md (rendered from it)."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lightkube.resources.core_v1 import PodStatus  # noqa: E402
from lightkube.types import PatchType  # noqa: E402

from e2e import tools  # noqa: E402
from injector.loader import load_directory  # noqa: E402
from injector.ops.kube import connect  # noqa: E402

HERE = Path(__file__).resolve().parent
RELEASE = "bench-outdated"
PODS = "bench-outdated-pods"
BATCH = 500


def kubectl(config: Path, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [str(tools.kubectl()), f"--kubeconfig={config}", *args],
        input=stdin, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args[:3])} failed: {result.stderr.strip()}")
    return result.stdout


def install(config: Path) -> None:
    helm = [str(tools.helm()), f"--kubeconfig={config}"]
    values = {
        "webhook": {
            "url": "https://127.0.0.1:1/mutate",
            "caBundle": "bm9uZQ==",
            "failurePolicy": "Ignore",
        },
        "certManager": {"enabled": False},
        "tls": {"existingSecret": "unused"},
        "tests": {"enabled": False},
    }
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as file:
        yaml.safe_dump(values, file)
        subprocess.run(
            [*helm, "upgrade", "--install", RELEASE, str(ROOT / "charts" / "sidecar-injector"),
             "-n", RELEASE, "--create-namespace", "-f", file.name],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip


def status(digest: str) -> str:
    return json.dumps(
        {
            "templates": [{"name": "log-shipper", "digest": digest}],
            "containers": ["log-shipper"],
            "initContainers": [],
            "volumes": ["app-logs"],
        }
    )


def container(name: str, image: str) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["--config=/etc/app/config.yaml", "--port=8080", "--log-format=json"],
        "env": [
            {"name": f"APP_SETTING_{i:02d}", "value": f"value-{i:02d}-" + "x" * 24}
            for i in range(24)
        ]
        + [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "500m", "memory": "256Mi"},
        },
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 10},
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/app"},
            {"name": "app-logs", "mountPath": "/var/log/app"},
            {"name": "cache", "mountPath": "/cache"},
        ],
    }


SPEC = {
    "containers": [
        container("app", "registry.example.com/shop/app:1.2.3"),
        container("log-shipper", "fluent/fluent-bit:3.1.4"),
    ],
    "volumes": [
        {"name": "config", "configMap": {"name": "app-config"}},
        {"name": "app-logs", "emptyDir": {}},
        {"name": "cache", "emptyDir": {"sizeLimit": "1Gi"}},
    ],
}


def pods(count: int, current: str, owners: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored pods as a cluster holds opted-in ones: a third outdated, a tenth missed (no
    status: created while the webhook did not answer), the rest current."""
    made = []
    for index in range(count):
        owner = owners[index % len(owners)]
        annotations = {"sidecar-injector.io/inject": "log-shipper", "prometheus.io/scrape": "true"}
        if index % 10 != 1:
            digest = "0000000000000000" if index % 3 == 0 else current
            annotations["sidecar-injector.io/status"] = status(digest)
        made.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"bench-{index:05d}",
                    "namespace": PODS,
                    "labels": {"app": "bench", "bench/group": str(index % len(owners))},
                    "annotations": annotations,
                    "ownerReferences": [owner],
                },
                "spec": SPEC,
            }
        )
    return made


def replicasets(config: Path, groups: int) -> list[dict[str, Any]]:
    """A few ReplicaSets to own the pods (scaled to 0: their controller creates nothing)."""
    owners = []
    for group in range(groups):
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": f"bench-{group}", "namespace": PODS},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"bench/rs": str(group)}},
                "template": {
                    "metadata": {"labels": {"bench/rs": str(group)}},
                    "spec": {"containers": [{"name": "app", "image": "x"}]},
                },
            },
        }
        created = json.loads(
            kubectl(config, "create", "-f", "-", "-o", "json", stdin=json.dumps(rs))
        )
        owners.append(
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": created["metadata"]["name"],
                "uid": created["metadata"]["uid"],
                "controller": False,
            }
        )
    return owners


def expected(count: int) -> int:
    """Pods `pods` makes that need attention: outdated or missed."""
    return sum(1 for i in range(count) if i % 10 == 1 or i % 3 == 0)


def command(checkout: Path, config: Path) -> tuple[list[str], dict[str, str]]:
    """`outdated -A -o json` of the code in `checkout`, under /usr/bin/time."""
    run = "import sys; from injector.cli import main; sys.exit(main())"
    argv = [
        "/usr/bin/time", "-f", "%M", sys.executable, "-c", run,
        "outdated", "-A", "-o", "json", f"--kubeconfig={config}",
        f"--release-namespace={RELEASE}",
    ]  # fmt: skip
    return argv, {**os.environ, "PYTHONPATH": str(checkout)}


def measure(checkout: Path, config: Path) -> tuple[float, int, int]:
    """(seconds, peak KiB, pods listed) for one run of the command of `checkout`."""
    argv, env = command(checkout, config)
    started = time.monotonic()
    # In the checkout: `python -c` puts the working directory first on sys.path.
    result = subprocess.run(
        argv, capture_output=True, text=True, env=env, cwd=checkout, timeout=300, check=False
    )
    seconds = time.monotonic() - started
    if result.returncode not in (0, 1):
        raise SystemExit(f"outdated failed ({checkout}): {result.stderr.strip()[-2000:]}")
    peak = int(result.stderr.strip().splitlines()[-1])
    listed = sum(len(w["pods"]) for w in json.loads(result.stdout)["workloads"])
    return seconds, peak, listed


def audit_command(checkout: Path, config: Path) -> tuple[list[str], dict[str, str]]:
    """`audit` of the code in `checkout`, judging with the example templates."""
    run = "import sys; from injector.cli import main; sys.exit(main())"
    argv = [
        sys.executable, "-c", run, "audit", "--host=127.0.0.1", "--metrics-port=0",
        f"--kubeconfig={config}", f"--templates-dir={ROOT / 'examples' / 'templates'}",
    ]  # fmt: skip
    return argv, {**os.environ, "PYTHONPATH": str(checkout)}


def _proc(pid: int) -> tuple[int, int, float]:
    """(resident KiB, peak resident KiB, CPU seconds) of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    kib = {k: int(v.split()[0]) for k, v in (x.split(":", 1) for x in status.splitlines())
           if k in ("VmRSS", "VmHWM")}  # fmt: skip
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return kib["VmRSS"], kib["VmHWM"], ticks / os.sysconf("SC_CLK_TCK")


def _quiet(pid: int, idle: float, longest: float = 120.0) -> float:
    """Wait until the process's CPU use is back to its idle rate; its CPU seconds then."""
    deadline = time.monotonic() + longest
    last = _proc(pid)[2]
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = _proc(pid)[2]
        if now - last <= idle + 0.02:
            return now
        last = now
    raise SystemExit("the audit did not settle")


def measure_audit(checkout: Path, config: Path, touched: list[str]) -> dict[str, Any]:
    """One `audit` process of `checkout`: seconds from its start to ready (/readyz), resident
    memory once synced (and its peak), then the CPU each watch event costs it — the status of
    every pod in `touched` changed (a MODIFIED event each, the event a running fleet sends
    most), its idle CPU subtracted."""
    argv, env = audit_command(checkout, config)
    with tempfile.TemporaryFile("w+") as log:
        started = time.monotonic()
        process = subprocess.Popen(argv, env=env, cwd=checkout, stdout=log, stderr=log, text=True)
        try:
            port = None
            while time.monotonic() - started < 300:
                if process.poll() is not None:
                    log.seek(0)
                    raise SystemExit(f"audit exited ({checkout}): {log.read()[-2000:]}")
                if port is None:
                    log.seek(0)
                    lines = [json.loads(x) for x in log if x.startswith("{")]
                    port = next(
                        (x["metrics_port"] for x in lines if x["event"] == "listening"), None
                    )
                elif _ready(port):
                    break
                time.sleep(0.05)
            else:
                raise SystemExit(f"audit not ready in 300 s ({checkout})")
            ready = time.monotonic() - started
            time.sleep(3)
            rss, peak, before = _proc(process.pid)
            time.sleep(5)
            idle = (_proc(process.pid)[2] - before) / 5
            cpu = event_cpu = 0.0
            if touched:
                before = _proc(process.pid)[2]
                touching = time.monotonic()
                touch(config, touched)
                cpu = _quiet(process.pid, idle) - before
                event_cpu = max(0.0, cpu - idle * (time.monotonic() - touching)) / len(touched)
            after, peak, _ = _proc(process.pid)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
    return {
        "ready_seconds": round(ready, 3),
        "rss_kib": rss,
        "peak_kib": peak,
        "rss_after_events_kib": after,
        "idle_cpu_per_second": round(idle, 4),
        "events": len(touched),
        "cpu_ms_per_event": round(event_cpu * 1000, 3),
    }


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def touch(config: Path, names: list[str]) -> None:
    """Change the status of each pod named (its `message`): one MODIFIED event each."""
    client = connect(str(config), None)
    stamp = str(time.time())
    for name in names:
        client.patch(
            PodStatus, name, {"status": {"message": stamp}}, namespace=PODS,
            patch_type=PatchType.MERGE,
        )  # fmt: skip


def render(data: dict[str, Any]) -> str:
    """bench/outdated.md from bench/outdated.json."""
    lines = [
        "# `outdated -A` over stored pods",
        "",
        f"{data['pods']} pods of ~{data['pod_bytes'] / 1024:.1f} KB (as stored, JSON) on a local "
        f"kube-apiserver {data['apiserver']}, {data['runs']} runs each, alternating; "
        f"{data['date']}, {data['machine']}. Goal: ≤ {data['goal_seconds']} s and "
        f"≤ {data['goal_mib']} MiB.",
        "",
        "| code | pods reported | median s | runs (s) | peak MiB | goal met |",
        "|---|---|---|---|---|---|",
    ]
    for name, result in data["results"].items():
        seconds = statistics.median(result["seconds"])
        mib = max(result["peak_kib"]) / 1024
        met = seconds <= data["goal_seconds"] and mib <= data["goal_mib"]
        runs = ", ".join(f"{s:.2f}" for s in result["seconds"])
        lines.append(
            f"| {name} | {result['listed']} | {seconds:.2f} | {runs} | {mib:.0f} | "
            f"{'yes' if met else 'no'} |"
        )
    lines += [
        "",
        "## `audit` over the same pods",
        "",
        f"Each run: the process started, seconds until /readyz answers 200 (both informers "
        f"listed and watching), its resident memory 3 s later and its peak; then the status of "
        f"{_events(data)} pods changed (one MODIFIED event each, the event a running fleet "
        f"sends most) and the CPU it spent on them, its idle CPU subtracted. Idle: the same "
        f"process before the pods were created; per pod: (resident - idle) / pods; at 100,000: "
        f"idle + 100,000 * per pod (goal ≤ {data['audit_goal_mib_at_100k']} MiB), an upper "
        f"bound: most of the memory per pod here is the decision memo, which stops growing at "
        f"20,000 decisions (each of these pods has its own: they have no generateName).",
        "",
        "| code | ready s (runs) | resident MiB | peak MiB | idle MiB | per pod KiB | "
        "at 100,000 MiB (linear) | CPU ms/event (runs) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, audit in data["audit"].items():
        runs = audit["runs"]
        ready = [r["ready_seconds"] for r in runs]
        rss = statistics.median(r["rss_kib"] for r in runs)
        peak = max(r["peak_kib"] for r in runs)
        cpu = [r["cpu_ms_per_event"] for r in runs]
        idle = audit["idle"]["rss_kib"] if audit["idle"] else None
        per_pod = (rss - idle) / data["pods"] if idle is not None else None
        at = (idle + per_pod * 100_000) / 1024 if idle is not None and per_pod is not None else None
        lines.append(
            f"| {name} | {statistics.median(ready):.2f} ({', '.join(f'{x:.2f}' for x in ready)})"
            f" | {rss / 1024:.0f} | {peak / 1024:.0f} | "
            f"{'' if idle is None else f'{idle / 1024:.0f}'} | "
            f"{'' if per_pod is None else f'{per_pod:.2f}'} | {'' if at is None else f'{at:.0f}'}"
            f" | {statistics.median(cpu):.3f} ({', '.join(f'{x:.3f}' for x in cpu)}) |"
        )
    lines += ["", "Made by `bench/outdated.py`; the numbers are in `bench/outdated.json`.", ""]
    return "\n".join(lines)


def _events(data: dict[str, Any]) -> int:
    return max((r["events"] for a in data["audit"].values() for r in a["runs"]), default=0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--pods", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=int, default=2000, help="pods changed per audit run")
    parser.add_argument("--before", type=Path, help="a checkout to measure too (e.g. main)")
    parser.add_argument(
        "--keep", action="store_true", help="leave the pods (a later run reads them again)"
    )
    args = parser.parse_args()
    config = args.kubeconfig
    checkouts = {"after": ROOT}
    if args.before:
        checkouts = {"before": args.before.resolve(), **checkouts}
    reused = PODS in kubectl(config, "get", "namespace", "-o", "name")
    idle: dict[str, dict[str, Any]] = {}
    if not reused:
        install(config)
        for name, checkout in checkouts.items():  # the audit with no pod to keep
            idle[name] = measure_audit(checkout, config, [])
        kubectl(config, "create", "namespace", PODS)
    try:
        names = [f"bench-{i:05d}" for i in range(args.pods)]
        if not reused:
            create(config, args.pods)
        stored = kubectl(config, "get", "pod", names[0], "-n", PODS, "-o", "json")
        results: dict[str, dict[str, Any]] = {
            name: {"seconds": [], "peak_kib": [], "listed": 0} for name in checkouts
        }
        audits: dict[str, list[dict[str, Any]]] = {name: [] for name in checkouts}
        for run in range(args.runs):
            for name, checkout in checkouts.items():
                seconds, peak, listed = measure(checkout, config)
                results[name]["seconds"].append(round(seconds, 3))
                results[name]["peak_kib"].append(peak)
                results[name]["listed"] = listed
            for name, checkout in reversed(checkouts.items()) if run % 2 else checkouts.items():
                touched = names[run * args.events : (run + 1) * args.events]
                audits[name].append(measure_audit(checkout, config, touched))
        assert results["after"]["listed"] == expected(args.pods), results
        version = json.loads(kubectl(config, "version", "-o", "json"))["serverVersion"]
        data = {
            "pods": args.pods,
            "pod_bytes": len(json.dumps(json.loads(stored), separators=(",", ":"))),
            "apiserver": version["gitVersion"],
            "runs": args.runs,
            "date": datetime.date.today().isoformat(),
            "machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}",
            "goal_seconds": 1.5,
            "goal_mib": 80,
            "audit_goal_mib_at_100k": 150,
            "results": results,
            "audit": {name: {"idle": idle.get(name), "runs": audits[name]} for name in checkouts},
        }
        (HERE / "outdated.json").write_text(json.dumps(data, indent=2) + "\n")
        (HERE / "outdated.md").write_text(render(data))
        print(render(data))
    finally:
        if not args.keep:
            kubectl(config, "delete", "namespace", PODS, "--wait=false")
            subprocess.run(
                [str(tools.helm()), f"--kubeconfig={config}", "uninstall", RELEASE, "-n",
                 RELEASE], capture_output=True, check=False, timeout=300,
            )  # fmt: skip
            kubectl(config, "delete", "namespace", RELEASE, "--wait=false")
    return 0


def create(config: Path, count: int) -> None:
    current = load_directory(ROOT / "examples" / "templates").templates["log-shipper"].digest
    made = pods(count, current, replicasets(config, 5))
    started = time.monotonic()
    for start in range(0, len(made), BATCH):
        batch = {"apiVersion": "v1", "kind": "List", "items": made[start : start + BATCH]}
        kubectl(config, "create", "-f", "-", stdin=json.dumps(batch))
    print(f"stored {len(made)} pods in {time.monotonic() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
