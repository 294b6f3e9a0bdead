"""Convert the released SALMONN and Chat-UniVi checkpoints into directories the vLLM plugin serves.

    python -m annotators.vllm_models.convert salmonn --ckpt salmonn_v1.pth --vicuna vicuna-13b-v1.1 \\
        --whisper whisper-large-v2 --beats BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt --out salmonn-13b-vllm
    python -m annotators.vllm_models.convert chat-univi --repo Chat-UniVi-7B --clip clip-vit-large-patch14 \\
        --out chat-univi-7b-vllm

Each output directory holds config.json (our architecture name and config type), safetensors shards
with an index, the tokenizer with its placeholder token and chat template (the authors' prompt; string and
list contents for every role), the feature extractor (SALMONN: Whisper's) and generation_config.json. The
tokenizer starts every stretch of text between special tokens with sentencepiece's "\u2581", as the authors'
slow tokenizer starts each piece of their prompt (`piecewise_tokenizer`). The SALMONN checkpoint is read as
the authors' trainer saves it (`redundant_beats_entries`). SALMONN's LoRA (rank 8, alpha 32, on q_proj and
v_proj) is merged into the Vicuna weights: W + (alpha / r) * B @ A. Runs with torch, transformers
and safetensors only (the vLLM environment has them); no GPU needed, memory about twice the model.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, WhisperConfig, WhisperFeatureExtractor

from .configs import SALMONN_BEATS_DEFAULTS, ChatUniViConfig, SalmonnConfig

log = logging.getLogger(__name__)

__all__ = [
    "CHAT_UNIVI_CHAT_TEMPLATE",
    "SALMONN_CHAT_TEMPLATE",
    "convert_chat_univi",
    "convert_salmonn",
    "main",
    "piecewise_tokenizer",
]

SPEECH_TOKEN = "<SpeechHere>"

# Renders a message's content, a string or a list of OpenAI parts (vLLM's "openai" content format), as its text:
# the text parts joined by newlines, as vLLM's "string" content format joins them.
_TEXT_OF = (
    "{%- macro text_of(content) -%}{%- if content is string -%}{{- content -}}{%- elif content -%}"
    "{{- content | selectattr('type', 'equalto', 'text') | map(attribute='text') | join('\\n') -}}"
    "{%- endif -%}{%- endmacro -%}"
)
SALMONN_SPEECH = "<Speech><SpeechHere></Speech>"

# The authors' prompt, "USER: <Speech><SpeechHere></Speech> {prompt.strip()}\nASSISTANT:" (cli_inference.py with
# the config's prompt_template), for OpenAI messages: every audio part becomes the speech marker right after
# "USER: " (vLLM's "string" content format puts it in the text, followed by a newline: it is moved to the same
# place), a system message's text goes in front of the user's text (SALMONN has no system turn), the prompt is
# stripped as the authors strip it, and a past assistant turn ends with </s>. String and list contents render
# the same for every role.
SALMONN_CHAT_TEMPLATE = (
    _TEXT_OF + "{{- bos_token -}}"
    "{%- set ns = namespace(system='') -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}"
    "{%- set ns.system = ns.system + text_of(message['content']) + ' ' -%}"
    "{%- elif message['role'] == 'user' -%}"
    "{{- 'USER: ' -}}"
    "{%- set content = message['content'] -%}"
    "{%- if content is string -%}"
    "{%- if '" + SALMONN_SPEECH + "' in content -%}{{- '" + SALMONN_SPEECH + " ' -}}{%- endif -%}"
    "{%- set text = content.replace('" + SALMONN_SPEECH + "\n', '').replace('" + SALMONN_SPEECH + "', '') -%}"
    "{%- else -%}"
    "{%- for part in content -%}{%- if part['type'] in ['audio', 'audio_url', 'input_audio'] -%}"
    "{{- '" + SALMONN_SPEECH + " ' -}}{%- endif -%}{%- endfor -%}"
    "{%- set text = text_of(content) -%}"
    "{%- endif -%}"
    "{{- (ns.system + (text | trim)) | trim -}}"
    "{%- set ns.system = '' -%}"
    "{{- '\n' -}}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{- 'ASSISTANT: ' + text_of(message['content']) + eos_token -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'ASSISTANT:' -}}{%- endif -%}"
)

_LORA = re.compile(r"^llama_model\.base_model\.model\.(?P<base>.+)\.lora_(?P<ab>[AB])(?:\.default)?\.weight$")
_IGNORED = (
    re.compile(r"\.position_ids$"),  # BERT embedding buffer the authors' save keeps
    re.compile(r"\.rotary_emb\.inv_freq$"),  # Llama rotary buffer the authors' save keeps
)


# --- reading checkpoints ----------------------------------------------------------------------------


def load_hf_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a Hugging Face model directory (safetensors, else PyTorch .bin), shards merged."""
    files = sorted(model_dir.glob("*.safetensors"))
    if files:
        return {k: v for f in files for k, v in load_file(f).items()}
    files = sorted(model_dir.glob("pytorch_model*.bin"))
    if not files:
        raise FileNotFoundError(f"no safetensors or pytorch_model*.bin in {model_dir}")
    return {k: v for f in files for k, v in torch.load(f, map_location="cpu", weights_only=True).items()}


