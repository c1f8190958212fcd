"""The embedded broker (``waitpoints_site.broker``) never hands a consumer a half-written message.

``tests/smoke/broker_race.py`` runs one producer and one consumer in two processes; with kombu's
own filesystem transport the consumer sees ``JSONDecodeError`` on a few messages in a few thousand
(run it with ``--transport kombu`` to see), the error that stopped the embedded default's worker.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kombu import Connection

from tests.smoke.broker_race import run

pytestmark = [pytest.mark.smoke, pytest.mark.timeout(240)]


def test_one_producer_one_consumer_every_message_intact() -> None:
    # "app": the transport and options the settings configure for the embedded default.
    result = run("app", messages=3000)
    assert result["producer_rc"] == 0
    assert result["errors"] == 0, result
    assert result["received"] == 3000, result


def _connection(folder: Path) -> Connection:
    options = {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "processed_folder": str(folder / "processed"),
        "store_processed": False,
        "control_folder": str(folder / "control"),
    }
    return Connection(
        "filesystem://", transport="waitpoints_site.broker:Transport", transport_options=options
    )


def test_an_undecodable_message_is_set_aside_not_fatal(tmp_path: Path) -> None:
    with _connection(tmp_path) as connection:
        queue = connection.SimpleQueue("q")
        (tmp_path / "0_broken.q.msg").write_text("")  # sorts before anything put now
        queue.put({"n": 1})
        message = queue.get(timeout=5)
        assert message.payload == {"n": 1}
        message.ack()
        queue.close()
    assert (tmp_path / ".broken" / "0_broken.q.msg").is_file()
    assert not list(tmp_path.glob("*.msg"))
    assert not list((tmp_path / ".claimed").iterdir())
    assert not list((tmp_path / ".tmp").iterdir())


def test_exchange_tables_are_rewritten_whole(tmp_path: Path) -> None:
    with _connection(tmp_path) as connection:
        channel = connection.channel()
        for number in range(20):
            channel.queue_declare(f"q{number}")
            channel.exchange_declare("fan", type="fanout")
            channel.queue_bind(f"q{number}", "fan", "")
        assert len(channel.get_table("fan")) == 20
        channel.queue_delete("q3")
        queues = {entry.queue for entry in channel.get_table("fan")}
        assert "q3" not in queues and len(queues) == 19
        channel.close()
    assert not list((tmp_path / "control" / ".tmp").iterdir())
