"""Chat-UniVi through this project's vLLM plugin (issues 6 and 12), on the CPU with tiny random weights.

Specifies that the plugin's token merging computes what the authors' cluster.py / arch.py compute
(tests/reference/chat_univi_ref.py) for images and videos, that the number of placeholder tokens the
processor puts in the prompt is the number of merged tokens the model returns, and that the converter
turns a Chat-UniVi repo (config type ChatUniVi) and a CLIP directory into one loadable directory whose
weight names the model class declares; and that the served model (vLLM's OpenAI server, a `video_url`
part) computes what the authors' forward pass computes over the unconverted release, and answers the
visual-clue role.

What the prompt tests are checked against: the authors' "simple" conversation as ChatUniVi/conversation.py
writes it (simple_conv: its system text, the seed turns "Hi!" / "Hi there! How can I help you today?", sep
"###"; the literal strings below), rendered through vLLM's own chat-template code (parse_chat_messages and
safe_apply_chat_template) with both content formats; and, for token ids, the authors' tokenizer_image_token
rule applied with the `sentencepiece` package to the Vicuna-style sentencepiece model the fake release
trains (tests/reference/chat_univi_ref.py), never the converted tokenizer. The model code runs in the
vLLM environment (torch) as child processes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from annotators.client import RoleClient
from annotators.media_parts import visual_parts, with_media
from annotators.prompts import load_prompt
from annotators.server import VLLMServer, default_vllm_python
from data import synth_clips as synth
from schemas.config import Endpoint, LocalServer, MediaTransport, RoleConfig
from schemas.replies import ClueReply
from tests.conftest import ROOT, free_port

pytestmark = pytest.mark.vllm


def in_vllm_env(code: str, timeout: float = 600) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [default_vllm_python(), "-c", code], env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


MERGING = r"""
import json, torch
from annotators.vllm_models.chat_univi import TokenMerger
from annotators.vllm_models.configs import ChatUniViConfig
from tests.reference import chat_univi_ref as ref
merger = TokenMerger(ChatUniViConfig())
gen = torch.Generator().manual_seed(0)
out = {}
# images: a batch of two frames' CLIP patch tokens (256 at 224 px / patch 14)
feats = torch.randn(2, 256, 48, generator=gen)
mine, theirs = merger.image(feats), ref.project(feats, "image")
noisy = ref.project(feats, "image", noise=1e-6)
out["image"] = [list(mine.shape), list(theirs.shape), float((mine - theirs).abs().max()),
                float((mine - noisy).abs().max())]
