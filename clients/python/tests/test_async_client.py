"""AsyncClient: the same behaviour as Client, awaited."""

from __future__ import annotations

import asyncio

import pytest
from waitpoints_client import NotFoundError, WaitpointCancelledError

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_async_client_end_to_end(async_client_factory) -> None:
    async def scenario() -> None:
        async with async_client_factory() as client:
            created = [await client.create_token(tags=["async"]) for _ in range(3)]
            listed = [t.id async for t in client.list_tokens(tags="async", page_size=2)]
            assert listed == [c.id for c in reversed(created)]

            async def decide() -> None:
                await asyncio.sleep(0.3)
                await client.complete_token(created[0], {"status": "approved"})

            result, _ = await asyncio.gather(
                client.wait_for_token(created[0], timeout=30), decide()
            )
            assert result.ok and result.unwrap() == {"status": "approved"}
            assert (await client.retrieve_token(created[0])).status == "COMPLETED"

            await client.cancel_token(created[1], reason="no longer needed")
            cancelled = await client.wait_for_token(created[1])
            with pytest.raises(WaitpointCancelledError):
                cancelled.unwrap()

            waiting = await client.wait_for_token(created[2], timeout=0.5)
            assert waiting.token.status == "WAITING"
            with pytest.raises(NotFoundError):
                await client.retrieve_token("waitpoint_nope")

    asyncio.run(scenario())


def test_many_concurrent_waits_on_one_client(async_client_factory) -> None:
    async def scenario() -> None:
        async with async_client_factory() as client:
            created = [await client.create_token() for _ in range(20)]
            waits = [client.wait_for_token(c, timeout=30) for c in created]

            async def decide() -> None:
                await asyncio.sleep(0.5)
                for n, c in enumerate(created):
                    await client.complete_token(c, n)

            *results, _ = await asyncio.gather(*waits, decide())
            assert [r.unwrap() for r in results] == list(range(20))

    asyncio.run(scenario())


def test_the_async_client_consumes_once(async_client_factory) -> None:
    from waitpoints_client import AlreadyConsumedError

    async def scenario() -> None:
        async with async_client_factory() as client:
            created = await client.create_token(timeout="1h")
            await client.complete_token(created, {"status": "approved"})
            used = await client.consume_token(created, consumer="async-worker")
            assert used.consumed_by == "async-worker" and not used.replayed
            with pytest.raises(AlreadyConsumedError):
                await client.consume_token(created)

    asyncio.run(scenario())
