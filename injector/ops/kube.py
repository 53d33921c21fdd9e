"""The connection to the cluster, through lightkube: kubeconfig, --context and in-cluster
credentials as kubectl finds them, and every failure turned into one line that says what to do
(AccessError) instead of a traceback."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import httpx2
import orjson
import yaml
from lightkube import Client, KubeConfig
from lightkube.core.exceptions import ApiError, ConfigError
from lightkube.core.resource import (
    ApiInfo,
    NamespacedSubResource,
    Resource,
    ResourceDef,
)

from injector.ops import wire

REQUEST_TIMEOUT = 30.0
PAGE = 500
"""Objects per list request: large lists are read in pages (limit/continue)."""


class AccessError(Exception):
    """The cluster cannot be reached or read; the message says what failed and what to do.
    `code` is the API's HTTP status, when it answered (404: the object does not exist)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


def connect(kubeconfig: str | None, context: str | None) -> Client:
    """A client as kubectl would make one: --kubeconfig, else the files of $KUBECONFIG
    (merged, the first to set a value wins), else ~/.kube/config, else the pod's service
    account (in-cluster); --context, else the current context. Proxies from the environment
    (HTTPS_PROXY, NO_PROXY) apply."""
    paths = [kubeconfig] if kubeconfig else _env_paths()
    try:
        if paths:
            config = _merged([Path(p).expanduser() for p in paths])
        elif DEFAULT_KUBECONFIG.expanduser().exists():
            config = KubeConfig.from_file(DEFAULT_KUBECONFIG.expanduser())
        else:
            config = KubeConfig.from_service_account()
    except ConfigError as exc:
        raise AccessError(
            f"no usable kubeconfig: {exc}; pass --kubeconfig or set KUBECONFIG"
        ) from None
    except (OSError, yaml.YAMLError) as exc:
        raise AccessError(f"cannot read the kubeconfig: {exc}") from None
    try:
        single = config.get(context_name=context)
    except ConfigError:
        single = None
    if single is None:
        where = f"context {context!r}" if context else "current context"
        known = ", ".join(sorted(config.contexts)) or "none"
        raise AccessError(f"the kubeconfig has no {where}; pass --context (contexts: {known})")
    return Client(single, timeout=httpx2.Timeout(REQUEST_TIMEOUT))


DEFAULT_KUBECONFIG = Path("~/.kube/config")


def _env_paths() -> list[str]:
    return [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]


def _merged(paths: list[Path]) -> KubeConfig:
    """kubectl's merge of several kubeconfig files: named entries and the current context
    from the first file that has them."""
    if len(paths) == 1:
        return KubeConfig.from_file(paths[0])
    merged: dict[str, Any] = {"clusters": [], "users": [], "contexts": []}
    for path in paths:
        if not path.exists():
            continue
        loaded = yaml.safe_load(path.read_text()) or {}
        for key in ("clusters", "users", "contexts"):
            names = {entry["name"] for entry in merged[key]}
            merged[key] += [e for e in loaded.get(key) or () if e.get("name") not in names]
        if not merged.get("current-context"):
            merged["current-context"] = loaded.get("current-context")
    return KubeConfig.from_dict(merged, fname=paths[0])


@contextlib.contextmanager
def reading(client: Client, what: str) -> Iterator[None]:
    """Turn what reading `what` (e.g. "list pods in namespace shop") can raise into AccessError:
    unreachable, unauthorized, forbidden (naming the verb and resource to grant)."""
    try:
        yield
    except ApiError as exc:
        _api_error(exc, what)
    except httpx2.HTTPStatusError as exc:  # an answer without a Status, e.g. an unknown API
        code = exc.response.status_code
        raise AccessError(f"cannot {what}: HTTP {code}", code) from None
    except wire.WireError as exc:
        raise AccessError(f"cannot {what}: the API server's answer cannot be read: {exc}") from None
    except httpx2.TransportError as exc:
        raise AccessError(
            f"cannot reach the cluster at {client.config.cluster.server} to {what}: "
            f"{exc or type(exc).__name__}; check --kubeconfig/--context and the network"
        ) from None


def _api_error(exc: ApiError, what: str) -> NoReturn:
    code = exc.status.code
    if code == 401:
        raise AccessError(
            f"unauthorized to {what}: the cluster rejected the credentials; log in again or "
            "check the kubeconfig's user",
            code,
        ) from None
    if code == 403:
        raise AccessError(
            f"forbidden to {what} ({exc.status.message}); grant that verb on that resource: "
            "docs/operator-commands.md lists the ClusterRole and Role these commands need",
            code,
        ) from None
    raise AccessError(f"cannot {what}: {exc.status.message or exc}", code) from None


