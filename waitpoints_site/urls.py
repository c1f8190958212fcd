import sys

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path
from django.views import defaults
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from tokens import callback, health, login, mailbox
from tokens.middleware import outage_response

# Failed logins are limited per client address on both login pages (tokens.login).
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
    path("api/v1/", include("tokens.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script as a file: no inline script for the CSP.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/sent-mail/", mailbox.sent_mail, name="sent-mail"),
    path("admin/", admin.site.urls),
    path("accounts/login/", login.login_view, name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("tokens.dashboard.urls")),
]


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def handler404(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"error": "Not found"}, status=404)
    return defaults.page_not_found(request, exception)


def handler500(request: HttpRequest) -> HttpResponse:
    # Also reached for a database outage raised outside a view (a session saved by middleware).
    outage = outage_response(request, sys.exc_info()[1])
    if outage is not None:
        return outage
    if _is_api(request):
        return JsonResponse({"error": "Internal Server Error"}, status=500)
    return defaults.server_error(request)


def handler400(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"error": "Bad request"}, status=400)
    return defaults.bad_request(request, exception)
