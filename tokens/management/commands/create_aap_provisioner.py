from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tokens.domain import tenancy
from tokens.domain.aap import credentials
from tokens.domain.exceptions import InvalidInput
from tokens.management.commands.create_api_key import missing_project
from tokens.models import Environment
from tokens.persistence import selectors


class Command(BaseCommand):
    help = (
        "Create an Agent Approval Protocol provisioner token for a project's environment: it "
        "creates and manages that environment's AAP instances (POST /api/aap/v1/instances). "
        "The token is printed once, as the last line of output."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="project slug, e.g. billing")
        parser.add_argument("--env", required=True, choices=Environment.Slug.values)
        parser.add_argument("--name", default="", help="a label for the token")
        parser.add_argument(
            "--create-project",
            action="store_true",
            help="create the project if it does not exist (without it, a mistyped slug fails)",
        )

    def handle(self, *args: object, **options: str) -> None:
        project_slug = options["project"]
        if not options["create_project"] and project_slug not in selectors.project_slugs():
            raise CommandError(missing_project(project_slug))
        try:
            environment = tenancy.environment_get_or_create(
                project_slug=project_slug, slug=options["env"]
            )
        except InvalidInput as error:
            raise CommandError(error.message) from None
        provisioner, token = credentials.provisioner_create(
            environment=environment, name=options["name"]
        )
        self.stderr.write(
            f"Created AAP provisioner token {provisioner.prefix}… for {environment}; "
            "shown only once:"
        )
        self.stdout.write(token)
