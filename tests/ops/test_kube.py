"""Finding the cluster like kubectl: flag, $KUBECONFIG (merged), ~/.kube/config, in-cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from injector.ops.kube import AccessError, connect


def kubeconfig(path: Path, context: str, server: str, current: bool = True) -> Path:
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": server}}],
        "users": [{"name": context, "user": {"token": "t"}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
    }
    if current:
        config["current-context"] = context
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_kubeconfig_list_is_merged_and_the_first_current_context_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = kubeconfig(tmp_path / "a", "a", "https://a.example:6443")
    second = kubeconfig(tmp_path / "b", "b", "https://b.example:6443")
    monkeypatch.setenv("KUBECONFIG", f"{first}:{tmp_path / 'missing'}:{second}")
    assert connect(None, None).config.cluster.server == "https://a.example:6443"
    assert connect(None, "b").config.cluster.server == "https://b.example:6443"
    assert connect(str(second), None).config.cluster.server == "https://b.example:6443"


def test_without_a_context_or_a_config_the_error_says_what_to_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "a", "a", "https://a:1")))
    with pytest.raises(
        AccessError, match=r"the kubeconfig has no context 'nope'; pass --context \(contexts: a\)"
    ):
        connect(None, "nope")
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(AccessError, match=r"no usable kubeconfig: .*pass --kubeconfig"):
        connect(None, None)
    (tmp_path / "broken").write_text("clusters: [")
    with pytest.raises(AccessError, match="cannot read the kubeconfig"):
        connect(str(tmp_path / "broken"), None)
