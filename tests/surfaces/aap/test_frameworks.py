"""The two Python ways in of docs/aap, run as the pages write them: a LangGraph agent with the
SDK's ``ApprovalMiddleware`` and an OpenAI Agents SDK agent protected by ``Approvals``, against the
live service. Only the language model is replaced, by a script that asks for one tool call and
then answers; the tool, the framework, the SDK and the service are the real ones. A person
decides through the v1 token API, as the dashboard's Approve / Reject would."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from agentapprovalprotocol.langgraph import ApprovalMiddleware
from agentapprovalprotocol.openai_agents import Approvals
from agents import Agent, ModelResponse, Runner, Usage, function_tool, set_tracing_disabled
from agents.models.interface import Model
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

from tests.surfaces.aap.test_gate import decide_when_asked
from tokens.models import AapRequest, Token

pytestmark = pytest.mark.django_db(transaction=True)

REFUND = {"payment_id": "payment_123", "amount": 4900}


class ScriptedChatModel(GenericFakeChatModel):
    """A LangChain chat model that replays its messages and accepts any tools."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedChatModel:  # type: ignore[override]
        return self


def langgraph_refund_agent(base: str, credential: str, refunds: list[dict[str, Any]]) -> Any:
    @tool
    def issue_refund(payment_id: str, amount: int) -> str:
        """Refund a payment."""
        refunds.append({"payment_id": payment_id, "amount": amount})
        return "refunded"

    model = ScriptedChatModel(
        messages=iter(
            [
                AIMessage(
                    content="",
                    tool_calls=[{"name": "issue_refund", "args": REFUND, "id": "call_1"}],
                ),
                AIMessage(content="Done."),
            ]
        )
    )
    # The page's two lines: one middleware gates every tool call.
    approvals = ApprovalMiddleware(base, credential, wait_limit=30)
    return create_agent(model, tools=[issue_refund], middleware=[approvals])


def ask(agent: Any) -> list[Any]:
    result = agent.invoke({"messages": [{"role": "user", "content": "Refund payment_123"}]})
    return list(result["messages"])


def test_a_langgraph_agents_tool_call_runs_once_a_person_approves(
    aap_web, base, credential, api_key
) -> None:
    refunds: list[dict[str, Any]] = []
    decider = decide_when_asked(aap_web.url, api_key, {"status": "approved", "comment": "OK."})
    messages = ask(langgraph_refund_agent(base, credential, refunds))
    decider.join()
    assert refunds == [REFUND]
    assert [m.content for m in messages][-2:] == ["refunded", "Done."]
    request = AapRequest.objects.select_related("token").get()
    assert request.tool == "issue_refund" and json.loads(request.arguments_json) == REFUND
    assert request.token.consumed_at is not None  # used once, before the tool ran
    assert request.token.outcome_status == "succeeded"


def test_a_langgraph_agent_is_told_the_reason_when_a_person_rejects(
    aap_web, base, credential, api_key
) -> None:
    refunds: list[dict[str, Any]] = []
    decider = decide_when_asked(
        aap_web.url, api_key, {"status": "rejected", "comment": "Refunds need a ticket."}
    )
    messages = ask(langgraph_refund_agent(base, credential, refunds))
    decider.join()
    assert refunds == []  # the tool never ran
    tool_answer = messages[-2]
    assert "Refunds need a ticket." in str(tool_answer.content)
    assert AapRequest.objects.get().token.status == Token.Status.COMPLETED


class ScriptedModel(Model):
    """An OpenAI Agents SDK model that asks for one refund, then answers."""

    def __init__(self) -> None:
        self.turns = 0

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        self.turns += 1
        item: Any
        if self.turns == 1:
            item = ResponseFunctionToolCall(
                type="function_call",
                call_id="call_1",
                id="fc_1",
                name="issue_refund",
                arguments=json.dumps(REFUND),
                status="completed",
            )
        else:
            item = ResponseOutputMessage(
                id="msg_1",
                type="message",
                role="assistant",
                status="completed",
                content=[ResponseOutputText(type="output_text", text="Done.", annotations=[])],
            )
        return ModelResponse(output=[item], usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("the tests do not stream")


def run_openai_refund_agent(base: str, credential: str, refunds: list[dict[str, Any]]) -> Any:
    set_tracing_disabled(True)  # nothing may leave 127.0.0.1

    @function_tool
    def issue_refund(payment_id: str, amount: int) -> str:
        """Refund a payment."""
        refunds.append({"payment_id": payment_id, "amount": amount})
        return "refunded"

    agent = Agent(name="billing", tools=[issue_refund], model=ScriptedModel())
    # The page's two lines: every tool of the agent is gated.
    approvals = Approvals(base, credential, wait_limit=30)
    approvals.protect(agent)
    return asyncio.run(Runner.run(agent, "Refund payment_123"))


def test_an_openai_agents_tool_call_runs_once_a_person_approves(
    aap_web, base, credential, api_key
) -> None:
    refunds: list[dict[str, Any]] = []
    decider = decide_when_asked(aap_web.url, api_key, {"status": "approved", "comment": "OK."})
    result = run_openai_refund_agent(base, credential, refunds)
    decider.join()
    assert refunds == [REFUND] and result.final_output == "Done."
    token = AapRequest.objects.select_related("token").get().token
    assert token.consumed_at is not None and token.outcome_status == "succeeded"


def test_an_openai_agents_tool_call_is_not_run_when_a_person_rejects(
    aap_web, base, credential, api_key
) -> None:
    refunds: list[dict[str, Any]] = []
    decider = decide_when_asked(
        aap_web.url, api_key, {"status": "rejected", "comment": "Refunds need a ticket."}
    )
    result = run_openai_refund_agent(base, credential, refunds)
    decider.join()
    assert refunds == []
    tool_outputs = [
        str(getattr(item, "output", "")) for item in result.new_items if hasattr(item, "output")
    ]
    assert any("Refunds need a ticket." in output for output in tool_outputs), tool_outputs
    assert AapRequest.objects.get().token.consumed_at is None
