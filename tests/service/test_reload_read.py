"""Reading the templates directory for a reload: re-read only what changed on disk."""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry

from injector.policy import Settings
from injector.service.metrics import Metrics
from injector.service.reload import Templates
from injector.service.state import State
from tests.service.support import KubeletVolume

TEMPLATE = "containers: [{name: s, image: 'busybox:1.36'}]\n"


def templates(directory: Path) -> Templates:
    return Templates(directory, State(Settings(), "deny"), Metrics(CollectorRegistry()))


def test_unchanged_files_are_not_read_again(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(TEMPLATE)
    reader = templates(tmp_path)
    first = reader.read()
    assert reader.read() is first


def test_in_place_edits_new_files_and_removals_are_seen(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(TEMPLATE)
    reader = templates(tmp_path)
    first = reader.read()
    path.write_text(TEMPLATE.replace("1.36", "1.37"))
    os.utime(path, ns=(1, 1))  # even with an mtime that went backwards
    edited = reader.read()
    assert edited != first
    assert isinstance(edited, tuple)
    assert "1.37" in edited[0].text
    (tmp_path / "b.yaml").write_text(TEMPLATE)
    assert [s.key for s in reader.read() if not isinstance(s, str)] == ["a.yaml", "b.yaml"]
    path.unlink()
    assert [s.key for s in reader.read() if not isinstance(s, str)] == ["b.yaml"]


def test_an_unreadable_directory_is_reported_and_retried(tmp_path: Path) -> None:
    reader = templates(tmp_path / "missing")
    assert isinstance(reader.read(), str)
    (tmp_path / "missing").mkdir()
    assert reader.read() == ()


def test_a_kubelet_volume_is_checked_by_its_data_link(tmp_path: Path) -> None:
    volume = KubeletVolume(tmp_path / "templates")
    volume.write({"a.yaml": TEMPLATE})
    reader = templates(volume.root)
    first = reader.read()
    assert reader.read() is first
    volume.write({"a.yaml": TEMPLATE.replace("1.36", "1.37"), "b.yaml": TEMPLATE})
    second = reader.read()
    assert isinstance(second, tuple)
    assert [s.key for s in second] == ["a.yaml", "b.yaml"]
    assert "1.37" in second[0].text
