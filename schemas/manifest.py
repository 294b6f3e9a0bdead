"""The manifest: one row per clip found (or expected) in a corpus."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field


class ClipStatus(StrEnum):
    ok = "ok"
    # Readable video whose audio is absent or silent: visual and text stages still run.
    silent = "silent"
    # Unusable clip (zero bytes, truncated, not a video, undecodable, a broken link): no stage runs.
    invalid = "invalid"
    # A subtitle row names a clip that is not in the corpus.
    missing = "missing"


class SubtitleConflict(BaseModel):
    """An earlier row of the subtitle table for the same clip name, with other text: dropped for a later one."""

    line: int = Field(description="Line of the subtitle table the dropped row was on")
    kept_line: int = Field(description="Line of the row that is used instead")
    chinese: str | None = None
    english: str | None = None


class Subtitles(BaseModel):
    chinese: str | None = None
    english: str | None = None
    removed_characters: list[str] = Field(
        default_factory=list,
        description="Control and bidi-override code points removed from the cells at ingest, e.g. U+0000, U+202E",
    )
    conflicts: list[SubtitleConflict] = Field(
        default_factory=list, description="Earlier rows for the same name with other text, which this row replaced"
    )


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
    audio_streams: int = Field(0, description="Audio streams in the audio source (audio_path, else the clip)")
    audio_stream: int | None = Field(
        None,
        description="The audio stream used, as an index among the source's audio streams (ffmpeg's 0:a:N); "
        "None when there is no decodable audio",
    )
    audio_stream_reason: str | None = Field(None, description="Why that stream was chosen, in words")
    subtitles: Subtitles = Field(default_factory=Subtitles)
    status: ClipStatus = ClipStatus.ok
    error: str | None = Field(None, description="Why the clip is not ok, in words")

    @property
    def processable(self) -> bool:
        return self.status in (ClipStatus.ok, ClipStatus.silent)
