"""The client layer under server faults: retries, cut-off replies, invalid output, bad requests.

A scripted loopback HTTP server injects the faults a real server shows under load; the real vLLM
server is exercised in test_client_vllm.py and the flow tests.
"""

from __future__ import annotations

import asyncio

import pytest

from annotators.client import RoleClient
from annotators.prompts import load_prompt
from schemas.config import Endpoint, RoleConfig
from schemas.replies import ClueReply, LabelsReply
from tests.fakes import ScriptedServer, completion


@pytest.fixture
def scripted():
    servers = []

    def make(script):
        servers.append(ScriptedServer(script))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def ask(url: str, **role) -> tuple:
    config = RoleConfig(endpoints=[Endpoint(base_url=url, model="m")], prompt="labels", **role)
    prompt = load_prompt("labels")

    async def go():
        client = RoleClient("labels", config, prompt, "hash")
        try:
            return await client.ask(prompt.messages("default", description="d"), LabelsReply)
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_server_errors_are_retried_with_backoff(scripted):
    server = scripted([(503, {"error": "busy"}), (500, {"error": "oops"}), completion('{"labels": ["happy"]}')])
    answer = ask(server.url, max_retries=3)
    assert answer.ok and answer.value.labels == ["happy"] and len(server.requests) == 3


def test_structured_output_is_requested_with_the_reply_schema(scripted):
    server = scripted([completion('{"labels": []}')])
    answer = ask(server.url)
    sent = server.requests[0]
    assert sent["response_format"] == LabelsReply.response_format()
    assert "guided_json" not in sent and sent["temperature"] == 0.0 and sent["seed"] == 0
    assert answer.ok and answer.value.labels == []  # an empty list is a valid answer
    assert (
        answer.call.prompt_id == "labels"
        and answer.call.prompt_version == "1.0.0"
        and answer.call.server == server.url
    )


def test_cut_off_reply_is_re_asked_with_more_room(scripted):
    server = scripted([completion('{"labels": ["ha', "length"), completion('{"labels": ["happy"]}')])
    answer = ask(server.url, max_reasks=2)
    assert answer.ok and answer.call.attempts == 2
    assert server.requests[1]["max_tokens"] == 2 * server.requests[0]["max_tokens"]


def test_invalid_output_is_re_asked_then_kept_raw_with_an_error(scripted):
    server = scripted([completion("not json"), completion('{"label": 1}'), completion("{")])
    answer = ask(server.url, max_reasks=2)
    assert not answer.ok and not answer.transient
    assert answer.raw == "{" and "invalid reply" in answer.error and len(server.requests) == 3
    # the re-ask shows the model its bad reply and says what was wrong
    assert server.requests[1]["messages"][-2] == {"role": "assistant", "content": "not json"}
    assert server.requests[1]["seed"] != server.requests[0]["seed"]


def test_provenance_never_carries_credentials_in_urls():
    from annotators.client import public_url

    assert public_url("https://user:sk-123@api.example.org:8443/v1?key=sk-456") == "https://api.example.org:8443/v1"
    assert public_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"


def test_bad_request_is_not_retried(scripted):
    server = scripted([(400, {"error": {"message": "image input not supported"}})])
    answer = ask(server.url, max_retries=3, max_reasks=2)
    assert not answer.ok and "400" in answer.error and len(server.requests) == 1 and not answer.transient


@pytest.mark.parametrize("status", [401, 403, 404, 429])
def test_configuration_and_rate_limit_errors_are_left_for_the_next_run(scripted, status):
    server = scripted([(status, {"error": {"message": "sk-secret-key-hint"}})] * 3)
    answer = ask(server.url, max_retries=0, max_reasks=0)
    assert not answer.ok and answer.transient and str(status) in answer.error
    if status in (401, 403):
        assert "sk-secret" not in answer.error  # auth errors are not echoed into the dataset


def test_a_missing_api_key_is_a_configuration_error(monkeypatch):
    monkeypatch.delenv("EMER_TEST_KEY", raising=False)
    config = RoleConfig(
        endpoints=[Endpoint(base_url="http://127.0.0.1:9/v1", model="m", api_key_env="EMER_TEST_KEY")], prompt="labels"
    )
    with pytest.raises(ValueError, match="EMER_TEST_KEY"):
        RoleClient("labels", config, load_prompt("labels"), "h")


def test_server_down_is_transient_error_not_exception():
    answer = ask("http://127.0.0.1:9/v1", max_retries=1, max_reasks=0)
    assert not answer.ok and answer.transient and "connect" in answer.error.lower()


def test_least_loaded_dispatch_spreads_over_endpoints(scripted):
    a = scripted([completion('{"labels": []}')] * 20)
    b = scripted([completion('{"labels": []}')] * 20)
    config = RoleConfig(
        endpoints=[
            Endpoint(base_url=a.url, model="m", max_in_flight=4),
            Endpoint(base_url=b.url, model="m", max_in_flight=4),
        ],
        prompt="labels",
    )
    prompt = load_prompt("labels")

    async def go():
        client = RoleClient("labels", config, prompt, "h")
        answers = await asyncio.gather(
            *(client.ask(prompt.messages("default", description="d"), LabelsReply) for _ in range(16))
        )
        await client.aclose()
        return answers

    answers = asyncio.run(go())
    assert all(x.ok for x in answers)
    assert len(a.requests) + len(b.requests) == 16 and min(len(a.requests), len(b.requests)) >= 4


def test_a_prose_role_with_beam_search_asks_as_vllm_beam_searches_and_reads_the_prose(scripted):
    """The method's SALMONN decoding: vLLM's beam-search request fields, no JSON schema (vLLM applies none to
    beams), and the model's own words taken as the clue (checked against vLLM 0.32's request fields)."""
    server = scripted([completion("The speaker's voice trembles and rises at the end.")])
    config = RoleConfig(
        endpoints=[Endpoint(base_url=server.url, model="m")],
        prompt="audio_clue",
        reply_format="prose",
        sampling={"beam_width": 4, "length_penalty": 1.0, "max_tokens": 200},
    )
    prompt = load_prompt("audio_clue")

    async def go():
        client = RoleClient("audio_clue", config, prompt, "h")
        try:
            return await client.ask(prompt.messages("without_subtitle"), ClueReply)
        finally:
            await client.aclose()

    answer = asyncio.run(go())
    sent = server.requests[0]
    assert sent["use_beam_search"] is True and sent["n"] == 4 and sent["length_penalty"] == 1.0
    assert "response_format" not in sent and "seed" not in sent and sent["max_tokens"] == 200
    assert answer.ok and answer.value == ClueReply(
        clues="The speaker's voice trembles and rises at the end.", emotional_states=[]
    )


def test_beam_search_without_prose_replies_is_a_configuration_error():
    with pytest.raises(ValueError, match="reply_format"):
        RoleConfig(endpoints=[Endpoint(base_url="http://x/v1", model="m")], sampling={"beam_width": 4})


def test_stop_strings_are_sent_as_the_openai_stop_field(scripted):
    server = scripted([completion('{"labels": []}')])
    ask(server.url, sampling={"stop": ["###"]})
    assert server.requests[0]["stop"] == ["###"]
    server = scripted([completion('{"labels": []}')])
    ask(server.url)
    assert "stop" not in server.requests[0]  # unset: the server's default
