"""Plain PyTorch reference of Chat-UniVi's visual token merging, for the tests only.

Written after the authors' `ChatUniVi/model/cluster.py` (`cluster_dpc_knn`, `merge_tokens`, `CTM`;
`TCBlock` is the identity there) and `arch.py` (`project`, image and video paths): token dicts,
`index_points`, `index_add_`, the events built in an OrderedDict. `noise` is the authors' U(0, 1e-6)
added to the densities to break ties (0 makes it deterministic).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch


def index_points(points, idx):
    b = points.shape[0]
    view_shape = list(idx.shape)
    view_shape[1:] = [1] * (len(view_shape) - 1)
    repeat_shape = list(idx.shape)
    repeat_shape[0] = 1
    batch_indices = torch.arange(b, dtype=torch.long).view(view_shape).repeat(repeat_shape)
    return points[batch_indices, idx, :]


def cluster_dpc_knn(token_dict, cluster_num, k=5, noise=0.0, generator=None):
    with torch.no_grad():
        x = token_dict["x"]
        B, N, C = x.shape
        dist_matrix = torch.cdist(x.float(), x.float()) / (C**0.5)
        dist_nearest, index_nearest = torch.topk(dist_matrix, k=k, dim=-1, largest=False)
        density = (-(dist_nearest**2).mean(dim=-1)).exp()
        density = density + torch.rand(density.shape, generator=generator, dtype=density.dtype) * noise
        mask = density[:, None, :] > density[:, :, None]
        mask = mask.type(x.dtype)
        dist_max = dist_matrix.flatten(1).max(dim=-1)[0][:, None, None]
        dist, index_parent = (dist_matrix * mask + dist_max * (1 - mask)).min(dim=-1)
        score = dist * density
        _, index_down = torch.topk(score, k=cluster_num, dim=-1)
        dist_matrix = index_points(dist_matrix, index_down)
        idx_cluster = dist_matrix.argmin(dim=1)
        idx_batch = torch.arange(B)[:, None].expand(B, cluster_num)
        idx_tmp = torch.arange(cluster_num)[None, :].expand(B, cluster_num)
        idx_cluster[idx_batch.reshape(-1), index_down.reshape(-1)] = idx_tmp.reshape(-1)
    return idx_cluster, cluster_num


def merge_tokens(token_dict, idx_cluster, cluster_num, token_weight):
    x, idx_token, agg_weight = token_dict["x"], token_dict["idx_token"], token_dict["agg_weight"]
    B, N, C = x.shape
    idx_batch = torch.arange(B)[:, None]
    idx = idx_cluster + idx_batch * cluster_num
    all_weight = token_weight.new_zeros(B * cluster_num, 1)
    all_weight.index_add_(dim=0, index=idx.reshape(B * N), source=token_weight.reshape(B * N, 1))
    all_weight = all_weight + 1e-6
    norm_weight = token_weight / all_weight[idx]
    x_merged = x.new_zeros(B * cluster_num, C)
    source = x * norm_weight
    x_merged.index_add_(dim=0, index=idx.reshape(B * N), source=source.reshape(B * N, C).type(x.dtype))
    x_merged = x_merged.reshape(B, cluster_num, C)
    idx_token_new = index_points(idx_cluster[..., None], idx_token).squeeze(-1)
    weight_t = index_points(norm_weight, idx_token)
    return {
        "x": x_merged,
        "token_num": cluster_num,
        "idx_token": idx_token_new,
        "agg_weight": agg_weight * weight_t,
        "mask": None,
    }


class CTM:
    def __init__(self, sample_ratio, k, noise=0.0):
        self.sample_ratio, self.k, self.noise = sample_ratio, k, noise

    def __call__(self, token_dict):
        x = token_dict["x"]
        B, N, C = x.shape
        token_weight = x.new_ones(B, N).unsqueeze(2)
        if self.sample_ratio > 1:
            cluster_num = max(math.ceil(self.sample_ratio), 1)
        else:
            cluster_num = max(math.ceil(N * self.sample_ratio), 1)
        k = min(3, max(cluster_num // 2, 1)) if self.k > cluster_num else self.k
        idx_cluster, cluster_num = cluster_dpc_knn(token_dict, cluster_num, k, self.noise)
        return merge_tokens(token_dict, idx_cluster, cluster_num, token_weight), token_dict


def block(inputs):  # TCBlock: returns the merged (query) dict
    return inputs[0]


def new_dict(x):
    return {
        "x": x,
        "token_num": x.size(1),
        "idx_token": torch.arange(x.size(1))[None, :].repeat(x.size(0), 1),
        "agg_weight": x.new_ones(x.size(0), x.size(1), 1),
        "mask": None,
    }


def project(image_features, input_type, rates=(64, 32, 16), temporal=1 / 16, noise=0.0):
    """The authors' `project` before the projector: (T or B, N, C) -> merged features."""
    ctm0, ctm1, ctm2 = CTM(rates[0], 5, noise), CTM(rates[1], 3, noise), CTM(rates[2], 3, noise)
    ctm3 = CTM(temporal, 5, noise)
    if input_type == "image":
        out = []
        d = block(ctm0(new_dict(image_features)))
        out.append(d["x"])
        d = block(ctm1(d))
        out.append(d["x"])
        d = block(ctm2(d))
        out.append(d["x"])
        return torch.cat(out, dim=1)
    cls_features = torch.mean(image_features, dim=1, keepdim=False).unsqueeze(0).clone()
    down_dict, _ = ctm3(new_dict(cls_features))
    events = OrderedDict()
    for i_frame, i in enumerate(down_dict["idx_token"][0].tolist()):
        events.setdefault(i, []).append(i_frame)
    d0 = block(ctm0(new_dict(image_features)))
    d1 = block(ctm1(d0))
    d2 = block(ctm2(d1))
    out = []
    for key in events:
        for level, step in ((d0, ctm0), (d1, ctm1), (d2, ctm2)):
            cur = torch.cat([level["x"][i] for i in events[key]], dim=0).unsqueeze(0)
            out.append(block(step(new_dict(cur)))["x"])
    return torch.cat(out, dim=1)