def merge_lora(lm: dict[str, torch.Tensor], adapters: dict[str, torch.Tensor], alpha: float) -> int:
    """Fold peft LoRA pairs into `lm` in place (W += alpha/r * B @ A, in float32); returns how many."""
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in adapters.items():
        m = _LORA.match(key)
        if not m:
            raise KeyError(f"not a LoRA weight: {key}")
        pairs.setdefault(m["base"], {})[m["ab"]] = value
    for base, ab in pairs.items():
        if set(ab) != {"A", "B"}:
            raise KeyError(f"LoRA pair incomplete for {base}: has {sorted(ab)}")
        name = f"{base}.weight"
        if name not in lm:
            raise KeyError(f"LoRA targets {name}, which the language model does not have")
        a, b = ab["A"].float(), ab["B"].float()
        w = lm[name]
        lm[name] = (w.float() + (alpha / a.shape[0]) * (b @ a)).to(w.dtype)
    return len(pairs)


def fold_weight_norm(g: torch.Tensor, v: torch.Tensor, dim: int) -> torch.Tensor:
    """torch.nn.utils.weight_norm's weight: g * v / ||v||, the norm over every axis but `dim`."""
    axes = [i for i in range(v.dim()) if i != dim]
    return g * v / v.norm(dim=axes, keepdim=True)


def convert_beats(sd: dict[str, torch.Tensor], layers: int) -> dict[str, torch.Tensor]:
    """The BEATs checkpoint's encoder in the plugin's layout (predictor dropped, pos_conv folded,
    the shared relative-position table kept once)."""
    out: dict[str, torch.Tensor] = {}
    table = sd.get("encoder.layers.0.self_attn.relative_attention_bias.weight")
    for key, value in sd.items():
        if key.startswith("predictor."):
            continue  # AudioSet classifier head: SALMONN uses the features only
        if key.startswith("encoder.pos_conv.0."):
            continue
        m = re.match(r"encoder\.layers\.(\d+)\.self_attn\.relative_attention_bias\.weight$", key)
        if m and m[1] != "0":
            if not torch.equal(value, table):
                raise ValueError(f"{key} differs from layer 0's table; BEATs shares one table")
            continue
        out[key] = value
    out["encoder.pos_conv.weight"] = fold_weight_norm(
        sd["encoder.pos_conv.0.weight_g"], sd["encoder.pos_conv.0.weight_v"], dim=2
    )
    out["encoder.pos_conv.bias"] = sd["encoder.pos_conv.0.bias"]
    return out


def piecewise_tokenizer(tokenizer):
    """Make `tokenizer` encode each stretch of text between special tokens as the authors' code does.

    The authors tokenize their prompt in pieces around the media placeholder (SALMONN's `prompt_wrap`,
    Chat-UniVi's `tokenizer_image_token`) with the slow sentencepiece LlamaTokenizer of transformers 4.28/4.31,
    which encodes every piece with sentencepiece's dummy prefix: each piece starts with "\u2581". vLLM tokenizes
    the whole rendered prompt at once; with the pre-tokenizer prepending "\u2581" to every stretch between
    special tokens (Metaspace "always", transformers' legacy Llama behaviour) and the templates putting <s> and
    the placeholder token exactly where the authors cut their prompt, the whole prompt's ids are the pieces'."""
    from tokenizers import pre_tokenizers

    backend = getattr(tokenizer, "_tokenizer", None)
    if backend is None or not isinstance(backend.pre_tokenizer, pre_tokenizers.Metaspace):
        raise ValueError(f"expected a sentencepiece (Metaspace) Llama tokenizer, got {type(tokenizer).__name__}")
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=False)
    # transformers 5 rebuilds a Llama tokenizer's pre-tokenizer from `legacy` when it loads one: keep "always".
    tokenizer.legacy = True
    tokenizer.init_kwargs["legacy"] = True
    return tokenizer


