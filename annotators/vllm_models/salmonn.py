"""SALMONN as a vLLM model: Whisper + BEATs side by side, a window-level Q-Former, a projection, Vicuna.

Registered out of tree by `annotators.vllm_models.register` (entry point `vllm.general_plugins`).
It loads a directory written by `annotators.vllm_models.convert salmonn` (LoRA already merged
into the language model) and serves through vLLM's OpenAI server: an `input_audio` / `audio_url`
part of a chat message becomes `<Speech><SpeechHere></Speech>` in the prompt (the converted
tokenizer's chat template, after the authors' "USER: <Speech><SpeechHere></Speech> {prompt}\\nASSISTANT:"),
and vLLM's multimodal processor expands `<SpeechHere>` to one placeholder per Q-Former window
(88 per clip, since every clip is padded to 30 s for Whisper) whose embeddings the audio encoders fill.

The encoders are plain PyTorch modules (they run once per clip); the language model is vLLM's
LlamaForCausalLM with paged attention. Weight names follow the authors' modules (`speech_encoder`,
`beats`, `ln_speech`, `ln_audio`, `speech_Qformer.bert`, `speech_query_tokens`, `speech_llama_proj`),
the language model sits under `language_model.`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import BatchFeature, WhisperFeatureExtractor
from transformers.models.whisper.modeling_whisper import WhisperEncoder
from vllm.config import VllmConfig
from vllm.config.multimodal import MultiModalDummyOptions
from vllm.inputs import MultiModalDataDict
from vllm.model_executor.models.interfaces import MultiModalEmbeddings, SupportsMultiModal, SupportsPP
from vllm.model_executor.models.utils import AutoWeightsLoader, init_vllm_registered_model, maybe_prefix
from vllm.multimodal import MULTIMODAL_REGISTRY
from vllm.multimodal.inputs import MultiModalFieldConfig, MultiModalKwargsItems
from vllm.multimodal.parse import MultiModalDataItems, MultiModalDataParser
from vllm.multimodal.processing import (
    BaseDummyInputsBuilder,
    BaseMultiModalProcessor,
    BaseProcessingInfo,
    PromptReplacement,
    PromptUpdate,
)
from vllm.sequence import IntermediateTensors

from .audio_features import SAMPLE_RATE, kaldi_fbank, prepare_clip
from .configs import SalmonnConfig

SPEECH_PLACEHOLDER = "<SpeechHere>"
# BEATs' filter-bank normalisation (the authors' defaults in BEATs.preprocess).
FBANK_MEAN, FBANK_STD = 15.41663, 6.55582


# --- BEATs ------------------------------------------------------------------------------------------


class BeatsAttention(nn.Module):
    """BEATs self-attention with the gated relative position bias (gru_rel_pos)."""

    def __init__(
        self, dim: int, heads: int, num_buckets: int, max_distance: int, has_bias_table: bool, gru_rel_pos: bool
    ) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.num_buckets, self.max_distance = num_buckets, max_distance
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        if has_bias_table:
            self.relative_attention_bias = nn.Embedding(num_buckets, heads)
        self.gru_rel_pos = gru_rel_pos
        if gru_rel_pos:
            self.grep_linear = nn.Linear(self.head_dim, 8)
            self.grep_a = nn.Parameter(torch.ones(1, heads, 1, 1))

    def position_bias(self, length: int) -> torch.Tensor:
        """(heads, length, length) bias from bidirectional log-spaced relative-position buckets."""
        pos = torch.arange(length, device=self.relative_attention_bias.weight.device)
        rel = pos[None, :] - pos[:, None]
        half = self.num_buckets // 2
        bucket = (rel > 0).long() * half
        rel = rel.abs()
        exact = half // 2
        large = (
            exact
            + (
                torch.log(rel.float().clamp(min=1) / exact) / math.log(self.max_distance / exact) * (half - exact)
            ).long()
        )
        bucket = bucket + torch.where(rel < exact, rel, large.clamp(max=half - 1))
        return self.relative_attention_bias(bucket).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        b, t, d = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        mask = None
        if bias is not None:
            mask = bias.unsqueeze(0).to(q.dtype)
            if self.gru_rel_pos:
                gates = torch.sigmoid(self.grep_linear(q).view(b, self.heads, t, 2, 4).sum(-1))
                gate_a, gate_b = gates.chunk(2, dim=-1)
                mask = (gate_a * (gate_b * self.grep_a - 1.0) + 2.0) * mask
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out_proj(out.transpose(1, 2).reshape(b, t, d))


class BeatsLayer(nn.Module):
    def __init__(self, cfg: Mapping[str, Any], has_bias_table: bool) -> None:
        super().__init__()
        dim = cfg["encoder_embed_dim"]
        self.self_attn = BeatsAttention(
            dim,
            cfg["encoder_attention_heads"],
            cfg["num_buckets"],
            cfg["max_distance"],
            has_bias_table,
            cfg["gru_rel_pos"],
        )
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, cfg["encoder_ffn_embed_dim"])
        self.fc2 = nn.Linear(cfg["encoder_ffn_embed_dim"], dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.alpha = math.pow(2 * cfg["encoder_layers"], 0.25) if cfg["deep_norm"] else 1.0

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        # Post-norm (layer_norm_first = False in every released BEATs), DeepNorm residual scaling.
        x = self.self_attn_layer_norm(x * self.alpha + self.self_attn(x, bias))
        return self.final_layer_norm(x * self.alpha + self.fc2(F.gelu(self.fc1(x))))


class BeatsEncoder(nn.Module):
    """BEATs feature extractor (`extract_features(..., feature_only=True)`), unpadded single clips."""

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        super().__init__()
        if cfg.get("layer_norm_first"):
            raise NotImplementedError("pre-norm BEATs (layer_norm_first) is not a released SALMONN encoder")
        self.cfg = dict(cfg)
        dim, patch = cfg["encoder_embed_dim"], cfg["input_patch_size"]
        self.patch_embedding = nn.Conv2d(1, cfg["embed_dim"], kernel_size=patch, stride=patch, bias=cfg["conv_bias"])
        self.layer_norm = nn.LayerNorm(cfg["embed_dim"])
        self.post_extract_proj = nn.Linear(cfg["embed_dim"], dim) if cfg["embed_dim"] != dim else None
        self.encoder = nn.Module()
        # Weight norm folded by the converter: one plain convolution weight.
        self.encoder.pos_conv = nn.Conv1d(
            dim, dim, cfg["conv_pos"], padding=cfg["conv_pos"] // 2, groups=cfg["conv_pos_groups"]
        )
        self.encoder.layer_norm = nn.LayerNorm(dim)
        rel = cfg["relative_position_embedding"]
        self.encoder.layers = nn.ModuleList(
            BeatsLayer(cfg, has_bias_table=rel and i == 0) for i in range(cfg["encoder_layers"])
        )

    def fbank(self, wav: torch.Tensor) -> torch.Tensor:
        feats = kaldi_fbank(wav.float() * 2**15, num_mel_bins=128, sample_frequency=SAMPLE_RATE)
        return (feats - FBANK_MEAN) / (2 * FBANK_STD)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """(samples,) at 16 kHz -> (patches, encoder_embed_dim); patches are time-major, 8 per 160 ms."""
        dtype = self.patch_embedding.weight.dtype
        fbank = self.fbank(wav).to(dtype)[None, None]
        x = self.patch_embedding(fbank)
        x = self.layer_norm(x.flatten(2).transpose(1, 2))
        if self.post_extract_proj is not None:
            x = self.post_extract_proj(x)
        conv = self.encoder.pos_conv(x.transpose(1, 2))
        if self.cfg["conv_pos"] % 2 == 0:
            conv = conv[:, :, :-1]  # SamePad
        x = self.encoder.layer_norm(x + F.gelu(conv).transpose(1, 2))
        bias = None
        if self.cfg["relative_position_embedding"]:
            bias = self.encoder.layers[0].self_attn.position_bias(x.shape[1])  # shared by every layer
        for layer in self.encoder.layers:
            x = layer(x, bias)
        return x[0]


# --- Q-Former (BLIP-2 / LAVIS BERT layout, query tokens only) ---------------------------------------


class _Attention(nn.Module):
    def __init__(self, hidden: int, heads: int, kv_width: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.self = nn.Module()
        self.self.query = nn.Linear(hidden, hidden)
        self.self.key = nn.Linear(kv_width, hidden)
        self.self.value = nn.Linear(kv_width, hidden)
        self.output = nn.Module()
        self.output.dense = nn.Linear(hidden, hidden)
        self.output.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape
        split = lambda y: y.view(b, y.shape[1], self.heads, h // self.heads).transpose(1, 2)  # noqa: E731
        out = F.scaled_dot_product_attention(
            split(self.self.query(x)), split(self.self.key(kv)), split(self.self.value(kv))
        )
        return self.output.LayerNorm(self.output.dense(out.transpose(1, 2).reshape(b, t, h)) + x)


class _QFormerLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, inter: int, enc_width: int, eps: float) -> None:
        super().__init__()
        self.attention = _Attention(hidden, heads, hidden, eps)
        self.crossattention = _Attention(hidden, heads, enc_width, eps)
        self.intermediate_query = nn.Module()
        self.intermediate_query.dense = nn.Linear(hidden, inter)
        self.output_query = nn.Module()
        self.output_query.dense = nn.Linear(inter, hidden)
        self.output_query.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, enc: torch.Tensor) -> torch.Tensor:
        x = self.attention(x, x)
        x = self.crossattention(x, enc)
        return self.output_query.LayerNorm(self.output_query.dense(F.gelu(self.intermediate_query.dense(x))) + x)


class SpeechQFormer(nn.Module):
    """`speech_Qformer.bert`: query embeddings -> LayerNorm -> layers of self-, cross-attention and FFN."""

    def __init__(self, cfg: Mapping[str, Any], enc_width: int) -> None:
        super().__init__()
        hidden, eps = cfg["hidden_size"], cfg["layer_norm_eps"]
        self.bert = nn.Module()
        self.bert.embeddings = nn.Module()
        self.bert.embeddings.LayerNorm = nn.LayerNorm(hidden, eps=eps)
        self.bert.encoder = nn.Module()
        self.bert.encoder.layer = nn.ModuleList(
            _QFormerLayer(hidden, cfg["num_attention_heads"], cfg["intermediate_size"], enc_width, eps)
            for _ in range(cfg["num_hidden_layers"])
        )

    def forward(self, queries: torch.Tensor, enc: torch.Tensor) -> torch.Tensor:
        x = self.bert.embeddings.LayerNorm(queries)
        for layer in self.bert.encoder.layer:
            x = layer(x, enc)
        return x


# --- vLLM multimodal processing ---------------------------------------------------------------------


def _fields(hf_inputs: Mapping[str, torch.Tensor]) -> Mapping[str, MultiModalFieldConfig]:
    return {
        "input_features": MultiModalFieldConfig.batched("audio"),
        "raw_wav": MultiModalFieldConfig.batched("audio"),
        "raw_wav_len": MultiModalFieldConfig.batched("audio"),
    }


class SalmonnProcessingInfo(BaseProcessingInfo):
    def get_hf_config(self) -> SalmonnConfig:
        return self.ctx.get_hf_config(SalmonnConfig)

    def get_feature_extractor(self) -> WhisperFeatureExtractor:
        # The Whisper checkpoint's preprocessor_config.json, copied by the converter.
        if not hasattr(self, "_feature_extractor"):
            self._feature_extractor = WhisperFeatureExtractor.from_pretrained(self.ctx.model_config.model)
        return self._feature_extractor

    def get_data_parser(self) -> MultiModalDataParser:
        return MultiModalDataParser(
            target_sr=SAMPLE_RATE,
            target_channels=1,
            expected_hidden_size=self._get_expected_hidden_size(),
            allow_missing_mm_embeddings=self.allow_missing_mm_embeddings,
        )

    def get_supported_mm_limits(self) -> Mapping[str, int | None]:
        return {"audio": None}

    def get_mm_max_tokens_per_item(
        self, seq_len: int, mm_counts: Mapping[str, int] | None = None
    ) -> Mapping[str, int]:
        return {"audio": self.get_hf_config().speech_tokens_per_audio}

    def speech_token_id(self) -> int:
        return self.get_hf_config().speech_token_index


class SalmonnDummyInputsBuilder(BaseDummyInputsBuilder[SalmonnProcessingInfo]):
    def get_dummy_text(self, mm_counts: Mapping[str, int]) -> str:
        return f"<Speech>{SPEECH_PLACEHOLDER}</Speech>" * mm_counts.get("audio", 0)

    def get_dummy_mm_data(
        self, seq_len: int, mm_counts: Mapping[str, int], mm_options: MultiModalDummyOptions
    ) -> MultiModalDataDict:
        seconds = self.info.get_hf_config().max_audio_seconds
        return {
            "audio": self._get_dummy_audios(
                length=int(seconds * SAMPLE_RATE),
                num_audios=mm_counts.get("audio", 0),
                overrides=mm_options.get("audio"),
            )
        }


class SalmonnMultiModalProcessor(BaseMultiModalProcessor[SalmonnProcessingInfo]):
    def _call_hf_processor(self, hf_data: Mapping[str, object], hf_kwargs: Mapping[str, object]) -> BatchFeature:
        """What the authors' `prepare_one_sample` does, for each clip: Whisper log-mel of the clip
        padded to 30 s, and the raw samples (padded to 30 s here only to batch; cut back in the model)."""
        config = self.info.get_hf_config()
        extractor = self.info.get_feature_extractor()
        max_len = int(config.max_audio_seconds * SAMPLE_RATE)
        feats, wavs, lens = [], [], []
        for audio in hf_data.get("audio", []):
            clip = prepare_clip(audio, config.min_audio_seconds, config.max_audio_seconds)
            feats.append(extractor(clip, sampling_rate=SAMPLE_RATE, return_tensors="np")["input_features"][0])
            wavs.append(np.pad(clip, (0, max_len - len(clip))))
            lens.append(len(clip))
        return BatchFeature(
            {
                "input_features": torch.from_numpy(np.stack(feats)),
                "raw_wav": torch.from_numpy(np.stack(wavs)),
                "raw_wav_len": torch.tensor(lens, dtype=torch.long),
            }
        )

    def _get_mm_fields_config(
        self, hf_inputs: BatchFeature, hf_processor_mm_kwargs: Mapping[str, object]
    ) -> Mapping[str, MultiModalFieldConfig]:
        return _fields(hf_inputs)

    def _get_prompt_updates(
        self,
        mm_items: MultiModalDataItems,
        hf_processor_mm_kwargs: Mapping[str, object],
        out_mm_kwargs: MultiModalKwargsItems,
    ) -> Sequence[PromptUpdate]:
        token = self.info.speech_token_id()
        count = self.info.get_hf_config().speech_tokens_per_audio
        return [PromptReplacement(modality="audio", target=[token], replacement=[token] * count)]


# --- the model --------------------------------------------------------------------------------------


@MULTIMODAL_REGISTRY.register_processor(
    SalmonnMultiModalProcessor, info=SalmonnProcessingInfo, dummy_inputs=SalmonnDummyInputsBuilder
)
class SalmonnForConditionalGeneration(nn.Module, SupportsMultiModal, SupportsPP):
    @classmethod
    def get_placeholder_str(cls, modality: str, i: int) -> str | None:
        if modality.startswith("audio"):
            return f"<Speech>{SPEECH_PLACEHOLDER}</Speech>"
        raise ValueError("SALMONN takes audio only")

    def __init__(self, *, vllm_config: VllmConfig, prefix: str = "") -> None:
        super().__init__()
        config: SalmonnConfig = vllm_config.model_config.hf_config
        self.config = config
        whisper_width = config.whisper_config.d_model
        beats_width = config.beats_config["encoder_embed_dim"]
        with self._mark_tower_model(vllm_config, "audio"):
            self.speech_encoder = WhisperEncoder(config.whisper_config)
            self.ln_speech = nn.LayerNorm(whisper_width)
            self.beats = BeatsEncoder(config.beats_config)
            self.ln_audio = nn.LayerNorm(beats_width)
            qhidden = config.qformer_config["hidden_size"]
            self.speech_Qformer = SpeechQFormer(config.qformer_config, whisper_width + beats_width)
            self.speech_query_tokens = nn.Parameter(torch.zeros(1, config.num_speech_query_token, qhidden))
            self.speech_llama_proj = nn.Linear(qhidden, config.text_config.hidden_size)
        with self._mark_language_model(vllm_config):
            self.language_model = init_vllm_registered_model(
                vllm_config=vllm_config,
                hf_config=config.text_config,
                prefix=maybe_prefix(prefix, "language_model"),
                architectures=["LlamaForCausalLM"],
            )
        self.make_empty_intermediate_tensors = self.language_model.make_empty_intermediate_tensors

    def encode_audio(self, input_features: torch.Tensor, wav: torch.Tensor) -> torch.Tensor:
        """One clip: (mel_bins, 3000) Whisper features and its raw samples -> (windows, LM hidden)."""
        dtype = self.speech_llama_proj.weight.dtype
        speech = self.speech_encoder(input_features[None].to(dtype)).last_hidden_state[0]
        speech = self.ln_speech(speech)
        audio = self.ln_audio(self.beats(wav))
        # The longer of the two sequences wins; the other is zero-padded (after its LayerNorm).
        length = max(speech.shape[0], audio.shape[0])
        speech = F.pad(speech, (0, 0, 0, length - speech.shape[0]))
        audio = F.pad(audio, (0, 0, 0, length - audio.shape[0]))
        x = torch.cat([speech, audio], dim=-1)
        kernel, stride = self.config.window_frames
        windows = x.unfold(0, kernel, stride).transpose(1, 2)  # (L, kernel, C), as F.unfold in the authors' code
        queries = self.speech_query_tokens.expand(windows.shape[0], -1, -1)
        out = self.speech_llama_proj(self.speech_Qformer(queries, windows))
        return out.reshape(-1, out.shape[-1])

    def embed_multimodal(self, **kwargs: object) -> MultiModalEmbeddings:
        feats = kwargs.pop("input_features", None)
        if feats is None:
            return []
        wavs, lens = kwargs.pop("raw_wav"), kwargs.pop("raw_wav_len")
        return tuple(self.encode_audio(f, w[: int(n)]) for f, w, n in zip(feats, wavs, lens))

    def forward(
        self,
        input_ids: torch.Tensor | None,
        positions: torch.Tensor,
        intermediate_tensors: IntermediateTensors | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: object,
    ) -> torch.Tensor | IntermediateTensors:
        if intermediate_tensors is not None:
            inputs_embeds = None
        return self.language_model.model(input_ids, positions, intermediate_tensors, inputs_embeds=inputs_embeds)

    def compute_logits(self, hidden_states: torch.Tensor) -> torch.Tensor | None:
        logits = self.language_model.compute_logits(hidden_states)
        if logits is not None:
            # <SpeechHere> is a row the converter appended to Vicuna's head: never a token to predict.
            logits[..., self.config.speech_token_index] = float("-inf")
        return logits

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        return AutoWeightsLoader(self).load_weights(weights)
