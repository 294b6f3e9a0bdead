"""Configuration classes of the two out-of-tree architectures (transformers only, no vLLM).

vLLM reads a model's `config.json` through transformers' `AutoConfig`; neither `salmonn` nor
`chat_univi` is a transformers model type, so `register()` (annotators/vllm_models/__init__.py)
registers these classes with `AutoConfig` before vLLM loads the directory. The converter writes them.
"""

from __future__ import annotations

from typing import Any

from transformers import CLIPVisionConfig, LlamaConfig, PretrainedConfig, WhisperConfig

__all__ = ["ChatUniViConfig", "SalmonnConfig", "SALMONN_BEATS_DEFAULTS", "SALMONN_QFORMER_DEFAULTS"]

# BEATs_iter3_plus_AS2M (the checkpoint SALMONN uses), as its `cfg` dict reads.
SALMONN_BEATS_DEFAULTS: dict[str, Any] = {
    "input_patch_size": 16,
    "embed_dim": 512,
    "conv_bias": False,
    "encoder_layers": 12,
    "encoder_embed_dim": 768,
    "encoder_ffn_embed_dim": 3072,
    "encoder_attention_heads": 12,
    "activation_fn": "gelu",
    "layer_norm_first": False,
    "deep_norm": True,
    "conv_pos": 128,
    "conv_pos_groups": 16,
    "relative_position_embedding": True,
    "num_buckets": 320,
    "max_distance": 800,
    "gru_rel_pos": True,
}

# SALMONN's Q-Former: bert-base-uncased with 2 layers and cross-attention in every layer.
SALMONN_QFORMER_DEFAULTS: dict[str, Any] = {
    "hidden_size": 768,
    "num_hidden_layers": 2,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-12,
}


def _sub(value: Any, cls: type[PretrainedConfig]) -> PretrainedConfig:
    if value is None:
        return cls()
    return value if isinstance(value, PretrainedConfig) else cls(**value)


class SalmonnConfig(PretrainedConfig):
    """SALMONN: Whisper encoder + BEATs encoder -> window-level Q-Former -> projection -> Vicuna."""

    model_type = "salmonn"
    sub_configs = {"text_config": LlamaConfig, "whisper_config": WhisperConfig}

    def __init__(
        self,
        text_config: dict | LlamaConfig | None = None,
        whisper_config: dict | WhisperConfig | None = None,
        beats_config: dict | None = None,
        qformer_config: dict | None = None,
        num_speech_query_token: int = 1,
        second_per_window: float = 0.333333,
        second_stride: float = 0.333333,
        speech_token_index: int = 32000,
        min_audio_seconds: float = 1.0,
        max_audio_seconds: float = 30.0,
        **kwargs: Any,
    ) -> None:
        self.text_config = _sub(text_config, LlamaConfig)
        self.whisper_config = _sub(whisper_config, WhisperConfig)
        self.beats_config = {**SALMONN_BEATS_DEFAULTS, **(beats_config or {})}
        self.qformer_config = {**SALMONN_QFORMER_DEFAULTS, **(qformer_config or {})}
        self.num_speech_query_token = num_speech_query_token
        self.second_per_window = second_per_window
        self.second_stride = second_stride
        self.speech_token_index = speech_token_index
        self.min_audio_seconds = min_audio_seconds
        self.max_audio_seconds = max_audio_seconds
        super().__init__(**kwargs)

    @property
    def window_frames(self) -> tuple[int, int]:
        """Kernel and stride of the window-level Q-Former in Whisper frames (50 per second)."""
        per_30s = self.whisper_config.max_source_positions
        return round(per_30s * self.second_per_window / 30.0), round(per_30s * self.second_stride / 30.0)

    @property
    def speech_tokens_per_audio(self) -> int:
        """Every clip is padded to 30 s for Whisper: always the same number of windows (88)."""
        kernel, stride = self.window_frames
        return ((self.whisper_config.max_source_positions - kernel) // stride + 1) * self.num_speech_query_token


class ChatUniViConfig(PretrainedConfig):
    """Chat-UniVi: CLIP ViT (penultimate layer) -> dynamic token merging -> projector -> Vicuna."""

    model_type = "chat_univi"
    sub_configs = {"text_config": LlamaConfig, "vision_config": CLIPVisionConfig}

    def __init__(
        self,
        text_config: dict | LlamaConfig | None = None,
        vision_config: dict | CLIPVisionConfig | None = None,
        mm_vision_select_layer: int = -2,
        mm_vision_select_feature: str = "patch",
        mm_projector_type: str = "linear",
        # Chat-UniVi's "model_config" block: cluster counts and k of the DPC-KNN clustering.
        spatial_cluster_rate0: int = 64,
        spatial_cluster_rate1: int = 32,
        spatial_cluster_rate2: int = 16,
        temporal_cluster_rate: float = 1 / 16,
        cluster_knn: int = 5,
        image_token_index: int = 32000,
        video_token_index: int = 32001,
        max_frames: int = 100,
        **kwargs: Any,
    ) -> None:
        self.text_config = _sub(text_config, LlamaConfig)
        self.vision_config = _sub(vision_config, CLIPVisionConfig)
        self.mm_vision_select_layer = mm_vision_select_layer
        self.mm_vision_select_feature = mm_vision_select_feature
        self.mm_projector_type = mm_projector_type
        self.spatial_cluster_rate0 = spatial_cluster_rate0
        self.spatial_cluster_rate1 = spatial_cluster_rate1
        self.spatial_cluster_rate2 = spatial_cluster_rate2
        self.temporal_cluster_rate = temporal_cluster_rate
        self.cluster_knn = cluster_knn
        self.image_token_index = image_token_index
        self.video_token_index = video_token_index
        self.max_frames = max_frames
        super().__init__(**kwargs)

    @property
    def image_tokens(self) -> int:
        """Visual tokens of one image: the three merging steps' outputs, concatenated (64+32+16)."""
        return self.spatial_cluster_rate0 + self.spatial_cluster_rate1 + self.spatial_cluster_rate2
