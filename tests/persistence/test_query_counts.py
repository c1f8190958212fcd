"""How many SQL statements each hot request runs, so that an added query fails CI, not a
benchmark (issue 12). The counts do not grow with the number of rows on a page.

Counts are of statements sent through Django, inside the test's transaction, so every
``transaction.atomic`` shows as a SAVEPOINT and its RELEASE (in production the outermost one is
BEGIN/COMMIT, which Django does not count). When a change adds or removes a query on purpose,
update the number here and say why in the commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.surfaces.dashboard.conftest import client_for, member
from tokens.delivery.webhooks import endpoints as webhook_endpoints
from tokens.domain.links import callback_url
from tokens.models import Membership, OutboxMessage, Token
from tokens.persistence import keycache

pytestmark = pytest.mark.django_db

TOKENS = "/api/v1/waitpoints/tokens"


@contextmanager
def exactly(count: int) -> Iterator[None]:
    with CaptureQueriesContext(connection) as captured:
        yield
    statements = [query["sql"] for query in captured.captured_queries]
    listing = "\n".join(f"{n}. {sql[:200]}" for n, sql in enumerate(statements, 1))
    assert len(statements) == count, f"{len(statements)} queries, expected {count}:\n{listing}"


@pytest.fixture
def warm(api_client):
    """A first request reads the key and records its use (at most one UPDATE a minute); later
    ones within WAITPOINTS_API_KEY_CACHE_SECONDS find the key in the process's cache
    (tokens/persistence/keycache.py), so no API count below includes a key lookup."""
    assert api_client.get(f"{TOKENS}?page[size]=1").status_code == 200
    return api_client


def test_create_runs_the_key_lookup_and_one_insert_per_table(warm):
    # One statement (the token, its tag rows, the audit event), outside any transaction of its
    # own: alone it is atomic (in production no BEGIN/COMMIT either).
    with exactly(1):
        response = warm.post(TOKENS, {"timeout": "1h", "tags": ["a", "b"]}, format="json")
    assert response.status_code == 200


def test_create_with_approvers_queues_their_emails_in_one_statement(warm):
    # SAVEPOINT; the token and its audit event (one statement); the recipients already there
    # (none: a new token); one INSERT for all recipients; one for all outbox rows; the
    # environment's Slack connection (none here: nothing more); RELEASE
    with exactly(7):
        response = warm.post(
            TOKENS,
            {"approvers": ["a@example.com", "b@example.com", "c@example.com"]},
            format="json",
        )
    assert response.status_code == 200


def test_complete_updates_with_returning_and_reads_nothing_back(warm, make_token):
    token = make_token()
    # token; SAVEPOINT; one statement (UPDATE … RETURNING, the audit event, NOTIFY and a look
    # for webhook endpoints: none here, so nothing more); RELEASE
    with exactly(4):
        response = warm.post(f"{TOKENS}/{token.friendly_id}/complete", {"data": 1}, format="json")
    assert response.json()["applied"] is True


def test_callback_completes_in_as_few_statements(make_token, client):
    token = make_token()
    url = callback_url(token, base="")
    # token (with its environment); SAVEPOINT; the resolving statement; RELEASE
    with exactly(4):
        response = client.post(url, b'{"ok":true}', content_type="application/json")
    assert response.status_code == 200
    token.refresh_from_db()
    assert token.status == Token.Status.COMPLETED


def test_complete_with_a_webhook_endpoint_enqueues_its_event(warm, make_token, environment):
    webhook_endpoints.webhook_endpoint_create(
        environment=environment, url="https://hooks.example.com/in"
    )
    token = make_token()
    # as above; then, as an endpoint exists: the endpoints, the token with its environment, one
    # INSERT of the outbox messages
    with exactly(7):
        response = warm.post(f"{TOKENS}/{token.friendly_id}/complete", {"data": 1}, format="json")
    assert response.json()["applied"] is True
    assert OutboxMessage.objects.filter(token=token, kind=OutboxMessage.Kind.WEBHOOK).count() == 1


def test_retrieve_reads_the_token_only(warm, make_token):
    token = make_token(tags=["a"])
    with exactly(1):
        response = warm.get(f"{TOKENS}/{token.friendly_id}")
    assert response.json()["url"].startswith("http://testserver/api/v1/waitpoints/tokens/")


@pytest.mark.parametrize(
    "query",
    [
        "",
        "&filter[status]=WAITING",
        "&filter[tags]=a,b",
        "&filter[status]=COMPLETED&filter[tags]=a",
    ],
)
def test_a_list_page_is_one_query_whatever_its_length(warm, make_token, query):
    for _ in range(30):
        make_token(tags=["a"])
    with exactly(1):
        response = warm.get(f"{TOKENS}?page[size]=100{query}")
    assert response.status_code == 200


def test_a_key_not_remembered_costs_one_lookup(warm, make_token):
    keycache.clear()  # as after WAITPOINTS_API_KEY_CACHE_SECONDS
    token = make_token()
    with exactly(2):  # key; token
        warm.get(f"{TOKENS}/{token.friendly_id}")


@pytest.fixture
def admin_client(environment):
    return client_for(member(environment, "adam", Membership.Role.ADMIN))


def _tokens(make_token, count: int) -> list[Token]:
    return [make_token(tags=["refund"], approvers=["a@example.com"]) for _ in range(count)]


def test_dashboard_token_list_does_not_grow_with_the_page(admin_client, make_token):
    _tokens(make_token, 30)
    admin_client.get("/")  # the session's first touch
    # session; user; environment; tokens; role; known tags
    with exactly(6):
        response = admin_client.get("/projects/alice/dev/tokens")
    assert response.status_code == 200


def test_dashboard_waiting_for_me_does_not_grow_with_the_page(admin_client, make_token):
    _tokens(make_token, 30)
    admin_client.get("/")
    # session; user; environments with counts; how many name me (none); the page's tokens
    # (with environment and project), in deadline order from token_waiting_deadline; the
    # requests I put aside ("not now")
    with exactly(6):
        response = admin_client.get("/")
    assert response.status_code == 200


def test_dashboard_waiting_for_me_puts_mine_first_in_two_queries(admin_client, make_token):
    theirs = _tokens(make_token, 30)
    mine = [make_token(approvers=["adam@example.com"], timeout="2h") for _ in range(3)]
    admin_client.get("/")
    # as above, plus the page of those naming me before the rest fills the page
    with exactly(7):
        response = admin_client.get("/")
    rows = [token.pk for token in response.context["tokens"]]
    assert rows[:3] == [token.pk for token in mine]
    assert set(rows[3:]) <= {token.pk for token in theirs} and len(rows) == 25


def test_dashboard_token_detail(admin_client, make_token):
    token = _tokens(make_token, 1)[0]
    admin_client.get("/")
    # session; user; token (with environment and project); role; events; recipients; my
    # "not now" on it
    with exactly(7):
        response = admin_client.get(f"/tokens/{token.friendly_id}")
    assert response.status_code == 200


def test_dashboard_bulk_review_does_not_grow_with_the_selection(admin_client, make_token):
    tokens = _tokens(make_token, 30)
    admin_client.get("/accounts/login/")  # sets the csrftoken cookie
    csrf = admin_client.cookies["csrftoken"].value
    data = {"ids": [t.friendly_id for t in tokens], "decision": "approved"}
    # session; user; the tokens (with environment and project); the role in their project
    with exactly(4):
        response = admin_client.post("/tokens/bulk", {**data, "csrfmiddlewaretoken": csrf})
    assert response.status_code == 200
    assert response.content.decode().count('name="ids"') == 30


def test_dashboard_approve(admin_client, make_token):
    token = _tokens(make_token, 1)[0]
    admin_client.get("/accounts/login/")  # sets the csrftoken cookie
    csrf = admin_client.cookies["csrftoken"].value
    # session; user; token; role; SAVEPOINT; the resolving statement; RELEASE
    with exactly(7):
        response = admin_client.post(
            f"/tokens/{token.friendly_id}/approve", {"csrfmiddlewaretoken": csrf}
        )
    assert response.status_code == 302
