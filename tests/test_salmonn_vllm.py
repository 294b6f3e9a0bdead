"""SALMONN served by vLLM through this project's plugin (issues 6 and 12), on the CPU with tiny random weights.

Specifies that vLLM finds the plugin; that the converter turns checkpoints in the authors' release
layout into one directory (LoRA merged, BEATs' weight norm folded, the placeholder token added), and
accepts the checkpoint as the authors' trainer saves it (runner.save_checkpoint keeps BEATs' shared
relative-position table under layers 1..N) while refusing anything it cannot prove redundant; that the
served model computes what the authors' forward pass computes (tests/reference/salmonn_ref.py:
the same release, unconverted, through transformers' Whisper, Q-Former and Llama with unmerged LoRA,
a fairseq-layout BEATs and torchaudio's Kaldi filter banks); that the audio-clue role gets answers
from it, a re-ask included; that the server's beam search runs over it; and that the build flow runs end
to end with the SALMONN line-up (data/configs/cpu-salmonn.toml).

What the prompt tests are checked against: the authors' prompt as their code builds it (the config's
prompt_template "USER: {}\\nASSISTANT:" filled with "<Speech><SpeechHere></Speech> " + prompt.strip(),
cli_inference.py; the literal strings below), rendered through vLLM's own chat-template code
(parse_chat_messages and safe_apply_chat_template) with both content formats; and, for token ids, the
authors' piecewise rule (prompt_wrap: split at <SpeechHere>, each piece tokenized on its own by the slow
sentencepiece tokenizer) applied with the `sentencepiece` package to the Vicuna-style sentencepiece model
the fake release trains (tests/reference/salmonn_ref.py), never the converted tokenizer. The trainer
layout is checked against runner.save_checkpoint's rule (state_dict() less the frozen named_parameters()).
The model code runs in the vLLM environment (torch), so those checks run there as child processes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from annotators.client import RoleClient
from annotators.media_parts import audio_parts, with_media
from annotators.prompts import load_prompt
from annotators.server import VLLMServer, default_vllm_python
from data import synth_clips as synth
from flows.build_coarse import build_coarse
from runtime.isolation import IsolatedPool
from schemas.config import Endpoint, EngineConfig, MediaConfig, MediaTransport, RoleConfig
from schemas.manifest import Subtitles
from schemas.replies import ClueReply
from stages.ingest import probe_clip
from stages.media_prep import MediaPrep
from tests.conftest import ROOT, free_port, served_requests, write_flow_config

pytestmark = pytest.mark.vllm

SPEC = next(
    s for s in EngineConfig.from_file(ROOT / "data" / "configs" / "cpu-salmonn.toml").servers if s.name == "salmonn"
)
SPEECH_TOKENS = 88  # windows of 17 Whisper frames over 30 s (every clip is padded to 30 s for Whisper)
# Largest |log-prob difference| between the served model and the reference, over every prompt position's
# top-20 tokens and the first generated position; both run in float32 (measured: about 1e-6).
LOGPROB_ATOL = 1e-4


def in_vllm_env(code: str, timeout: float = 300) -> dict:
    """Run `code` with the vLLM environment's Python (torch, transformers, vLLM); it prints one JSON line last."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [default_vllm_python(), "-c", code], env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def salmonn(tmp_path_factory) -> VLLMServer:
    """The cpu-salmonn line-up's SALMONN server: `tiny:salmonn` built (fake release -> converter) and served."""
    server = VLLMServer(SPEC.model_copy(update={"port": free_port()}), tmp_path_factory.mktemp("salmonn"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def wav(tmp_path_factory, good_clip) -> Path:
    """The 16 kHz mono track of a spoken clip, as the engine's media stage writes it."""
    pool = IsolatedPool(1)
    record = probe_clip(good_clip, Subtitles(), None, 30, -60)
    prepared = asyncio.run(
        MediaPrep(tmp_path_factory.mktemp("m"), MediaConfig(max_frames=2, frame_max_side=160), pool).prepare(
            record, with_audio=True
        )
    )
    pool.close()
    return Path(prepared.wav)


def test_vllm_finds_the_plugin_and_both_architectures():
    facts = in_vllm_env(
        "import json\n"
        "from vllm.plugins import load_general_plugins\n"
        "load_general_plugins()\n"
        "from vllm import ModelRegistry\n"
        "from transformers import AutoConfig\n"
        "archs = ModelRegistry.get_supported_archs()\n"
        "print(json.dumps({'archs': [a for a in archs if a.startswith(('Salmonn', 'ChatUniVi'))],"
        " 'salmonn': AutoConfig.for_model('salmonn').model_type,"
        " 'chat_univi': AutoConfig.for_model('chat_univi').model_type}))"
    )
    assert sorted(facts["archs"]) == ["ChatUniViForConditionalGeneration", "SalmonnForConditionalGeneration"]
    assert (facts["salmonn"], facts["chat_univi"]) == ("salmonn", "chat_univi")


CONVERT = r"""
import json, sys, torch
from pathlib import Path
from safetensors.torch import load_file
from transformers import AutoTokenizer
from annotators.vllm_models.fake_release import write_salmonn_release, TINY_QFORMER
from annotators.vllm_models.convert import convert_salmonn
root = Path(sys.argv[1])
paths = write_salmonn_release(root / "release", seed=3)
out = convert_salmonn(
    **paths, out_dir=root / "converted", qformer_heads=TINY_QFORMER["num_attention_heads"], dtype="float32"
)
w = load_file(out / "model.safetensors")
ckpt = torch.load(paths["ckpt"], weights_only=True)["model"]
vicuna = load_file(paths["vicuna"] / "model.safetensors")
beats = torch.load(paths["beats"], weights_only=True)["model"]
lora = "llama_model.base_model.model.model.layers.1.self_attn.{}.lora_{}.default.weight"
q_expected = (
    vicuna["model.layers.1.self_attn.q_proj.weight"]
    + 4.0 * ckpt[lora.format("q_proj", "B")] @ ckpt[lora.format("q_proj", "A")]
)
g, v = beats["encoder.pos_conv.0.weight_g"], beats["encoder.pos_conv.0.weight_v"]
pos_expected = torch._weight_norm(v, g, 2)
cfg = json.loads((out / "config.json").read_text())
tok = AutoTokenizer.from_pretrained(out)
text = tok.apply_chat_template([{"role": "system", "content": "Be brief."}, {"role": "user", "content": [
    {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}, {"type": "text", "text": "Listen."}]}],
    tokenize=False, add_generation_prompt=True)
V = cfg["text_config"]["vocab_size"]
print(json.dumps({
    "q_merged": torch.allclose(w["language_model.model.layers.1.self_attn.q_proj.weight"][:], q_expected, atol=1e-6),
    "k_untouched": torch.equal(w["language_model.model.layers.1.self_attn.k_proj.weight"],
                               vicuna["model.layers.1.self_attn.k_proj.weight"]),
    "pos_conv_folded": torch.allclose(w["beats.encoder.pos_conv.weight"], pos_expected, atol=1e-6),
    "prefixes": sorted({k.split(".")[0] for k in w}),
    "leftovers": [k for k in w
                  if any(s in k for s in ("lora_", "position_ids", "inv_freq", "predictor", "weight_g", "weight_v"))],
    "bias_tables": sorted(k for k in w if "relative_attention_bias" in k),
    "whisper_encoder_keys": sum(k.startswith("speech_encoder.") for k in w),
    "qformer_keys": sorted({k for k in w if k.startswith("speech_Qformer.")}
                           ^ {k for k in ckpt if k.startswith("speech_Qformer.") and not k.endswith("position_ids")}),
    "vocab": V, "vicuna_vocab": vicuna["model.embed_tokens.weight"].shape[0],
    "padded_rows_zero": bool(w["language_model.lm_head.weight"][V - 1].abs().sum() == 0
                             and w["language_model.model.embed_tokens.weight"][V - 1].abs().sum() == 0),
    "speech_id": cfg["speech_token_index"], "speech_token": tok.convert_ids_to_tokens(cfg["speech_token_index"]),
    "arch": cfg["architectures"], "model_type": cfg["model_type"], "qformer": cfg["qformer_config"], "template": text,
    "files": sorted(p.name for p in out.iterdir()),
    "ckpt_entries": sorted(ckpt),
    "ckpt_top": sorted(torch.load(paths["ckpt"], weights_only=True)),
    "redundant": cfg["conversion"]["redundant_entries_dropped"],
}))
"""


def test_converter_turns_the_release_layout_into_one_servable_directory(tmp_path):
    facts = in_vllm_env(CONVERT.replace("sys.argv[1]", repr(str(tmp_path))))
    assert facts["q_merged"] and facts["k_untouched"], "LoRA (alpha 32, rank 8) merged into q_proj/v_proj only"
    assert facts["pos_conv_folded"]
    assert facts["prefixes"] == [
        "beats",
        "language_model",
        "ln_audio",
        "ln_speech",
        "speech_Qformer",
        "speech_encoder",
        "speech_llama_proj",
        "speech_query_tokens",
    ]
    assert facts["leftovers"] == [] and facts["qformer_keys"] == []
    assert facts["bias_tables"] == ["beats.encoder.layers.0.self_attn.relative_attention_bias.weight"]
    assert facts["whisper_encoder_keys"] > 10
    # the placeholder is the first id after Vicuna's vocabulary; its new rows are zeros (masked in the model)
    assert facts["speech_id"] == facts["vicuna_vocab"] == facts["vocab"] - 1 and facts["padded_rows_zero"]
    assert facts["speech_token"] == "<SpeechHere>"
    assert (facts["arch"], facts["model_type"]) == (["SalmonnForConditionalGeneration"], "salmonn")
    assert facts["qformer"]["num_hidden_layers"] == 2 and facts["qformer"]["hidden_size"] == 64
    assert facts["template"] == "<s>USER: <Speech><SpeechHere></Speech> Be brief. Listen.\nASSISTANT:"
    assert {
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "tokenizer.json",
        "generation_config.json",
    } <= set(facts["files"])
    # The release as the authors' trainer saves it (runner.save_checkpoint): no frozen Vicuna, Whisper or BEATs
    # parameter, but BEATs' shared table under layer 1 (named_parameters() lists it once, under layer 0), which
    # the converter accepts as redundant and says so.
    entries = facts["ckpt_entries"]
    assert facts["ckpt_top"] == ["config", "epoch", "model", "optimizer"]
    assert [k for k in entries if k.startswith(("beats.", "speech_encoder."))] == [
        "beats.encoder.layers.1.self_attn.relative_attention_bias.weight"
    ]
    lm = [k for k in entries if k.startswith("llama_model.")]
    assert lm and all("lora_" in k or k.endswith("rotary_emb.inv_freq") for k in lm)  # no frozen Vicuna weight
    assert "speech_Qformer.bert.embeddings.position_ids" in entries
    assert facts["redundant"] == ["beats.encoder.layers.1.self_attn.relative_attention_bias.weight"]


REFUSE = r"""
import json, sys, torch
from pathlib import Path
from annotators.vllm_models.fake_release import write_salmonn_release, TINY_QFORMER
from annotators.vllm_models.convert import convert_salmonn
root = Path(ARGS[0])
paths = write_salmonn_release(root / "release", seed=3)
saved = torch.load(paths["ckpt"], weights_only=True)
table = "beats.encoder.layers.1.self_attn.relative_attention_bias.weight"
cases = {
    "table_differs": {table: saved["model"][table] + 1e-3},
    "other_beats_entry": {"beats.encoder.layers.1.fc1.weight": torch.zeros(128, 64)},
    "unknown_entry": {"something_else.weight": torch.zeros(2)},
}
out = {}
for name, extra in cases.items():
    torch.save({**saved, "model": {**saved["model"], **extra}}, paths["ckpt"])
    try:
        heads = TINY_QFORMER["num_attention_heads"]
        convert_salmonn(**paths, out_dir=root / name, qformer_heads=heads, dtype="float32")
        out[name] = "accepted"
    except (KeyError, ValueError) as exc:
        out[name] = type(exc).__name__ + ": " + str(exc)
print(json.dumps(out))
"""


def test_converter_refuses_checkpoint_entries_it_cannot_prove_redundant(tmp_path):
    facts = in_vllm_env(REFUSE.replace("ARGS", repr([str(tmp_path)])))
    assert facts["table_differs"].startswith("ValueError") and "differs" in facts["table_differs"]
    assert facts["other_beats_entry"].startswith("ValueError")
    assert facts["unknown_entry"].startswith("KeyError") and "unexpected weights" in facts["unknown_entry"]


RENDER = r"""
import base64, io, json, sys
from pathlib import Path
import numpy as np, soundfile as sf
from vllm.plugins import load_general_plugins
load_general_plugins()
from vllm.config import ModelConfig
from vllm.renderers.chat_utils import parse_chat_messages
from vllm.renderers.hf import safe_apply_chat_template
from vllm.tokenizers import get_tokenizer
from annotators.vllm_models.fake_release import write_salmonn_release, TINY_QFORMER
from annotators.vllm_models.convert import convert_salmonn
root = Path(ARGS[0])
paths = write_salmonn_release(root / "release", seed=3)
out = convert_salmonn(**paths, out_dir=root / "converted", qformer_heads=TINY_QFORMER["num_attention_heads"],
                      dtype="float32")
config = ModelConfig(model=str(out), dtype="float32", max_model_len=2048, limit_mm_per_prompt={"audio": 1})
tokenizer = get_tokenizer(str(out))
wav = io.BytesIO()
sf.write(wav, np.zeros(16000, dtype=np.float32), 16000, format="WAV")
audio = {"type": "input_audio", "input_audio": {"data": base64.b64encode(wav.getvalue()).decode(), "format": "wav"}}
def content(text, as_list, media=()):
    return [*media, {"type": "text", "text": text}] if as_list or media else text
rendered = {}
for fmt in ("string", "openai"):
    for as_list in (False, True):
        conversations = {
            "ask": [{"role": "user", "content": content("  What emotion do you hear? ", as_list, [audio])}],
            "two_texts": [{"role": "user", "content": [audio, {"type": "text", "text": "What emotion"},
                                                       {"type": "text", "text": "do you hear?"}]}],
            "reask": [
                {"role": "system", "content": content("Be brief.", as_list)},
                {"role": "user", "content": content("What emotion do you hear?", as_list, [audio])},
                {"role": "assistant", "content": content('{"clues": "', as_list)},
                {"role": "user", "content": content("Answer again, as JSON.", as_list)},
            ],
        }
        for kind, messages in conversations.items():
            conversation, _, _ = parse_chat_messages(messages, config, fmt)
            rendered[f"{fmt}/{'list' if as_list else 'string'}/{kind}"] = safe_apply_chat_template(
                config, tokenizer, conversation, tokenize=False, add_generation_prompt=True)
print(json.dumps(rendered))
"""


def test_chat_template_renders_the_authors_prompt_for_both_content_formats_and_every_role(tmp_path):
    rendered = in_vllm_env(RENDER.replace("ARGS", repr([str(tmp_path)])))
    assert len(rendered) == 12
    authors = "USER: {}\nASSISTANT:"  # configs/decode_config.yaml, prompt_template
    for key, text in rendered.items():
        if key.endswith("/two_texts"):  # text parts joined by newlines, as vLLM's "string" format joins them
            expected = "<s>" + authors.format("<Speech><SpeechHere></Speech> What emotion\ndo you hear?")
        elif key.endswith("/ask"):  # cli_inference.py: "<Speech><SpeechHere></Speech> " + prompt.strip()
            expected = "<s>" + authors.format(
                "<Speech><SpeechHere></Speech> " + "  What emotion do you hear? ".strip()
            )
        else:  # the system text in front of the user's; the past reply ends with </s>; the re-ask is a new turn
            expected = (
                "<s>"
                + authors.format("<Speech><SpeechHere></Speech> Be brief. What emotion do you hear?")
                + ' {"clues": "</s>USER: Answer again, as JSON.\nASSISTANT:'
            )
        assert text == expected, key


KALDI = r"""
import json, numpy as np, torch
from tests.reference.salmonn_ref import torchaudio_kaldi
from annotators.vllm_models.audio_features import kaldi_fbank
kaldi = torchaudio_kaldi()
gen = torch.Generator().manual_seed(0)
worst, shapes = 0.0, []
for n in (400, 16000, 16000 * 3 + 123):
    t = torch.arange(n) / 16000
    w = 0.2 * torch.sin(2 * torch.pi * 180 * t) + 0.05 * torch.randn(n, generator=gen)
    ref = kaldi.fbank(w.unsqueeze(0) * 2**15, num_mel_bins=128, sample_frequency=16000,
                      frame_length=25, frame_shift=10)
    ours = kaldi_fbank(w * 2**15)
    shapes.append([list(ref.shape), list(ours.shape)])
    worst = max(worst, float((ref - ours).abs().max()))
print(json.dumps({"worst": worst, "shapes": shapes}))
"""


def test_beats_filter_banks_match_torchaudio_kaldi():
    facts = in_vllm_env(KALDI)
    assert all(ref == ours for ref, ours in facts["shapes"]) and facts["shapes"][0][0] == [1, 128]
    assert facts["worst"] < 1e-3  # log-mel energies of magnitude ~10-25; float32 rounding only


def chat(server: VLLMServer, wav: Path, **extra) -> dict:
    b64 = base64.b64encode(wav.read_bytes()).decode()
    body = {
        "model": SPEC.served_model_name,
        "temperature": 0,
        "max_tokens": 1,
        **extra,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "input_audio", "input_audio": {"data": b64, "format": "wav"}},
                    {"type": "text", "text": "What emotion do you hear?"},
                ],
            },
        ],
    }
    r = httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=300)
    assert r.status_code == 200, r.text
    return r.json()


