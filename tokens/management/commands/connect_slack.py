"""``manage.py connect_slack --project NAME --env ENV --bot-token T --signing-secret S
[--channel C] [--no-direct-messages]``: connect (or reconnect) an environment to Slack."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tokens.delivery.slack import connections
from tokens.domain import tenancy
from tokens.domain.exceptions import InvalidInput
from tokens.models import Environment, Project


class Command(BaseCommand):
    help = (
        "Connect a project's environment to a Slack app (replacing the secrets of an existing "
        "connection). The secrets are stored encrypted and never printed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="the project's slug, e.g. billing")
        parser.add_argument("--env", required=True, choices=Environment.Slug.values)
        parser.add_argument("--bot-token", required=True, help="the app's xoxb-… token")
        parser.add_argument("--signing-secret", required=True, help="the app's signing secret")
        parser.add_argument("--channel", default="", help="default channel: an id or a name")
        parser.add_argument(
            "--no-direct-messages",
            action="store_true",
            help="do not send approvers direct messages (channels only)",
        )

    def handle(self, *args: object, **options: Any) -> None:
        if not Project.objects.filter(slug=options["project"]).exists():
            raise CommandError(f"Unknown project {options['project']!r}.")
        try:
            environment = tenancy.environment_get_or_create(
                project_slug=options["project"], slug=options["env"]
            )
            connection = connections.slack_connect(
                environment=environment,
                bot_token=options["bot_token"],
                signing_secret=options["signing_secret"],
                default_channel=options["channel"],
                direct_messages=not options["no_direct_messages"],
            )
        except InvalidInput as error:
            raise CommandError(error.message) from None
        channel = connection.default_channel or "none"
        self.stdout.write(
            f"Slack connected for {environment}: bot token {connection.bot_token_hint}, "
            f"default channel {channel}, direct messages "
            f"{'on' if connection.direct_messages else 'off'}."
        )