# --- the whole model --------------------------------------------------------------------------------


# ChatUniVi/conversation.py, simple_conv (conv_templates["simple"], the README's conv_mode): system, roles Human and
# Assistant, the seed turns, SeparatorStyle.SINGLE with sep "###".
SIMPLE_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
SIMPLE_SEED = (("Human", "Hi!"), ("Assistant", "Hi there! How can I help you today?"))


def simple_prompt(turns, system: str = SIMPLE_SYSTEM) -> str:
    """Conversation.get_prompt() for SINGLE after the seed turns and `turns` ((role, message) pairs): system +
    sep, then "role: message" + sep per turn, and "Assistant:" for the turn to answer."""
    turns = [*SIMPLE_SEED, *turns]
    return system + "###" + "".join(f"{role}: {message}###" for role, message in turns) + "Assistant:"


def visual_question(question: str, images: int) -> str:
    """The README's user turn: `DEFAULT_IMAGE_TOKEN * n + '\\n' + qs`."""
    return "<image>" * images + "\n" + question


def tokenizer_image_token(prompt: str, sp) -> list[int]:
    """The authors' mm_utils.tokenizer_image_token with their slow LlamaTokenizer (transformers 4.31): the prompt
    split at <image>, each chunk tokenized with BOS (`tokenizer(chunk)`) and the BOS dropped from every chunk but
    kept once in front, -1 (their IMAGE_TOKEN_INDEX) between chunks. The slow tokenizer's `_tokenize` is
    sentencepiece's encode of the chunk, dummy prefix included, so each chunk starts with "\u2581": here the
    `sentencepiece` package's encode of the release's tokenizer.model."""
    chunks = [sp.encode(chunk) for chunk in prompt.split("<image>")]
    ids = [sp.bos_id()]
    for i, chunk in enumerate(chunks):
        if i:
            ids.append(-1)
        ids.extend(chunk)
    return ids


