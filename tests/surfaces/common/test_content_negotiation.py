"""The API's content negotiation: what clients send is answered without parsing Accept; the
rest is DRF's own decision."""

from __future__ import annotations

import pytest

TOKENS = "/api/v1/waitpoints/tokens"
pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "application/*"])
def test_what_clients_send_gets_json(api_client, accept) -> None:
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    response = api_client.get(TOKENS, **headers)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"


def test_what_no_renderer_offers_is_refused_as_drf_refuses_it(api_client) -> None:
    response = api_client.get(TOKENS, HTTP_ACCEPT="application/xml")
    assert response.status_code == 406
    assert response["Content-Type"] == "application/json"
