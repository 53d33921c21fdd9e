"""Node mode's tools: the webhook's Pods as the kubelet runs them, the apiserver through
`kubectl proxy` for load loops, a steady stream of opted-in Pod creations, and the figures the
node scenarios measure (printed at the end of the run by conftest's terminal summary).

Everything here talks to the cluster through kubectl (and its proxy on 127.0.0.1), except
`kill_outright`, which needs the webhook's process on this machine and says so when it is not.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e.chart import NAMESPACE
from e2e.kubectl import Kubectl, is_ready
from e2e.pods import Obj
from e2e.webhooks import InClusterWebhook

FIGURES: list[str] = []
"""What the node scenarios measured, one line each, for the run's summary."""

PROXY_START_TIMEOUT = 30.0
REQUEST_TIMEOUT = 30.0
"""Above the webhook's timeoutSeconds (5): the apiserver answers first, whatever happens."""


def figure(text: str) -> None:
    FIGURES.append(text)


class ApiProxy:
    """The apiserver through `kubectl proxy` on 127.0.0.1 and an ephemeral port: many small
    requests without a kubectl process each (load loops stay cheap on 2 cores)."""

    def __init__(self, base: str) -> None:
        self.base = base

    def request(self, method: str, path: str, body: Obj | None = None) -> tuple[int, Obj]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            text = error.read()
            try:
                return error.code, json.loads(text)
            except ValueError:
                return error.code, {"message": text.decode(errors="replace")}

    def create_pod(self, pod: Obj, namespace: str, dry_run: bool = True) -> tuple[int, Obj]:
        """POST the Pod: the whole admission chain, webhook included; with `dry_run` nothing
        is stored (and nothing is scheduled on the node)."""
        query = "?dryRun=All" if dry_run else ""
        return self.request("POST", f"/api/v1/namespaces/{namespace}/pods{query}", pod)


@contextmanager
def api_proxy(kubectl: Kubectl) -> Iterator[ApiProxy]:
    """`kubectl proxy` for the body of the `with`, always stopped."""
    process = subprocess.Popen(
        [str(kubectl.binary), f"--kubeconfig={kubectl.kubeconfig}", "proxy", "--port=0",
         "--address=127.0.0.1", "--accept-hosts=^127\\.0\\.0\\.1$"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        started: list[str] = []
        reader = threading.Thread(target=lambda: started.append(process.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(PROXY_START_TIMEOUT)
        found = re.search(r"127\.0\.0\.1:(\d+)", started[0] if started else "")
        assert found, f"kubectl proxy did not start: {started}"
        yield ApiProxy(f"http://127.0.0.1:{found.group(1)}")
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def wait_for_replicas(webhook: InClusterWebhook, count: int, timeout: float) -> None:
    """Until exactly `count` webhook Pods exist, all Ready, none terminating."""
    deadline = time.monotonic() + timeout
    while True:
        pods = webhook.all_pods()
        settled = not [p for p in pods if "deletionTimestamp" in p["metadata"]]
        if len(pods) == count and settled and all(is_ready(p) for p in pods):
            return
        assert time.monotonic() < deadline, f"webhook replicas not back to {count} Ready"
        time.sleep(0.5)


def timestamp(text: str) -> float:
    """An RFC 3339 timestamp of the API (seconds resolution) as Unix time."""
    return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone


@dataclass
class Stream:
    """Opted-in Pod creations (dry runs), one after another at a steady pace, on a thread:
    how an application's Pods keep arriving while the webhook is disrupted. Bounded in count
    and time."""

    proxy: ApiProxy
    pod: Obj
    namespace: str
    interval: float = 0.1
    limit: int = 4000
    max_seconds: float = 300.0
    answered: int = 0
    refused: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Stream:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(REQUEST_TIMEOUT + 5)

    @property
    def sent(self) -> int:
        return self.answered + len(self.refused)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and self.sent < self.limit and time.monotonic() < deadline:
            status, body = self.proxy.create_pod(self.pod, self.namespace)
            names = [c["name"] for c in body.get("spec", {}).get("containers", [])]
            if status == 201 and "log-shipper" in names:
                self.answered += 1
            else:
                self.refused.append(f"{status}: {body.get('message', body)}")
            self._stop.wait(self.interval)


def container_id(pod: Obj, name: str) -> str:
    [found] = [c for c in pod["status"]["containerStatuses"] if c["name"] == name]
    cid: str = found["containerID"]
    return cid.split("://", 1)[1]


def host_pids(cid: str, proc: Path = Path("/proc")) -> list[int]:
    """The processes of container `cid` on this machine (found through their cgroup), if the
    node runs here and this process may see them."""
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if cid in (entry / "cgroup").read_text():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def kill_outright(pids: list[int]) -> None:
    """SIGKILL from outside the container: no drain, no readiness change first (a SIGKILL
    from inside to the container's PID 1 is ignored by the kernel)."""
    for pid in pids:
        os.kill(pid, signal.SIGKILL)


def cgroup_memory(kubectl: Kubectl, pod: str, container: str) -> dict[str, int]:
    """The container's memory cgroup as the kernel counts it: the peak since start and the
    limit (cgroup v1 files, else v2's), read inside the container."""
    script = (
        "cd /sys/fs/cgroup/memory 2>/dev/null && "
        "cat memory.max_usage_in_bytes memory.limit_in_bytes memory.usage_in_bytes || "
        "(cd /sys/fs/cgroup && cat memory.peak memory.max memory.current)"
    )
    result = kubectl.run(
        "exec", pod, f"--namespace={NAMESPACE}", f"--container={container}", "--",
        "sh", "-c", script,
    )  # fmt: skip
    peak, limit, current = result.stdout.split()
    return {"peak": int(peak), "limit": int(limit), "current": int(current)}


def sync_frequency(kubectl: Kubectl, node: str) -> str:
    """The kubelet's syncFrequency from its /configz through the apiserver's node proxy, or why
    it cannot be read (the proxy refuses a node whose address is loopback)."""
    path = f"/api/v1/nodes/{node}/proxy/configz"
    result = kubectl.run("get", "--raw", path, check=False)
    if result.returncode != 0:
        return f"unknown ({result.stderr.strip()})"
    config: dict[str, Any] = json.loads(result.stdout)["kubeletconfig"]
    return str(config.get("syncFrequency", "1m0s (the default)"))
