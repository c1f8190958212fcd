"""What schemathesis found in the API adapter, pinned as plain regression tests."""

from __future__ import annotations

import pytest

from tests.surfaces.triggerdev_v1.helpers import assert_error, url_of


@pytest.mark.parametrize("reason", [{}, [], 0, False])
def test_it_refuses_a_cancel_reason_that_is_not_a_string(api_client, make_token, reason) -> None:
    token = make_token()
    response = api_client.post(url_of(token, "/cancel"), {"reason": reason}, format="json")
    assert_error(response, 400, "Invalid reason: expected a string of at most 1000 characters.")
    token.refresh_from_db()
    assert token.status == "WAITING"


def test_it_reads_a_null_cancel_reason_as_none_given(api_client, make_token) -> None:
    token = make_token()
    response = api_client.post(url_of(token, "/cancel"), {"reason": None}, format="json")
    assert response.status_code == 200
    assert response.json()["statusDetail"] == "CANCELLED"
