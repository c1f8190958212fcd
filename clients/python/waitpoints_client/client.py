"""``Client`` (blocking) and ``AsyncClient`` (asyncio): the same methods, the same behaviour."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx

from . import _core as core
from .models import Consumption, CreatedToken, Token, TransitionResult, WaitResult

TokenRef = str | Token | CreatedToken
Duration = float | timedelta | str


class _Base:
    def __init__(
        self,
        base_url: str | None,
        secret_key: str | None,
        retry: core.RetryPolicy | None,
    ) -> None:
        self.base_url, self._key = core.settings(base_url, secret_key)
        self.retry = retry or core.RetryPolicy()


class Client(_Base):
    """Blocking client. ``base_url`` and ``secret_key`` default to ``WAITPOINTS_API_URL`` and
    ``WAITPOINTS_SECRET_KEY``. Use it as a context manager, or call ``close()``."""

    def __init__(
        self,
        base_url: str | None = None,
        secret_key: str | None = None,
        *,
        timeout: Duration = 30.0,
        retry: core.RetryPolicy | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(base_url, secret_key, retry)
        self._http = http_client or httpx.Client(timeout=core.seconds(timeout))
        self._http.base_url = httpx.URL(self.base_url)
        self._http.headers.update(core.headers(self._key))

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, request: core.Request) -> tuple[httpx.Response, Any]:
        attempt = 1
        while True:
            try:
                response = self._http.request(request.method, request.path, **core.build(request))
            except httpx.TransportError as error:
                delay = self.retry.after_error(request, error, attempt)
            else:
                retry_in = self.retry.after_response(response, attempt)
                if retry_in is None:
                    return response, core.parse(response)
                delay = retry_in
            time.sleep(delay)
            attempt += 1

    def create_token(
        self,
        *,
        timeout: Duration | datetime | None = None,
        idempotency_key: str | None = None,
        idempotency_key_ttl: Duration | None = None,
        tags: str | Iterable[str] | None = None,
        approvers: Iterable[str] | None = None,
        **extra: Any,
    ) -> CreatedToken:
        """Create a token. ``timeout`` is seconds, a timedelta, a duration string ("10m",
        "1h30m") or a datetime; ``approvers`` get an e-mail with Approve / Reject links."""
        request = core.create_request(
            timeout=timeout,
            idempotency_key=idempotency_key,
            idempotency_key_ttl=idempotency_key_ttl,
            tags=tags,
            approvers=approvers,
            extra=extra,
        )
        response, body = self._send(request)
        return core.created(response, body)

    def retrieve_token(self, token: TokenRef) -> Token:
        _, body = self._send(core.retrieve_request(token))
        return Token.from_json(body)

    def export_audit(self, token: TokenRef) -> list[dict[str, Any]]:
        """The token's audit trail, one dict per event in chain order, each with its
        ``digest`` (``verify_audit`` checks them without the server)."""
        response, _ = self._send(core.audit_request(token))
        return core.audit_lines(response)

    def list_tokens(
        self,
        *,
        status: str | Iterable[str] | None = None,
        tags: str | Iterable[str] | None = None,
        idempotency_key: str | None = None,
        period: str | None = None,
        from_: datetime | int | str | None = None,
        to: datetime | int | str | None = None,
        page_size: int | None = None,
    ) -> Iterator[Token]:
        """Every matching token, newest first, fetching pages as the iteration goes."""
        params = core.list_params(
            status=status,
            tags=tags,
            idempotency_key=idempotency_key,
            period=period,
            from_=from_,
            to=to,
            page_size=page_size,
        )
        next_params: dict[str, str] | None = params
        while next_params is not None:
            _, body = self._send(core.list_request(next_params))
            tokens, next_params = core.page(next_params, body)
            yield from tokens

    def complete_token(
        self, token: TokenRef, data: Any = core.NO_DATA, *, access_token: str | None = None
    ) -> TransitionResult:
        """Complete with ``data`` (any JSON value). ``access_token``: a public access token
        (``CreatedToken.public_access_token``) instead of the secret key."""
        _, body = self._send(core.complete_request(token, data, access_token))
        return TransitionResult.from_json(body)

    def cancel_token(self, token: TokenRef, reason: str | None = None) -> TransitionResult:
        _, body = self._send(core.cancel_request(token, reason))
        return TransitionResult.from_json(body)

    def consume_token(
        self,
        token: TokenRef,
        *,
        consumer: str | None = None,
        idempotency_key: str | None = None,
        access_token: str | None = None,
    ) -> Consumption:
        """Consume an approval just before acting on it: the first call succeeds (recorded
        with ``consumer``); a later one raises ``AlreadyConsumedError`` naming the first, one
        after the approval's window ``ApprovalExpiredError``, one of a token that is not
        approved ``NotApprovedError`` (all ``ConsumptionRefusedError``, never retried)."""
        request = core.consume_request(token, consumer, idempotency_key, access_token)
        _, body = self._send(request)
        return Consumption.from_json(body)

    def wait_for_token(
        self,
        token: TokenRef,
        *,
        timeout: Duration | None = None,
        access_token: str | None = None,
    ) -> WaitResult:
        """Wait until the token is resolved (completed, timed out or cancelled), or for at
        most ``timeout`` (seconds, a timedelta or a duration string such as "30s"; default: as
        long as it takes), long-polling the server 60 s
        at a time. The result's ``ok``, ``output``, ``error`` and ``unwrap()`` tell the rest."""
        waiting = core.Waiting(
            token, timeout=timeout, access_token=access_token, clock=time.monotonic
        )
        while True:
            _, body = self._send(waiting.request())
            if (result := waiting.result(body)) is not None:
                return result


