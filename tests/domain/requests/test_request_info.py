"""Requests approvers can decide (1): title, Markdown description and context, on create, in the
API, on every human surface and in the e-mail."""

from __future__ import annotations

import json

import pytest
from django.core import mail

from tests.surfaces.triggerdev_v1.helpers import TOKENS, assert_error, nulls, url_of
from tokens.delivery import outbox
from tokens.domain import markup
from tokens.domain.links import callback_url
from tokens.models import Token

DESCRIPTION = (
    "Refund **3,400 EUR** to [order 4812](https://shop.example.com/orders/4812).\n\n"
    "<script>alert('x')</script>\n\n"
    "[click](javascript:alert(1)) ![pixel](https://tracker.example.com/p.gif)"
)
CONTEXT = {
    "customer": "ACME GmbH",
    "amount": 3400,
    "vip": True,
    "lines": [{"sku": "A-1", "qty": 2}],
    "address": {"city": "Berlin", "zip": "10115"},
}


def create(api_client, **body):
    response = api_client.post(TOKENS, body, format="json")
    assert response.status_code == 200, response.content
    return Token.objects.get(pk=response.json()["id"].removeprefix("waitpoint_"))


def test_it_stores_and_returns_title_description_and_context(api_client):
    token = create(
        api_client, title="  Refund   order 4812 ", description=DESCRIPTION, context=CONTEXT
    )
    assert token.title == "Refund order 4812"  # one line: it becomes a subject and a heading
    body = api_client.get(url_of(token)).json()
    assert body["title"] == "Refund order 4812"
    assert body["description"] == DESCRIPTION
    assert body["context"] == CONTEXT
    item = api_client.get(TOKENS).json()["data"][0]
    assert (item["title"], item["context"]) == ("Refund order 4812", CONTEXT)


def test_it_omits_the_fields_when_absent_never_null(api_client):
    token = create(api_client)
    body = api_client.get(url_of(token)).json()
    assert not {"title", "description", "context", "decision"} & set(body)
    assert nulls(body) == []
    assert nulls(api_client.get(TOKENS).json()) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"title": "x" * 201}, "Invalid title: expected a string of at most 200 characters."),
        ({"title": 42}, "Invalid title: expected a string of at most 200 characters."),
        (
            {"description": "x" * 10_001},
            "Invalid description: expected a Markdown string of at most 10000 characters.",
        ),
        ({"context": [1, 2]}, "Invalid context: expected a JSON object, received array."),
        ({"context": "text"}, "Invalid context: expected a JSON object, received str."),
    ],
)
def test_it_refuses_bad_request_fields_with_a_specific_message(api_client, body, message):
    assert_error(api_client.post(TOKENS, body, format="json"), 400, message)
    assert not Token.objects.exists()


def test_it_refuses_a_context_over_64_kib(api_client):
    body = {"context": {"blob": "x" * (64 * 1024)}}
    error = assert_error(api_client.post(TOKENS, body, format="json"), 400)["error"]
    assert error.startswith("Invalid context: at most 64 KiB of JSON")
    assert not Token.objects.exists()


def test_it_accepts_a_context_just_under_64_kib(api_client):
    context = {"blob": "x" * (64 * 1024 - 20)}
    assert len(json.dumps(context, separators=(",", ":"))) <= 64 * 1024
    assert create(api_client, context=context).context == context


def test_markdown_is_rendered_and_sanitised():
    html = markup.render_markdown(DESCRIPTION)
    assert "<strong>3,400 EUR</strong>" in html
    assert 'href="https://shop.example.com/orders/4812"' in html
    assert 'rel="noopener noreferrer nofollow"' in html
    assert "<script" not in html and "&lt;script&gt;" in html  # raw HTML shows as text
    assert 'href="javascript' not in html  # markdown-it leaves it as plain text
    assert "<img" not in html and "tracker.example.com" not in html


def test_sanitiser_drops_html_that_markdown_lets_through():
    # Even if the Markdown renderer emitted HTML, nh3 removes what is not on the allow-list.
    html = markup.render_markdown('[a](https://ok.example "t")')
    assert "<a" in html
    cleaned = markup.nh3.clean(
        '<a href="javascript:x" onclick="y">a</a><iframe src="https://x"></iframe>',
        tags=markup.ALLOWED_TAGS,
        attributes=markup.ALLOWED_ATTRIBUTES,
        url_schemes=markup.SAFE_URL_SCHEMES,
    )
    assert "onclick" not in cleaned and "iframe" not in cleaned and "javascript" not in cleaned


def test_context_rows_fold_nested_values():
    rows = {row.key: row for row in markup.context_rows(CONTEXT)}
    assert (rows["customer"].value, rows["customer"].folded) == ("ACME GmbH", None)
    assert rows["vip"].value == "true"
    assert rows["lines"].value == "1 item" and '"sku": "A-1"' in (rows["lines"].folded or "")
    assert rows["address"].value == "2 keys"
    assert rows["address"].compact == '{"city": "Berlin", "zip": "10115"}'


def test_the_confirmation_page_shows_the_request_first(client, make_token):
    token = make_token(title="Refund order 4812", description=DESCRIPTION, context=CONTEXT)
    html = client.get(callback_url(token, base="")).content.decode()
    assert '<h1 id="confirm-title">Refund order 4812</h1>' in html
    assert "<strong>3,400 EUR</strong>" in html and "<script>alert" not in html
    assert '<th scope="row">customer</th>' in html and "ACME GmbH" in html
    assert "<summary>2 keys</summary>" in html
    assert html.index("Refund order 4812") < html.index('name="decision"')


def test_the_email_subject_uses_the_title_and_the_body_shows_the_request(api_client):
    create(
        api_client,
        title="Refund order 4812",
        description=DESCRIPTION,
        context=CONTEXT,
        approvers=["ann@example.com"],
    )
    outbox.deliver_due()
    [email] = mail.outbox
    assert email.subject == "Decision needed: Refund order 4812 (alice/dev)"
    assert "Refund **3,400 EUR**" in email.body and "customer: ACME GmbH" in email.body
    assert 'address: {"city": "Berlin", "zip": "10115"}' in email.body
    html = email.alternatives[0][0]
    assert "<strong>3,400 EUR</strong>" in html and "<script>alert" not in html
    assert "ACME GmbH" in html


def test_an_untitled_email_keeps_todays_subject(api_client):
    create(api_client, tags=["deploy"], approvers=["ann@example.com"])
    outbox.deliver_due()
    assert mail.outbox[0].subject == "Decision needed: alice (dev) · deploy"
