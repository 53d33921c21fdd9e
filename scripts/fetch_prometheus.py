"""Print the directory holding `prometheus` and `promtool`: PATH's, else Debian's, unpacked once.

The monitoring tests run the real Prometheus and promtool. Debian's `prometheus` package has
both; it is downloaded with `apt-get download` and unpacked with `dpkg-deb -x` into
`.cache/prometheus/` — never installed, so no service unit is ever started. `--update` lets
root run `apt-get update` first when the package lists do not have it (a fresh machine); that
is what `make prometheus` does. Exit status 1 with the reason on stderr when neither works.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PACKAGE = "prometheus"
BINARIES = ("prometheus", "promtool")
REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO_ROOT / ".cache" / "prometheus"
TIMEOUT = 300


class FetchError(RuntimeError):
    """The binaries are not on PATH and could not be obtained from apt."""


def complete(directory: Path) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in BINARIES)


def on_path() -> Path | None:
    """The directory of `prometheus` when `promtool` sits next to it."""
    found = shutil.which(BINARIES[0])
    if found is None:
        return None
    directory = Path(found).resolve().parent
    return directory if complete(directory) else None


def run(*command: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, check=False, timeout=TIMEOUT
    )


def download(dest: Path, update: bool) -> Path:
    """The package's .deb, downloaded into `dest` (after `apt-get update` if need be)."""
    missing = [tool for tool in ("apt-get", "dpkg-deb") if shutil.which(tool) is None]
    if missing:
        raise FetchError(f"{' and '.join(missing)} not found: not a Debian machine")
    # Root's apt drops to the _apt user, which cannot write to a private temporary directory.
    command = ("apt-get", "-q", "-o", "APT::Sandbox::User=root", "download", PACKAGE)
    result = run(*command, cwd=dest)
    if result.returncode != 0 and update and os.geteuid() == 0:
        refreshed = run("apt-get", "-q", "update")
        if refreshed.returncode != 0:
            raise FetchError(f"apt-get update failed:\n{refreshed.stderr.strip()}")
        result = run(*command, cwd=dest)
    if result.returncode != 0:
        hint = "" if update else " (as root, `make prometheus` runs apt-get update first)"
        raise FetchError(f"apt-get download {PACKAGE} failed{hint}:\n{result.stderr.strip()}")
    debs = list(dest.glob(f"{PACKAGE}_*.deb"))
    if len(debs) != 1:
        raise FetchError(f"apt-get download {PACKAGE} left {len(debs)} packages in {dest}")
    return debs[0]


def unpack(deb: Path, dest: Path) -> Path:
    """The package's binaries, alone in `dest`/bin; the rest (docs, the unit) is dropped."""
    tree = dest / "tree"
    result = run("dpkg-deb", "-x", str(deb), str(tree))
    if result.returncode != 0:
        raise FetchError(f"dpkg-deb -x {deb.name} failed:\n{result.stderr.strip()}")
    binaries = dest / "bin"
    binaries.mkdir()
    for name in BINARIES:
        os.replace(tree / "usr" / "bin" / name, binaries / name)
    version = run(str(binaries / "prometheus"), "--version")
    if version.returncode != 0:
        raise FetchError(f"the unpacked prometheus does not run:\n{version.stderr.strip()}")
    return binaries


def fetch(update: bool, cache_dir: Path = CACHE_DIR) -> Path:
    """The cached binaries' directory, downloading and unpacking them on first use."""
    target = cache_dir / "bin"
    if complete(target):
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        staged = unpack(download(Path(tmp), update), Path(tmp))
        try:
            # A rename is atomic: a concurrent run never sees half the binaries.
            os.replace(staged, target)
        except OSError:
            if not complete(target):  # not a concurrent run that got there first
                raise
    return target


def find(update: bool) -> Path:
    return on_path() or fetch(update)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--update",
        action="store_true",
        help="as root, run apt-get update when the package cannot be downloaded",
    )
    args = parser.parse_args(argv)
    try:
        print(find(args.update))
    except (FetchError, OSError, subprocess.SubprocessError) as exc:
        print(f"fetch_prometheus: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
