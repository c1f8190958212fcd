from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tokens.domain import tenancy
from tokens.domain.exceptions import InvalidInput
from tokens.models import Environment
from tokens.persistence import selectors


class Command(BaseCommand):
    help = (
        "Create a secret API key for a project's environment (the environment is added to the "
        "project if missing; a new project only with --create-project). The key is printed "
        "once, as the last line of output."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_environment_arguments(parser, label="a label for the key")

    def handle(self, *args: object, **options: str) -> None:
        environment = environment_from_options(options)
        api_key, secret = tenancy.api_key_create(environment=environment, name=options["name"])
        self.stderr.write(f"Created API key {api_key.prefix}… for {environment}; shown only once:")
        self.stdout.write(secret)


def add_environment_arguments(parser: CommandParser, *, label: str) -> None:
    """--project, --env, --name and --create-project: the commands that mint a credential for an
    environment (an API key, an AAP provisioner token) take the same ones."""
    parser.add_argument("--project", required=True, help="project slug, e.g. billing")
    parser.add_argument("--env", required=True, choices=Environment.Slug.values)
    parser.add_argument("--name", default="", help=label)
    parser.add_argument(
        "--create-project",
        action="store_true",
        help="create the project if it does not exist (without it, a mistyped slug fails)",
    )


def environment_from_options(options: dict[str, str]) -> Environment:
    """The environment those arguments name, added to its project if missing; a new project
    only with --create-project."""
    project_slug = options["project"]
    if not options["create_project"] and project_slug not in selectors.project_slugs():
        raise CommandError(missing_project(project_slug))
    try:
        return tenancy.environment_get_or_create(project_slug=project_slug, slug=options["env"])
    except InvalidInput as error:
        raise CommandError(error.message) from None


def missing_project(slug: str) -> str:
    """What to say for an unknown project slug: the projects there are, and how to add one."""
    known = selectors.project_slugs()
    listing = f"Projects: {', '.join(known)}." if known else "There are no projects yet."
    return f"No project {slug!r}. {listing} To create a new project, add --create-project."
