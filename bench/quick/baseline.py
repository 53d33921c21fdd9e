"""The baseline: a Starlette endpoint that reads the body and returns a fixed answer, served
with the same uvicorn and TLS settings as `serve` (httptools, uvloop, the same TLS holder)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import uvicorn
import uvloop
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from injector.service.runner import KEEP_ALIVE_SECONDS, bind
from injector.service.tls import TLSHolder

FIXED = (
    b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",'
    b'"response":{"uid":"x","allowed":true}}'
)


async def fixed(request: Request) -> Response:
    await request.body()
    return Response(FIXED, media_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tls-cert", type=Path, required=True)
    parser.add_argument("--tls-key", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    tls = TLSHolder(args.tls_cert, args.tls_key)
    config = uvicorn.Config(
        Starlette(routes=[Route("/mutate", fixed, methods=["POST"])]),
        http="httptools",
        lifespan="off",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        ssl_context_factory=tls.context_factory(),
        log_level="warning",
    )
    sock = bind("127.0.0.1", args.port)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(uvicorn.Server(config).serve([sock]))


if __name__ == "__main__":
    main()