def redundant_beats_entries(trained: dict[str, torch.Tensor], beats: dict[str, torch.Tensor]) -> list[str]:
    """The `beats.*` entries of a SALMONN checkpoint that are provably copies of the BEATs checkpoint.

    The authors' runner.save_checkpoint drops the entries `named_parameters()` lists as frozen; BEATs' layers
    share layer 0's relative-position table, which `named_parameters()` lists once and `state_dict()` under
    every layer, so a checkpoint saved that way keeps `beats.encoder.layers.{1..N}...relative_attention_bias`.
    Such an entry is accepted if it equals the shared table and the BEATs checkpoint's own entry; any other
    `beats.*` entry, or one that differs, is refused (ValueError): it would be a BEATs we do not load."""
    table = beats.get("encoder.layers.0.self_attn.relative_attention_bias.weight")
    out = []
    for key in sorted(k for k in trained if k.startswith("beats.")):
        name = key.removeprefix("beats.")
        m = re.fullmatch(r"encoder\.layers\.(\d+)\.self_attn\.relative_attention_bias\.weight", name)
        if not m or m[1] == "0" or table is None:
            raise ValueError(f"{key} in the SALMONN checkpoint is not BEATs' shared relative-position table")
        value = trained[key]
        if not (torch.equal(value, table) and name in beats and torch.equal(value, beats[name])):
            raise ValueError(f"{key} in the SALMONN checkpoint differs from the BEATs checkpoint's shared table")
        out.append(key)
    return out


def qformer_config_from(ckpt: dict[str, torch.Tensor], heads: int) -> dict:
    layers = {int(m[1]) for k in ckpt if (m := re.match(r"speech_Qformer\.bert\.encoder\.layer\.(\d+)\.", k))}
    hidden = ckpt["speech_query_tokens"].shape[-1]
    inter = ckpt["speech_Qformer.bert.encoder.layer.0.intermediate_query.dense.weight"].shape[0]
    return {
        "hidden_size": hidden,
        "num_hidden_layers": len(layers),
        "num_attention_heads": heads,
        "intermediate_size": inter,
        "layer_norm_eps": 1e-12,
    }


# --- writing ----------------------------------------------------------------------------------------


def save_sharded(tensors: dict[str, torch.Tensor], out_dir: Path, shard_bytes: int = 4 << 30) -> None:
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key in sorted(tensors):
        t = tensors[key].contiguous()
        nbytes = t.numel() * t.element_size()
        if shards[-1] and size + nbytes > shard_bytes:
            shards.append({})
            size = 0
        shards[-1][key] = t
        size += nbytes
    if len(shards) == 1:
        save_file(shards[0], out_dir / "model.safetensors", metadata={"format": "pt"})
        return
    weight_map = {}
    for i, shard in enumerate(shards, 1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, out_dir / name, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, name))
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    (out_dir / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2)
    )


def _cast(tensors: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}


def _fresh(out_dir: Path) -> Path:
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    return out_dir


# --- SALMONN ----------------------------------------------------------------------------------------


