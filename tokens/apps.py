from django.apps import AppConfig


class TokensConfig(AppConfig):
    name = "tokens"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from tokens import checks  # noqa: F401  (registers the startup checks)
        from tokens.delivery import (
            emails,  # noqa: F401  (registers the outbox handler for e-mails)
            webhooks,  # noqa: F401  (registers the outbox handler for webhooks)
        )
        from tokens.surfaces import admin  # noqa: F401  (registers the admin pages)
