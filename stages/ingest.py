"""Ingest: a corpus folder (MER layout or plain clips) plus a subtitle table -> manifest records.

Every clip found, and every subtitle row naming a clip that is not there, becomes a record; a bad
file gets a status and a reason instead of an exception.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import ffmpeg

from schemas.manifest import ClipRecord, ClipStatus, Subtitles

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".flv", ".m4v"}
# MER2025 ships subtitle_chieng.csv (name, chinese, english);
# MER2023/2024 transcription CSVs (name, chinese[, english]).
SUBTITLE_TABLES = ("subtitle_chieng.csv", "transcription-merge.csv", "transcription.csv", "subtitles.csv")
log = logging.getLogger(__name__)
_MAX_VOLUME = re.compile(r"max_volume:\s*(-?[\d.]+|-inf) dB")


@dataclass
class Corpus:
    root: Path
    clips: list[Path]
    duplicates: list[Path] = field(default_factory=list)  # a second file with an already-seen name
    subtitles: dict[str, Subtitles] = field(default_factory=dict)
    subtitle_table: Path | None = None
    audio_dir: Path | None = None


def find_subtitle_table(root: Path) -> Path | None:
    for name in SUBTITLE_TABLES:
        if (root / name).is_file():
            return root / name
    tables = sorted(root.glob("*.csv"))
    return tables[0] if len(tables) == 1 else None


def read_subtitles(table: Path) -> dict[str, Subtitles]:
    """name -> subtitles; empty cells are None. Names are matched without a file extension."""
    out: dict[str, Subtitles] = {}
    with table.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = {c.strip().lower(): c for c in reader.fieldnames or []}
        if "name" not in columns:
            raise ValueError(f"{table}: no 'name' column (columns: {reader.fieldnames})")
        for line, row in enumerate(reader, start=2):
            name = Path((row.get(columns["name"]) or "").strip()).stem
            if not name:
                log.warning("%s line %d: no clip name, row ignored: %s", table, line, row)
                continue
            if name in out:
                log.warning("%s line %d: %s appears again; the later row is used", table, line, name)
            out[name] = Subtitles(chinese=_cell(row, columns, "chinese"), english=_cell(row, columns, "english"))
    return out


def _cell(row: dict, columns: dict[str, str], key: str) -> str | None:
    return ((row.get(columns[key]) or "").strip() or None) if key in columns else None


def discover(root: Path, subtitle_table: Path | None = None) -> Corpus:
    video_dir = root / "video" if (root / "video").is_dir() else root
    found = sorted(p for p in video_dir.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    clips, duplicates, seen = [], [], set()
    for path in found:  # names are ids: x.mp4 and x.avi cannot both be clip x
        (duplicates if path.stem in seen else clips).append(path)
        seen.add(path.stem)
    table = subtitle_table or find_subtitle_table(root)
    audio_dir = root / "audio" if (root / "audio").is_dir() else None
    subtitles = read_subtitles(table) if table else {}
    return Corpus(
        root=root, clips=clips, duplicates=duplicates, subtitles=subtitles, subtitle_table=table, audio_dir=audio_dir
    )


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def ffmpeg_error_reason(exc: ffmpeg.Error) -> str:
    """ffmpeg's last stderr line: the one that says what went wrong."""
    lines = [ln for ln in (exc.stderr or b"").decode(errors="replace").splitlines() if ln.strip()]
    return lines[-1].strip() if lines else str(exc)


def peak_volume_db(path: Path, max_seconds: float) -> float | None:
    """Peak level of the first audio stream over the first `max_seconds` (None: no decodable audio)."""
    try:
        _, err = (
            ffmpeg.input(str(path), t=max_seconds)
            .output("-", f="null", map="0:a:0", af="volumedetect")
            .run(capture_stdout=True, capture_stderr=True)
        )
    except ffmpeg.Error:
        return None
    match = _MAX_VOLUME.search(err.decode(errors="replace"))
    if not match:
        return None
    return float("-inf") if match.group(1) == "-inf" else float(match.group(1))


def probe_clip(
    path: Path, subtitles: Subtitles, audio_path: Path | None, max_audio_s: float, silence_db: float
) -> ClipRecord:
    """Probe one clip with ffprobe (never with a decoder that can abort the process)."""
    record = ClipRecord(
        name=path.stem,
        path=str(path.resolve()),
        subtitles=subtitles,
        audio_path=str(audio_path) if audio_path else None,
        audio_sha256=sha256_of(audio_path) if audio_path else None,
    )
    record.bytes = path.stat().st_size
    if record.bytes == 0:
        return record.model_copy(update={"status": ClipStatus.invalid, "error": "empty file (0 bytes)"})
    record.sha256 = sha256_of(path)
    try:
        # -count_packets demuxes the whole file (no decoding): cheap, and it exposes truncation.
        info = ffmpeg.probe(str(path), count_packets=None)
    except ffmpeg.Error as exc:
        return record.model_copy(
            update={"status": ClipStatus.invalid, "error": f"ffprobe cannot read it: {ffmpeg_error_reason(exc)}"}
        )
    streams = info.get("streams", [])
    video = next(
        (s for s in streams if s.get("codec_type") == "video" and s.get("disposition", {}).get("attached_pic") != 1),
        None,
    )
    if video is None:
        return record.model_copy(update={"status": ClipStatus.invalid, "error": "no video stream"})
    duration = float(info.get("format", {}).get("duration") or video.get("duration") or 0.0)
    num, _, den = (video.get("avg_frame_rate") or "0/1").partition("/")
    fps = float(num) / float(den) if float(den or 0) else None
    record = record.model_copy(
        update={"duration": duration, "fps": fps, "width": video.get("width"), "height": video.get("height")}
    )
    if duration <= 0:
        return record.model_copy(
            update={"status": ClipStatus.invalid, "error": "zero duration (truncated or empty stream)"}
        )
    declared, read = int(video.get("nb_frames") or 0), int(video.get("nb_read_packets") or 0)
    if declared and read < declared:
        return record.model_copy(
            update={"status": ClipStatus.invalid, "error": f"truncated: {read} of {declared} video packets present"}
        )
    audio_source = audio_path or path
    has_audio_stream = audio_path is not None or any(s.get("codec_type") == "audio" for s in streams)
    peak = peak_volume_db(audio_source, max_audio_s) if has_audio_stream else None
    record.has_audio = peak is not None
    if not has_audio_stream:
        return record.model_copy(update={"status": ClipStatus.silent, "error": "no audio stream"})
    if peak is None:
        return record.model_copy(update={"status": ClipStatus.silent, "error": "audio stream cannot be decoded"})
    if peak < silence_db:
        return record.model_copy(
            update={"status": ClipStatus.silent, "error": f"silent audio (peak {peak} dB < {silence_db} dB)"}
        )
    return record


def duplicate_name_records(corpus: Corpus) -> list[ClipRecord]:
    first = {p.stem: p.name for p in corpus.clips}
    return [
        ClipRecord(
            name=p.name,
            path=str(p.resolve()),
            status=ClipStatus.invalid,
            error=f"duplicate clip name: {first[p.stem]} is clip {p.stem}",
        )
        for p in corpus.duplicates
    ]


def missing_clip_records(corpus: Corpus) -> list[ClipRecord]:
    present = {p.stem for p in corpus.clips}
    return [
        ClipRecord(
            name=name,
            subtitles=subs,
            status=ClipStatus.missing,
            error=f"subtitle row in {corpus.subtitle_table.name} but no clip file",
        )
        for name, subs in sorted(corpus.subtitles.items())
        if name not in present
    ]
