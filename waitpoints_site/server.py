"""The web role's HTTP protocol: uvicorn's httptools protocol with the limits we need.

uvicorn with httptools (a C parser) and uvloop costs less per request than hypercorn's
pure-Python h11 did (issue 18; docs/benchmarks/profile.md), but on its own it bounds neither how
long a client may take to send a request head nor how large that head may grow, and answers a
malformed request in plain text. ``WebProtocol`` adds, per connection:

* a **head deadline** (``WEB_HEADER_TIMEOUT``): a complete request head within this time of the
  connection opening or of its previous response, however the bytes trickle in; otherwise the
  connection is closed without an answer. (uvicorn's own keep-alive timer stops at the first
  byte, so a byte every second would hold the socket forever.) The body then has
  ``WAITPOINTS_BODY_TIMEOUT_SECONDS``, enforced by the application (``waitpoints_site/asgi.py``);
* a **silence limit** (``WEB_READ_TIMEOUT``): nothing received for this long closes the
  connection, whatever its state (longer than the longest long poll, during which a client is
  silent);
* a **head size limit** (``MAX_HEAD_BYTES``): a request line plus headers longer than this gets
  431, counted as the bytes arrive so an endless header is refused before it is buffered whole;
* **JSON errors** for what the parser refuses (a bad ``Content-Length``, a garbled request
  line): ``{"error": …}`` as every other error of the API. The request was never parsed, so this
  applies to every path.

and writes each response's head together with its body (``HeadWithBody``): uvicorn writes them
separately, two sends where one will do, and on loopback or a LAN each send is a segment the
kernel delivers (and the client wakes up for) on the sender's CPU.

``install()`` (called by ``asgi.py``) raises the open-files limit: each waiter and each slow
client is a socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

MESSAGES = {
    400: "Malformed HTTP request (check the request line and headers such as Content-Length)",
    431: "Request line or headers too long",
}
REASONS = {400: b"Bad Request", 431: b"Request Header Fields Too Large"}
# Request line plus headers; longer heads get 431 (the request target alone is limited to 8 KiB
# by asgi.py, with 414).
MAX_HEAD_BYTES = 16 * 1024
# How long a refused connection is still read (and its bytes dropped) before it is closed.
LINGER_SECONDS = 2.0


def header_timeout() -> float:
    return float(os.environ.get("WEB_HEADER_TIMEOUT") or 10)


def read_timeout() -> float:
    return float(os.environ.get("WEB_READ_TIMEOUT") or 90)


class _HeadTooLong(Exception):
    pass


class HeadWithBody:
    """A request cycle's transport that holds its response head back for the body's first write,
    so that both go out in one (the service answers whole responses: ``threadpool``). A head
    with no body after it in the same step of the event loop (a HEAD answer, a 304) goes out at
    the next step, and before any close; everything else is the connection's own transport."""

    __slots__ = ("_transport", "_cycle", "_loop", "_head", "_head_seen")

    def __init__(
        self,
        transport: asyncio.Transport,
        cycle: RequestResponseCycle,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._transport = transport
        self._cycle = cycle
        self._loop = loop
        self._head: bytes | None = None
        self._head_seen = False

    def write(self, data: bytes) -> None:
        if not self._head_seen and self._cycle.response_started:
            # uvicorn writes the status line and headers in one call, first once started (a
            # "100 Continue" is written before, while not started, and passes straight on).
            self._head_seen = True
            self._head = data
            self._loop.call_soon(self.flush)
            return
        if self._head is not None:
            data, self._head = self._head + data, None
        self._transport.write(data)

    def flush(self) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            if not self._transport.is_closing():
                self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class WebProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head deadline, a silence limit, a head size limit and
    JSON answers to malformed requests (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timeout = header_timeout()
        self._silence_timeout = read_timeout()
        self._head_timer: asyncio.TimerHandle | None = None
        self._silence_timer: asyncio.TimerHandle | None = None
        self._last_data = 0.0
        self._in_body = False  # between a head's end and its message's end
        self._head_bytes = 0  # raw bytes received towards the current head
        self._parsed_head_bytes = 0  # its request line and headers as parsed
        self._refusal = 400
        self._discarding = False  # refused: what the client still sends is read and dropped

    # -- connection ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._last_data = self.loop.time()
        self._arm_head_deadline()
        self._silence_timer = self.loop.call_later(self._silence_timeout, self._check_silence)

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._head_timer, self._silence_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._silence_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            return
        self._last_data = self.loop.time()
        if not self._in_body:
            self._head_bytes += len(data)
        super().data_received(data)
        if (
            not self._in_body
            and not self._discarding
            and self._head_bytes > MAX_HEAD_BYTES
            and not self.transport.is_closing()
        ):
            # Still no end of head in all that: refuse before buffering more of it.
            self._refuse(431)

    # -- parser callbacks ------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._parsed_head_bytes = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._in_body = True
        self._head_bytes = 0
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.transport is self.transport:  # the new request's cycle
            cycle.transport = HeadWithBody(self.transport, cycle, self.loop)  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        self._in_body = False
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self._arm_head_deadline()  # the next head, from now

    # -- limits ----------------------------------------------------------------------------------

    def _count_head(self, size: int) -> None:
        self._parsed_head_bytes += size
        if self._parsed_head_bytes > MAX_HEAD_BYTES:
            self._refusal = 431
            raise _HeadTooLong  # the parser stops; uvicorn calls send_400_response

    def _arm_head_deadline(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(self._head_timeout, self._head_late)

    def _head_late(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def _check_silence(self) -> None:
        """Re-armed for the remainder rather than reset on every read: one timer a connection."""
        silent = self.loop.time() - self._last_data
        if silent >= self._silence_timeout:
            self._silence_timer = None
            if not self.transport.is_closing():
                self.transport.close()
            return
        self._silence_timer = self.loop.call_later(
            self._silence_timeout - silent, self._check_silence
        )

    def send_400_response(self, msg: str) -> None:
        """What uvicorn calls for anything the parser refuses (and for ``_HeadTooLong``)."""
        self._refuse(self._refusal)

    def _refuse(self, status: int) -> None:
        body = json.dumps({"error": MESSAGES[status]}).encode()
        head = [b"HTTP/1.1 %d %s\r\n" % (status, REASONS[status])]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        # A lingering close: closing with unread bytes from the client (the rest of a 200 KiB
        # head, say) makes the kernel reset the connection, and the client loses the answer
        # before reading it. Send FIN after the answer, drop what still arrives, close shortly.
        self._discarding = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def _raise_open_files_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def install() -> None:
    _raise_open_files_limit()
