"""Test support: the in-process apps with a fresh registry, sample reviews, patch checks."""

from __future__ import annotations

import base64
import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonpatch
import orjson
from prometheus_client import CollectorRegistry

from injector.catalog import Catalog
from injector.policy import Settings
from injector.service.app import ops_app, webhook_app
from injector.service.config import OnError
from injector.service.metrics import Metrics
from injector.service.sample import review
from injector.service.state import State
from tests.k8s import assert_valid

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "templates"


@dataclass
class Harness:
    """The webhook and ops apps of one process, in memory, with their own registry."""

    state: State
    registry: CollectorRegistry
    webhook: httpx.AsyncClient
    ops: httpx.AsyncClient

    async def post(
        self, body: Mapping[str, Any] | bytes, content_type: str = "application/json"
    ) -> httpx.Response:
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        return await self.webhook.post(
            "/mutate", content=content, headers={"content-type": content_type}
        )

    async def review(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST a review that must be answered; its `response`."""
        answer = await self.post(body)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/json"
        document = answer.json()
        assert document["apiVersion"] == "admission.k8s.io/v1"
        assert document["kind"] == "AdmissionReview"
        assert document["response"]["uid"] == body["request"]["uid"]
        response: dict[str, Any] = document["response"]
        return response

    def requests(self, outcome: str, reason: str) -> float | None:
        return self.registry.get_sample_value(
            "sidecar_injector_admission_requests_total", {"outcome": outcome, "reason": reason}
        )

    def injections(self, template: str) -> float | None:
        return self.registry.get_sample_value(
            "sidecar_injector_injections_total", {"template": template}
        )


def make_harness(
    catalog: Catalog,
    on_error: OnError = "deny",
    settings: Settings | None = None,
    max_body_bytes: int = 3 * 1024 * 1024,
) -> Harness:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.catalog(catalog, 1700000000.0)
    state = State(settings or Settings(), on_error)
    state.swap_catalog(catalog)
    state.tls_loaded = True
    webhook = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=webhook_app(state, metrics, max_body_bytes)),
        base_url="https://webhook.test",
    )
    ops = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=ops_app(state, registry)), base_url="http://ops.test"
    )
    return Harness(state, registry, webhook, ops)


def sample(inject: str = "log-shipper", **request: Any) -> dict[str, Any]:
    """The sample review, with fields of `request` replaced."""
    document = review(inject)
    document["request"].update(request)
    return document


def with_pod(document: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    """`document` with its pod's metadata fields replaced."""
    document = copy.deepcopy(document)
    document["request"]["object"]["metadata"].update(metadata)
    return document


def apply_patch(pod: Mapping[str, Any], response: Mapping[str, Any]) -> dict[str, Any]:
    """The pod after the response's patch, checked against the Kubernetes schema."""
    assert response["patchType"] == "JSONPatch"
    ops = orjson.loads(base64.b64decode(response["patch"]))
    assert {op["op"] for op in ops} == {"add"}
    patched: dict[str, Any] = jsonpatch.apply_patch(pod, ops)
    assert_valid(patched)
    return patched
