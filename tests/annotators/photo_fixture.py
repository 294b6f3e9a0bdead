"""The photo clips (data/photo_clips.py) both test modules read, built once per test session."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from annotators.signals.faces import measure_video
from data.photo_clips import make_clip_set
from schemas.signals import VisualSignals


def clip_set(tmp_path_factory, names: list[str]) -> dict[str, Path]:
    # The session's base folder: a second module finds the clips the first one built.
    return make_clip_set(tmp_path_factory.getbasetemp() / "photo_clips", names)


def wav_of(clip: Path) -> str:
    """16 kHz mono PCM, as media prep leaves it for the measurements."""
    wav = clip.with_suffix(".wav")
    if not wav.is_file():
        cmd = ["ffmpeg", "-v", "error", "-y", "-i", str(clip), "-ac", "1", "-ar", "16000", "-acodec", "pcm_s16le"]
        subprocess.run([*cmd, str(wav)], check=True)
    return str(wav)


@functools.cache
def visual_of(clip: Path) -> VisualSignals:
    """measure_video of a clip, once per session (both modules read the same clips)."""
    return measure_video(str(clip))