class ReferenceChatUniVi:
    """Chat-UniVi's forward pass over the unconverted release: transformers' CLIP vision tower (hidden
    state -2, patch tokens), `project` above, the `mm_projector`, LlamaForCausalLM on inputs_embeds; the
    prompt is the authors' simple conversation, tokenized as their `tokenizer_image_token` does."""

    def __init__(self, release):
        from pathlib import Path

        from safetensors.torch import load_file
        from transformers import CLIPImageProcessor, CLIPVisionModel, LlamaForCausalLM

        repo, clip = Path(release) / "chat-univi", Path(release) / "clip"
        import sentencepiece as spm

        self.sentencepiece = spm.SentencePieceProcessor(model_file=str(repo / "tokenizer.model"))
        self.llama = LlamaForCausalLM.from_pretrained(repo, dtype=torch.float32).eval()
        self.clip = CLIPVisionModel.from_pretrained(clip, dtype=torch.float32).eval()
        self.processor = CLIPImageProcessor.from_pretrained(clip)
        weights = load_file(repo / "model.safetensors")
        self.proj_w, self.proj_b = weights["model.mm_projector.weight"], weights["model.mm_projector.bias"]
        import json

        self.cfg = json.loads((repo / "config.json").read_text())

    @torch.no_grad()
    def forward(self, frames, question: str, system: str = SIMPLE_SYSTEM):
        pixels = torch.from_numpy(self.processor(list(frames), return_tensors="np")["pixel_values"])
        feats = self.clip(pixels, output_hidden_states=True).hidden_states[self.cfg["mm_vision_select_layer"]][:, 1:]
        c = self.cfg["config"]
        rates = (c["spatial_cluster_rate0"], c["spatial_cluster_rate1"], c["spatial_cluster_rate2"])
        if len(frames) > 2:
            merged = project(feats, "video", rates, c["temporal_cluster_rate"])[0]
        else:
            merged = project(feats, "image", rates).flatten(0, 1)
        visual = merged @ self.proj_w.T + self.proj_b
        prompt = simple_prompt([("Human", visual_question(question, len(frames)))], system)
        ids = tokenizer_image_token(prompt, self.sentencepiece)
        first, last = ids.index(-1), len(ids) - 1 - ids[::-1].index(-1)
        assert set(ids[first : last + 1]) == {-1}  # consecutive <image> tokens: one visual block
        before, after = ids[:first], ids[last + 1 :]
        embed = self.llama.model.embed_tokens
        embeds = torch.cat([embed(torch.tensor(before)), visual, embed(torch.tensor(after))])[None]
        logits = self.llama(inputs_embeds=embeds).logits[0]
        ids = before + [-1] * visual.shape[0] + after
        return ids, torch.log_softmax(logits.float(), dim=-1)


def main() -> None:
    import argparse
    import json
    from pathlib import Path

    from vllm.multimodal.media import MediaConnector

    parser = argparse.ArgumentParser()
    parser.add_argument("--release", type=Path, required=True)
    parser.add_argument("--video", required=True, help="a file:// URL; frames decoded as the server decodes them")
    parser.add_argument("--question", required=True)
    parser.add_argument("--system", default=SIMPLE_SYSTEM, help="simple_conv's system text unless given")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    connector = MediaConnector({"video": {"fps": 1, "num_frames": 100}}, allowed_local_media_path="/")
    frames, _ = connector.fetch_video(args.video)
    ids, logprobs = ReferenceChatUniVi(args.release).forward(frames, args.question, args.system)
    args.out.write_text(json.dumps({"ids": ids, "logprobs": logprobs.tolist(), "frames": len(frames)}))


if __name__ == "__main__":
    main()