def convert_salmonn(
    ckpt: Path,
    vicuna: Path,
    whisper: Path,
    beats: Path,
    out_dir: Path,
    *,
    lora_alpha: float = 32.0,
    qformer_heads: int = 12,
    dtype: str = "float16",
) -> Path:
    """One directory with SalmonnForConditionalGeneration: LoRA merged, encoders and Q-Former renamed."""
    ckpt, vicuna, whisper, beats, out_dir = map(Path, (ckpt, vicuna, whisper, beats, out_dir))
    trained = torch.load(ckpt, map_location="cpu", weights_only=True)
    trained = trained.get("model", trained)
    trained = {k: v for k, v in trained.items() if not any(p.search(k) for p in _IGNORED)}

    lm = load_hf_weights(vicuna)
    lora = {k: v for k, v in trained.items() if k.startswith("llama_model.")}
    merged = merge_lora(lm, lora, lora_alpha)
    tensors = {f"language_model.{k}": v for k, v in lm.items() if not k.endswith("rotary_emb.inv_freq")}

    whisper_sd = load_hf_weights(whisper)
    prefix = "model.encoder." if any(k.startswith("model.encoder.") for k in whisper_sd) else "encoder."
    enc = {k.removeprefix(prefix): v for k, v in whisper_sd.items() if k.startswith(prefix)}
    if not enc:
        raise KeyError(f"no Whisper encoder weights in {whisper}")
    tensors.update({f"speech_encoder.{k}": v for k, v in enc.items()})

    beats_ckpt = torch.load(beats, map_location="cpu", weights_only=True)
    beats_cfg = {k: beats_ckpt["cfg"][k] for k in SALMONN_BEATS_DEFAULTS if k in beats_ckpt["cfg"]}
    beats_cfg = {**SALMONN_BEATS_DEFAULTS, **beats_cfg}
    tensors.update(
        {f"beats.{k}": v for k, v in convert_beats(beats_ckpt["model"], beats_cfg["encoder_layers"]).items()}
    )

    redundant = redundant_beats_entries(trained, beats_ckpt["model"])
    if redundant:
        log.info(
            "%s: %d entries equal BEATs' shared relative-position table (the trainer's save keeps them): %s",
            ckpt.name,
            len(redundant),
            ", ".join(redundant),
        )
    rest = {k: v for k, v in trained.items() if not k.startswith("llama_model.") and k not in redundant}
    known = ("speech_Qformer.bert.", "speech_query_tokens", "speech_llama_proj.", "ln_speech.", "ln_audio.")
    unknown = [k for k in rest if not k.startswith(known)]
    if unknown:
        raise KeyError(f"unexpected weights in {ckpt.name}: {unknown[:5]}")
    tensors.update(rest)

    _fresh(out_dir)
    tokenizer = piecewise_tokenizer(AutoTokenizer.from_pretrained(vicuna))
    text_cfg = LlamaConfig.from_pretrained(vicuna)
    # The placeholder is appended after Vicuna's vocabulary; the model never embeds it (vLLM masks it).
    tokenizer.add_special_tokens({"additional_special_tokens": [SPEECH_TOKEN]})
    speech_id = tokenizer.convert_tokens_to_ids(SPEECH_TOKEN)
    if speech_id != text_cfg.vocab_size:
        raise ValueError(
            f"{SPEECH_TOKEN} got id {speech_id}; expected the first id after the LM vocabulary ({text_cfg.vocab_size})"
        )
    # One more row in the embedding table and the LM head, so the placeholder id is inside the model's
    # vocabulary like every token the tokenizer can produce (vLLM gathers prompt logprobs by token id,
    # and sizes structured-output masks by the vocabulary). The embedding row is never read (vLLM puts the
    # audio embeddings there); the model masks the head's row to -inf, so nothing changes for the rest.
    for name in ("language_model.model.embed_tokens.weight", "language_model.lm_head.weight"):
        if name in tensors:
            w = tensors[name]
            tensors[name] = torch.cat([w, w.new_zeros(speech_id + 1 - w.shape[0], w.shape[1])])
    text_cfg.vocab_size = speech_id + 1
    tokenizer.chat_template = SALMONN_CHAT_TEMPLATE
    tokenizer.save_pretrained(out_dir)
    WhisperFeatureExtractor.from_pretrained(whisper).save_pretrained(out_dir)
    try:
        generation = GenerationConfig.from_pretrained(vicuna)
    except OSError:
        generation = GenerationConfig(eos_token_id=text_cfg.eos_token_id)
    generation.save_pretrained(out_dir)

    whisper_cfg = WhisperConfig.from_pretrained(whisper)
    config = SalmonnConfig(
        text_config=text_cfg.to_dict(),
        whisper_config=whisper_cfg.to_dict(),
        beats_config=beats_cfg,
        qformer_config=qformer_config_from(rest, qformer_heads),
        speech_token_index=speech_id,
        architectures=["SalmonnForConditionalGeneration"],
        dtype=dtype,
        conversion={
            "source": ckpt.name,
            "lora_pairs_merged": merged,
            "lora_alpha": lora_alpha,
            "redundant_entries_dropped": redundant,
        },
    )
    config.save_pretrained(out_dir)
    save_sharded(_cast(tensors, getattr(torch, dtype)), out_dir)
    return out_dir


