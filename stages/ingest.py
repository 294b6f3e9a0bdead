"""Ingest: a corpus folder (MER layout or plain clips) plus a subtitle table -> manifest records.

Every clip found, and every subtitle row naming a clip that is not there, becomes a record; a bad
file gets a status and a reason instead of an exception. A subtitle table that cannot be read at all
stops the build with one line that names the file, the line and the byte (SubtitleTableError).
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import ffmpeg

from schemas.errors import UserError
from schemas.manifest import ClipRecord, ClipStatus, SubtitleConflict, Subtitles
from schemas.text_clean import remove_control_characters
from schemas.text_tables import decode_text_table

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".flv", ".m4v"}
# MER2025 ships subtitle_chieng.csv (name, chinese, english);
# MER2023/2024 transcription CSVs (name, chinese[, english]).
SUBTITLE_TABLES = ("subtitle_chieng.csv", "transcription-merge.csv", "transcription.csv", "subtitles.csv")
# A subtitle is a sentence or two; csv's default cap (128 KiB) stops a whole build at one long cell, but a cell
# beyond this one is not a subtitle and is reported.
MAX_SUBTITLE_CELL = 16 << 20
log = logging.getLogger(__name__)
_MAX_VOLUME = re.compile(r"max_volume:\s*(-?[\d.]+|-inf) dB")


class SubtitleTableError(UserError, ValueError):
    """A subtitle table the engine cannot read: the message names the file, the line (and byte) and what to do."""


@dataclass
class Corpus:
    root: Path
    clips: list[Path]
    duplicates: list[Path] = field(default_factory=list)  # a second file with an already-seen name
    subtitles: dict[str, Subtitles] = field(default_factory=dict)
    subtitle_table: Path | None = None
    audio_dir: Path | None = None
    hidden: list[Path] = field(default_factory=list)  # '._x.mp4' (AppleDouble) and other dot files: not clips


def find_subtitle_table(root: Path) -> Path | None:
    for name in SUBTITLE_TABLES:
        if (root / name).is_file():
            return root / name
    tables = sorted(root.glob("*.csv"))
    return tables[0] if len(tables) == 1 else None


def decode_table(table: Path) -> tuple[str, str]:
    """(text, encoding) of a subtitle table; SubtitleTableError naming the line and byte when it is not text."""
    return decode_text_table(table, SubtitleTableError)


def clean_cell(value: str | None) -> tuple[str | None, list[str]]:
    """A cell without control or bidi-override characters, its whitespace (quoted newlines, tabs, runs of
    spaces) made single spaces; None when nothing is left. Also the code points removed."""
    text, removed = remove_control_characters(value or "")
    return " ".join(text.split()) or None, removed


def read_subtitles(table: Path) -> dict[str, Subtitles]:
    """name -> subtitles; empty cells are None. Names are matched without a file extension."""
    text, encoding = decode_table(table)
    csv.field_size_limit(max(csv.field_size_limit(), MAX_SUBTITLE_CELL))
    out: dict[str, Subtitles] = {}
    lines: dict[str, int] = {}
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        columns = {c.strip().lower(): c for c in reader.fieldnames or []}
        if "name" not in columns:
            raise SubtitleTableError(
                f"{table}: no 'name' column (columns: {reader.fieldnames}); "
                "the first line must name the columns: name, chinese, english"
            )
        while True:
            line = reader.line_num + 1  # where the row starts: a quoted newline makes it span several lines
            row = next(reader, None)
            if row is None:
                break
            name, _ = clean_cell(Path((row.get(columns["name"]) or "").strip()).stem)
            if not name:
                log.warning("%s line %d: no clip name, row ignored: %s", table, line, row)
                continue
            chinese, removed_zh = clean_cell(row.get(columns["chinese"])) if "chinese" in columns else (None, [])
            english, removed_en = clean_cell(row.get(columns["english"])) if "english" in columns else (None, [])
            subs = Subtitles(chinese=chinese, english=english, removed_characters=sorted(set(removed_zh + removed_en)))
            if name in out:
                log.warning("%s line %d: %s appears again; the later row is used", table, line, name)
                earlier = out[name]
                subs.conflicts = [c.model_copy(update={"kept_line": line}) for c in earlier.conflicts]
                if (earlier.chinese, earlier.english) != (chinese, english):  # the same text again is no conflict
                    subs.conflicts.append(
                        SubtitleConflict(
                            line=lines[name], kept_line=line, chinese=earlier.chinese, english=earlier.english
                        )
                    )
            out[name], lines[name] = subs, line
    except csv.Error as exc:
        raise SubtitleTableError(f"{table}: line {reader.line_num}: {exc}; fix that row and run again.") from None
    if encoding != "utf-8":
        log.info("%s read as %s", table, encoding)
    return out


def _is_clip_candidate(path: Path) -> bool:
    """A regular file with a video suffix, or a link with one that leads nowhere (it gets a row saying so)."""
    return path.suffix.lower() in VIDEO_SUFFIXES and (path.is_file() or (path.is_symlink() and not path.exists()))


def discover(root: Path, subtitle_table: Path | None = None) -> Corpus:
    video_dir = root / "video" if (root / "video").is_dir() else root
    found, hidden = [], []
    for path in sorted(video_dir.iterdir()):
        if _is_clip_candidate(path):
            # macOS leaves '._x.mp4' (AppleDouble metadata) beside x.mp4 on foreign disks; dot files are never clips.
            (hidden if path.name.startswith(".") else found).append(path)
    if hidden:
        log.warning(
            "%s: %d hidden file(s) skipped, not clips (AppleDouble '._*' or other names starting with '.'): %s",
            video_dir,
            len(hidden),
            ", ".join(p.name for p in hidden[:10]) + (", ..." if len(hidden) > 10 else ""),
        )
    clips, duplicates, seen = [], [], set()
    for path in found:  # names are ids: x.mp4 and x.avi cannot both be clip x
        (duplicates if path.stem in seen else clips).append(path)
        seen.add(path.stem)
    table = subtitle_table or find_subtitle_table(root)
    audio_dir = root / "audio" if (root / "audio").is_dir() else None
    subtitles = read_subtitles(table) if table else {}
    return Corpus(
        root=root,
        clips=clips,
        duplicates=duplicates,
        subtitles=subtitles,
        subtitle_table=table,
        audio_dir=audio_dir,
        hidden=hidden,
    )


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def media_url(path: Path | str) -> str:
    """How a user's path is given to ffmpeg and ffprobe: a file named '-x.mp4' must never read as an option,
    nor 'a:b.mp4' as protocol 'a'. The file: protocol with an absolute path is always the file itself."""
    return "file:" + os.path.abspath(path)


def ffmpeg_error_reason(exc: ffmpeg.Error, source: Path | str | None = None) -> str:
    """ffmpeg's last stderr line: the one that says what went wrong (with `source`'s absolute path shortened
    to its name: the reason is published with the row)."""
    lines = [ln for ln in (exc.stderr or b"").decode(errors="replace").splitlines() if ln.strip()]
    reason = lines[-1].strip() if lines else str(exc)
    if source is not None:
        for spelled in (media_url(source), os.path.abspath(source)):
            reason = reason.replace(spelled, Path(source).name)
    return reason


def peak_volume_db(path: Path, max_seconds: float, stream: int = 0) -> float | None:
    """Peak level of audio stream `stream` (ffmpeg's 0:a:N) over the first `max_seconds` (None: no decodable audio)."""
    try:
        _, err = (
            ffmpeg.input(media_url(path), t=max_seconds)
            .output("-", f="null", map=f"0:a:{stream}", af="volumedetect")
            .run(capture_stdout=True, capture_stderr=True)
        )
    except ffmpeg.Error:
        return None
    match = _MAX_VOLUME.search(err.decode(errors="replace"))
    if not match:
        return None
    return float("-inf") if match.group(1) == "-inf" else float(match.group(1))


def choose_audio_stream(
    streams: list[dict], peaks: list[float | None], silence_db: float
) -> tuple[int | None, str | None]:
    """(index among the audio streams, why): the one with sound; of several with sound, the default one, else
    the first; when none has sound, the loudest (the clip is silent either way)."""
    if len(streams) == 1:
        return (0, "the only audio stream") if peaks[0] is not None else (None, None)
    decodable = [i for i, p in enumerate(peaks) if p is not None]
    if not decodable:
        return None, None
    sound = [i for i in decodable if peaks[i] >= silence_db]
    if not sound:
        loudest = max(decodable, key=lambda i: peaks[i])
        return loudest, f"the loudest of {len(streams)} audio streams, all silent"
    if len(sound) == 1:
        return sound[0], f"the only one of {len(streams)} audio streams with sound"
    default = [i for i in sound if streams[i].get("disposition", {}).get("default") == 1]
    if default:
        return default[0], f"the default of {len(sound)} audio streams with sound"
    return sound[0], f"the first of {len(sound)} audio streams with sound"


# The few kinds of file that get renamed to .mp4 by mistake, told by their first bytes (ffprobe says only
# "Invalid data" for most of them; no file-type library is among the dependencies).
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF8", "GIF image"),
    (b"%PDF-", "PDF document"),
    (b"PK\x03\x04", "ZIP archive"),
    (b"\x1f\x8b", "gzip archive"),
    (b"\x00\x05\x16\x07", "AppleDouble metadata file"),
)


