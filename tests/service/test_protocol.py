"""One write per event-loop turn: the transport wrapper alone, then uvicorn serving through it."""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
import uvloop

from injector.service.protocol import CoalescingHttpToolsProtocol, CoalescingTransport


class Recording(asyncio.Transport):
    """The writes a transport was asked for, and whether it was closed or aborted."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closing = False
        self.aborted = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 7

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


async def _turn() -> None:
    await asyncio.sleep(0)


def _wrapped() -> tuple[Recording, CoalescingTransport]:
    """A recording transport and the wrapper around it, on the running loop."""
    inner = Recording()
    return inner, CoalescingTransport(inner, asyncio.get_running_loop())


def _run(test: Any) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(test())


def test_writes_of_one_turn_reach_the_transport_as_one_in_order() -> None:
    async def test() -> None:
        inner, outer = _wrapped()
        outer.write(b"HTTP/1.1 200 OK\r\n\r\n")
        outer.write(b"")
        outer.writelines([b"{", b"}"])
        assert inner.writes == []
        assert outer.get_write_buffer_size() == 7 + 21
        await _turn()
        assert inner.writes == [b"HTTP/1.1 200 OK\r\n\r\n{}"]
        outer.write(b"next")
        await _turn()
        await _turn()
        assert inner.writes[1:] == [b"next"]

    _run(test)


def test_closing_sends_what_waits_first() -> None:
    async def test() -> None:
        inner, outer = _wrapped()
        outer.write(b"answer")
        outer.close()
        assert (inner.writes, inner.closing) == ([b"answer"], True)
        await _turn()
        assert inner.writes == [b"answer"]

    _run(test)


def test_an_abort_or_a_lost_peer_drops_what_waits() -> None:
    async def test() -> None:
        inner, outer = _wrapped()
        outer.write(b"lost")
        outer.abort()
        await _turn()
        assert (inner.writes, inner.aborted) == ([], True)

        inner, outer = _wrapped()
        outer.write(b"lost")
        inner.closing = True
        await _turn()
        assert inner.writes == []
        assert outer.is_closing()

    _run(test)


def test_everything_else_is_the_transport_s_own() -> None:
    loop = asyncio.new_event_loop()
    try:
        outer = CoalescingTransport(Recording(), loop)
        assert outer.get_extra_info("peername") == ("127.0.0.1", 1)
    finally:
        loop.close()


async def _app(scope: Any, receive: Any, send: Any) -> None:
    """Answers `GET /stream` in three body messages and anything else in one."""
    if scope["type"] != "http":
        return
    await receive()
    body = b"0123456789" * 1000
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode())],
        }
    )
    if scope["path"] == "/stream":
        for part in (body[:10], body[10:5000], body[5000:]):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    else:
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
def port() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        _app, http=CoalescingHttpToolsProtocol, lifespan="off", log_config=None, access_log=False
    )
    server = uvicorn.Server(config)

    def serve() -> None:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(server.serve([sock]))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            threading.Event().wait(0.02)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_uvicorn_serves_whole_answers_through_it(port: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        for method, path in [("GET", "/"), ("HEAD", "/"), ("GET", "/stream"), ("POST", "/")]:
            connection.request(method, path, body=b"{}" if method == "POST" else None)
            answer = connection.getresponse()
            body = answer.read()
            assert answer.status == 200
            assert body == (b"" if method == "HEAD" else b"0123456789" * 1000)
        connection.request("GET", "/", headers={"Connection": "close"})
        answer = connection.getresponse()
        assert answer.read() == b"0123456789" * 1000
        assert answer.will_close
    finally:
        connection.close()