# --- Chat-UniVi -------------------------------------------------------------------------------------

# Chat-UniVi's "simple" conversation (ChatUniVi/conversation.py, simple_conv, which their README's inference code
# uses): the system text, "###", the seed turns ("Human", "Hi!") and ("Assistant", "Hi there! How can I help you
# today?"), then each turn as "{role}: {text}###" (SeparatorStyle.SINGLE) and "Assistant:" to answer. A system
# message replaces the system text; a user turn's visual markers come first, then a newline and its text, as the
# README's `DEFAULT_IMAGE_TOKEN * n + '\n' + qs` (vLLM's "string" content format already writes them so). String and
# list contents render the same for every role.
CHAT_UNIVI_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
CHAT_UNIVI_SEED = "Human: Hi!###Assistant: Hi there! How can I help you today?###"
CHAT_UNIVI_CHAT_TEMPLATE = (
    _TEXT_OF + "{%- set ns = namespace(system='', given=false) -%}"
    "{%- for message in messages -%}{%- if message['role'] == 'system' -%}"
    "{%- set ns.system = (ns.system + ' ' if ns.given else '') + text_of(message['content']) -%}"
    "{%- set ns.given = true -%}{%- endif -%}{%- endfor -%}"
    '{{- bos_token + (ns.system if ns.given else "' + CHAT_UNIVI_SYSTEM + "\") + '###' -}}"
    "{{- '" + CHAT_UNIVI_SEED + "' -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}{{- 'Human: ' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}{%- else -%}"
    "{%- set media = namespace(any=false) -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] in ['image', 'image_url'] -%}{{- '<image>' -}}{%- set media.any = true -%}"
    "{%- elif part['type'] in ['video', 'video_url'] -%}{{- '<video>' -}}{%- set media.any = true -%}"
    "{%- endif -%}{%- endfor -%}"
    "{%- if media.any -%}{{- '\n' -}}{%- endif -%}{{- text_of(message['content']) -}}"
    "{%- endif -%}{{- '###' -}}"
    "{%- elif message['role'] == 'assistant' -%}{{- 'Assistant: ' + text_of(message['content']) + '###' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'Assistant:' -}}{%- endif -%}"
)


