"""Kubernetes label selectors and the chart's matchConditions, evaluated as the apiserver does,
to say which webhook entry (if any) a pod meets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import orjson

from injector.types import JSON


def matches(selector: Mapping[str, JSON] | None, labels: Mapping[str, str]) -> bool:
    """`matchLabels` and `matchExpressions` (In, NotIn, Exists, DoesNotExist); an empty or
    absent selector matches everything."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or ():
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or ()
        present = key in labels
        ok = {
            "In": present and labels[key] in values,
            "NotIn": not present or labels[key] not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }.get(operator, False)
        if not ok:
            return False
    return True


OPERATORS = frozenset({"In", "NotIn", "Exists", "DoesNotExist"})


def parse_selector(text: str) -> dict[str, JSON]:
    """A LabelSelector given as JSON (`{"matchLabels": {...}, "matchExpressions": [...]}`),
    checked as the API server checks one; ValueError saying what is wrong."""
    try:
        selector = orjson.loads(text) if text.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(selector, dict) or set(selector) - {"matchLabels", "matchExpressions"}:
        raise ValueError("expected a label selector: {matchLabels: {...}, matchExpressions: [...]}")
    labels = selector.get("matchLabels") or {}
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise ValueError("matchLabels must map label keys to string values")
    for expression in selector.get("matchExpressions") or ():
        if not isinstance(expression, dict) or not isinstance(expression.get("key"), str):
            raise ValueError("each matchExpression needs a key")
        operator = expression.get("operator")
        values = expression.get("values") or []
        if operator not in OPERATORS:
            raise ValueError(
                f"operator {operator!r}: expected one of {', '.join(sorted(OPERATORS))}"
            )
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ValueError(f"{expression['key']}: values must be a list of strings")
        if (operator in ("In", "NotIn")) != bool(values):
            raise ValueError(
                f"{expression['key']}: In and NotIn take values, Exists and DoesNotExist none"
            )
    return selector


def opted_out(value: str) -> bool:
    """The chart's matchConditions: an annotation of "false" or "" (any case, surrounding
    spaces ignored) keeps a pod away from the webhook."""
    return value.strip().lower() in ("", "false")


def selected(
    entries: Sequence[Mapping[str, JSON]] | None,
    namespace: str,
    namespace_labels: Mapping[str, str],
    pod_labels: Mapping[str, str],
) -> bool:
    """Whether some application entry of the webhook configuration (the chart's helm-test
    entry aside) selects the pod's namespace and the pod itself; None (offline): assumed."""
    if entries is None:
        return True
    labels = {**namespace_labels, "kubernetes.io/metadata.name": namespace}
    return any(
        matches(entry.get("namespaceSelector"), labels)
        and matches(entry.get("objectSelector"), pod_labels)
        for entry in entries
        if not str(entry.get("name", "")).startswith("helm-test.")
    )
