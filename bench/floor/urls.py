from django.urls import path

from bench.floor import views

# The API's paths, so that the same load scripts drive the service and the floor.
urlpatterns = [
    path("healthz", views.healthz),
    path("api/v1/waitpoints/tokens", views.create),
    path("api/v1/waitpoints/tokens/<str:token_id>", views.retrieve),
    path("api/v1/waitpoints/tokens/<str:token_id>/complete", views.complete),
]