def file_kind(path: Path) -> str | None:
    """What a file that is not a video is, from its first bytes: "PNG image", "text file" ... (None: unknown)."""
    with path.open("rb") as handle:
        head = handle.read(4096)
    kind = next((k for magic, k in _MAGIC if head.startswith(magic)), None)
    if kind is None and b"\x00" not in head:
        try:
            head.decode("utf-8")
            kind = "text file"
        except UnicodeDecodeError as exc:
            kind = "text file" if exc.start >= len(head) - 3 else None  # a character cut at the 4 KiB mark
    return kind


def link_problem(path: Path) -> str | None:
    """Why a symbolic link cannot be followed (a loop, a missing target), or None."""
    if not path.is_symlink():
        return None
    try:
        path.stat()
    except OSError as exc:
        target = os.readlink(path)
        if exc.errno == errno.ELOOP:
            return f"symbolic link loop: {path.name} -> {target} leads back to itself"
        return f"dangling symbolic link: {path.name} -> {target}, which does not exist"
    return None


def probe_clip(
    path: Path, subtitles: Subtitles, audio_path: Path | None, max_audio_s: float, silence_db: float
) -> ClipRecord:
    """Probe one clip with ffprobe (never with a decoder that can abort the process)."""
    problem = link_problem(path)
    if problem:
        return ClipRecord(
            name=path.stem,
            path=os.path.abspath(path),
            subtitles=subtitles,
            status=ClipStatus.invalid,
            error=problem,
        )
    record = ClipRecord(
        name=path.stem,
        path=str(path.resolve()),
        subtitles=subtitles,
        audio_path=str(audio_path.resolve()) if audio_path else None,
        audio_sha256=sha256_of(audio_path) if audio_path else None,
    )
    record.bytes = path.stat().st_size
    if record.bytes == 0:
        return record.model_copy(update={"status": ClipStatus.invalid, "error": "empty file (0 bytes)"})
    record.sha256 = sha256_of(path)
    try:
        # -count_packets demuxes the whole file (no decoding): cheap, and it exposes truncation.
        info = ffmpeg.probe(media_url(path), count_packets=None)
    except ffmpeg.Error as exc:
        reason = f"ffprobe cannot read it: {ffmpeg_error_reason(exc, path)}"
        kind = file_kind(path)
        return record.model_copy(
            update={"status": ClipStatus.invalid, "error": f"not a video: {kind} ({reason})" if kind else reason}
        )
    streams = info.get("streams", [])
    video = next(
        (s for s in streams if s.get("codec_type") == "video" and s.get("disposition", {}).get("attached_pic") != 1),
        None,
    )
    format_name = info.get("format", {}).get("format_name") or ""
    if format_name.endswith("_pipe") or format_name == "image2":  # ffprobe's demuxers for single images
        kind = format_name.removesuffix("_pipe").upper() if format_name != "image2" else "still"
        return record.model_copy(update={"status": ClipStatus.invalid, "error": f"not a video: {kind} image"})
    if video is None:
        audio_only = any(s.get("codec_type") == "audio" for s in streams)
        kind = f"audio only, {format_name}" if audio_only else file_kind(path)
        return record.model_copy(
            update={"status": ClipStatus.invalid, "error": f"no video stream ({kind})" if kind else "no video stream"}
        )
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
    return _probe_audio(record, streams, audio_path or path, audio_path is not None, max_audio_s, silence_db)


