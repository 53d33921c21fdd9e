"""`sidecar-injector outdated` over thousands of stored pods, against a real cluster.

    .venv/bin/python bench/outdated.py --kubeconfig FILE [--pods 20000] [--runs 3] \
        [--before DIR]

Needs a throwaway cluster (an apiserver is enough: pods are stored, never run). Installs the
chart as release `bench-outdated` (its webhook pointed nowhere, `failurePolicy: Ignore`, so
the opted-in pods created here are admitted as they are), creates the pods in namespace
`bench-outdated-pods` in batches — pods of a realistic size (~6 KB: two containers with env,
mounts, probes and resources, volumes), all opted in: a third recording an old digest, a
tenth never injected (missed), the rest current; owned by a few ReplicaSets (no Deployment
above them) — then times `outdated -A -o json` (wall clock) and reads its peak memory
(/usr/bin/time's maximum resident set), and removes everything again. With `--before DIR` (a
checkout of another commit, e.g. `git worktree add /tmp/before main`) the same pods are also
read by that commit's command, alternating, in the same run. The numbers go to
bench/outdated.json (the data) and bench/outdated.md (rendered from it)."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from e2e import tools  # noqa: E402
from injector.loader import load_directory  # noqa: E402

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
    lines += ["", "Made by `bench/outdated.py`; the numbers are in `bench/outdated.json`.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--pods", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--before", type=Path, help="a checkout to measure too (e.g. main)")
    args = parser.parse_args()
    config = args.kubeconfig
    current = load_directory(ROOT / "examples" / "templates").templates["log-shipper"].digest
    install(config)
    kubectl(config, "create", "namespace", PODS)
    try:
        owners = replicasets(config, 5)
        made = pods(args.pods, current, owners)
        started = time.monotonic()
        for start in range(0, len(made), BATCH):
            batch = {"apiVersion": "v1", "kind": "List", "items": made[start : start + BATCH]}
            kubectl(config, "create", "-f", "-", stdin=json.dumps(batch))
        print(f"stored {len(made)} pods in {time.monotonic() - started:.0f} s", file=sys.stderr)
        stored = kubectl(
            config, "get", "pod", made[0]["metadata"]["name"], "-n", PODS, "-o", "json"
        )
        checkouts = {"after": ROOT}
        if args.before:
            checkouts = {"before": args.before.resolve(), **checkouts}
        results: dict[str, dict[str, Any]] = {
            name: {"seconds": [], "peak_kib": [], "listed": 0} for name in checkouts
        }
        for _ in range(args.runs):
            for name, checkout in checkouts.items():
                seconds, peak, listed = measure(checkout, config)
                results[name]["seconds"].append(round(seconds, 3))
                results[name]["peak_kib"].append(peak)
                results[name]["listed"] = listed
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
            "results": results,
        }
        (HERE / "outdated.json").write_text(json.dumps(data, indent=2) + "\n")
        (HERE / "outdated.md").write_text(render(data))
        print(render(data))
    finally:
        kubectl(config, "delete", "namespace", PODS, "--wait=false")
        subprocess.run(
            [str(tools.helm()), f"--kubeconfig={config}", "uninstall", RELEASE, "-n", RELEASE],
            capture_output=True, check=False, timeout=300,
        )  # fmt: skip
        kubectl(config, "delete", "namespace", RELEASE, "--wait=false")
    return 0


if __name__ == "__main__":
    sys.exit(main())