# videos: frames drifting through a few scenes, as a clip does
for frames in (3, 17, 40, 100):
    scenes = torch.randn(4, 1, 48, generator=gen) * 3
    video = scenes[torch.arange(frames) * 4 // frames] + torch.randn(frames, 256, 48, generator=gen)
    mine, theirs = merger.video(video), ref.project(video, "video")[0]
    noisy = []
    for seed in ((1, 2, 3, 4) if 16 < frames <= 48 else (1, 2)):
        torch.manual_seed(seed)
        noisy.append(ref.project(video, "video", noise=1e-6)[0])
    out[f"video{frames}"] = [list(mine.shape), list(theirs.shape), float((mine - theirs).abs().max()),
                             max(float((mine - n).abs().max()) for n in noisy),
                             max(float((a - b).abs().max()) for a in noisy for b in noisy),
                             merger.tokens_for_frames(frames)]
# one and two frames go the image way, frame by frame
out["short"] = [merger.tokens_for_frames(1), merger.tokens_for_frames(2)]
print(json.dumps(out))
"""


def test_token_merging_matches_the_authors_clustering_for_images_and_videos():
    facts = in_vllm_env(MERGING)
    mine, theirs, diff, diff_noisy = facts["image"]
    assert mine == theirs == [2, 112, 48] and diff < 1e-5
    assert (
        diff_noisy < 1e-5
    )  # the authors' 1e-6 density noise only breaks exact ties, which random features do not have
    for frames, events in ((3, 1), (17, 2), (40, 3), (100, 7)):  # ceil(T / 16) events of 64 + 32 + 16 tokens
        mine, theirs, diff, diff_noisy, noise_moves, counted = facts[f"video{frames}"]
        assert mine == [events * 112, 48] and theirs == [events * 112, 48], frames
        assert diff < 1e-5, frames  # identical to the authors' algorithm without its tie-breaking noise
        assert counted == events * 112  # what the processor puts in the prompt is what the model returns
        if events == 1:  # clips up to 16 frames (MER clips at 1 frame/s): the noise changes nothing
            assert diff_noisy < 1e-5 and noise_moves < 1e-5, frames
        elif events in (2, 3):
            # A gap in the published model: with 2 or 3 events the temporal step uses k = 1 neighbours, the
            # frame itself, so every density is exp(0) and the authors' U(0, 1e-6) noise alone picks the
            # event centres: their segmentation of a 17-48 frame clip changes from run to run. Ours is fixed.
            assert noise_moves > 1e-3, frames
        # (100 frames: events of ~900 tokens hold density near-ties below 1e-6, so the authors' own output
        # also moves with the noise seed there; ours equals theirs with the noise at zero, checked above.)
    assert facts["short"] == [112, 224]


CONVERT = r"""
import json, sys, torch
from pathlib import Path
from safetensors.torch import load_file
from transformers import AutoTokenizer
from annotators.vllm_models.fake_release import write_chat_univi_release
from annotators.vllm_models.convert import convert_chat_univi
from annotators.vllm_models.configs import ChatUniViConfig
root = Path(ROOT_DIR)
paths = write_chat_univi_release(root / "release")
out = convert_chat_univi(paths["repo"], paths["clip"], root / "converted", dtype="float32")
w = load_file(out / "model.safetensors")
config = ChatUniViConfig.from_pretrained(out)
# the names the vLLM model class declares for its encoder and projector (the LM is vLLM's LlamaForCausalLM)
from transformers import CLIPVisionModel
declared = ({f"vision_tower.{k}" for k in CLIPVisionModel(config.vision_config).state_dict()}
            | {"multi_modal_projector.weight", "multi_modal_projector.bias"})
stored = {k for k in w if not k.startswith("language_model.")}
repo = load_file(paths["repo"] / "model.safetensors")
tok = AutoTokenizer.from_pretrained(out)
text = tok.apply_chat_template([{"role": "user", "content": [{"type": "video_url", "video_url": {"url": "file:///x.mp4"}},
                                                            {"type": "text", "text": "Describe the emotion."}]}],
                               tokenize=False, add_generation_prompt=True)
V = config.text_config.vocab_size
from annotators.vllm_models.chat_univi import build_projector
mlp = sorted(build_projector(ChatUniViConfig(vision_config=config.vision_config, text_config=config.text_config,
                                             mm_projector_type="mlp2x_gelu")).state_dict())
print(json.dumps({
    "mlp2x": mlp,
    "missing": sorted(declared - stored), "unexpected": sorted(stored - declared),
    "projector_same": torch.equal(w["multi_modal_projector.weight"], repo["model.mm_projector.weight"]),
    "lm_keys": sum(k.startswith("language_model.model.layers.") for k in w),
    "lm_head": "language_model.lm_head.weight" in w,
    "ids": [config.image_token_index, config.video_token_index], "vocab": V,
    "repo_vocab": repo["model.embed_tokens.weight"].shape[0],
    "rates": [config.spatial_cluster_rate0, config.spatial_cluster_rate1, config.spatial_cluster_rate2,
              config.temporal_cluster_rate],
    "select": [config.mm_vision_select_layer, config.mm_vision_select_feature], "template": text,
    "model_type": config.model_type, "arch": config.architectures,
}))
"""


def test_converter_writes_a_directory_with_the_names_the_model_class_loads(tmp_path):
    facts = in_vllm_env(CONVERT.replace("ROOT_DIR", repr(str(tmp_path))))
    assert facts["missing"] == [] and facts["unexpected"] == []
    # v1.0 releases use a linear projector; an `mlp2x_gelu` one keeps the authors' Sequential indices
    assert facts["mlp2x"] == ["0.bias", "0.weight", "2.bias", "2.weight"]
    assert facts["projector_same"] and facts["lm_keys"] > 0 and facts["lm_head"]
    assert facts["ids"] == [facts["repo_vocab"], facts["repo_vocab"] + 1] and facts["vocab"] == facts["repo_vocab"] + 2
    assert facts["rates"] == [64, 32, 16, 0.0625] and facts["select"] == [-2, "patch"]
    # the authors' simple_conv (no system message: theirs), the question after the visual marker and a newline
    assert facts["template"] == (
        "<s>" + AUTHORS_SYSTEM + "###" + AUTHORS_SEED + "Human: <video>\nDescribe the emotion.###Assistant:"
    )
    assert (facts["model_type"], facts["arch"]) == ("chat_univi", ["ChatUniViForConditionalGeneration"])


# ChatUniVi/conversation.py, simple_conv, as the authors wrote it.
AUTHORS_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
AUTHORS_SEED = "Human: Hi!###Assistant: Hi there! How can I help you today?###"

RENDER = r"""
import base64, io, json, sys
from pathlib import Path
from PIL import Image
from vllm.plugins import load_general_plugins
load_general_plugins()
from vllm.config import ModelConfig
from vllm.renderers.chat_utils import parse_chat_messages
from vllm.renderers.hf import safe_apply_chat_template
from vllm.tokenizers import get_tokenizer
from annotators.vllm_models.fake_release import write_chat_univi_release
from annotators.vllm_models.convert import convert_chat_univi
root, video = Path(ARGS[0]), ARGS[1]
paths = write_chat_univi_release(root / "release")
out = convert_chat_univi(paths["repo"], paths["clip"], root / "converted", dtype="float32")
config = ModelConfig(model=str(out), dtype="float32", max_model_len=2048, limit_mm_per_prompt={"image": 1, "video": 1})
tokenizer = get_tokenizer(str(out))
png = io.BytesIO()
Image.new("RGB", (32, 24), (200, 30, 30)).save(png, format="PNG")
png = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()
image = {"type": "image_url", "image_url": {"url": png}}
video = "data:video/mp4;base64," + base64.b64encode(Path(video).read_bytes()).decode()
video = {"type": "video_url", "video_url": {"url": video}}
def content(text, as_list, media=()):
    return [*media, {"type": "text", "text": text}] if as_list or media else text
rendered, MEDIA = {}, {"video": {"fps": 1, "num_frames": 100}}
for fmt in ("string", "openai"):
    for as_list in (False, True):
        for name, media in (("image", image), ("video", video)):
            conversations = {
                "ask": [{"role": "user", "content": content("Describe the emotion.", as_list, [media])}],
                "two_texts": [{"role": "user", "content": [media, {"type": "text", "text": "Describe"},
                                                           {"type": "text", "text": "the emotion."}]}],
                "reask": [
                    {"role": "system", "content": content("You are a careful annotator.", as_list)},
                    {"role": "user", "content": content("Describe the emotion.", as_list, [media])},
                    {"role": "assistant", "content": content('{"clues": "', as_list)},
                    {"role": "user", "content": content("Answer again, as JSON.", as_list)},
                ],
            }
            for kind, messages in conversations.items():
                conversation, _, _ = parse_chat_messages(messages, config, fmt, media_io_kwargs=MEDIA)
                rendered[f"{fmt}/{'list' if as_list else 'string'}/{name}/{kind}"] = safe_apply_chat_template(
                    config, tokenizer, conversation, tokenize=False, add_generation_prompt=True)
print(json.dumps(rendered))
"""


def test_chat_template_renders_the_authors_conversation_for_both_content_formats_and_every_role(tmp_path):
    clip = synth.talking_clip(tmp_path / "clip.mp4", "I am so happy today!", seconds=3.0)
    rendered = in_vllm_env(RENDER.replace("ARGS", repr([str(tmp_path), str(clip)])))
    assert len(rendered) == 24
    for key, text in rendered.items():
        fmt, contents, media, kind = key.split("/")
        marker = "<image>" if media == "image" else "<video>"
        if kind == "two_texts":  # text parts joined by newlines, as vLLM's "string" format joins them
            expected = (
                "<s>" + AUTHORS_SYSTEM + "###" + AUTHORS_SEED + f"Human: {marker}\nDescribe\nthe emotion.###Assistant:"
            )
        elif kind == "ask":
            expected = (
                "<s>" + AUTHORS_SYSTEM + "###" + AUTHORS_SEED + f"Human: {marker}\nDescribe the emotion.###Assistant:"
            )
        else:  # the system message replaces simple_conv's system text; the past reply is an "Assistant: ...###" turn
            expected = (
                "<s>You are a careful annotator.###" + AUTHORS_SEED + f"Human: {marker}\nDescribe the emotion.###"
                'Assistant: {"clues": "###Human: Answer again, as JSON.###Assistant:'
            )
        assert text == expected, key


# --- served on the CPU ------------------------------------------------------------------------------
# vLLM's own vision models cannot start here (their processors import torchvision, which cannot load beside
# torch 2.13.0+cpu); this plugin's Chat-UniVi uses transformers' CLIP tower and CLIPImageProcessor (its PIL
# backend), so it serves on the CPU like the audio models, and its video path runs for real.

SPEC = LocalServer(
    name="chat_univi",
    model="tiny:chat_univi",
    port=8000,  # a placeholder: the fixture gives the server a free port
    served_model_name="tiny-chat-univi",
    extra_args=[
        "--dtype",
        "float32",
        "--max-model-len",
        "2048",
        "--max-num-seqs",
        "8",
        "--seed",
        "0",
        "--generation-config",
        "vllm",
        "--structured-outputs-config",
        '{"backend":"xgrammar","disable_any_whitespace":true}',
        "--limit-mm-per-prompt",
        '{"video":1}',
        "--chat-template-content-format",
        "openai",
        "--media-io-kwargs",
        '{"video": {"fps": 1, "num_frames": 100}}',
    ],
    env={"VLLM_CPU_KVCACHE_SPACE": "1"},
)
# Largest |log-prob difference| between the served model and the reference over every prompt position's
# top-20 tokens, both in float32 (measured: about 2e-5; CLIP and the LM run in different kernels).
LOGPROB_ATOL = 2e-4
QUESTION = "Describe the emotion."


@pytest.fixture(scope="module")
def chat_univi(tmp_path_factory) -> VLLMServer:
    server = VLLMServer(SPEC.model_copy(update={"port": free_port()}), tmp_path_factory.mktemp("chat_univi"))
    server.start()
    yield server
    server.stop()


REFERENCE = r"""
import json, subprocess, sys, torch
from pathlib import Path
from safetensors.torch import load_file
from annotators.vllm_models.fake_release import write_chat_univi_release
from annotators.vllm_models.convert import convert_chat_univi
root = Path(ARGS[0])
served = Path(ARGS[1])
video = ARGS[2]
question = ARGS[3]
paths = write_chat_univi_release(root / "release", seed=0)  # tiny:chat_univi's seed
mine = load_file(
    convert_chat_univi(paths["repo"], paths["clip"], root / "converted", dtype="float32") / "model.safetensors"
)
theirs = load_file(served / "model.safetensors")
identical = mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
system = ARGS[4]
subprocess.run([sys.executable, "-m", "tests.reference.chat_univi_ref", "--release", str(root / "release"),
                "--video", video, "--question", question, "--out", str(root / "ref.json"),
                *(["--system", system] if system else [])], check=True)
print(json.dumps({"identical": identical, "out": str(root / "ref.json")}))
"""


@pytest.mark.parametrize(("seconds", "system"), [(3.4, None), (20.0, "You describe emotions in videos.")])
def test_served_chat_univi_computes_the_authors_forward_pass_on_a_video(chat_univi, tmp_path, seconds, system):
    clip = synth.talking_clip(tmp_path / "clip.mp4", "I am so happy today, I finally passed!", seconds=seconds)
    url = "data:video/mp4;base64," + base64.b64encode(clip.read_bytes()).decode()
    body = {
        "model": SPEC.served_model_name,
        "temperature": 0,
        "max_tokens": 1,
        "prompt_logprobs": 20,
        "return_token_ids": True,
        "messages": [
            *([{"role": "system", "content": system}] if system else []),
            {
                "role": "user",
                "content": [{"type": "video_url", "video_url": {"url": url}}, {"type": "text", "text": QUESTION}],
            },
        ],
    }
    r = httpx.post(f"{chat_univi.base_url}/chat/completions", json=body, timeout=300)
    assert r.status_code == 200, r.text
    reply = r.json()
    ids, prompt_lp = reply["prompt_token_ids"], reply["prompt_logprobs"]
    code = REFERENCE.replace(
        "ARGS", repr([str(tmp_path / "ref"), chat_univi.model_path(), clip.as_uri(), QUESTION, system or ""])
    )
    facts = in_vllm_env(code)
    assert facts["identical"], "the served directory is the converted fake release"
    ref = json.loads(Path(facts["out"]).read_text())

    # 1 frame/s (the server's --media-io-kwargs): 3 frames -> one event; about 20 -> two; 112 merged tokens each
    events = 1 if seconds < 16 else 2
    assert int(seconds) - 1 <= ref["frames"] <= int(seconds)
    video_id = max(ids)
    assert ids.count(video_id) == 112 * events
    # The authors' prompt token for token: <s>, their system text (or the request's), "###", the seed turns,
    # "Human: ", the visual tokens, "\n" + question + "###Assistant:", each piece tokenized by sentencepiece on
    # its own (tokenizer_image_token), so "\u2581" starts each piece.
    assert [video_id if r == -1 else r for r in ref["ids"]] == ids
    if system is None:
        assert len(ids) - 112 * events > 60  # simple_conv's system text and the seed turns are there
    worst = max(
        abs(entry["logprob"] - ref["logprobs"][pos - 1][int(token)])
        for pos in range(1, len(ids))
        for token, entry in prompt_lp[pos].items()
        if int(token) < video_id - 1
    )
    assert worst < LOGPROB_ATOL, worst


def test_visual_clue_role_asks_chat_univi_with_a_video(chat_univi, good_clip):
    async def go():
        config = RoleConfig(
            endpoints=[Endpoint(base_url=chat_univi.base_url, model=SPEC.served_model_name)],
            prompt="visual_clue",
            media=MediaTransport.video_url,
        )
        client = RoleClient("visual_clue", config, load_prompt("visual_clue"), "test")
        messages = with_media(client.prompt.messages("without_subtitle"), visual_parts(config, [], good_clip))
        answer = await client.ask(messages, ClueReply)
        await client.aclose()
        return answer

    answer = asyncio.run(go())
    assert answer.ok, answer.error
    assert answer.value.clues and answer.call.model == "tiny-chat-univi" and answer.call.prompt_tokens > 112


REASK_IDS = r"""
import json
from pathlib import Path
import sentencepiece as spm
from annotators.vllm_models.fake_release import write_chat_univi_release
from tests.reference.chat_univi_ref import simple_prompt, tokenizer_image_token, visual_question
root, system, question, reply, reask = Path(ARGS[0]), *ARGS[1:]
paths = write_chat_univi_release(root / "release", seed=0)  # tiny:chat_univi's seed
sp = spm.SentencePieceProcessor(model_file=str(paths["repo"] / "tokenizer.model"))
turns = [("Human", visual_question(question, 1)), ("Assistant", reply), ("Human", reask)]
print(json.dumps({"ids": tokenizer_image_token(simple_prompt(turns, system), sp)}))
"""


def test_a_reask_of_the_visual_clue_role_reaches_chat_univi_as_the_authors_conversation(
    chat_univi, good_clip, tmp_path
):
    """The role's system prompt reaches the model, and a re-ask (the previous assistant turn sent back, as
    list parts under --chat-template-content-format openai) is served, token for token the authors' way."""
    config = RoleConfig(
        endpoints=[Endpoint(base_url=chat_univi.base_url, model=SPEC.served_model_name)],
        prompt="visual_clue",
        media=MediaTransport.video_url,
    )
    prompt = load_prompt("visual_clue")
    messages = with_media(prompt.messages("without_subtitle"), visual_parts(config, [], good_clip))
    reply, reask = '{"clues": "The', "Your reply was not valid JSON. Answer again with the JSON object only."
    messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": reask}]
    body = {"model": SPEC.served_model_name, "temperature": 0, "max_tokens": 1, "return_token_ids": True}
    r = httpx.post(f"{chat_univi.base_url}/chat/completions", json={**body, "messages": messages}, timeout=300)
    assert r.status_code == 200, r.text
    ids = r.json()["prompt_token_ids"]
    video_id = max(ids)
    question = messages[1]["content"][-1]["text"]
    expected = in_vllm_env(REASK_IDS.replace("ARGS", repr([str(tmp_path), prompt.system, question, reply, reask])))[
        "ids"
    ]
    collapsed = [t for i, t in enumerate(ids) if t != video_id or i == 0 or ids[i - 1] != video_id]
    assert [-1 if t == video_id else t for t in collapsed] == expected
    assert ids.count(video_id) % 112 == 0 and ids.count(video_id) > 0
