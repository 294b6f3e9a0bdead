"""The manifest: one row per clip found (or expected) in a corpus."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field


class ClipStatus(StrEnum):
    ok = "ok"
    # Readable video whose audio is absent or silent: visual and text stages still run.
    silent = "silent"
    # Unusable clip (zero bytes, truncated, not a video, undecodable): no stage runs.
    invalid = "invalid"
    # A subtitle row names a clip that is not in the corpus.
    missing = "missing"


class Subtitles(BaseModel):
    chinese: str | None = None
    english: str | None = None


class ClipRecord(BaseModel):
    name: str = Field(description="Clip id, the file stem, e.g. sample_00000000")
    path: str | None = Field(None, description="Absolute path of the video file")
    audio_path: str | None = Field(None, description="A separately shipped audio/{name}.wav, if any")
    audio_sha256: str | None = Field(None, description="Content hash of audio_path: the audio clue depends on it")
    sha256: str | None = None
    bytes: int | None = None
    duration: float | None = Field(None, description="Seconds")
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    has_audio: bool = False
    subtitles: Subtitles = Field(default_factory=Subtitles)
    status: ClipStatus = ClipStatus.ok
    error: str | None = Field(None, description="Why the clip is not ok, in words")

    @property
    def processable(self) -> bool:
        return self.status in (ClipStatus.ok, ClipStatus.silent)
