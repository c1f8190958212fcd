"""What the web role's server (hypercorn, pinned in pyproject.toml) needs from us at start-up.

* Errors hypercorn answers itself, before any application code sees the request (a malformed
  request line or header such as a bad ``Content-Length``, a request head longer than
  ``h11_max_incomplete_size``): hypercorn sends an empty body; we send the same status with
  ``{"error": …}``, as every other error of the API. The request was not parsed, so this applies
  to every path. A check that the patched method still exists keeps an upgrade honest.
* More open files: each waiter and each (slow) client is a socket.
"""

from __future__ import annotations

import contextlib
import json
import resource
from itertools import chain

MESSAGES = {
    400: "Malformed HTTP request (check the request line and headers such as Content-Length)",
    413: "Request body too large",
    431: "Request line or headers too long",
}


def _raise_open_files_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def install() -> None:
    _raise_open_files_limit()
    try:
        import h11
        from hypercorn.protocol.h11 import H11Protocol
    except ImportError:  # served by something else (e.g. the test client): nothing to patch
        return
    if not hasattr(H11Protocol, "_send_error_response"):
        raise RuntimeError("hypercorn changed: update waitpoints_site/server.py")

    async def _send_error_response(self: H11Protocol, status_code: int) -> None:
        message = MESSAGES.get(status_code, "Bad request")
        body = json.dumps({"error": message}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await self._send_h11_event(
            h11.Response(
                status_code=status_code,
                headers=list(chain(headers, self.config.response_headers("h11"))),
            )
        )
        await self._send_h11_event(h11.Data(data=body))
        await self._send_h11_event(h11.EndOfMessage())

    H11Protocol._send_error_response = _send_error_response  # type: ignore[method-assign]
