"""The two Starlette apps: the webhook (HTTPS) and the operations port (plain HTTP)."""

from __future__ import annotations

from typing import Any

import orjson
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from injector.catalog import Catalog
from injector.policy import Settings
from injector.service.metrics import Metrics
from injector.service.mutate import PATH, PROFILE_PATH, MutateEndpoint
from injector.service.state import State
from injector.service.validate import PATH as VALIDATE_PATH
from injector.service.validate import ValidateEndpoint
from injector.template import Template


def webhook_app(state: State, metrics: Metrics, max_body_bytes: int) -> ASGIApp:
    """POST /mutate and /mutate/<profile>, and POST /validate (templates ConfigMap edits);
    everything else is a 404."""
    endpoint = MutateEndpoint(state, metrics, max_body_bytes)
    validate = ValidateEndpoint(state, metrics, max_body_bytes)
    routed = Starlette(routes=[Route(PATH, endpoint), Route(VALIDATE_PATH, validate)])
    routed.router.redirect_slashes = False  # a webhook client posting to /mutate/ gets a 404
    return CloseWhenDraining(MutateFirst(endpoint, routed), state)


class MutateFirst:
    """Requests for /mutate and /mutate/<profile> go straight to the endpoint; Starlette's
    router answers the rest (404s). Every admission skips the router and its middleware."""

    def __init__(self, endpoint: ASGIApp, routed: ASGIApp) -> None:
        self.endpoint = endpoint
        self.routed = routed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _admission_path(scope["path"]):
            await self.endpoint(scope, receive, send)
        else:
            await self.routed(scope, receive, send)


def _admission_path(path: str) -> bool:
    """`/mutate`, or `/mutate/<profile>` with a profile name of one non-empty segment."""
    if path == PATH:
        return True
    return (
        path.startswith(PROFILE_PATH)
        and len(path) > len(PROFILE_PATH)
        and "/" not in path[len(PROFILE_PATH) :]
    )


class CloseWhenDraining:
    """While the process drains, every response carries `Connection: close`. Readiness only
    steers new connections; the kube-apiserver's keep-alive connections would otherwise stay on
    this replica until it stops. Closed after an answer, they reconnect to a ready one."""

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.state.shutting_down:
            await self.app(scope, receive, send)
            return

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"connection", b"close")]
            await send(message)

        await self.app(scope, receive, closing)


def ops_app(state: State, registry: CollectorRegistry) -> Starlette:
    """/metrics, /healthz, /readyz and a read-only /debug/templates."""

    async def metrics(request: Request) -> Response:
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encode(registry), headers={"content-type": content_type})

    async def healthz(request: Request) -> Response:
        return _json({"status": "ok"})

    async def readyz(request: Request) -> Response:
        checks = state.readiness()
        ready = all(checks.values())
        return _json({"ready": ready, "checks": checks}, 200 if ready else 503)

    async def templates(request: Request) -> Response:
        return _json(describe(state.catalog, state.settings))

    return Starlette(
        routes=[
            Route("/metrics", metrics, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/debug/templates", templates, methods=["GET"]),
        ]
    )


def describe(catalog: Catalog, settings: Settings) -> dict[str, Any]:
    """What operators need to see about the loaded templates and the profiles that name them
    (`enabled` is the default set); no rendered values."""
    return {
        "templates": [
            _template(t, name in catalog.errors, name in catalog.last_good)
            for name, t in catalog.templates.items()
        ],
        "errors": {name: [str(e) for e in errs] for name, errs in catalog.errors.items()},
        "broken": catalog.broken,
        "profiles": {
            name: {"templates": list(names), "missing": catalog.missing(names)}
            for name, names in settings.routed_profiles.items()
        },
    }


def _template(template: Template, stale: bool, last_good: bool) -> dict[str, Any]:
    return {
        "name": template.name,
        "digest": template.digest,
        "description": template.description,
        "parameters": {
            name: {"type": spec.type, "default": spec.default, "overridable": spec.overridable}
            for name, spec in template.params.items()
        },
        "namespaces": list(template.namespaces),
        "hidden": template.hidden,
        "containers": list(template.container_names),
        "initContainers": list(template.init_container_names),
        "sidecars": list(template.sidecar_names),
        "volumes": list(template.volume_names),
        "targetContainers": list(template.target_containers),
        # A newer version of the file failed to load; this is the last good one.
        "stale": stale,
        # ... and it comes from the last-good ConfigMap, not from this process's memory.
        "lastGood": last_good,
    }


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status, media_type="application/json")
