"""The tools the benchmark installs on demand: wrk (Debian's package, with apt-get), and py-spy
and matplotlib (pinned, pip-installed into the venv)."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.servers import BenchError

PY_SPY = "py-spy==0.4.3"
MATPLOTLIB = "matplotlib==3.10.8"


def _install(what: str, *commands: list[str]) -> None:
    print(f"bench: installing {what}", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        for argv in commands:
            subprocess.run(argv, check=True, timeout=600, env=env)
    except (OSError, subprocess.SubprocessError) as exc:
        raise BenchError(f"cannot install {what}: {exc}") from None


def wrk() -> str:
    """wrk from PATH, else from Debian's package (installed once with apt-get)."""
    if not shutil.which("wrk"):
        apt = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"]
        _install("Debian's wrk package", ["apt-get", "update", "-qq"], apt)
    return shutil.which("wrk") or ""


def py_spy() -> str:
    """py-spy next to the venv's python, else on PATH, else pip-installed into the venv."""
    local = Path(sys.executable).parent / "py-spy"
    found = str(local) if local.exists() else shutil.which("py-spy")
    if not found:
        _install(PY_SPY, [sys.executable, "-m", "pip", "install", "--quiet", PY_SPY])
    return found or str(local)


def pyplot() -> Any:
    """matplotlib's pyplot (Agg), pip-installed into the venv the first time."""
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ImportError:
        _install(MATPLOTLIB, [sys.executable, "-m", "pip", "install", "--quiet", MATPLOTLIB])
        importlib.invalidate_caches()
        matplotlib = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    return importlib.import_module("matplotlib.pyplot")