def _probe_audio(
    record: ClipRecord, streams: list[dict], source: Path, separate: bool, max_audio_s: float, silence_db: float
) -> ClipRecord:
    """Every audio stream of the source is measured, and the one with sound is chosen and recorded."""
    if separate:  # MER's audio/{name}.wav: its own streams count, not the clip's
        try:
            streams = ffmpeg.probe(media_url(source)).get("streams", [])
        except ffmpeg.Error:
            return record.model_copy(update={"status": ClipStatus.silent, "error": "audio stream cannot be decoded"})
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    if not audio:
        return record.model_copy(update={"status": ClipStatus.silent, "error": "no audio stream"})
    peaks = [peak_volume_db(source, max_audio_s, i) for i in range(len(audio))]
    chosen, why = choose_audio_stream(audio, peaks, silence_db)
    record = record.model_copy(
        update={
            "has_audio": chosen is not None,
            "audio_streams": len(audio),
            "audio_stream": chosen,
            "audio_stream_reason": why,
        }
    )
    if chosen is None:
        return record.model_copy(update={"status": ClipStatus.silent, "error": "audio stream cannot be decoded"})
    if peaks[chosen] < silence_db:
        where = f" on all {len(audio)} audio streams" if len(audio) > 1 else ""
        return record.model_copy(
            update={
                "status": ClipStatus.silent,
                "error": f"silent audio (peak {peaks[chosen]} dB < {silence_db} dB{where})",
            }
        )
    return record


def duplicate_name_records(corpus: Corpus) -> list[ClipRecord]:
    first = {p.stem: p.name for p in corpus.clips}
    return [
        ClipRecord(
            name=p.name,
            path=os.path.abspath(p),
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
