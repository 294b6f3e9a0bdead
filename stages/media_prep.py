"""Media prep: uniformly sampled frames (decord) and 16 kHz mono audio (ffmpeg), cached by content hash."""

from __future__ import annotations

import asyncio
import errno
import json
import math
import os
import re
import wave
from pathlib import Path

import ffmpeg

from runtime.isolation import DecoderCrashed, IsolatedPool
from runtime.stats import stat_update
from schemas.config import MediaConfig, stable_hash
from schemas.manifest import ClipRecord
from schemas.media import PreparedMedia
from stages.ingest import ffmpeg_error_reason, media_url

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


# ffmpeg's words for a write that the disk refused; it may still exit 0 (a failed trailer is only logged).
_WRITE_REFUSED = {
    "No space left on device": errno.ENOSPC,
    "Disk quota exceeded": errno.EDQUOT,
    "Read-only file system": errno.EROFS,
}  # not "Input/output error": ffmpeg says that of some broken inputs too, which are the clip's fault


def _write_refused(stderr: bytes | None, wav: str) -> OSError | None:
    """The OSError behind ffmpeg's output when the disk, not the input, stopped it."""
    text = (stderr or b"").decode(errors="replace")
    for words, code in _WRITE_REFUSED.items():
        if words in text:
            return OSError(code, os.strerror(code), wav)
    return None


def extract_audio(source: str, wav: str, config: MediaConfig, stream: int = 0) -> None:
    """`stream`: which audio stream of `source` (ingest chose the one that speaks)."""
    try:
        _, err = (
            ffmpeg.input(media_url(source), t=config.audio_max_seconds)
            .output(wav, ac=1, ar=config.audio_sample_rate, acodec="pcm_s16le", map=f"0:a:{stream}")
            .overwrite_output()
            .run(capture_stdout=True, capture_stderr=True)
        )
    except ffmpeg.Error as exc:
        if (refused := _write_refused(exc.stderr, wav)) is not None:
            raise refused from exc
        raise
    if (refused := _write_refused(err, wav)) is not None:
        raise refused


class UndecodableMedia(Exception):
    """The file itself cannot be decoded: a fact about its content, safe to remember."""


class IncompleteMedia(OSError):
    """A prepared file was not written whole (the disk, not the clip): never cached, never remembered."""


def check_wav(path: Path, config: MediaConfig) -> None:
    """Raise IncompleteMedia unless `path` is a whole WAV as extract_audio asked for it.

    A write cut short leaves the header's sizes (RIFF and data chunk, written or patched at the end)
    disagreeing with the file's length; a duration check against the probe could not tell a short
    audio track from a short write. `wave` reads the header; the two size checks are its missing part."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f, wave.open(f) as w:
            data_start = f.tell()  # wave.open stops at the data chunk's first byte
            data_bytes = w.getnframes() * w.getnchannels() * w.getsampwidth()
            shape = (w.getnchannels(), w.getframerate(), w.getsampwidth())
            f.seek(4)
            riff_size = int.from_bytes(f.read(4), "little")
    except (EOFError, wave.Error) as exc:
        raise IncompleteMedia(errno.EIO, f"audio written incompletely ({exc})", str(path)) from exc
    wanted = (1, config.audio_sample_rate, 2)
    if shape != wanted or riff_size + 8 != size or data_start + data_bytes + data_bytes % 2 != size:
        raise IncompleteMedia(
            errno.EIO,
            f"audio written incompletely: header says {riff_size + 8} bytes, file has {size}",
            str(path),
        )


def check_frames(frames: list[str], count: int) -> None:
    """Raise IncompleteMedia unless every one of the `count` frames is a JPEG written to its end."""
    if len(frames) != count:
        raise IncompleteMedia(errno.EIO, f"{len(frames)} frames written, {count} asked for", None)
    for frame in frames:
        if not _ends_as_jpeg(frame):
            raise IncompleteMedia(errno.EIO, "frame written incompletely (no JPEG end marker)", frame)


def _ends_as_jpeg(path: str) -> bool:
    if not os.path.isfile(path):
        return False
    with open(path, "rb") as f:
        if f.seek(0, os.SEEK_END) < 4:
            return False
        f.seek(-2, os.SEEK_END)
        return f.read(2) == b"\xff\xd9"  # EOI: the last thing a JPEG encoder writes


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
        return {"frames": self.frames_hash, "audio": [self.audio_hash, record.audio_sha256, record.audio_stream or 0]}

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
            if all(os.path.isfile(f) for f in cached["frames"]):  # a cache pruned by hand is decoded again
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
        check_frames(frames, count)
        # Written last and renamed into place: a killed run never leaves a marker for half-written frames.
        _write_atomically(marker, json.dumps({"frames": frames, "times": times}))
        return frames, times

    async def _audio(self, record: ClipRecord) -> str:
        source_sha = record.audio_sha256 or record.sha256
        stream = record.audio_stream or 0
        # Another stream than the first (ingest chose the one that speaks) is another cache entry.
        name = f"audio-{self.audio_hash}.wav" if stream == 0 else f"audio-{self.audio_hash}-a{stream}.wav"
        wav = self.cache_dir / source_sha[:2] / source_sha / name
        if wav.is_file():
            try:  # a header read: cheap, and it repairs a cache an older version filled on a full disk
                check_wav(wav, self.config)
                return str(wav)
            except IncompleteMedia:
                wav.unlink()
        stat_update("media_prep", runs=1)  # decoding audio as well counts as one more run
        wav.parent.mkdir(parents=True, exist_ok=True)
        # Beside the cache entry, checked, then renamed: the entry exists only complete.
        tmp = wav.with_name(f"{wav.stem}.{os.getpid()}-{id(record)}.tmp.wav")  # builds may share the cache
        try:
            await asyncio.to_thread(extract_audio, record.audio_path or record.path, str(tmp), self.config, stream)
            check_wav(tmp, self.config)
        except ffmpeg.Error as exc:
            raise UndecodableMedia(f"cannot decode audio: {ffmpeg_error_reason(exc)}") from exc
        except OSError:
            tmp.unlink(missing_ok=True)  # frees what the full disk took
            raise
        tmp.replace(wav)
        return str(wav)


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # builds that share a state dir may write the same entry
    tmp.write_text(text)
    tmp.replace(path)
