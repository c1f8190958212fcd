"""The embedded default's Celery broker: kombu's filesystem transport without its races.

Why this exists. kombu's ``filesystem://`` transport creates a message file under its final name
and only then writes it, and its reader takes any file with that name: it does not take the
writer's ``flock``. A worker that polls at the wrong moment reads an empty file and dies with
``Unrecoverable error: JSONDecodeError('Expecting value: line 1 column 1 (char 0)')`` (honcho then
stopped web and beat too). Exchange tables (the ``control/*.exchange`` files) have the same race:
they are truncated and rewritten in place. ``tests/smoke/broker_race.py`` reproduces both with one
producer and one consumer.

Why this remedy, and not another transport. The embedded default exists so that nothing has to
be installed or running; kombu's SQLAlchemy transport on a SQLite file would add SQLAlchemy,
poll the table once a second (a second of latency on every kick), has no fanout (so Celery's
remote control, ``celery inspect``, would not work) and makes every publish from a web request
compete with the worker for SQLite's single write lock. The filesystem transport has none of
those costs; it only needs the classic maildir discipline, which is what this subclass adds:

* a message is written in full under a name the reader never looks at (``queue/.tmp/``), then
  renamed into the queue with ``os.replace``, which is atomic on POSIX within one filesystem: a
  reader sees no file or a whole one;
* a reader claims a message by renaming it into ``queue/.claimed/`` (same filesystem, so exactly
  one of several readers wins; kombu moves it to the system temp folder, which may be another
  filesystem where ``shutil.move`` copies), then reads and deletes it;
* exchange tables are rewritten the same way (temp file + ``os.replace``) under a lock file, so a
  reader never sees a half-written table and two binders never lose each other's entry;
* a message that still cannot be decoded (written by some other program, or damaged) is moved to
  ``queue/.broken/`` and logged; it never takes the worker down.

Messages are not fsynced: a power cut may lose the last ones, as may a consumer killed between
claiming a message and reading it (kombu's transport loses those too); the periodic sweep and
the outbox's beat schedule make up for a lost kick. Use Redis (``REDIS_URL``) for anything beyond
one machine.
"""

from __future__ import annotations

import fcntl
import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from queue import Empty
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem, virtual
from kombu.utils.json import dumps, loads

logger = logging.getLogger(__name__)

TMP = ".tmp"
CLAIMED = ".claimed"
BROKEN = ".broken"


def _write_atomically(folder: Path, target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` so that a reader sees the old file, or the whole new one."""
    folder.mkdir(exist_ok=True)
    temporary = folder / f"{uuid.uuid4()}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


class Channel(filesystem.Channel):
    """kombu's filesystem channel with atomic publishes, claims and exchange tables."""

    # -- messages ----------------------------------------------------------------------------------

    # kombu's own classes disagree on this signature (payload vs message); this is the filesystem
    # channel's, which is what the virtual transport calls (positionally).
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        # kombu's file name: sorted by creation time in ms, then unique, then the queue.
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        folder = Path(self.data_folder_out)
        try:
            _write_atomically(folder / TMP, folder / name, dumps(payload).encode())
        except OSError as exc:
            raise ChannelError(f"Cannot add file {name!r} to {folder}") from exc

    def _get(self, queue: str, timeout: Any = None) -> Any:
        folder = Path(self.data_folder_in)
        wanted = f"{queue}.msg"
        claimed = folder / CLAIMED
        claimed.mkdir(exist_ok=True)
        for name in sorted(os.listdir(folder)):
            if name.partition(".")[2] != wanted:
                continue
            mine = claimed / name
            try:
                os.rename(folder / name, mine)
            except FileNotFoundError:
                continue  # another consumer claimed it first
            try:
                raw = mine.read_bytes()
            except OSError as exc:
                raise ChannelError(f"Cannot read file {mine} from queue") from exc
            try:
                message = loads(raw.decode())
            except ValueError:
                self._set_aside(mine, queue)
                continue
            self._done(mine)
            return message
        raise Empty()

    def _set_aside(self, path: Path, queue: str) -> None:
        broken = Path(self.data_folder_in) / BROKEN
        broken.mkdir(exist_ok=True)
        os.replace(path, broken / path.name)
        logger.error(
            "broker: skipped an undecodable message for queue %r; kept as %s",
            queue,
            broken / path.name,
        )

    def _done(self, path: Path) -> None:
        if self.store_processed:
            processed = Path(self.processed_folder)
            processed.mkdir(parents=True, exist_ok=True)
            os.replace(path, processed / path.name)
        else:
            path.unlink(missing_ok=True)

    # -- exchange tables (control/<exchange>.exchange) ---------------------------------------------

    @contextmanager
    def _table_lock(self, exchange: str) -> Iterator[Path]:
        file = self._exchange_file(exchange)
        self.control_folder.mkdir(parents=True, exist_ok=True)
        with open(file.with_name(file.name + ".lock"), "a") as lock_file:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
            try:
                yield file
            finally:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)

    def get_table(self, exchange: str) -> list[Any]:
        file = self._exchange_file(exchange)
        try:
            raw = file.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ChannelError(f"Cannot open {file}") from exc
        return [filesystem.exchange_queue_t(*entry) for entry in loads(raw.decode())]

    def _write_table(self, file: Path, queues: list[Any]) -> None:
        try:
            _write_atomically(self.control_folder / TMP, file, dumps(queues).encode())
        except OSError as exc:
            raise ChannelError(f"Cannot write {file}") from exc

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str, queue: str) -> None:
        entry = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        with self._table_lock(exchange) as file:
            queues = self.get_table(exchange)
            if entry not in queues:
                self._write_table(file, [entry, *queues])

    def _delete(
        self, queue: str, exchange: str, routing_key: str, pattern: str, *args: Any, **kwargs: Any
    ) -> None:
        # Skip filesystem.Channel._delete (it rewrites the table in place); keep the base class's.
        virtual.Channel._delete(self, queue, exchange, routing_key, pattern, *args, **kwargs)
        entry = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        with self._table_lock(exchange) as file:
            queues = self.get_table(exchange)
            if entry in queues:
                self._write_table(file, [q for q in queues if q != entry])


class Transport(filesystem.Transport):
    """``CELERY_BROKER_TRANSPORT = "waitpoints_site.broker:Transport"`` (URL ``filesystem://``)."""

    Channel = Channel
