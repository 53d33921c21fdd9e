"""Validation of objects against the real Kubernetes OpenAPI schemas (kubernetes-validate)."""

from __future__ import annotations

from typing import Any

import kubernetes_validate

VERSIONS = ("1.28.0", kubernetes_validate.latest_version())
"""The oldest Kubernetes the project supports and the newest schema bundled."""


def assert_valid(obj: dict[str, Any]) -> None:
    """Fail with the schema's own one-line message if `obj` is not valid in every version."""
    for version in VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(str(p) for p in exc.path)
            raise AssertionError(
                f"invalid for Kubernetes {version} at {where}: {exc.message}"
            ) from None


def pod(**spec: Any) -> dict[str, Any]:
    """A minimal valid Pod; keyword arguments extend or replace its spec."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop", "annotations": {}},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}], **spec},
    }
