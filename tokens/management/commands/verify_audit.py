"""``python manage.py verify_audit [--token ID | --since DATE]``: check the audit trails' hash
chains (tokens.domain.chain); exits 1 naming, for each broken trail, the first event that does
not match."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_date, parse_datetime

from tokens.domain import chain, keys
from tokens.models import Token, TokenEvent
from tokens.persistence import selectors

CHUNK = 500


def parse_since(value: str) -> datetime:
    """A date (midnight UTC) or an ISO-8601 date-time (UTC when it names no offset)."""
    try:
        moment = parse_datetime(value)
        day = None if moment else parse_date(value)
    except ValueError:
        moment = day = None
    if day is not None:
        moment = datetime.combine(day, time.min, tzinfo=UTC)
    if moment is None:
        raise CommandError(f"--since: {value!r} is not a date (2026-12-01) or an ISO date-time.")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = (
        "Verify the audit trails' hash chains: every token's, one token's (--token) or those "
        "with events since a date (--since). Exits 1 naming the first event that does not match."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--token", help="A token id (waitpoint_…).")
        group.add_argument("--since", help="Only tokens with events since this date (UTC).")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["token"]:
            internal = keys.parse_token_id(options["token"])
            tokens = Token.objects.filter(pk=internal) if internal else Token.objects.none()
            if not tokens.exists():
                raise CommandError(f"No token {options['token']!r}.")
        else:
            since = parse_since(options["since"]) if options["since"] else None
            tokens = selectors.tokens_with_events_since(since=since)
        checked = events = 0
        broken: list[chain.Break] = []
        ids = list(tokens.values_list("pk", flat=True))
        for start in range(0, len(ids), CHUNK):
            chunk = Token.objects.filter(pk__in=ids[start : start + CHUNK]).order_by("pk")
            trails: dict[str, list[TokenEvent]] = defaultdict(list)
            for event in TokenEvent.objects.filter(
                token_id__in=ids[start : start + CHUNK]
            ).order_by("token_id", "seq"):
                trails[event.token_id].append(event)
            for token in chunk:
                checked += 1
                events += len(trails[token.pk])
                problem = chain.verify(token, trails[token.pk])
                if problem is not None:
                    broken.append(problem)
                    self.stderr.write(f"BROKEN {problem}")
        if broken:
            raise CommandError(
                f"{len(broken)} of {checked} audit trail(s) do not verify; the first: {broken[0]}",
                returncode=1,
            )
        self.stdout.write(f"Verified {events} event(s) of {checked} token(s): every chain matches.")
