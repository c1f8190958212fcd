"""Create with a proposal over the API: stored, read back, and bad input a clear 400."""

from __future__ import annotations

from tests.surfaces.triggerdev_v1.helpers import TOKENS, assert_error
from tokens.models import Token

SCHEMA = {"type": "object", "properties": {"amount": {"type": "integer", "maximum": 10}}}


def test_it_creates_and_reads_back_a_proposal(api_client):
    body = {"proposal": {"amount": 5}, "proposalSchema": SCHEMA, "proposalEditable": ["amount"]}
    created = api_client.post(TOKENS, body, format="json")
    assert created.status_code == 200, created.content
    read = api_client.get(f"{TOKENS}/{created.json()['id']}").json()
    assert read["proposal"] == {"amount": 5} and read["proposalVersion"] == 1
    assert read["proposalSchema"] == SCHEMA and read["proposalEditable"] == ["amount"]
    plain = api_client.post(TOKENS, {}, format="json").json()
    assert "proposal" not in api_client.get(f"{TOKENS}/{plain['id']}").json()


def test_it_refuses_bad_proposals_with_400s_and_creates_nothing(api_client):
    cases = [
        ({"proposal": "x"}, "Invalid proposal: must be a JSON object"),
        ({"proposal": {"amount": 50}, "proposalSchema": SCHEMA}, "does not satisfy"),
        (
            {"proposal": {}, "proposalSchema": {"type": "object", "required": "amount"}},
            "Invalid proposalSchema: not a valid JSON Schema at required",
        ),
        ({"proposal": {"a": "x" * 33_000}}, "Invalid proposal: too large"),
        ({"proposal": {}, "proposalEditable": 3}, "Invalid proposalEditable"),
        ({"proposal": None}, "Invalid proposal: null is not accepted"),
    ]
    for body, message in cases:
        response = api_client.post(TOKENS, body, format="json")
        assert message in assert_error(response, 400)["error"], (body, response.content)
    assert not Token.objects.exists()
