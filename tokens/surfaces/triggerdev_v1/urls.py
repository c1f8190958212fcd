from django.urls import path
from rest_framework.routers import SimpleRouter

from tokens.surfaces.triggerdev_v1 import views, wait, webhooks

router = SimpleRouter(trailing_slash=False)
router.register("waitpoints/tokens", views.TokenViewSet, basename="token")
router.register("webhooks", webhooks.WebhookEndpointViewSet, basename="webhook")

urlpatterns = [
    path(
        "waitpoints/tokens/<str:token_id>/complete",
        views.TokenCompleteView.as_view(),
        name="token-complete",
    ),
    path(
        "waitpoints/tokens/<str:token_id>/consume",
        views.TokenConsumeView.as_view(),
        name="token-consume",
    ),
    # Served by wait.asgi_wait under ASGI; this route is for WSGI and tests.
    path("waitpoints/tokens/<str:token_id>/wait", wait.wait_view, name="token-wait"),
    path("auth/jwt/claims", views.JwtClaimsView.as_view(), name="jwt-claims"),
    *router.urls,
]
