"""One submission per rendered form, for the forms whose answer shows a secret once.

Such an answer cannot be a redirect (the secret is never stored to show it again), so a reload
of it re-sends the POST. Each rendering of the form carries a random value; the first POST with
it claims it in the cache for a day, and a second one is told what happened instead of creating
a second credential. A POST without the value (a script, a page from before this) is served as
before.
"""

from __future__ import annotations

import hashlib
import secrets

from django.core.cache import cache
from django.http import HttpRequest

FIELD = "submission"
KEEP_SECONDS = 24 * 3600


def new() -> str:
    """The value for one rendering of a form (its hidden ``submission`` field)."""
    return secrets.token_urlsafe(16)


def claim(request: HttpRequest) -> bool:
    """True the first time this form's value is submitted by this user, False on a repeat."""
    value = request.POST.get(FIELD, "")
    if not value:
        return True
    key = hashlib.sha256(f"{request.user.pk}:{value}".encode()).hexdigest()
    return bool(cache.add(f"dashboard-once:{key}", 1, KEEP_SECONDS))