def convert_chat_univi(repo: Path, clip: Path, out_dir: Path, *, dtype: str = "bfloat16") -> Path:
    """Chat-UniVi's Hugging Face-style repo (config type ChatUniVi, Llama weights plus `model.mm_projector.*`,
    the CLIP tower named in `mm_vision_tower`) -> one directory with the CLIP tower inside."""
    repo, clip, out_dir = Path(repo), Path(clip), Path(out_dir)
    raw = json.loads((repo / "config.json").read_text())
    weights = load_hf_weights(repo)
    tensors: dict[str, torch.Tensor] = {}
    for key, value in weights.items():
        if key.startswith("model.mm_projector."):
            tensors[key.replace("model.mm_projector.", "multi_modal_projector.", 1)] = value
        elif key.startswith("model.vision_tower."):
            continue  # a copy of CLIP some checkpoints carry; the CLIP directory is authoritative
        elif key.endswith("rotary_emb.inv_freq"):
            continue
        else:
            tensors[f"language_model.{key}"] = value
    clip_sd = load_hf_weights(clip)
    if any(k.startswith("vision_model.") for k in clip_sd):  # a full CLIPModel (openai/clip-vit-large-patch14)
        clip_sd = {k.removeprefix("vision_model."): v for k, v in clip_sd.items() if k.startswith("vision_model.")}
    # transformers' CLIPVisionModel keeps its modules at the top level (embeddings, pre_layrnorm, encoder, ...).
    tensors.update({f"vision_tower.{k}": v for k, v in clip_sd.items() if not k.endswith("position_ids")})

    llama_keys = set(LlamaConfig().to_dict())
    text_cfg = {k: v for k, v in raw.items() if k in llama_keys}
    text_cfg["model_type"] = "llama"
    model_cfg = raw.get("config", {}) or {}
    from transformers import CLIPVisionConfig

    vision_cfg = CLIPVisionConfig.from_pretrained(clip)
    _fresh(out_dir)
    tokenizer = piecewise_tokenizer(AutoTokenizer.from_pretrained(repo))
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>", "<video>"]})
    tokenizer.chat_template = CHAT_UNIVI_CHAT_TEMPLATE
    tokenizer.save_pretrained(out_dir)
    # The authors splice features in at IMAGE_TOKEN_INDEX = -200, never a vocabulary id; here <image> and
    # <video> get the first ids after Vicuna's vocabulary, with zero rows the model masks (as for SALMONN).
    vocab = text_cfg.get("vocab_size", 32000)
    ids = [tokenizer.convert_tokens_to_ids(t) for t in ("<image>", "<video>")]
    if ids != [vocab, vocab + 1]:
        raise ValueError(f"<image>, <video> got ids {ids}; expected {vocab} and {vocab + 1} after the LM vocabulary")
    for name in ("language_model.model.embed_tokens.weight", "language_model.lm_head.weight"):
        if name in tensors:
            w = tensors[name]
            tensors[name] = torch.cat([w, w.new_zeros(vocab + 2 - w.shape[0], w.shape[1])])
    text_cfg["vocab_size"] = vocab + 2
    config = ChatUniViConfig(
        text_config=text_cfg,
        vision_config=vision_cfg.to_dict(),
        mm_vision_select_layer=raw.get("mm_vision_select_layer", -2),
        mm_vision_select_feature=raw.get("mm_vision_select_feature", "patch"),
        mm_projector_type=raw.get("mm_projector_type", "linear"),
        spatial_cluster_rate0=model_cfg.get("spatial_cluster_rate0", 64),
        spatial_cluster_rate1=model_cfg.get("spatial_cluster_rate1", 32),
        spatial_cluster_rate2=model_cfg.get("spatial_cluster_rate2", 16),
        temporal_cluster_rate=model_cfg.get("temporal_cluster_rate", 1 / 16),
        cluster_knn=5,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
        architectures=["ChatUniViForConditionalGeneration"],
        dtype=dtype,
    )
    config.save_pretrained(out_dir)
    from transformers import CLIPImageProcessor

    CLIPImageProcessor.from_pretrained(clip).save_pretrained(out_dir)
    save_sharded(_cast(tensors, getattr(torch, dtype)), out_dir)
    return out_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m annotators.vllm_models.convert", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="model", required=True)
    s = sub.add_parser("salmonn", help="salmonn_*.pth + Vicuna + Whisper + BEATs -> one directory")
    s.add_argument("--ckpt", required=True, type=Path)
    s.add_argument("--vicuna", required=True, type=Path)
    s.add_argument("--whisper", required=True, type=Path)
    s.add_argument("--beats", required=True, type=Path)
    s.add_argument("--out", required=True, type=Path)
    s.add_argument(
        "--lora-alpha", type=float, default=32.0, help="the training config's lora_alpha (32 in the release)"
    )
    s.add_argument("--qformer-heads", type=int, default=12, help="bert-base-uncased: 12")
    s.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    c = sub.add_parser("chat-univi", help="Chat-UniVi repo + CLIP ViT-L/14 -> one directory")
    c.add_argument("--repo", required=True, type=Path)
    c.add_argument("--clip", required=True, type=Path)
    c.add_argument("--out", required=True, type=Path)
    # The authors' README runs Chat-UniVi in bfloat16 (every module cast with .to(torch.bfloat16)).
    c.add_argument("--dtype", default="bfloat16", choices=["float16", "bfloat16", "float32"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.model == "salmonn":
        out = convert_salmonn(
            args.ckpt,
            args.vicuna,
            args.whisper,
            args.beats,
            args.out,
            lora_alpha=args.lora_alpha,
            qformer_heads=args.qformer_heads,
            dtype=args.dtype,
        )
    else:
        out = convert_chat_univi(args.repo, args.clip, args.out, dtype=args.dtype)
    print(out)


if __name__ == "__main__":
    main()
