from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tokens.domain import tenancy
from tokens.domain.exceptions import InvalidInput
from tokens.domain.links import public_base_url
from tokens.management.commands.create_api_key import missing_project
from tokens.models import Membership, Project


class Command(BaseCommand):
    help = (
        "Add a person to a project by e-mail with a role (or change their role), as a project "
        "admin does on the dashboard's Members page. A new account gets an e-mail with a "
        "one-time link to choose its password."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="project slug, e.g. billing")
        parser.add_argument("--email", required=True, help="their e-mail address")
        parser.add_argument("--role", required=True, choices=Membership.Role.values)
        parser.add_argument(
            "--no-email", action="store_true", help="add them without sending the e-mail"
        )

    def handle(self, *args: object, **options: str) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(missing_project(options["project"]).split(" To create")[0])
        try:
            invitation = tenancy.member_invite(
                project=project,
                email=options["email"],
                role=options["role"],
                send_email=not options["no_email"],
            )
        except InvalidInput as error:
            raise CommandError(error.message) from None
        user = invitation.membership.user
        account = "new account" if invitation.created_user else "existing account"
        self.stdout.write(
            f"{user.email} ({account}, username {user.get_username()}) is "
            f"{invitation.membership.role} in {project.slug}."
        )
        if invitation.email_error:
            raise CommandError(
                f"The membership was saved, but the e-mail could not be sent: "
                f"{invitation.email_error}. Run the command again once e-mail works."
            )
        if invitation.emailed:
            what = "a link to choose a password" if invitation.needs_password else "a note"
            self.stdout.write(f"E-mailed {what} ({where_mail_goes()}).")


def where_mail_goes() -> str:
    from django.conf import settings

    if settings.EMAIL_BACKEND == "tokens.delivery.mailbox.EmailBackend":
        return (
            f"without EMAIL_HOST it is a file in {settings.WAITPOINTS_MAIL_DIR}, "
            f"shown to superusers at {public_base_url()}/admin/sent-mail/"
        )
    return f"through {settings.EMAIL_BACKEND}"
