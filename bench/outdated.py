"""`sidecar-injector outdated` over thousands of stored pods, against a real cluster.

    .venv/bin/python bench/outdated.py --kubeconfig FILE [--pods 5000] [--runs 3]

Needs a throwaway cluster (an apiserver is enough: pods are stored, never run). Installs the
chart as release `bench-outdated` (its webhook pointed nowhere: the pods created here carry
only a status annotation, which the webhook's matchConditions never send), creates the pods in
namespace `bench-outdated-pods` in batches — a third of them recording an old digest, owned by
a few ReplicaSets (no Deployment above them) — then times the command (wall clock) and reads
its peak memory (/usr/bin/time's maximum resident set), and removes everything again."""

from __future__ import annotations

import argparse
import json
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
        "webhook": {"url": "https://127.0.0.1:1/mutate", "caBundle": "bm9uZQ=="},
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


CONTAINERS = [
    {
        "name": "app",
        "image": "registry.example.com/app:1.2.3",
        "env": [{"name": f"E{i}", "value": "x" * 20} for i in range(10)],
    },
    {"name": "log-shipper", "image": "fluent/fluent-bit:3.1.4"},
]


def pods(count: int, current: str, owners: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored pods as a cluster holds injected ones: a status annotation, a container more."""
    made = []
    for index in range(count):
        owner = owners[index % len(owners)]
        made.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"bench-{index:05d}",
                    "namespace": PODS,
                    "labels": {"app": "bench", "bench/group": str(index % len(owners))},
                    "annotations": {
                        "sidecar-injector.io/status": status(
                            "0000000000000000" if index % 3 == 0 else current
                        ),
                        "prometheus.io/scrape": "true",
                    },
                    "ownerReferences": [owner],
                },
                "spec": {"containers": CONTAINERS},
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


def measure(config: Path, runs: int) -> list[tuple[float, int, int]]:
    """(seconds, peak KiB, pods listed as outdated) per run."""
    command = [
        "/usr/bin/time", "-f", "%M", str(Path(sys.executable).parent / "sidecar-injector"),
        "outdated", "-n", PODS, "-o", "json", f"--kubeconfig={config}",
        f"--release-namespace={RELEASE}",
    ]  # fmt: skip
    found = []
    for _ in range(runs):
        started = time.monotonic()
        result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
        seconds = time.monotonic() - started
        peak = int(result.stderr.strip().splitlines()[-1])
        listed = sum(len(w["pods"]) for w in json.loads(result.stdout)["workloads"])
        found.append((seconds, peak, listed))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--pods", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
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
        runs = measure(config, args.runs)
        expected = len([i for i in range(args.pods) if i % 3 == 0])
        assert all(listed == expected for *_, listed in runs), (runs, expected)
        seconds = statistics.median(s for s, _, _ in runs)
        peak = max(p for _, p, _ in runs)
        print(
            f"outdated over {args.pods} pods ({expected} outdated), {args.runs} runs: "
            f"median {seconds:.2f} s (runs: {', '.join(f'{s:.2f}' for s, _, _ in runs)}), "
            f"peak memory {peak / 1024:.0f} MiB"
        )
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
