from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from tokens.domain.aap import credentials
from tokens.management.commands.create_api_key import (
    add_environment_arguments,
    environment_from_options,
)


class Command(BaseCommand):
    help = (
        "Create an Agent Approval Protocol provisioner token for a project's environment: it "
        "creates and manages that environment's AAP instances (POST /api/aap/v1/instances). "
        "The token is printed once, as the last line of output."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_environment_arguments(parser, label="a label for the token")

    def handle(self, *args: object, **options: str) -> None:
        environment = environment_from_options(options)
        provisioner, token = credentials.provisioner_create(
            environment=environment, name=options["name"]
        )
        self.stderr.write(
            f"Created AAP provisioner token {provisioner.prefix}… for {environment}; "
            "shown only once:"
        )
        self.stdout.write(token)
