from django.apps import AppConfig


class TokensConfig(AppConfig):
    name = "tokens"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from tokens import checks  # noqa: F401  (registers the startup checks)
        from tokens.delivery import (
            aap,  # noqa: F401  (the AAP event outbox handler)
            emails,  # noqa: F401  (registers the e-mail outbox handlers)
        )
        from tokens.delivery.slack import handlers as slack  # noqa: F401  (Slack outbox handlers)
        from tokens.delivery.webhooks import handler  # noqa: F401  (the webhook outbox handler)
        from tokens.surfaces import admin  # noqa: F401  (registers the admin pages)
