"""Chat-UniVi as a vLLM model: CLIP ViT-L/14 (penultimate layer, patch tokens), parameter-free dynamic
token merging (DPC-KNN clustering, spatial then temporal), a linear projector, Vicuna.

Registered out of tree by `annotators.vllm_models.register`; loads a directory written by
`annotators.vllm_models.convert chat-univi`. An image becomes 64 + 32 + 16 = 112 merged tokens (three
successive clusterings of CLIP's 256 patch tokens). A video (a `video_url` part; vLLM samples its
frames: serve with `--media-io-kwargs '{"video": {"fps": 1, "num_frames": 100}}'` for the method's
1 frame/s, at most 100) becomes events: the frames' mean features are clustered in time into
ceil(T / 16) events (every DPC-KNN cluster keeps its centre, so the count is exact), and each event's
frames are merged spatially into 112 tokens, as the authors' `project(..., input_type="video")` does;
clips of one or two frames go the image way, frame by frame (the authors' `len(i) > 2` rule).

The merging functions below are pure torch (tests/test_chat_univi.py checks them against a reference
written from the authors' cluster.py); the clustering adds no random noise to the densities (the authors
add U(0, 1e-6) to break ties), so equal densities are broken by token order instead.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn
from transformers import BatchFeature, CLIPImageProcessor, CLIPVisionModel
from vllm.config import VllmConfig
from vllm.config.multimodal import MultiModalDummyOptions
from vllm.inputs import MultiModalDataDict
from vllm.model_executor.models.interfaces import MultiModalEmbeddings, SupportsMultiModal, SupportsPP
from vllm.model_executor.models.utils import AutoWeightsLoader, init_vllm_registered_model, maybe_prefix
from vllm.multimodal import MULTIMODAL_REGISTRY
from vllm.multimodal.inputs import MultiModalFieldConfig, MultiModalKwargsItems
from vllm.multimodal.parse import MultiModalDataItems
from vllm.multimodal.processing import (
    BaseDummyInputsBuilder,
    BaseMultiModalProcessor,
    BaseProcessingInfo,
    PromptReplacement,
    PromptUpdate,
)
from vllm.sequence import IntermediateTensors

from .configs import ChatUniViConfig

IMAGE_PLACEHOLDER, VIDEO_PLACEHOLDER = "<image>", "<video>"


# --- token merging ----------------------------------------------------------------------------------


def dpc_knn(x: torch.Tensor, cluster_num: int, k: int) -> torch.Tensor:
    """Density-peaks clustering with k-nearest-neighbour density: (B, N, C) -> cluster index (B, N)."""
    b, n, c = x.shape
    dist = torch.cdist(x.float(), x.float()) / math.sqrt(c)
    nearest = torch.topk(dist, k=k, dim=-1, largest=False).values
    density = torch.exp(-(nearest**2).mean(dim=-1))
    higher = (density[:, None, :] > density[:, :, None]).float()  # [b, i, j]: j is denser than i
    dist_max = dist.flatten(1).max(dim=-1).values[:, None, None]
    parent_dist = (dist * higher + dist_max * (1 - higher)).min(dim=-1).values
    centres = torch.topk(parent_dist * density, k=cluster_num, dim=-1).indices  # (B, cluster_num)
    to_centre = torch.gather(dist, 1, centres[:, :, None].expand(b, cluster_num, n))  # (B, cluster_num, N)
    idx = to_centre.argmin(dim=1)
    idx.scatter_(
        1, centres, torch.arange(cluster_num, device=x.device).expand(b, cluster_num)
    )  # centres keep their own
    return idx


def merge_clusters(x: torch.Tensor, idx: torch.Tensor, cluster_num: int) -> torch.Tensor:
    """Mean of each cluster's tokens (uniform token weights, the authors' 1e-6 in the denominator)."""
    b, n, c = x.shape
    counts = torch.zeros(b, cluster_num, 1, dtype=x.dtype, device=x.device).scatter_add_(
        1, idx[..., None], x.new_ones(b, n, 1)
    )
    # Weight each token, then sum (the authors' order of operations: the clustering that follows is
    # discrete, and near-ties among a thousand tokens flip on the last bit of a differently rounded mean).
    weights = 1.0 / torch.gather(counts + 1e-6, 1, idx[..., None])
    return torch.zeros(b, cluster_num, c, dtype=x.dtype, device=x.device).scatter_add_(
        1, idx[..., None].expand(b, n, c), x * weights
    )


def cluster_count(n: int, rate: float) -> int:
    return max(math.ceil(rate), 1) if rate > 1 else max(math.ceil(n * rate), 1)


def ctm(x: torch.Tensor, rate: float, k: int) -> torch.Tensor:
    """One clustering-and-merging step (the authors' CTM + TCBlock, which is the identity)."""
    num = cluster_count(x.shape[1], rate)
    k = min(3, max(num // 2, 1)) if k > num else k
    return merge_clusters(x, dpc_knn(x, num, k), num)


class TokenMerger:
    """The three spatial steps (k = 5, 3, 3) and the temporal step (k = 5) of Chat-UniVi."""

    def __init__(self, config: ChatUniViConfig) -> None:
        self.rates = (config.spatial_cluster_rate0, config.spatial_cluster_rate1, config.spatial_cluster_rate2)
        self.temporal = config.temporal_cluster_rate
        self.ks = (5, 3, 3)

    def image(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, N, C) patch features -> (B, 112, C): the three merged levels, concatenated."""
        levels, x = [], feats
        for rate, k in zip(self.rates, self.ks):
            x = ctm(x, rate, k)
            levels.append(x)
        return torch.cat(levels, dim=1)

    def video(self, feats: torch.Tensor) -> torch.Tensor:
        """(T, N, C) frames' patch features, T > 2 -> (events * 112, C)."""
        frame_means = feats.mean(dim=1)[None]  # (1, T, C)
        num = cluster_count(frame_means.shape[1], self.temporal)
        k = min(3, max(num // 2, 1)) if 5 > num else 5
        events: dict[int, list[int]] = {}
        for frame, event in enumerate(dpc_knn(frame_means, num, k)[0].tolist()):
            events.setdefault(event, []).append(frame)  # in order of each event's first frame
        per_frame, x = [], feats
        for rate, k in zip(self.rates, self.ks):
            x = ctm(x, rate, k)
            per_frame.append(x)  # (T, 64|32|16, C)
        out = []
        for frames in events.values():
            for level, (rate, k) in zip(per_frame, zip(self.rates, self.ks)):
                out.append(ctm(level[frames].reshape(1, -1, level.shape[-1]), rate, k)[0])
        return torch.cat(out, dim=0)

    def tokens_for_frames(self, frames: int) -> int:
        per_image = sum(int(r) for r in self.rates)
        return per_image * frames if frames <= 2 else per_image * cluster_count(frames, self.temporal)


def build_projector(config: ChatUniViConfig) -> nn.Module:
    """The authors' `build_vision_projector`: `linear` (the v1.0 releases) or `mlp{N}x_gelu`."""
    vis, hid = config.vision_config.hidden_size, config.text_config.hidden_size
    if config.mm_projector_type == "linear":
        return nn.Linear(vis, hid)
    if m := re.fullmatch(r"mlp(\d+)x_gelu", config.mm_projector_type):
        modules: list[nn.Module] = [nn.Linear(vis, hid)]
        for _ in range(1, int(m[1])):
            modules += [nn.GELU(), nn.Linear(hid, hid)]
        return nn.Sequential(*modules)
    raise ValueError(f"unsupported mm_projector_type {config.mm_projector_type!r}")


# --- vLLM multimodal processing ---------------------------------------------------------------------


class ChatUniViProcessingInfo(BaseProcessingInfo):
    def get_hf_config(self) -> ChatUniViConfig:
        return self.ctx.get_hf_config(ChatUniViConfig)

    def get_image_processor(self) -> CLIPImageProcessor:
        if not hasattr(self, "_image_processor"):
            self._image_processor = CLIPImageProcessor.from_pretrained(self.ctx.model_config.model)
        return self._image_processor

    def get_supported_mm_limits(self) -> Mapping[str, int | None]:
        return {"image": None, "video": None}

    def merger(self) -> TokenMerger:
        return TokenMerger(self.get_hf_config())

    def get_mm_max_tokens_per_item(
        self, seq_len: int, mm_counts: Mapping[str, int] | None = None
    ) -> Mapping[str, int]:
        merger = self.merger()
        return {
            "image": merger.tokens_for_frames(1),
            "video": merger.tokens_for_frames(self.get_hf_config().max_frames),
        }


class ChatUniViDummyInputsBuilder(BaseDummyInputsBuilder[ChatUniViProcessingInfo]):
    def get_dummy_text(self, mm_counts: Mapping[str, int]) -> str:
        return IMAGE_PLACEHOLDER * mm_counts.get("image", 0) + VIDEO_PLACEHOLDER * mm_counts.get("video", 0)

    def get_dummy_mm_data(
        self, seq_len: int, mm_counts: Mapping[str, int], mm_options: MultiModalDummyOptions
    ) -> MultiModalDataDict:
        size = self.info.get_hf_config().vision_config.image_size
        return {
            "image": self._get_dummy_images(
                width=size, height=size, num_images=mm_counts.get("image", 0), overrides=mm_options.get("image")
            ),
            "video": self._get_dummy_videos(
                width=size,
                height=size,
                num_frames=self.info.get_hf_config().max_frames,
                num_videos=mm_counts.get("video", 0),
                overrides=mm_options.get("video"),
            ),
        }


def _video_frames(item) -> np.ndarray:
    frames = item[0] if isinstance(item, tuple) else item  # (frames, metadata) from vLLM's video loader
    return np.asarray(frames)


class ChatUniViMultiModalProcessor(BaseMultiModalProcessor[ChatUniViProcessingInfo]):
    def _call_hf_processor(self, hf_data: Mapping[str, object], hf_kwargs: Mapping[str, object]) -> BatchFeature:
        """CLIP preprocessing (resize 224, centre crop, normalise) of every image and every video frame."""
        proc = self.info.get_image_processor()
        max_frames = self.info.get_hf_config().max_frames
        out: dict[str, torch.Tensor] = {}
        images = hf_data.get("images") or []
        if images:
            out["pixel_values"] = torch.from_numpy(
                np.stack([proc(img, return_tensors="np")["pixel_values"][0] for img in images])
            )
        videos = hf_data.get("videos") or []
        if videos:
            frames, sizes = [], []
            for video in videos:
                arr = _video_frames(video)
                if len(arr) > max_frames:  # the authors' uniform subsampling to max_frames
                    arr = arr[np.linspace(0, len(arr) - 1, num=max_frames, dtype=int)]
                frames.append(proc(list(arr), return_tensors="np")["pixel_values"])
                sizes.append(len(arr))
            out["pixel_values_videos"] = torch.from_numpy(np.concatenate(frames))
            out["video_num_frames"] = torch.tensor(sizes, dtype=torch.long)
        return BatchFeature(out)

    def _get_mm_fields_config(
        self, hf_inputs: BatchFeature, hf_processor_mm_kwargs: Mapping[str, object]
    ) -> Mapping[str, MultiModalFieldConfig]:
        sizes = hf_inputs.get("video_num_frames", torch.empty(0, dtype=torch.long))
        return {
            "pixel_values": MultiModalFieldConfig.batched("image"),
            "pixel_values_videos": MultiModalFieldConfig.flat_from_sizes("video", sizes),
            "video_num_frames": MultiModalFieldConfig.batched("video", keep_on_cpu=True),
        }

    def _get_prompt_updates(
        self,
        mm_items: MultiModalDataItems,
        hf_processor_mm_kwargs: Mapping[str, object],
        out_mm_kwargs: MultiModalKwargsItems,
    ) -> Sequence[PromptUpdate]:
        config, merger = self.info.get_hf_config(), self.info.merger()
        data = out_mm_kwargs.get_data()

        def video_tokens(i: int) -> list[int]:
            return [config.video_token_index] * merger.tokens_for_frames(int(data["video_num_frames"][i]))

        return [
            PromptReplacement(
                modality="image",
                target=[config.image_token_index],
                replacement=[config.image_token_index] * merger.tokens_for_frames(1),
            ),
            PromptReplacement(modality="video", target=[config.video_token_index], replacement=video_tokens),
        ]


# --- the model --------------------------------------------------------------------------------------


@MULTIMODAL_REGISTRY.register_processor(
    ChatUniViMultiModalProcessor, info=ChatUniViProcessingInfo, dummy_inputs=ChatUniViDummyInputsBuilder
)
class ChatUniViForConditionalGeneration(nn.Module, SupportsMultiModal, SupportsPP):
    @classmethod
    def get_placeholder_str(cls, modality: str, i: int) -> str | None:
        if modality.startswith("image"):
            return IMAGE_PLACEHOLDER
        if modality.startswith("video"):
            return VIDEO_PLACEHOLDER
        raise ValueError(f"Chat-UniVi takes images and videos, not {modality}")

    def __init__(self, *, vllm_config: VllmConfig, prefix: str = "") -> None:
        super().__init__()
        config: ChatUniViConfig = vllm_config.model_config.hf_config
        self.config = config
        self.merger = TokenMerger(config)
        with self._mark_tower_model(vllm_config, {"image", "video"}):
            self.vision_tower = CLIPVisionModel(config.vision_config)
            self.multi_modal_projector = build_projector(config)
        with self._mark_language_model(vllm_config):
            self.language_model = init_vllm_registered_model(
                vllm_config=vllm_config,
                hf_config=config.text_config,
                prefix=maybe_prefix(prefix, "language_model"),
                architectures=["LlamaForCausalLM"],
            )
        self.make_empty_intermediate_tensors = self.language_model.make_empty_intermediate_tensors

    def patch_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        dtype = next(self.multi_modal_projector.parameters()).dtype
        out = self.vision_tower(pixel_values.to(dtype), output_hidden_states=True)
        feats = out.hidden_states[self.config.mm_vision_select_layer]
        return feats[:, 1:] if self.config.mm_vision_select_feature == "patch" else feats

    def embed_multimodal(self, **kwargs: object) -> MultiModalEmbeddings:
        out: list[torch.Tensor] = []
        # vLLM orders items by their place in the prompt only per modality; one modality per request here.
        if (pixels := kwargs.get("pixel_values")) is not None:
            feats = self.patch_features(
                torch.as_tensor(pixels) if not isinstance(pixels, list) else torch.stack(pixels)
            )
            out += [self.multi_modal_projector(m) for m in self.merger.image(feats)]
        if (frames := kwargs.get("pixel_values_videos")) is not None:
            sizes = [int(n) for n in kwargs["video_num_frames"]]
            frames = torch.cat(list(frames)) if isinstance(frames, (list, tuple)) else frames
            for video in torch.split(frames, sizes):
                feats = self.patch_features(video)
                merged = self.merger.video(feats) if len(video) > 2 else self.merger.image(feats).flatten(0, 1)
                out.append(self.multi_modal_projector(merged))
        return tuple(out)

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
        if logits is not None:  # <image>, <video>: rows the converter appended, never predictions
            logits[..., [self.config.image_token_index, self.config.video_token_index]] = float("-inf")
        return logits

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        return AutoWeightsLoader(self).load_weights(weights)