class AsyncClient(_Base):
    """The same as ``Client`` for asyncio: ``await`` every method; ``list_tokens`` is an async
    iterator. Use it as an async context manager, or call ``await aclose()``."""

    def __init__(
        self,
        base_url: str | None = None,
        secret_key: str | None = None,
        *,
        timeout: Duration = 30.0,
        retry: core.RetryPolicy | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(base_url, secret_key, retry)
        self._http = http_client or httpx.AsyncClient(timeout=core.seconds(timeout))
        self._http.base_url = httpx.URL(self.base_url)
        self._http.headers.update(core.headers(self._key))

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, request: core.Request) -> tuple[httpx.Response, Any]:
        attempt = 1
        while True:
            try:
                response = await self._http.request(
                    request.method, request.path, **core.build(request)
                )
            except httpx.TransportError as error:
                delay = self.retry.after_error(request, error, attempt)
            else:
                retry_in = self.retry.after_response(response, attempt)
                if retry_in is None:
                    return response, core.parse(response)
                delay = retry_in
            await asyncio.sleep(delay)
            attempt += 1

    async def create_token(
        self,
        *,
        timeout: Duration | datetime | None = None,
        idempotency_key: str | None = None,
        idempotency_key_ttl: Duration | None = None,
        tags: str | Iterable[str] | None = None,
        approvers: Iterable[str] | None = None,
        **extra: Any,
    ) -> CreatedToken:
        request = core.create_request(
            timeout=timeout,
            idempotency_key=idempotency_key,
            idempotency_key_ttl=idempotency_key_ttl,
            tags=tags,
            approvers=approvers,
            extra=extra,
        )
        response, body = await self._send(request)
        return core.created(response, body)

    async def retrieve_token(self, token: TokenRef) -> Token:
        _, body = await self._send(core.retrieve_request(token))
        return Token.from_json(body)

    async def export_audit(self, token: TokenRef) -> list[dict[str, Any]]:
        """The token's audit trail, one dict per event in chain order (as ``Client``)."""
        response, _ = await self._send(core.audit_request(token))
        return core.audit_lines(response)

    async def list_tokens(
        self,
        *,
        status: str | Iterable[str] | None = None,
        tags: str | Iterable[str] | None = None,
        idempotency_key: str | None = None,
        period: str | None = None,
        from_: datetime | int | str | None = None,
        to: datetime | int | str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[Token]:
        params = core.list_params(
            status=status,
            tags=tags,
            idempotency_key=idempotency_key,
            period=period,
            from_=from_,
            to=to,
            page_size=page_size,
        )
        next_params: dict[str, str] | None = params
        while next_params is not None:
            _, body = await self._send(core.list_request(next_params))
            tokens, next_params = core.page(next_params, body)
            for token in tokens:
                yield token

    async def complete_token(
        self, token: TokenRef, data: Any = core.NO_DATA, *, access_token: str | None = None
    ) -> TransitionResult:
        _, body = await self._send(core.complete_request(token, data, access_token))
        return TransitionResult.from_json(body)

    async def cancel_token(self, token: TokenRef, reason: str | None = None) -> TransitionResult:
        _, body = await self._send(core.cancel_request(token, reason))
        return TransitionResult.from_json(body)

    async def consume_token(
        self,
        token: TokenRef,
        *,
        consumer: str | None = None,
        idempotency_key: str | None = None,
        access_token: str | None = None,
    ) -> Consumption:
        request = core.consume_request(token, consumer, idempotency_key, access_token)
        _, body = await self._send(request)
        return Consumption.from_json(body)

    async def wait_for_token(
        self,
        token: TokenRef,
        *,
        timeout: Duration | None = None,
        access_token: str | None = None,
    ) -> WaitResult:
        waiting = core.Waiting(
            token,
            timeout=timeout,
            access_token=access_token,
            clock=asyncio.get_running_loop().time,
        )
        while True:
            _, body = await self._send(waiting.request())
            if (result := waiting.result(body)) is not None:
                return result
