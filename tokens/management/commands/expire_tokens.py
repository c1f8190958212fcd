from __future__ import annotations

from django.core.management.base import BaseCommand

from tokens.domain import lifecycle


class Command(BaseCommand):
    help = "Time out every WAITING token past its timeout (the same service as the beat sweep)."

    def handle(self, *args: object, **options: object) -> None:
        count = lifecycle.token_expire_due()
        self.stdout.write(f"Timed out {count} token(s).")
