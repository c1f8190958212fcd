"""Mounted at ``/api/aap/`` (``waitpoints_site/urls.py``): the AAP base URL is
``https://HOST/api/aap``."""

from django.urls import path, re_path

from tokens.surfaces.aap import views

urlpatterns = [
    path("v1/instances", views.instance_collection, name="aap-instances"),
    path("v1/instances/<str:instance_id>", views.instance_detail, name="aap-instance"),
    path("v1/requests", views.request_collection, name="aap-requests"),
    path("v1/requests/<str:request_id>", views.request_detail, name="aap-request"),
    path("v1/requests/<str:request_id>/consume", views.request_consume, name="aap-consume"),
    path("v1/requests/<str:request_id>/outcome", views.request_outcome, name="aap-outcome"),
    re_path(r"^(?P<rest>.*)$", views.unknown, name="aap-unknown"),
]
