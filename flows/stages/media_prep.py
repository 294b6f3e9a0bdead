"""Media prep: uniformly sampled frames (decord) and 16 kHz mono audio (ffmpeg), cached by content hash."""

from __future__ import annotations

import asyncio
import json
import math
import re
import os
from pathlib import Path

import ffmpeg

from flows.isolation import IsolatedPool
from schemas.config import MediaConfig, stable_hash
from schemas.manifest import ClipRecord
from schemas.media import PreparedMedia


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


def decode_frames(video: str, out_dir: str, count: int, width: int, height: int, quality: int) -> tuple[list[str], list[float]]:
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


class MediaPrep:
    def __init__(self, cache_dir: Path, config: MediaConfig, pool: IsolatedPool) -> None:
        self.cache_dir, self.config, self.pool = cache_dir, config, pool
        self.config_hash = stable_hash(config.model_dump())

    def _dir(self, record: ClipRecord) -> Path:
        return self.cache_dir / record.sha256[:2] / record.sha256 / self.config_hash

    async def prepare(self, record: ClipRecord) -> PreparedMedia:
        """Frames and audio for one clip; reuses the cache when the same content was prepared before."""
        out = self._dir(record)
        marker = out / "media.json"
        if marker.is_file():
            return PreparedMedia.model_validate_json(marker.read_text())
        out.mkdir(parents=True, exist_ok=True)
        width, height = scaled_size(record.width or 2, record.height or 2, self.config.frame_max_side)
        count = frame_count(record.duration or 0.0, self.config)
        frames, times = await self.pool.run(decode_frames, record.path, str(out), count, width, height, self.config.jpeg_quality)
        wav = None
        if record.has_audio:
            wav = str(out / "audio.wav")
            try:
                await asyncio.to_thread(extract_audio, record.audio_path or record.path, wav, self.config)
            except ffmpeg.Error as exc:
                raise RuntimeError(f"audio extraction failed: {(exc.stderr or b'').decode(errors='replace').strip().splitlines()[-1:]}") from exc
        media = PreparedMedia(frames=frames, frame_times=times, wav=wav)
        # Written last and renamed into place: a killed run never leaves a marker for half-written media.
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(json.dumps(media.model_dump()))
        tmp.replace(marker)
        return media
