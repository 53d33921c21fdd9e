"""kubectl as the suite runs it, and what its output says: warnings, the last line of a refusal,
readiness."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from e2e.pods import Obj
from e2e.target import Applied

DENIED = "denied the request"


class Kubectl:
    """kubectl against the configured cluster; failures carry its stderr."""

    @contextmanager
    def scratch_namespace(self, prefix: str) -> Iterator[str]:
        """A new namespace `<prefix>-<6 hex>` for the body of the `with`, then deleted (not
        waited for)."""
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self.run("create", "namespace", name)
        try:
            yield name
        finally:
            self.run("delete", "namespace", name, "--wait=false", check=False)

    def __init__(self, binary: Path, kubeconfig: Path) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig

    def run(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.binary), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    def get(self, *args: str) -> Any:
        return json.loads(self.run("get", "--output=json", *args).stdout)

    def apply(self, obj: Obj) -> None:
        self.run("apply", "--filename=-", input=json.dumps(obj))

    def raw(self, path: str) -> str:
        return self.run("get", "--raw", path).stdout


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def applied(result: subprocess.CompletedProcess[str], what: str) -> Applied:
    """A kubectl edit's outcome: a failure must be an admission denial."""
    warnings = kubectl_warnings(result.stderr)
    if result.returncode != 0:
        assert DENIED in result.stderr, f"{what} failed:\n{result.stderr}"
        return Applied(False, result.stderr.strip(), warnings)
    return Applied(True, warnings=warnings)


def kubectl_warnings(stderr: str) -> tuple[str, ...]:
    """The admission warnings kubectl printed."""
    return tuple(
        line.removeprefix("Warning: ")
        for line in stderr.splitlines()
        if line.startswith("Warning: ")
    )


def is_ready(obj: Obj) -> bool:
    """The object's Ready condition is True (a Pod's or a Node's, as the kubelet reports)."""
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in obj.get("status", {}).get("conditions", [])
    )
