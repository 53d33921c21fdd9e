"""The Dockerfile built with buildah and run with podman, without a Docker engine or a registry.

Both run as root on one scratch storage (vfs, the only driver that needs no kernel support),
deleted afterwards. The Dockerfile's base image cannot be pulled, so a stand-in with the same
name is made from a Debian root filesystem (mmdebstrap, cached under `.cache/`); every
instruction after FROM runs as in `docker build`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .helm import REPO_ROOT

TOOLS = ("buildah", "podman", "runc", "mmdebstrap")
"""Debian packages of the same names; `make image-tools` installs the missing ones."""
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
"""Mounted over the build's own bundle while it runs: PyPI may be reached through a TLS proxy."""
APT_SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))
CACHE = REPO_ROOT / ".cache" / "image-base"
TIMEOUT = 600

SUITE = "bookworm"
"""The official python:*-slim-bookworm images' Debian; its python3 is 3.11."""
PACKAGES = (
    "python3",
    "python3-venv",
    "python-is-python3",
    "python3-wheel-whl",
    "ca-certificates",
    "netbase",
    "tzdata",
)
SLIM = tuple(f"--dpkgopt=path-exclude=/usr/share/{d}/*" for d in ("doc", "man", "info", "locale"))
HOOKS = (
    # pip, setuptools and wheel into /usr/local with pip itself, as the official image has
    # them (not Debian's python3-pip, which `pip uninstall` leaves alone): the final stage's
    # uninstall then meets them where it would.
    'rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED',
    'cd "$1" && set -- usr/share/python-wheels/pip-*.whl && chroot . env -i PATH=/usr/bin:/bin'
    ' python3 "/$1/pip" install --quiet --no-cache-dir --no-index --no-warn-script-location'
    " --find-links /usr/share/python-wheels pip setuptools wheel",
)
BASE_ENV = ("LANG=C.UTF-8", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")


def unavailable() -> str | None:
    """Why the image cannot be built and run here, or None."""
    if os.geteuid() != 0:
        return "buildah and podman run as root here; run the tests as root"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not installed (`make image-tools` installs what is missing)"
    if not base_rootfs_path().exists() and not any(path.exists() for path in APT_SOURCES):
        return f"no apt sources ({', '.join(map(str, APT_SOURCES))}) to make the base from"
    return None


class CommandError(AssertionError):
    """A build or container command exited non-zero; the message carries its output."""


def run(command: Sequence[str], env: dict[str, str], timeout: float = TIMEOUT) -> str:
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, check=False, timeout=timeout
    )
    if result.returncode != 0:
        raise CommandError(
            f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result.stdout


def architecture() -> str:
    return subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()


def base_rootfs_path() -> Path:
    """Where the stand-in base's tarball is cached: named after everything it is made from."""
    recipe = {"suite": SUITE, "packages": PACKAGES, "slim": SLIM, "hooks": HOOKS}
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    return CACHE / f"{SUITE}-{architecture()}-{key}.tar"


def base_rootfs() -> Path:
    """The stand-in base's root filesystem tarball, made once (about 45 s) and kept in CACHE;
    older recipes' tarballs are deleted."""
    tarball = base_rootfs_path()
    if tarball.exists():
        return tarball
    [sources, *_] = [path for path in APT_SOURCES if path.exists()]
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = CACHE / f"{tarball.stem}.{os.getpid()}.partial.tar"  # another run may be at it
    try:
        run(
            [
                "mmdebstrap",
                "--variant=minbase",
                f"--architectures={architecture()}",
                f"--include={','.join(PACKAGES)}",
                *SLIM,
                *(f"--customize-hook={hook}" for hook in HOOKS),
                SUITE,
                str(partial),
                str(sources),
            ],
            env=dict(os.environ),
        )
        partial.rename(tarball)
    finally:
        partial.unlink(missing_ok=True)
    for stale in CACHE.glob("*.tar"):
        if stale != tarball and ".partial" not in stale.suffixes:
            stale.unlink()
    return tarball


@dataclass
class Engine:
    """buildah and podman on storage of their own under `scratch`."""

    scratch: Path

    @classmethod
    def create(cls) -> Engine:
        scratch = Path(tempfile.mkdtemp(prefix="sidecar-injector-image-"))
        (scratch / "tmp").mkdir()
        return cls(scratch)

    @property
    def env(self) -> dict[str, str]:
        """This process's environment, with temporary files (layer blobs) kept in scratch."""
        return {**os.environ, "TMPDIR": str(self.scratch / "tmp")}

    @property
    def storage(self) -> list[str]:
        s = self.scratch
        return ["--root", f"{s}/storage", "--runroot", f"{s}/run", "--storage-driver", "vfs"]

    def buildah(self, *args: str) -> str:
        return run(["buildah", *self.storage, *args], self.env)

    def podman_command(self, *args: str) -> list[str]:
        # crun refuses cgroups in hybrid mode and there is no systemd or journald to talk to.
        return [
            "podman",
            *self.storage,
            "--tmpdir",
            f"{self.scratch}/libpod",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
            "--runtime",
            "runc",
            *args,
        ]

    def podman(self, *args: str) -> str:
        return run(self.podman_command(*args), self.env)

    def import_base(self, rootfs: Path, name: str) -> None:
        """The stand-in base image, tagged with the Dockerfile's FROM name."""
        changes = [f"--change=ENV {variable}" for variable in BASE_ENV]
        self.podman("import", "--quiet", *changes, str(rootfs), name)

    def build(self, tag: str, context: Path = REPO_ROOT) -> None:
        """`docker build -t tag context`: the base is local, the host's CA bundle trusted."""
        self.buildah(
            "bud",
            "--isolation=chroot",
            "--pull-never",
            f"--volume={HOST_CA}:{HOST_CA}:ro",
            f"--tag={tag}",
            str(context),
        )

    def inspect(self, image: str) -> dict[str, Any]:
        [found] = json.loads(self.podman("image", "inspect", image))
        return dict(found)

    def mount(self, image: str) -> Path:
        """The image's root filesystem, to read from here."""
        return Path(self.podman("image", "mount", image).strip())

    def close(self) -> None:
        """Remove every container and image of this engine, then the scratch directory."""
        try:
            self.podman("rm", "--all", "--force", "--time=0")
            self.podman("image", "unmount", "--all", "--force")
            self.buildah("rm", "--all")
        finally:
            shutil.rmtree(self.scratch)
