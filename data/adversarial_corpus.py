"""Hostile and careless input, made locally with ffmpeg and espeak-ng (no downloads): what a corpus, a copy
of one or a user's subtitle table really contains besides good clips (issue 16, items 9-13).

Each function writes one kind; `write_adversarial_corpus(root)` writes them all as one MER-layout corpus
(`video/`, a GB18030 `subtitle_chieng.csv`) plus `tables/` (one subtitle table per hostile kind) and
`replacements/` (a same-size replacement of a clip, for `replace_keeping_size_and_mtime`).
"""

from __future__ import annotations

import csv
import io
import os
import random
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from data.synth_clips import _duration, _run, face_clip, portrait_image, speech_wav

# ---------------------------------------------------------------- clips


def dash_named_clip(folder: Path, text: str = "My name starts with a dash, and I am fine.") -> Path:
    """A good talking head named `-dash.mp4`: a subprocess given the bare name would read it as an option."""
    return face_clip(folder.resolve() / "-dash.mp4", text)


def second_stream_speech_clip(path: Path, text: str = "The second audio track is the one that speaks.") -> Path:
    """A talking head with two audio streams: the first (the default) digital silence, the second speech."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = speech_wav(text, Path(tmp) / "speech.wav")
        seconds = max(1.5, _duration(wav) + 0.3)
        video = "scale=-2:240,pad=320:240:(ow-iw)/2:0,zoompan=z='1+0.0008*on':d=1:s=320x240:fps=25"
        _run(
            ["ffmpeg", "-y", "-v", "error", "-loop", "1", "-framerate", "25", "-i", str(portrait_image())]
            + ["-f", "lavfi", "-i", "anullsrc=r=44100:cl=mono", "-i", str(wav)]
            + ["-map", "0:v", "-map", "1:a", "-map", "2:a", "-vf", video, "-af", "apad", "-t", str(seconds)]
            + ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ar", "44100"]
            + [str(path.resolve())]
        )
    return path


def two_speaking_streams_clip(path: Path, default: int = 1) -> Path:
    """A talking head with two audio streams that both speak (two dubs); stream `default` has the default
    disposition."""
    with tempfile.TemporaryDirectory() as tmp:
        first = speech_wav("This is the first dub.", Path(tmp) / "first.wav")
        second = speech_wav("And this is the second dub.", Path(tmp) / "second.wav")
        seconds = max(1.5, _duration(first) + 0.3, _duration(second) + 0.3)
        dispositions = ["-disposition:a:0", "default" if default == 0 else "0"]
        dispositions += ["-disposition:a:1", "default" if default == 1 else "0"]
        _run(
            ["ffmpeg", "-y", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size=160x120:rate=25:duration={seconds}"]
            + ["-i", str(first), "-i", str(second), "-map", "0:v", "-map", "1:a", "-map", "2:a"]
            + ["-af", "apad", "-t", str(seconds), *dispositions]
            + ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ar", "44100"]
            + [str(path.resolve())]
        )
    return path


def short_speech_clip(path: Path, seconds: float = 0.2) -> Path:
    """A talking head 0.2 s long whose whole track is voiced ("Ah"): speech, although under 0.2 s of it."""
    return face_clip(path.resolve(), "Ah", seconds=seconds)


def png_named_mp4(path: Path) -> Path:
    """A PNG image saved as .mp4."""
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "image.png"
        _run(["ffmpeg", "-y", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x64", "-frames:v", "1", str(png)])
        path.write_bytes(png.read_bytes())
    return path


def symlink_loop(folder: Path, names: tuple[str, str] = ("loop_a.mp4", "loop_b.mp4")) -> list[Path]:
    """Two links that point at each other, and one that points at itself."""
    a, b, itself = folder / names[0], folder / names[1], folder / f"self_{names[0]}"
    a.symlink_to(names[1])
    b.symlink_to(names[0])
    itself.symlink_to(itself.name)
    return [a, b, itself]


def dangling_link(path: Path, target: str = "deleted_clip.mp4") -> Path:
    """A link to a clip that is no longer there."""
    path.symlink_to(target)
    return path


def apple_double(clip: Path) -> Path:
    """The `._x.mp4` metadata file macOS writes beside x.mp4 on a disk that has no resource forks."""
    header = struct.pack(">II16sH", 0x00051607, 0x00020000, b"Mac OS X        ", 1)
    path = clip.with_name(f"._{clip.name}")
    path.write_bytes(header + struct.pack(">III", 2, 0x32, 0) + bytes(48))
    return path


def hidden_copy(clip: Path) -> Path:
    """A real clip under a dot name (a backup, an editor's swap file): hidden, so not a clip of the corpus."""
    path = clip.with_name(f".{clip.name}")
    path.write_bytes(clip.read_bytes())
    return path


def pad_to_size(path: Path, size: int) -> Path:
    """Grow an MP4 to exactly `size` bytes with a trailing `free` box (what muxers reserve space with)."""
    extra = size - path.stat().st_size
    if extra < 8:
        raise ValueError(f"{path.name}: cannot pad by {extra} bytes (a box takes 8 at least)")
    with path.open("ab") as handle:
        handle.write(struct.pack(">I4s", extra, b"free") + bytes(extra - 8))
    return path


def same_size_pair(original: Path, replacement: Path, texts: tuple[str, str]) -> tuple[Path, Path]:
    """Two different talking heads padded to the same number of bytes."""
    face_clip(original.resolve(), texts[0])
    face_clip(replacement.resolve(), texts[1])
    size = max(original.stat().st_size, replacement.stat().st_size) + 16
    return pad_to_size(original, size), pad_to_size(replacement, size)


def replace_keeping_size_and_mtime(target: Path, replacement: Path) -> Path:
    """Overwrite `target` in place with `replacement` (same size), then put its times back as `touch -r` does:
    size, mtime and inode are those of the old file; only the ctime tells."""
    before = target.stat()
    data = replacement.read_bytes()
    if len(data) != before.st_size:
        raise ValueError(f"{replacement.name} has {len(data)} bytes, {target.name} {before.st_size}")
    with target.open("r+b") as handle:  # in place: the inode stays
        handle.write(data)
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    return target


# ---------------------------------------------------------------- subtitle tables

HEADER = ["name", "chinese", "english"]
# A hostile cell: NUL, an ANSI colour escape, BEL, backspace and a right-to-left override.
CONTROL_CHARACTERS = "\x00\x1b[31m\x07\x08\u202e"


def _csv_text(rows: list[list[str]]) -> str:
    out = io.StringIO(newline="")
    csv.writer(out).writerows([HEADER, *rows])
    return out.getvalue()


CHINESE_ROWS = [
    ["clip_a", "我真的太开心了，终于通过考试了！", "I am so happy, I finally passed the exam!"],
    ["clip_b", "你为什么总是这样对我？", "Why do you always treat me like this?"],
    ["clip_c", "小明很开心。", "Xiaoming is happy."],  # 小 in GB18030 (D0 A1) is also a valid UTF-8 character
]


def gb18030_table(path: Path) -> Path:
    """Chinese corpora's usual encoding (a superset of GBK), no BOM."""
    path.write_bytes(_csv_text(CHINESE_ROWS).encode("gb18030"))
    return path


def utf16_table(path: Path) -> Path:
    """UTF-16 with its byte-order mark, as Excel's "Unicode text" saves."""
    path.write_bytes(_csv_text(CHINESE_ROWS).encode("utf-16"))
    return path


def utf8_bom_table(path: Path) -> Path:
    path.write_bytes(_csv_text(CHINESE_ROWS).encode("utf-8-sig"))
    return path


def bad_byte_table(path: Path) -> tuple[Path, int, int]:
    """A UTF-8 table with one byte that is not UTF-8 (0xFF) on line 3; also (line, byte offset) of that byte."""
    good = _csv_text(CHINESE_ROWS).encode("utf-8")
    line_start = good.index(b"clip_b")
    offset = line_start + len(b"clip_b,")
    path.write_bytes(good[:offset] + b"\xff" + good[offset:])
    return path, 3, offset


def binary_table(path: Path) -> Path:
    """Not text at all (a media file saved as .csv): random bytes, seeded."""
    path.write_bytes(random.Random(16).randbytes(4096))
    return path


def huge_cell_table(path: Path, size: int = 1 << 20) -> Path:
    """A 1 MB cell (csv's default field limit is 128 KiB)."""
    path.write_text(_csv_text([["clip_a", "", "word " * (size // 5)], CHINESE_ROWS[1]]), encoding="utf-8")
    return path


def quoted_newline_table(path: Path) -> Path:
    """Cells with a quoted newline, a tab and runs of spaces, as spreadsheets export them."""
    rows = [["clip_a", "我真的\n太开心了", "I am so happy,\n  I finally\tpassed the exam!"], CHINESE_ROWS[1]]
    path.write_text(_csv_text(rows), encoding="utf-8")
    return path


def duplicate_names_table(path: Path) -> Path:
    """clip_a with other text on line 4 than on line 2, then line 4's text again on line 6; clip_b twice the
    same (lines 3 and 5)."""
    sad = ["clip_a", "我很难过。", "I am so sad."]
    rows = [CHINESE_ROWS[0], CHINESE_ROWS[1], sad, CHINESE_ROWS[1], sad]
    path.write_text(_csv_text(rows), encoding="utf-8")
    return path


def control_characters_table(path: Path) -> Path:
    """Control and bidi-override characters inside the cells, as broken subtitle rips carry them."""
    rows = [["clip_a", f"我真的太开心了{CONTROL_CHARACTERS}", f"I am so{CONTROL_CHARACTERS} happy!"], CHINESE_ROWS[1]]
    path.write_text(_csv_text(rows), encoding="utf-8")
    return path


TABLES = {
    "gb18030.csv": gb18030_table,
    "utf16.csv": utf16_table,
    "utf8_bom.csv": utf8_bom_table,
    "bad_byte.csv": bad_byte_table,
    "binary.csv": binary_table,
    "huge_cell.csv": huge_cell_table,
    "quoted_newline.csv": quoted_newline_table,
    "duplicate_names.csv": duplicate_names_table,
    "control_characters.csv": control_characters_table,
}


# ---------------------------------------------------------------- the whole corpus


@dataclass
class AdversarialCorpus:
    root: Path
    clips: dict[str, Path] = field(default_factory=dict)  # what each file is -> its path
    not_clips: list[Path] = field(default_factory=list)  # hidden and AppleDouble files
    tables: dict[str, Path] = field(default_factory=dict)
    replacement: Path | None = None  # same size as clips["replaced"], other content


def write_adversarial_corpus(root: Path) -> AdversarialCorpus:
    """Every hostile kind at once, as a MER-layout corpus whose own subtitle table is GB18030 with a quoted
    newline, control characters and a name given twice with different text."""
    root = root.resolve()
    video = root / "video"
    video.mkdir(parents=True)
    corpus = AdversarialCorpus(root=root)
    clips = corpus.clips
    clips["good"] = face_clip(video / "adv_good.mp4", "I am so happy, I finally passed the exam!")
    clips["dash"] = dash_named_clip(video)
    clips["second_stream"] = second_stream_speech_clip(video / "adv_second_stream.mp4")
    clips["short"] = short_speech_clip(video / "adv_short.mp4")
    clips["png"] = png_named_mp4(video / "adv_png.mp4")
    clips["loop_a"], clips["loop_b"], clips["loop_self"] = symlink_loop(video, ("adv_loop_a.mp4", "adv_loop_b.mp4"))
    clips["dangling"] = dangling_link(video / "adv_dangling.mp4")
    (root / "replacements").mkdir()
    clips["replaced"], corpus.replacement = same_size_pair(
        video / "adv_replaced.mp4",
        root / "replacements" / "adv_replaced.mp4",
        ("Why do you always treat me like this?", "Get out of here, I never want to see you again."),
    )
    corpus.not_clips = [apple_double(clips["good"]), hidden_copy(clips["good"])]
    rows = [
        ["adv_good", "你好。", "Hello there."],  # replaced by line 6: a conflict to record
        ["-dash", "我的名字以横线开头。", "My name starts with a dash, and I am fine."],
        ["adv_second_stream", "第二条音轨在说话。", "The second audio track is the one that speaks."],
        ["adv_short", "啊", "Ah"],
        [
            "adv_good",
            f"我真的\n太开心了{CONTROL_CHARACTERS}",
            f"I am so happy,\n  I finally{CONTROL_CHARACTERS} passed the exam!",
        ],
    ]
    (root / "subtitle_chieng.csv").write_bytes(_csv_text(rows).encode("gb18030"))
    tables = root / "tables"
    tables.mkdir()
    for name, write in TABLES.items():
        written = write(tables / name)
        corpus.tables[name] = written[0] if isinstance(written, tuple) else written
    return corpus


if __name__ == "__main__":
    import sys

    print(write_adversarial_corpus(Path(sys.argv[1] if len(sys.argv) > 1 else "adversarial-corpus")))
