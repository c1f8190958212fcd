"""An instance created on the dashboard works with the official SDK, unchanged: the credential
and base URL the answer page shows create an approval request over real HTTP."""

from __future__ import annotations

import html
import re

import pytest
from agentapprovalprotocol import Client

from tests.surfaces.aap.conftest import new_key
from tests.surfaces.aap.test_requests import BODY
from tests.surfaces.dashboard.conftest import client_for, csrf_post, member
from tokens.models import AapInstance, AapRequest, Membership

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_credential_shown_on_the_dashboard_makes_requests_with_the_sdk(
    aap_web, base, environment, settings
) -> None:
    settings.PUBLIC_BASE_URL = aap_web.url  # what the page's next steps point at
    admin = member(environment, "adam", Membership.Role.ADMIN)
    page = csrf_post(client_for(admin), "/projects/alice/dev/aap/instances", {"name": "sdk-bot"})
    assert page.status_code == 200
    snippet = re.search(r'Client\("([^"]+)", "([^"]+)"\)', html.unescape(page.content.decode()))
    assert snippet, "no SDK snippet on the page"
    url, credential = snippet.groups()
    assert url == base and credential.startswith("aapi_")

    created = Client(url, credential).create(BODY, new_key())
    assert created.status == "pending"
    request = AapRequest.objects.select_related("token", "instance").get(pk=created.id)
    assert request.instance.name == "sdk-bot" and request.token.environment == environment
    assert AapInstance.objects.get().last_used_at is not None
