"""The project's URLs and error handlers, plus views that fail on purpose
(tests/surfaces/common/test_error_pages.py and tests/browser/test_a11y.py): nothing in the
product raises PermissionDenied or crashes on demand, and the handlers must be tested as Django
calls them."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.urls import path

from tokens.surfaces.common import negotiation
from waitpoints_site import urls as project

# Django looks the handlers up on the ROOT_URLCONF module.
handler400 = project.handler400
handler403 = project.handler403
handler404 = project.handler404
handler500 = project.handler500


def forbidden(request: HttpRequest) -> HttpResponse:
    raise PermissionDenied("not for you")


def crash(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug")


# Views under /api/ answer JSON because they say so (tokens.surfaces.common.negotiation: an
# unmarked view is a page wherever it is mounted), as every API view of the product does.
api_crash = negotiation.answers(negotiation.JSON)(lambda request: crash(request))


urlpatterns = [
    path("test-errors/forbidden", forbidden),
    path("test-errors/crash", crash),
    path("api/v1/test-errors/crash", api_crash),
    *project.urlpatterns,
]
