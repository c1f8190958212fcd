"""The web role writes a response's head and body in one write (``server.HeadWithBody``)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from waitpoints_site.server import HeadWithBody


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.eof = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def write_eof(self) -> None:
        self.eof = True

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def _held(
    loop: asyncio.AbstractEventLoop,
) -> tuple[HeadWithBody, RecordingTransport, SimpleNamespace]:
    transport = RecordingTransport()
    cycle = SimpleNamespace(response_started=False)
    return HeadWithBody(transport, cycle, loop), transport, cycle  # type: ignore[arg-type]


def test_head_and_body_go_out_in_one_write() -> None:
    async def exchange() -> list[bytes]:
        held, transport, cycle = _held(asyncio.get_running_loop())
        held.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # before the response: straight on
        cycle.response_started = True
        held.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        held.write(b"{}")
        await asyncio.sleep(0)  # the flush scheduled for the head finds nothing left
        return transport.writes

    assert asyncio.run(exchange()) == [
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}",
    ]


def test_a_head_without_a_body_goes_out_at_the_next_step() -> None:
    async def exchange() -> tuple[list[bytes], list[bytes]]:
        held, transport, cycle = _held(asyncio.get_running_loop())
        cycle.response_started = True
        held.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")  # a HEAD answer
        before = list(transport.writes)
        await asyncio.sleep(0)
        return before, transport.writes

    before, after = asyncio.run(exchange())
    assert before == []
    assert after == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"]


def test_closing_sends_a_held_head_first_and_the_rest_is_the_transport() -> None:
    async def exchange() -> tuple[RecordingTransport, HeadWithBody]:
        held, transport, cycle = _held(asyncio.get_running_loop())
        cycle.response_started = True
        held.write(b"HTTP/1.1 304 Not Modified\r\n\r\n")
        held.close()
        await asyncio.sleep(0)  # the scheduled flush does not write after the close
        return transport, held

    transport, held = asyncio.run(exchange())
    assert transport.writes == [b"HTTP/1.1 304 Not Modified\r\n\r\n"]
    assert transport.closed
    assert held.get_extra_info("peername") == "info:peername"
