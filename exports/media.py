"""Media under the names a reader expects: linked (a symbolic link to the corpus's file), copied, or not
placed at all (`none`: the reader is pointed at the corpus). A container other than the one the name says is
converted only when asked (AffectGPT's stage-1 reader opens `{name}.avi`), with ffmpeg."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import ffmpeg

from exports.manifest import SkippedRow, Written
from stages.ingest import ffmpeg_error_reason

if TYPE_CHECKING:
    from exports.source import Clip


@dataclass
class Placer:
    """Places each medium of a row under `root`, and keeps what could not be placed, per row."""

    root: Path
    mode: str  # link | copy | none
    convert: bool = False  # re-mux into the container the target name says when the source's differs
    placed: int = 0
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # (name, medium, why)

    def place(self, name: str, medium: str, source: Path | None, target: str) -> str | None:
        """`target` (relative to root) made to hold `source`; the path a reader is given, or None when the
        source is missing or could not be placed (the reason is kept). With mode `none` nothing is placed and
        the source's own path is returned."""
        if source is None:
            return None
        if self.mode == "none":
            return str(source)
        dest = self.root / target
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.is_symlink() or dest.exists():
            dest.unlink()
        try:
            if self.convert and source.suffix.lower() != dest.suffix.lower():
                remux(source, dest)
            elif self.mode == "link":
                os.symlink(source.resolve(), dest)
            else:
                shutil.copy2(source, dest)
        except (OSError, ffmpeg.Error) as exc:
            dest.unlink(missing_ok=True)
            why = ffmpeg_error_reason(exc) if isinstance(exc, ffmpeg.Error) else f"{type(exc).__name__}: {exc}"
            self.problems.append((name, medium, f"could not place {target}: {why}"))
            return None
        self.placed += 1
        return target

    def missing(self, name: str, medium: str, why: str) -> None:
        self.problems.append((name, medium, why))

    def place_video(self, clip: Clip, folder: str, expected: str, written: Written) -> str | None:
        """The clip's video placed as `folder/<name><suffix>` (the reader's `expected` suffix when converting, else
        the source's); the suffix, or None when the row cannot be exported (said in `written.skipped`)."""
        row = clip.row
        if clip.video is None:
            written.skipped.append(SkippedRow(name=row.name, reason=dict(clip.problems)["video"]))
            return None
        suffix = expected if self.convert else clip.video.suffix.lower()
        if self.place(row.name, "video", clip.video, f"{folder}/{row.name}{suffix}") is None:
            written.skipped.append(SkippedRow(name=row.name, reason="its clip could not be placed"))
            return None
        return suffix


def remux(source: Path, dest: Path) -> None:
    """`source` in the container `dest`'s suffix names: the video stream copied as it is, the audio as the
    container's usual codec (16-bit PCM in AVI, AAC in MP4); written beside `dest` and renamed, so a failed run
    leaves no half file."""
    partial = dest.with_name(f".{dest.stem}.partial{dest.suffix}")
    audio_codec = "pcm_s16le" if dest.suffix.lower() == ".avi" else "aac"
    stream = ffmpeg.input(str(source))
    out = ffmpeg.output(stream, str(partial), vcodec="copy", acodec=audio_codec, loglevel="error")
    try:
        out.overwrite_output().run(capture_stdout=True, capture_stderr=True)
    except ffmpeg.Error:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, dest)
