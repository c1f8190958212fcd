from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tokens.domain import tenancy
from tokens.domain.exceptions import InvalidInput
from tokens.models import Environment


class Command(BaseCommand):
    help = (
        "Create a secret API key for a project's environment (creating both if missing). "
        "The key is printed once, as the last line of output."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="project slug, e.g. billing")
        parser.add_argument("--env", required=True, choices=Environment.Slug.values)
        parser.add_argument("--name", default="", help="a label for the key")

    def handle(self, *args: object, **options: str) -> None:
        try:
            environment = tenancy.environment_get_or_create(
                project_slug=options["project"], slug=options["env"]
            )
        except InvalidInput as error:
            raise CommandError(error.message) from None
        api_key, secret = tenancy.api_key_create(environment=environment, name=options["name"])
        self.stderr.write(f"Created API key {api_key.prefix}… for {environment}; shown only once:")
        self.stdout.write(secret)
