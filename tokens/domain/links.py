"""Absolute links to a token: its callback URL (a credential) and its dashboard page.

Core: used by e-mails, the API's representation and the pages alike; takes a base origin, never
a request (adapters turn their request into a base with ``tokens.surfaces.common.http.base_url``).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.urls import reverse

from tokens.domain import keys
from tokens.models import Recipient, Token
from tokens.persistence.rows import TokenRow

DEFAULT_BASE_URL = "http://127.0.0.1:8000"


def public_base_url() -> str:
    """The configured public origin, for work done outside a request (the worker's e-mails)."""
    return settings.PUBLIC_BASE_URL or DEFAULT_BASE_URL


def callback_url(token: Token, *, base: str) -> str:
    return callback_urls(base=base)(token)


_TOKEN_SLOT, _DIGEST_SLOT = "TOKENSLOT", "DIGESTSLOT"


def callback_urls(*, base: str) -> Callable[[Token | TokenRow], str]:
    """``callback_url`` for many tokens: the route is reversed once (a list page renders 100
    URLs; reversing each one was a quarter of the page's time), then filled in per token.
    Ids and digests are URL-safe as they are, so filling in gives what ``reverse`` would."""
    template = base + reverse(
        "token-callback", kwargs={"token_id": _TOKEN_SLOT, "digest": _DIGEST_SLOT}
    )
    before_token, _, rest = template.partition(_TOKEN_SLOT)
    between, _, after_digest = rest.partition(_DIGEST_SLOT)

    def url(token: Token | TokenRow) -> str:
        digest = keys.callback_hash(
            callback_secret=token.environment.callback_secret, internal_id=token.id
        )
        return before_token + token.friendly_id + between + digest + after_digest

    return url


def personal_url(token: Token, recipient: Recipient | tuple[int, str], *, base: str) -> str:
    """The link e-mailed to one recipient (a row, or its id and address): decides as that
    address; revocable on its own."""
    pk, address = (recipient.pk, recipient.email) if isinstance(recipient, Recipient) else recipient
    digest = keys.personal_hash(
        callback_secret=token.environment.callback_secret, internal_id=token.id, address=address
    )
    kwargs = {"token_id": token.friendly_id, "recipient_id": pk, "digest": digest}
    return base + reverse("token-personal", kwargs=kwargs)


def dashboard_url(token: Token, *, base: str) -> str:
    """The token's page on the dashboard (it asks approvers to log in first)."""
    return base + reverse("dashboard:token_detail", args=[token.friendly_id])