METADATA_LIST = (
    f"{wire.CONTENT_TYPE};as=PartialObjectMetadataList;g=meta.k8s.io;v=v1, "
    "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
)
"""The Accept header that makes the API server list objects' metadata only: in protobuf
(decoded as it streams in, see `wire`), else in JSON."""


class MetadataList:
    """The `metadata` of every object of `kind` (namespace "*": all), without managedFields,
    read as a PartialObjectMetadataList: no spec, no status. Once iterated, `resource_version`
    is the list's (to watch from).

    Read from the API server's watch cache (`resourceVersion=0`, as client-go's informers list):
    a paged list without it is served from etcd, every object decoded, converted and encoded
    again, which over 20,000 pods is most of the time; the cache may lag etcd by the moments it
    takes to see a write. Sent with `limit` (an API server that pages its cache answers in
    pages, following `continue`; v1.28 answers in one). Protobuf, because the API server encodes
    it several times faster than JSON and the metadata is decoded one object at a time as the
    answer streams in (`wire.MetadataList`), stepping over managedFields: only one object is in
    memory besides what the caller keeps. lightkube (1.0) has no metadata-only list, so its
    generic client builds each request (URL, auth, TLS, timeout) and only the Accept header and
    the parameters are ours. Wrap calls in `reading`."""

    def __init__(self, client: Client, kind: type[Resource], namespace: str | None = None):
        self.client = client
        self.kind = kind
        self.namespace = namespace
        self.resource_version = ""

    def __iter__(self) -> Iterator[dict[str, Any]]:
        generic = self.client._client
        params: dict[str, Any] = {"limit": PAGE, "resourceVersion": "0"}
        while True:
            request = generic.prepare_request(
                "list", self.kind, namespace=self.namespace, params=params,
                headers={"Accept": METADATA_LIST},
            )  # fmt: skip
            response = generic.send(generic.build_adapter_request(request), stream=True)
            try:
                if response.is_error:
                    response.read()
                generic.raise_for_status(response)  # type: ignore[no-untyped-call]  # ApiError
                page = _page(response)
                yield from page
            finally:
                response.close()
            self.resource_version = page.resource_version
            if not page.continue_:
                return
            params = {"limit": PAGE, "continue": page.continue_}


def list_metadata(
    client: Client, kind: type[Resource], namespace: str | None = None
) -> Iterator[dict[str, Any]]:
    """The `metadata` of every object of `kind`: `MetadataList`'s. Wrap calls in `reading`."""
    return iter(MetadataList(client, kind, namespace))


class _JsonPage:
    """A page that came in JSON: parsed whole (an API server that does not speak protobuf)."""

    def __init__(self, body: bytes) -> None:
        try:
            page = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise wire.WireError(f"the list is not JSON ({exc})") from None
        self.items = page.get("items") or ()
        meta = page.get("metadata") or {}
        self.resource_version = str(meta.get("resourceVersion") or "")
        self.continue_ = str(meta.get("continue") or "")

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for item in self.items:
            metadata: dict[str, Any] = item.get("metadata") or {}
            metadata.pop("managedFields", None)
            yield metadata


def _page(response: httpx2.Response) -> wire.MetadataList | _JsonPage:
    if response.headers.get("content-type", "").startswith(wire.CONTENT_TYPE):
        return wire.MetadataList(response.iter_bytes())
    return _JsonPage(response.read())


class PodProxy(NamespacedSubResource):
    """`pods/<name>:<port>/proxy`: GET through the API server to a pod's port (lightkube has
    no class for this subresource)."""

    _api_info = ApiInfo(
        resource=ResourceDef("", "v1", "Pod"),
        parent=ResourceDef("", "v1", "Pod"),
        plural="pods",
        verbs=["get"],
        action="proxy",
    )


def proxy_get(client: Client, namespace: str, pod: str, port: int, path: str) -> bytes:
    """GET `path` on `pod`'s `port` through the API server's pods/proxy subresource (the RBAC
    verb: get pods/proxy). Wrap calls in `reading`."""
    generic = client._client
    request = generic.prepare_request("get", PodProxy, name=f"{pod}:{port}", namespace=namespace)
    request.url = f"{request.url}/{path.lstrip('/')}"
    response = generic.send(generic.build_adapter_request(request))
    generic.raise_for_status(response)  # type: ignore[no-untyped-call]  # ApiError
    return bytes(response.content)
