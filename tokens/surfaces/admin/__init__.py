"""Django admin for support staff: find any token, see its whole history, act through the domain.

Token state is read-only here: every change goes through ``tokens.domain`` (actions), with
channel "admin" and the staff user as actor, so the admin can never reopen a terminal token.
Actions need the model's *change* permission (``allowed_permissions``); view-only staff can
search and inspect but not act. Secrets (API key digests and ciphertexts, callback and signing
secrets) are never displayed; a new API key's secret is shown once, on the page after creation.
"""

from django.contrib import admin

# One module per model group; importing them registers their pages.
from tokens.surfaces.admin import (  # noqa: F401
    aap,
    aap_policies,
    deadlines,
    mail,
    outbox,
    slack,
    tenancy,
    tokens,
    webhooks,
)

admin.site.site_header = "waitpoints support"
admin.site.site_title = "waitpoints support"
admin.site.index_title = "Support"
