"""The client layer against vLLM's real OpenAI server (tiny random models on the CPU)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from annotators.client import RoleClient
from annotators.media_parts import audio_parts, visual_parts, with_media
from annotators.prompts import load_prompt
from annotators.server import default_vllm_python
from runtime.isolation import IsolatedPool
from schemas.config import Endpoint, MediaConfig, MediaTransport, RoleConfig, Sampling
from schemas.manifest import Subtitles
from schemas.replies import ClueReply, DescriptionReply, LabelsReply
from stages.ingest import probe_clip
from stages.media_prep import MediaPrep
from tests.conftest import served_requests


def role(server, prompt: str, media: MediaTransport = MediaTransport.none, **kw) -> RoleClient:
    model = server.spec.served_model_name
    config = RoleConfig(endpoints=[Endpoint(base_url=server.base_url, model=model)], prompt=prompt, media=media, **kw)
    return RoleClient(prompt, config, load_prompt(prompt), "test")


def run(coro_fn):
    return asyncio.run(coro_fn())


@pytest.fixture(scope="module")
def media(tmp_path_factory, good_clip):
    pool = IsolatedPool(1)
    record = probe_clip(good_clip, Subtitles(), None, 30, -60)
    prepared = asyncio.run(
        MediaPrep(tmp_path_factory.mktemp("m"), MediaConfig(max_frames=3, frame_max_side=160), pool).prepare(
            record, with_audio=True
        )
    )
    pool.close()
    return prepared


def test_structured_replies_validate_and_carry_provenance(servers):
    async def go():
        client = role(servers["text"], "disambiguation")
        prompt = client.prompt
        messages = prompt.messages("default", subtitle="I passed!", audio_clue="bright voice", visual_clue="smile")
        answer = await client.ask(messages, DescriptionReply)
        await client.aclose()
        return answer

    answer = run(go)
    assert answer.ok, answer.error
    assert answer.value.description and answer.value.subtitle_analysis
    call = answer.call
    assert (call.model, call.server, call.finish_reason) == ("tiny-text", servers["text"].base_url, "stop")
    assert call.prompt_version == "1.0.0" and json.loads(call.sampling)["seed"] == 0 and call.prompt_tokens > 50


def test_audio_goes_as_input_audio_and_as_audio_url(servers, media):
    async def go(transport):
        client = role(servers["audio"], "audio_clue", transport)
        messages = with_media(client.prompt.messages("without_subtitle"), audio_parts(client.config, Path(media.wav)))
        answer = await client.ask(messages, ClueReply)
        await client.aclose()
        return answer, messages

    for transport in (MediaTransport.input_audio, MediaTransport.audio_url):
        answer, messages = asyncio.run(go(transport))
        assert messages[-1]["content"][0]["type"] == transport.value
        assert answer.ok, answer.error
        # the audio placeholder expands to the encoder's frames: far more prompt tokens than the text alone
        assert answer.call.prompt_tokens > 150


def test_cut_off_reply_is_an_error_after_re_asks(servers):
    async def go():
        client = role(servers["text"], "labels", sampling=Sampling(max_tokens=2), max_reasks=1)
        answer = await client.ask(client.prompt.messages("default", description="He smiles."), LabelsReply)
        await client.aclose()
        return answer

    before = served_requests(servers["text"])
    answer = run(go)
    assert not answer.ok and "cut off" in answer.error and answer.call.attempts == 2
    assert answer.call.finish_reason == "length" and answer.raw is not None
    assert served_requests(servers["text"]) - before == 2


def test_one_bad_request_does_not_poison_its_batch(servers, media):
    async def go():
        client = role(servers["text"], "visual_clue", MediaTransport.frames)
        good = client.prompt.messages("without_subtitle")
        bad = with_media(good, visual_parts(client.config, [Path(f) for f in media.frames], Path("unused.mp4")))
        answers = await asyncio.gather(*(client.ask(m, ClueReply) for m in [good, bad, good, good]))
        await client.aclose()
        return answers

    answers = run(go)
    assert [a.ok for a in answers] == [True, False, True, True]
    assert "400" in answers[1].error and "not a multimodal model" in answers[1].error


VALIDATE = r"""
import json, sys
from vllm.renderers.chat_utils import _parse_chat_message_content_mm_part
from vllm.multimodal.media import MediaConnector
request = json.load(sys.stdin)
connector = MediaConnector(allowed_local_media_path=request["root"])
out = []
for part in request["parts"]:
    kind, content = _parse_chat_message_content_mm_part(part)
    if kind == "image_url":
        image = connector.fetch_image(content)
        out.append([kind, list(image.size)])
    elif kind == "video_url":
        frames, meta = connector.fetch_video(content)
        out.append([kind, list(frames.shape), meta["total_num_frames"]])
print(json.dumps(out))
"""


@pytest.mark.vllm  # vLLM's own parser, in its environment
@pytest.mark.parametrize(
    "transport,inline",
    [(MediaTransport.frames, True), (MediaTransport.frames, False), (MediaTransport.video_url, False)],
)
def test_visual_parts_are_what_vllm_itself_parses_and_loads(media, good_clip, transport, inline):
    """No vision model serves on this CPU (vLLM needs torchvision for one); the request it would get
    is checked with vLLM's own content-part parser and media loader instead."""
    root = str(Path(media.frames[0]).parents[4]) if not inline else None
    if transport is MediaTransport.video_url:
        root = str(good_clip.parent)
    config = RoleConfig(
        endpoints=[Endpoint(base_url="http://unused/v1", model="m")],
        prompt="visual_clue",
        media=transport,
        media_root=root,
    )
    parts = visual_parts(config, [Path(f) for f in media.frames], good_clip)
    done = subprocess.run(
        [default_vllm_python(), "-c", VALIDATE],
        input=json.dumps({"parts": parts, "root": root or "/"}),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    if transport is MediaTransport.frames:
        assert loaded == [["image_url", [160, 90]]] * len(media.frames)
    else:
        assert loaded[0][0] == "video_url" and loaded[0][1][1:] == [180, 320, 3] and loaded[0][2] > 50


def test_media_outside_the_servers_allowed_path_is_refused_before_sending(media, tmp_path):
    config = RoleConfig(
        endpoints=[Endpoint(base_url="http://unused/v1", model="m")],
        prompt="audio_clue",
        media=MediaTransport.audio_url,
        media_root=str(tmp_path),
    )
    with pytest.raises(ValueError, match="outside media_root"):
        audio_parts(config, Path(media.wav))