REFERENCE = r"""
import json, subprocess, sys, torch
from pathlib import Path
from safetensors.torch import load_file
from annotators.vllm_models.fake_release import write_salmonn_release, TINY_QFORMER
from annotators.vllm_models.convert import convert_salmonn
root, served, wavs = Path(ARGS[0]), Path(ARGS[1]), ARGS[2:]
# The same seed as tiny:salmonn: the served weights must be exactly this release, converted.
paths = write_salmonn_release(root / "release", seed=0)
mine = load_file(convert_salmonn(
    **paths, out_dir=root / "converted", qformer_heads=TINY_QFORMER["num_attention_heads"], dtype="float32"
) / "model.safetensors")
theirs = load_file(served / "model.safetensors")
identical = mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
outs = []
for i, wav in enumerate(wavs):
    out = root / f"ref{i}.json"
    subprocess.run([sys.executable, "-m", "tests.reference.salmonn_ref", "--release", str(root / "release"),
                    "--wav", wav, "--prompt", "Be brief. What emotion do you hear?",
                    "--qformer-heads", str(TINY_QFORMER["num_attention_heads"]), "--out", str(out)], check=True)
    outs.append(str(out))
print(json.dumps({"identical": identical, "outs": outs}))
"""


def test_served_salmonn_computes_the_authors_forward_pass(salmonn, wav, tmp_path):
    reply = chat(salmonn, wav, prompt_logprobs=20, logprobs=True, top_logprobs=20, return_token_ids=True)
    ids, prompt_lp = reply["prompt_token_ids"], reply["prompt_logprobs"]
    silence = synth.silent_clip(tmp_path / "silence.mp4", seconds=3.0)
    silent_wav = tmp_path / "silence.wav"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(silence), "-ac", "1", "-ar", "16000", str(silent_wav)], check=True
    )
    code = REFERENCE.replace("ARGS", repr([str(tmp_path / "ref"), salmonn.model_path(), str(wav), str(silent_wav)]))
    facts = in_vllm_env(code, timeout=600)
    assert facts["identical"], "the served directory is the converted fake release"
    ref = json.loads(Path(facts["outs"][0]).read_text())
    other = json.loads(Path(facts["outs"][1]).read_text())

    # The prompt the server built is the authors' prompt: <s>, "USER: <Speech>", 88 speech slots, the rest.
    speech_id = max(ids)
    assert ref["speech_tokens"] == SPEECH_TOKENS and ids.count(speech_id) == SPEECH_TOKENS
    assert [speech_id if r == -1 else r for r in ref["ids"]] == ids

    worst, compared = 0.0, 0
    for pos in range(1, len(ids)):
        for token, entry in prompt_lp[pos].items():
            if int(token) == speech_id:
                assert entry["logprob"] < -1e3  # the placeholder is never a prediction
                continue
            worst = max(worst, abs(entry["logprob"] - ref["logprobs"][pos - 1][int(token)]))
            compared += 1
    first = reply["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    assert compared > 20 * (len(ids) - 1) * 0.9
    assert worst < LOGPROB_ATOL, worst
    # the first generated token's distribution is the reference's last row
    top_ref = sorted(ref["logprobs"][-1], reverse=True)[:20]
    assert max(abs(a["logprob"] - b) for a, b in zip(first, top_ref)) < LOGPROB_ATOL

    # ... and the audio matters: another clip moves the text positions after the speech far beyond the tolerance.
    after = len(ids) - 10
    moved = max(abs(a - b) for a, b in zip(ref["logprobs"][after], other["logprobs"][after]))
    assert moved > 100 * LOGPROB_ATOL


def role(server: VLLMServer, media: MediaTransport) -> RoleClient:
    config = RoleConfig(
        endpoints=[Endpoint(base_url=server.base_url, model=SPEC.served_model_name)], prompt="audio_clue", media=media
    )
    return RoleClient("audio_clue", config, load_prompt("audio_clue"), "test")


def test_audio_clue_role_asks_salmonn_with_input_audio_and_audio_url(salmonn, wav):
    async def go(transport):
        client = role(salmonn, transport)
        messages = with_media(client.prompt.messages("without_subtitle"), audio_parts(client.config, wav))
        answer = await client.ask(messages, ClueReply)
        await client.aclose()
        return answer, messages

    text_only = chat(salmonn, wav)["usage"]["prompt_tokens"]
    assert text_only > SPEECH_TOKENS
    for transport in (MediaTransport.input_audio, MediaTransport.audio_url):
        answer, messages = asyncio.run(go(transport))
        assert messages[-1]["content"][0]["type"] == transport.value
        assert answer.ok, answer.error
        assert answer.value.clues and answer.call.model == "tiny-salmonn" and answer.call.finish_reason == "stop"
        assert answer.call.prompt_tokens > SPEECH_TOKENS + 50  # 88 speech slots plus the instructions


def test_build_flow_runs_end_to_end_with_the_salmonn_line_up(salmonn, servers, tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "video").mkdir(parents=True)
    synth.talking_clip(corpus / "video" / "sample_00000001.mp4", "I am so happy, I finally passed the exam!")
    synth.talking_clip(corpus / "video" / "sample_00000002.mp4", "Why do you always treat me like this?")
    synth.silent_clip(corpus / "video" / "sample_00000010.mp4")
    synth.write_subtitles(
        corpus / "subtitle_chieng.csv",
        [
            ("sample_00000001", "我终于通过考试了，太开心了！", "I am so happy, I finally passed the exam!"),
            ("sample_00000002", "你为什么总是这样对我？", "Why do you always treat me like this?"),
            ("sample_00000010", "", ""),
        ],
    )
    config = write_flow_config(tmp_path / "engine.toml", {"text": servers["text"], "audio": salmonn})
    config.write_text(config.read_text().replace('model = "tiny-audio"', f'model = "{SPEC.served_model_name}"'))
    before = served_requests(salmonn)
    summary = build_coarse(str(corpus), str(tmp_path / "out"), str(config))
    heard = served_requests(salmonn) - before

    rows = {
        r["name"]: r
        for f in sorted((tmp_path / "out" / "data").glob("*.parquet"))
        for r in pq.read_table(f).to_pylist()
    }
    assert set(rows) == {"sample_00000001", "sample_00000002", "sample_00000010"}
    calls = []
    for name in ("sample_00000001", "sample_00000002"):
        row = rows[name]
        assert (
            row["complete"]
            and row["audio_clue"]["without_subtitle"]["clues"]
            and row["audio_clue"]["with_subtitle"]["clues"]
        )
        audio = [p for p in row["provenance"] if p["stage"] == "audio_clue"]
        assert audio and all(p["model"] == "tiny-salmonn" and p["server"] == salmonn.base_url for p in audio)
        assert all(p["prompt_tokens"] > SPEECH_TOKENS for p in audio)
        calls += audio
    assert rows["sample_00000010"]["audio_clue"] is None  # silent: not sent to SALMONN
    assert heard == sum(p["attempts"] for p in calls) >= 4
    card = (tmp_path / "out" / "README.md").read_text()
    assert "tiny-salmonn" in card and summary["model_calls"] >= heard


REASK_IDS = r"""
import json
from pathlib import Path
import sentencepiece as spm
from annotators.vllm_models.fake_release import write_salmonn_release
root, system, user, reply, reask = Path(ARGS[0]), *ARGS[1:]
paths = write_salmonn_release(root / "release", seed=0)  # tiny:salmonn's seed
sp = spm.SentencePieceProcessor(model_file=str(paths["vicuna"] / "tokenizer.model"))
# prompt_wrap's pieces, each tokenized on its own, the re-ask's turn after </s> another piece (the slow tokenizer
# splits its input at special tokens and encodes each stretch with sentencepiece).
prompt = (system + " " + user.strip()).strip()
ids = ([sp.bos_id()] + sp.encode("USER: <Speech>") + [-1] + sp.encode("</Speech> " + prompt + "\nASSISTANT: " + reply)
       + [sp.eos_id()] + sp.encode("USER: " + reask + "\nASSISTANT:"))
print(json.dumps({"ids": ids}))
"""


def test_a_reask_of_the_audio_clue_role_is_served_token_for_token_as_the_pieces_tokenize(salmonn, wav, tmp_path):
    """The role's system prompt and a re-ask (the previous assistant turn sent back, as list parts under
    --chat-template-content-format openai) reach SALMONN; its ids are the authors' pieces' ids."""
    client = role(salmonn, MediaTransport.input_audio)
    messages = with_media(client.prompt.messages("without_subtitle"), audio_parts(client.config, wav))
    reply, reask = '{"clues": "The', "Your reply was not valid JSON. Answer again with the JSON object only."
    messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": reask}]
    body = {"model": SPEC.served_model_name, "temperature": 0, "max_tokens": 1, "return_token_ids": True}
    r = httpx.post(f"{salmonn.base_url}/chat/completions", json={**body, "messages": messages}, timeout=300)
    assert r.status_code == 200, r.text
    ids = r.json()["prompt_token_ids"]
    speech_id = max(ids)
    assert ids.count(speech_id) == SPEECH_TOKENS
    user = messages[1]["content"][-1]["text"]
    code = REASK_IDS.replace("ARGS", repr([str(tmp_path), client.prompt.system, user, reply, reask]))
    expected = in_vllm_env(code)["ids"]
    first = ids.index(speech_id)
    assert ids[:first] + [-1] + ids[first + SPEECH_TOKENS :] == expected


def test_the_server_beam_searches_salmonn_as_the_method_decodes(salmonn, wav):
    """The authors decode with 4 beams (configs/decode_config.yaml: num_beams 4, do_sample False, length_penalty
    1.0). vLLM's OpenAI server offers it as `use_beam_search` with `n` beams (one request per beam and step);
    one step of 4 beams keeps the 4 likeliest first tokens, best first."""
    greedy = chat(salmonn, wav, logprobs=True, top_logprobs=8, return_tokens_as_token_ids=True)
    top = [
        int(t["token"].removeprefix("token_id:"))
        for t in greedy["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    ]
    beams = chat(salmonn, wav, use_beam_search=True, n=4, length_penalty=1.0, return_token_ids=True)
    assert len(beams["choices"]) == 4
    firsts = [tuple(c["token_ids"]) for c in beams["choices"]]
    eos = 2
    expected = [() if t == eos else (t,) for t in top[:4]]
    assert set(firsts) == set(expected)
    assert firsts[0] == expected[0] or expected[0] == ()
    # ... and it applies no JSON schema: with the role's response_format the beams are the same, where greedy
    # decoding under the same schema starts the JSON object.
    schema = {"response_format": ClueReply.response_format(), "max_tokens": 3, "return_token_ids": True}
    free = chat(salmonn, wav, use_beam_search=True, n=4, **schema | {"response_format": None})
    constrained = chat(salmonn, wav, use_beam_search=True, n=4, **schema)
    assert [c["token_ids"] for c in constrained["choices"]] == [c["token_ids"] for c in free["choices"]]
    assert chat(salmonn, wav, **schema)["choices"][0]["message"]["content"].startswith("{")
