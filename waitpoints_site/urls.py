from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from tokens.surfaces import health
from tokens.surfaces.admin import mail as sent_mail
from tokens.surfaces.common import login
from tokens.surfaces.links import views as callback
from tokens.surfaces.slack import views as slack
from waitpoints_site import errors

# Failed logins are limited per client address on both login pages (tokens.surfaces.common.login).
admin.site.login_form = login.RateLimitedAdminAuthenticationForm

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path(
        "api/v1/waitpoints/tokens/<str:token_id>/callback/<str:digest>",
        callback.token_callback,
        name="token-callback",
    ),
    path(
        "api/v1/waitpoints/tokens/<str:token_id>/decide/<str:recipient_id>/<str:digest>",
        callback.token_personal,
        name="token-personal",
    ),
    path("integrations/slack/interactivity", slack.interactivity, name="slack-interactivity"),
    path("api/v1/", include("tokens.surfaces.triggerdev_v1.urls")),
    # The Agent Approval Protocol: the base URL is https://HOST/api/aap.
    path("api/aap/", include("tokens.surfaces.aap.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script as a file: no inline script for the CSP.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/sent-mail/", sent_mail.sent_mail, name="sent-mail"),
    path("admin/", admin.site.urls),
    path("accounts/login/", login.login_view, name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("tokens.surfaces.dashboard.urls")),
]


# Styled pages for people, JSON on API paths (waitpoints_site/errors.py).
handler400 = errors.bad_request
handler403 = errors.permission_denied
handler404 = errors.page_not_found
handler500 = errors.server_error
