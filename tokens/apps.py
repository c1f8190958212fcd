from django.apps import AppConfig


class TokensConfig(AppConfig):
    name = "tokens"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from tokens import (
            checks,  # noqa: F401  (registers the startup checks)
            emails,  # noqa: F401  (registers the outbox handler for e-mails)
            webhooks,  # noqa: F401  (registers the outbox handler for webhooks)
        )
