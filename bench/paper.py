"""On paper, for GPUs: tokens per clip per stage -> GPU-hours for a MER-sized corpus.

Text tokens are counted on the request bodies the engine really sent in the dispatch run (real
prompts, subtitles, clue and description texts of near-real length), at ~4 characters per token for
English and one per Chinese character (Qwen2 tokenizers; the real tokenizer cannot be downloaded
here). Media tokens follow the served models' published token rates, for a real MER clip rather than
the benchmark's small one. Throughput figures are published ones, not measured here.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from pathlib import Path

from bench.fake_server import reply_key

CORPUS_CLIPS = 115_595  # MER2024-SEMI
# One public benchmark of vLLM on one H100: ~6,300 output tokens/s for an 8B text model at high
# concurrency. Prefill is compute-bound and runs far faster per token; 60k tokens/s is an assumption.
DECODE_TOKENS_PER_S = 6_300
PREFILL_TOKENS_PER_S = 60_000
AUDIO_TOKENS_PER_S = 25  # Qwen2-Audio: Whisper frames at 50 Hz, pooled by 2 (750 tokens per 30 s)
VL_PIXELS_PER_TOKEN = 28 * 28  # Qwen2.5-VL: 14-px patches merged 2x2
REAL_CLIP = {"seconds": 5.0, "width": 672, "height": 378}  # MER clips: 1.7-14 s, 672x378 to 1080p

_CJK = re.compile(r"[\u4e00-\u9fff]")
_STAGE = {
    "ClueReply": None,
    "DescriptionReply": "disambiguation",
    "TranslationReply": "translation",
    "LabelsReply": "labels",
}


def text_tokens(text: str) -> int:
    cjk = len(_CJK.findall(text))
    return cjk + math.ceil((len(text) - cjk) / 4)


def media_tokens(stage: str, frames: int, side: int, clip: dict = REAL_CLIP) -> int:
    if stage == "audio_clue":
        return math.ceil(min(clip["seconds"], 30.0) * AUDIO_TOKENS_PER_S)
    if stage == "visual_clue":
        scale = min(1.0, side / max(clip["width"], clip["height"]))
        w, h = round(clip["width"] * scale / 28) * 28, round(clip["height"] * scale / 28) * 28
        return frames * (w * h) // VL_PIXELS_PER_TOKEN
    return 0


def stage_of(body: dict) -> str:
    name = body["response_format"]["json_schema"]["name"]
    if name == "ClueReply":
        parts = body["messages"][-1]["content"]
        kinds = {p.get("type") for p in parts} if isinstance(parts, list) else set()
        return "audio_clue" if "input_audio" in kinds or "audio_url" in kinds else "visual_clue"
    return _STAGE[name]


def tokens_per_clip(
    recorded: Path, clips: int, completion: dict[str, int], frames: int, side: int, clip: dict = REAL_CLIP
) -> dict[str, dict]:
    """Mean prompt (text + media) and completion tokens per clip, per stage."""
    totals: dict[str, dict[str, float]] = defaultdict(lambda: {"requests": 0, "text": 0, "media": 0, "completion": 0})
    with recorded.open(encoding="utf-8") as handle:
        for line in handle:
            body = json.loads(line)
            stage = stage_of(body)
            text = "".join(
                m["content"] if isinstance(m["content"], str) else "".join(p.get("text", "") for p in m["content"])
                for m in body["messages"]
            )
            t = totals[stage]
            t["requests"] += 1
            t["text"] += text_tokens(text)
            t["media"] += media_tokens(stage, frames, side, clip)
            t["completion"] += completion[reply_key(body)]
    return {stage: {k: v / clips for k, v in t.items()} for stage, t in totals.items()}


def gpu_hours(per_clip: dict[str, dict], prefix_cached_media: bool = False) -> dict:
    prefill = sum(s["text"] + (s["media"] / 2 if prefix_cached_media else s["media"]) for s in per_clip.values())
    decode = sum(s["completion"] for s in per_clip.values())
    seconds_per_clip = prefill / PREFILL_TOKENS_PER_S + decode / DECODE_TOKENS_PER_S
    return {
        "prefill_tokens_per_clip": prefill,
        "decode_tokens_per_clip": decode,
        "gpu_hours": seconds_per_clip * CORPUS_CLIPS / 3600,
        "decode_share": (decode / DECODE_TOKENS_PER_S) / seconds_per_clip,
    }
