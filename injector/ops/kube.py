"""The connection to the cluster, through lightkube: kubeconfig, --context and in-cluster
credentials as kubectl finds them, and every failure turned into one line that says what to do
(AccessError) instead of a traceback."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import httpx2
from lightkube import Client, KubeConfig
from lightkube.core.exceptions import ApiError, ConfigError

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
    """A client as kubectl would make one: --kubeconfig, else $KUBECONFIG, else in-cluster
    credentials (in a pod), else ~/.kube/config; --context, else the current context."""
    path = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    try:
        if path:
            config = KubeConfig.from_file(Path(path).expanduser())
        else:
            config = KubeConfig.from_env(default_config=Path("~/.kube/config").expanduser())
        single = config.get(context_name=context)
    except ConfigError as exc:
        raise AccessError(
            f"no usable kubeconfig: {exc}; pass --kubeconfig or set KUBECONFIG"
        ) from None
    except OSError as exc:
        raise AccessError(f"cannot read the kubeconfig: {exc}") from None
    if single is None:
        where = f"context {context!r}" if context else "a current context"
        raise AccessError(f"the kubeconfig has no {where}; pass --context")
    return Client(single, timeout=httpx2.Timeout(REQUEST_TIMEOUT), trust_env=False)


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
