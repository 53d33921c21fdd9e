"""The baseline: a Starlette endpoint that reads the body and returns a fixed AdmissionReview,
served with the same uvicorn and TLS settings as `serve` (httptools, uvloop, the service's TLS
holder and keep-alive). Prints one `listening` JSON line with its port on stdout.

    python bench/baseline.py --tls-cert=tls.crt --tls-key=tls.key [--port=0]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import orjson
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
    b'"response":{"uid":"705ab4f5-6393-11e8-b7cc-42010a800002","allowed":true}}'
)


async def fixed(request: Request) -> Response:
    await request.body()
    return Response(FIXED, media_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tls-cert", type=Path, required=True)
    parser.add_argument("--tls-key", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    tls = TLSHolder(args.tls_cert, args.tls_key)
    config = uvicorn.Config(
        Starlette(routes=[Route("/mutate", fixed, methods=["POST"])]),
        http="httptools",
        lifespan="off",
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=2,
        ssl_context_factory=tls.context_factory(),
    )
    sock = bind("127.0.0.1", args.port)
    line = {"event": "listening", "host": "127.0.0.1", "port": sock.getsockname()[1]}
    sys.stdout.buffer.write(orjson.dumps(line) + b"\n")
    sys.stdout.flush()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(uvicorn.Server(config).serve([sock]))


if __name__ == "__main__":
    main()
