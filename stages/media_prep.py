"""Media prep: uniformly sampled frames (decord) and 16 kHz mono audio (ffmpeg), cached by content hash."""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
from pathlib import Path

import ffmpeg

from runtime.isolation import DecoderCrashed, IsolatedPool
from runtime.stats import stat_update
from schemas.config import MediaConfig, stable_hash
from schemas.manifest import ClipRecord
from schemas.media import PreparedMedia
from stages.ingest import ffmpeg_error_reason

_DECORD_NOISE = re.compile(r"\[\d{2}:\d{2}:\d{2}\]\s*|/github/workspace/\S+:\d+:\s*")


def decode_error_message(exc: BaseException) -> str:
    """A decoder error in words that do not change between runs (decord stamps the wall time)."""
    return f"cannot decode: {type(exc).__name__}: {_DECORD_NOISE.sub('', str(exc)).strip()}"


def frame_count(duration: float, config: MediaConfig) -> int:
    return max(1, min(config.max_frames, math.ceil(duration * config.frames_per_second)))


def scaled_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Keep the aspect ratio, longer side <= max_side, even dimensions (what codecs and ViTs like)."""
    scale = min(1.0, max_side / max(width, height))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def decode_frames(
    video: str, out_dir: str, count: int, width: int, height: int, quality: int
) -> tuple[list[str], list[float]]:
    """Runs in an isolated worker process: decord may abort on corrupt input."""
    import decord
    import numpy as np
    from PIL import Image

    reader = decord.VideoReader(video, ctx=decord.cpu(0), width=width, height=height, num_threads=1)
    total = len(reader)
    if total == 0:
        raise ValueError("no decodable frames")
    # Centres of `count` equal segments: uniform coverage without the first/last-frame bias.
    indices = np.clip(((np.arange(count) + 0.5) * total / count).astype(int), 0, total - 1)
    frames = reader.get_batch(list(indices)).asnumpy()
    fps = reader.get_avg_fps() or 25.0
    paths = []
    for i, frame in enumerate(frames):
        path = os.path.join(out_dir, f"frame_{i:03d}.jpg")
        Image.fromarray(frame).save(path, quality=quality)
        paths.append(path)
    return paths, [round(float(ix) / fps, 3) for ix in indices]


def extract_audio(source: str, wav: str, config: MediaConfig) -> None:
    (
        ffmpeg.input(source, t=config.audio_max_seconds)
        .output(wav, ac=1, ar=config.audio_sample_rate, acodec="pcm_s16le", map="0:a:0")
        .overwrite_output()
        .run(capture_stdout=True, capture_stderr=True)
    )


class UndecodableMedia(Exception):
    """The file itself cannot be decoded: a fact about its content, safe to remember."""


class MediaPrep:
    """Frames and audio are cached apart, each under the hash of its own settings: changing the
    audio cap does not re-decode frames (nor re-ask the visual clue), and the other way round."""

    def __init__(self, cache_dir: Path, config: MediaConfig, pool: IsolatedPool) -> None:
        self.cache_dir, self.config, self.pool = cache_dir, config, pool
        self.frames_hash = stable_hash(
            [config.frames_per_second, config.max_frames, config.frame_max_side, config.jpeg_quality]
        )
        self.audio_hash = stable_hash([config.audio_sample_rate, config.audio_max_seconds])
        self._locks: dict[str, asyncio.Lock] = {}  # clips with the same content share one cache entry

    def keys(self, record: ClipRecord) -> dict[str, object]:
        """Per medium, what the prepared files are a function of besides the clip's own content: the
        settings, and for audio the separately shipped track (MER's audio/{name}.wav) when there is one."""
        return {"frames": self.frames_hash, "audio": [self.audio_hash, record.audio_sha256]}

    async def prepare(self, record: ClipRecord, with_audio: bool) -> PreparedMedia:
        """Frames (and audio when asked for) of one clip, from the cache when this content was seen."""
        lock = self._locks.setdefault(record.sha256, asyncio.Lock())
        async with lock:
            frames, times = await self._frames(record)
            wav = await self._audio(record) if with_audio else None
        return PreparedMedia(frames=frames, frame_times=times, wav=wav)

    async def _frames(self, record: ClipRecord) -> tuple[list[str], list[float]]:
        out = self.cache_dir / record.sha256[:2] / record.sha256 / f"frames-{self.frames_hash}"
        marker = out / "frames.json"
        if marker.is_file():
            cached = json.loads(marker.read_text())
            stat_update("media_prep", checkpoint_hits=1)
            return cached["frames"], cached["times"]
        stat_update("media_prep", runs=1)
        out.mkdir(parents=True, exist_ok=True)
        width, height = scaled_size(record.width or 2, record.height or 2, self.config.frame_max_side)
        count = frame_count(record.duration or 0.0, self.config)
        try:
            frames, times = await self.pool.run(
                decode_frames, record.path, str(out), count, width, height, self.config.jpeg_quality
            )
        except (DecoderCrashed, ValueError) as exc:
            raise UndecodableMedia(decode_error_message(exc)) from exc
        except Exception as exc:
            if type(exc).__name__ == "DECORDError":  # decord's own error type, re-raised from the worker
                raise UndecodableMedia(decode_error_message(exc)) from exc
            raise
        # Written last and renamed into place: a killed run never leaves a marker for half-written frames.
        _write_atomically(marker, json.dumps({"frames": frames, "times": times}))
        return frames, times

    async def _audio(self, record: ClipRecord) -> str:
        source_sha = record.audio_sha256 or record.sha256
        wav = self.cache_dir / source_sha[:2] / source_sha / f"audio-{self.audio_hash}.wav"
        if wav.is_file():
            return str(wav)
        stat_update("media_prep", runs=1)  # decoding audio as well counts as one more run
        wav.parent.mkdir(parents=True, exist_ok=True)
        tmp = wav.with_name(wav.stem + ".tmp.wav")
        try:
            await asyncio.to_thread(extract_audio, record.audio_path or record.path, str(tmp), self.config)
        except ffmpeg.Error as exc:
            raise UndecodableMedia(f"cannot decode audio: {ffmpeg_error_reason(exc)}") from exc
        tmp.replace(wav)
        return str(wav)


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)
