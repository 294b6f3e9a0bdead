"""Tiny random checkpoints laid out as the authors release SALMONN and Chat-UniVi (for the tests and
`tiny:salmonn`, `tiny:chat_univi`).

The real SALMONN release is a `salmonn_*.pth` written by the authors' trainer (bytedance/SALMONN,
runner.save_checkpoint: {"model": the model's state_dict() less the entries named_parameters() lists as
frozen, "optimizer": ..., "config": ..., "epoch": ...}), on top of a Vicuna directory (Hugging Face Llama
with the sentencepiece tokenizer.model), a Whisper directory (Hugging Face Whisper with its
preprocessor_config.json) and a BEATs `.pt` ({"cfg": ..., "model": ...}, fairseq layout with a
weight-normed positional convolution). The checkpoint here is made the same way: SALMONN's module tree
(`salmonn_module`, BEATs' layers sharing one relative-position module) saved by the trainer's rule
(`trainer_state_dict`), so it keeps what the real one keeps: the trained parts, their buffers and the
shared table under layers 1..N. The tokenizer is a Vicuna-style sentencepiece model trained here (BPE,
byte fallback, dummy prefix). The converter and the parity tests read these files exactly as they would
read the released ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerBase,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperModel,
)

__all__ = [
    "TINY_BEATS",
    "TINY_QFORMER",
    "salmonn_module",
    "trainer_state_dict",
    "write_chat_univi_release",
    "write_salmonn_release",
]

TINY_BEATS = {
    "input_patch_size": 16,
    "embed_dim": 32,
    "conv_bias": False,
    "encoder_layers": 2,
    "encoder_embed_dim": 64,
    "encoder_ffn_embed_dim": 128,
    "encoder_attention_heads": 2,
    "activation_fn": "gelu",
    "layer_norm_first": False,
    "deep_norm": True,
    "conv_pos": 16,
    "conv_pos_groups": 4,
    "relative_position_embedding": True,
    "num_buckets": 320,
    "max_distance": 800,
    "gru_rel_pos": True,
    "finetuned_model": True,
    "predictor_class": 527,
    "dropout": 0.1,
    "attention_dropout": 0.1,
}
TINY_QFORMER = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "layer_norm_eps": 1e-12,
}
LORA_RANK = 8

_CORPUS = [
    '{"clues": "The speaker raises the voice and speaks fast.", "emotional_states": ["anger", "frustration"]}',
    "happy joy excited calm sad lonely angry annoyed afraid nervous surprised neutral worried relief",
    "USER: <Speech></Speech> Listen to this clip and describe the emotion clues in the voice. ASSISTANT:",
    "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the human's questions.###Human: Hi!###Assistant: Hi there! How can I help "
    "you today?###Human: Describe the emotion.###Assistant:",
    "Her voice trembles and the pitch drops at the end of the sentence, which suggests sadness.",
    "0123456789 ,.;:!?'\"()[]{}<>-_/\\",
]


def _vicuna_tokenizer(out_dir: Path, vocab_size: int = 600) -> PreTrainedTokenizerBase:
    """A Vicuna-style sentencepiece tokenizer written to `out_dir` as Vicuna ships one (tokenizer.model and a
    LlamaTokenizer config, no tokenizer.json): BPE with byte fallback (a newline is <0x0A>, as in Vicuna),
    the dummy prefix "▁", whitespace kept as it is, <unk> 0, <s> 1, </s> 2. Returns it loaded by transformers."""
    import io

    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_CORPUS * 4),
        model_writer=model,
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        model_type="bpe",
        byte_fallback=True,
        add_dummy_prefix=True,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        split_digits=True,
        allow_whitespace_only_pieces=True,
        character_coverage=1.0,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "tokenizer.model").write_bytes(model.getvalue())
    config = {
        "tokenizer_class": "LlamaTokenizer",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "add_bos_token": True,
        "add_eos_token": False,
        "model_max_length": 4096,
        "clean_up_tokenization_spaces": False,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (out_dir / "special_tokens_map.json").write_text(
        json.dumps({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}, indent=2)
    )
    return AutoTokenizer.from_pretrained(out_dir)


def _randn(gen: torch.Generator, *shape: int, std: float | None = None) -> torch.Tensor:
    fan_in = shape[-1] if len(shape) > 1 else 1
    return torch.randn(*shape, generator=gen) * (std if std is not None else fan_in**-0.5)


def _norm(gen: torch.Generator, prefix: str, dim: int) -> dict[str, torch.Tensor]:
    return {f"{prefix}.weight": 1 + _randn(gen, dim, std=0.1), f"{prefix}.bias": _randn(gen, dim, std=0.1)}


def _linear(gen: torch.Generator, prefix: str, out: int, inp: int, bias: bool = True) -> dict[str, torch.Tensor]:
    tensors = {f"{prefix}.weight": _randn(gen, out, inp)}
    if bias:
        tensors[f"{prefix}.bias"] = _randn(gen, out, std=0.05)
    return tensors


def beats_state_dict(cfg: dict, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """The BEATs module's state dict (fairseq layout): weight-normed pos_conv, a relative-position
    table that every layer shares (saved under every layer's name), the AudioSet predictor."""
    e, d, f, h = (
        cfg["embed_dim"],
        cfg["encoder_embed_dim"],
        cfg["encoder_ffn_embed_dim"],
        cfg["encoder_attention_heads"],
    )
    k, g, p = cfg["conv_pos"], cfg["conv_pos_groups"], cfg["input_patch_size"]
    sd = {"patch_embedding.weight": _randn(gen, e, 1, p, p, std=(p * p) ** -0.5), **_norm(gen, "layer_norm", e)}
    if e != d:
        sd.update(_linear(gen, "post_extract_proj", d, e))
    sd["encoder.pos_conv.0.bias"] = _randn(gen, d, std=0.05)
    sd["encoder.pos_conv.0.weight_g"] = 0.5 + torch.rand(1, 1, k, generator=gen)
    sd["encoder.pos_conv.0.weight_v"] = _randn(gen, d, d // g, k, std=1.0)
    sd.update(_norm(gen, "encoder.layer_norm", d))
    table = _randn(gen, cfg["num_buckets"], h, std=0.5)
    for i in range(cfg["encoder_layers"]):
        pre = f"encoder.layers.{i}"
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            sd.update(_linear(gen, f"{pre}.self_attn.{proj}", d, d))
        sd[f"{pre}.self_attn.relative_attention_bias.weight"] = table.clone()
        sd.update(_linear(gen, f"{pre}.self_attn.grep_linear", 8, d // h))
        sd[f"{pre}.self_attn.grep_a"] = 1 + _randn(gen, 1, h, 1, 1, std=0.1)
        sd.update(_norm(gen, f"{pre}.self_attn_layer_norm", d))
        sd.update(_linear(gen, f"{pre}.fc1", f, d))
        sd.update(_linear(gen, f"{pre}.fc2", d, f))
        sd.update(_norm(gen, f"{pre}.final_layer_norm", d))
    sd.update(_linear(gen, "predictor", cfg["predictor_class"], d))
    return sd


def salmonn_ckpt_state_dict(
    q: dict,
    enc_width: int,
    whisper_width: int,
    beats_width: int,
    llama: LlamaConfig,
    gen: torch.Generator,
    rank: int = LORA_RANK,
) -> dict[str, torch.Tensor]:
    """The trained parts of SALMONN (Q-Former, query token, projection, the two LayerNorms, Vicuna's LoRA) and
    the buffers among them (the Q-Former's position_ids, Llama's rotary inv_freq), with their module names."""
    h, inter = q["hidden_size"], q["intermediate_size"]
    sd: dict[str, torch.Tensor] = {"speech_Qformer.bert.embeddings.position_ids": torch.arange(512).unsqueeze(0)}
    sd.update(_norm(gen, "speech_Qformer.bert.embeddings.LayerNorm", h))
    for i in range(q["num_hidden_layers"]):
        pre = f"speech_Qformer.bert.encoder.layer.{i}"
        for kind, width in (("attention", h), ("crossattention", enc_width)):
            sd.update(_linear(gen, f"{pre}.{kind}.self.query", h, h))
            sd.update(_linear(gen, f"{pre}.{kind}.self.key", h, width))
            sd.update(_linear(gen, f"{pre}.{kind}.self.value", h, width))
            sd.update(_linear(gen, f"{pre}.{kind}.output.dense", h, h))
            sd.update(_norm(gen, f"{pre}.{kind}.output.LayerNorm", h))
        sd.update(_linear(gen, f"{pre}.intermediate_query.dense", inter, h))
        sd.update(_linear(gen, f"{pre}.output_query.dense", h, inter))
        sd.update(_norm(gen, f"{pre}.output_query.LayerNorm", h))
    sd["speech_query_tokens"] = _randn(gen, 1, 1, h, std=0.5)
    sd.update(_linear(gen, "speech_llama_proj", llama.hidden_size, h))
    sd.update(_norm(gen, "ln_speech", whisper_width))
    sd.update(_norm(gen, "ln_audio", beats_width))
    head_dim = llama.hidden_size // llama.num_attention_heads
    for i in range(llama.num_hidden_layers):
        pre = f"llama_model.base_model.model.model.layers.{i}.self_attn"
        for proj in ("q_proj", "v_proj"):  # peft's default LoRA targets for Llama
            out = llama.hidden_size if proj == "q_proj" else llama.num_key_value_heads * head_dim
            sd[f"{pre}.{proj}.lora_A.default.weight"] = _randn(gen, rank, llama.hidden_size)
            sd[f"{pre}.{proj}.lora_B.default.weight"] = _randn(gen, out, rank, std=0.05)
        sd[f"{pre}.rotary_emb.inv_freq"] = 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim))
    return sd


# --- the authors' trainer ---------------------------------------------------------------------------


def _submodule(root: nn.Module, path: str) -> nn.Module:
    module = root
    for name in path.split(".") if path else []:
        if name not in module._modules:
            module.add_module(name, nn.Module())
        module = module._modules[name]
    return module


def salmonn_module(
    trained: dict[str, torch.Tensor],
    vicuna: dict[str, torch.Tensor],
    whisper_encoder: dict[str, torch.Tensor],
    beats: dict[str, torch.Tensor],
    beats_cfg: dict,
) -> nn.Module:
    """SALMONN's module tree as the authors' model holds it during training: Vicuna under peft's
    `llama_model.base_model.model.` (frozen), the Whisper encoder as `speech_encoder` and BEATs as `beats`
    (both frozen), the trained parts with requires_grad, buffers as buffers. BEATs' layers 1..N hold layer 0's
    relative-position module itself (beats/backbone.py deletes theirs and assigns layer 0's), so the table is
    one parameter under several names, as in the authors' model."""
    root = nn.Module()

    def put(name: str, value: torch.Tensor, trainable: bool, buffer: bool) -> None:
        path, _, leaf = name.rpartition(".")
        module = _submodule(root, path)
        if buffer:
            module.register_buffer(leaf, value.clone())
        else:
            module.register_parameter(leaf, nn.Parameter(value.clone(), requires_grad=trainable))

    for name, value in trained.items():
        put(name, value, trainable=True, buffer=name.endswith(("position_ids", "inv_freq")))
    for name, value in vicuna.items():
        put(f"llama_model.base_model.model.{name}", value, trainable=False, buffer=False)
    for name, value in whisper_encoder.items():
        put(f"speech_encoder.{name}", value, trainable=False, buffer=False)
    table = "encoder.layers.0.self_attn.relative_attention_bias"
    for name, value in beats.items():
        if ".self_attn.relative_attention_bias." in name and not name.startswith(f"{table}."):
            continue
        put(f"beats.{name}", value, trainable=False, buffer=False)
    shared = _submodule(root, f"beats.{table}")
    for i in range(1, beats_cfg["encoder_layers"]):
        _submodule(root, f"beats.encoder.layers.{i}.self_attn").add_module("relative_attention_bias", shared)
    return root


def trainer_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The "model" entry the authors' runner.save_checkpoint writes: the module's state_dict() less every
    entry that named_parameters() lists as frozen. named_parameters() lists a shared parameter once, under
    its first name, while state_dict() lists it under every name, so the names it leaves out stay."""
    requires_grad = {name: p.requires_grad for name, p in model.named_parameters()}
    return {k: v for k, v in model.state_dict().items() if requires_grad.get(k, True)}


def _favour_closing_quotes(lm_head: torch.Tensor, tokenizer: PreTrainedTokenizerBase, factor: float = 4.0) -> None:
    # As annotators/tiny_models.py does for the other tiny models: JSON strings end after a few tokens.
    ids = [i for token, i in tokenizer.get_vocab().items() if token.removeprefix("\u2581").startswith('"')]
    lm_head[ids] *= factor


def write_salmonn_release(root: Path, seed: int = 0) -> dict[str, Path]:
    """Write vicuna/, whisper/, beats.pt and salmonn.pth under `root`; returns their paths."""
    root.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    tokenizer = _vicuna_tokenizer(root / "vicuna")
    llama = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        rms_norm_eps=1e-6,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=False,
        dtype="float32",
    )
    vicuna = LlamaForCausalLM(llama).to(torch.float32)
    with torch.no_grad():
        for name, param in vicuna.named_parameters():  # HF's init leaves norms at 1: randomise them too
            if "norm" in name:
                param.copy_(1 + 0.1 * torch.randn_like(param))
        # Peaked logits (std about 3), then the quote rows boosted: constrained JSON strings end soon.
        vicuna.lm_head.weight.normal_(0.0, 3.0 / llama.hidden_size**0.5, generator=gen)
        _favour_closing_quotes(vicuna.lm_head.weight, tokenizer)
    vicuna.generation_config.eos_token_id = 2
    vicuna.save_pretrained(root / "vicuna")  # beside the tokenizer files, as Vicuna's repo holds them

    whisper_cfg = WhisperConfig(
        num_mel_bins=80,
        d_model=64,
        encoder_layers=1,
        encoder_attention_heads=1,
        encoder_ffn_dim=128,
        decoder_layers=1,
        decoder_attention_heads=1,
        decoder_ffn_dim=128,
        max_source_positions=1500,
        vocab_size=100,
        max_target_positions=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
        dtype="float32",
    )
    whisper = WhisperModel(whisper_cfg).to(torch.float32)
    whisper.save_pretrained(root / "whisper")
    WhisperFeatureExtractor(feature_size=80, sampling_rate=16000).save_pretrained(root / "whisper")

    beats = beats_state_dict(TINY_BEATS, gen)
    torch.save({"cfg": dict(TINY_BEATS), "model": beats}, root / "beats.pt")
    enc_width = whisper_cfg.d_model + TINY_BEATS["encoder_embed_dim"]
    trained = salmonn_ckpt_state_dict(
        TINY_QFORMER, enc_width, whisper_cfg.d_model, TINY_BEATS["encoder_embed_dim"], llama, gen
    )
    model = salmonn_module(trained, vicuna.state_dict(), whisper.encoder.state_dict(), beats, TINY_BEATS)
    torch.save(
        {"model": trainer_state_dict(model), "optimizer": {"state": {}, "param_groups": []}, "config": {}, "epoch": 0},
        root / "salmonn.pth",
    )
    return {
        "ckpt": root / "salmonn.pth",
        "vicuna": root / "vicuna",
        "whisper": root / "whisper",
        "beats": root / "beats.pt",
    }


def write_chat_univi_release(root: Path, seed: int = 0) -> dict[str, Path]:
    """Write a Chat-UniVi repo (config type ChatUniVi, Llama weights with `model.mm_projector.*`) and a
    CLIP ViT directory (224 px, patch 14: 256 patch tokens, as ViT-L/14) under `root`."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    clip_cfg = CLIPVisionConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=2,
        image_size=224,
        patch_size=14,
        projection_dim=32,
    )
    CLIPVisionModel(clip_cfg).to(torch.float32).save_pretrained(root / "clip")
    CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}).save_pretrained(
        root / "clip"
    )

    repo = root / "chat-univi"
    tokenizer = _vicuna_tokenizer(repo)
    llama = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=False,
        dtype="float32",
    )
    vicuna = LlamaForCausalLM(llama).to(torch.float32)
    with torch.no_grad():
        vicuna.lm_head.weight.normal_(0.0, 3.0 / llama.hidden_size**0.5)
        _favour_closing_quotes(vicuna.lm_head.weight, tokenizer)
    vicuna.generation_config.eos_token_id = 2
    vicuna.save_pretrained(repo)
    from safetensors.torch import load_file, save_file

    weights = load_file(repo / "model.safetensors")
    weights["model.mm_projector.weight"] = (
        torch.randn(llama.hidden_size, clip_cfg.hidden_size) * clip_cfg.hidden_size**-0.5
    )
    weights["model.mm_projector.bias"] = torch.randn(llama.hidden_size) * 0.05
    save_file(weights, repo / "model.safetensors", metadata={"format": "pt"})
    cfg = json.loads((repo / "config.json").read_text())
    cfg.update(
        {
            "model_type": "ChatUniVi",
            "architectures": ["ChatUniViLlamaForCausalLM"],
            "mm_vision_tower": "openai/clip-vit-large-patch14",
            "mm_hidden_size": clip_cfg.hidden_size,
            "mm_vision_select_layer": -2,
            "mm_vision_select_feature": "patch",
            "mm_use_im_start_end": False,
            "mm_use_im_patch_token": False,
            "use_mm_proj": True,
            "config": {
                "use_cluster": True,
                "freeze": False,
                "vision_tune": False,
                "spatial_cluster_rate0": 64,
                "spatial_cluster_rate1": 32,
                "spatial_cluster_rate2": 16,
                "temporal_cluster_rate": 0.0625,
            },
        }
    )
    (repo / "config.json").write_text(json.dumps(cfg, indent=2))
    return {"repo": repo, "clip": root / "clip"}
