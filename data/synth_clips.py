"""Make test and sample clips locally with ffmpeg (and espeak-ng for speech): no downloads.

Clips mimic the real corpora's container (H.264 + AAC in MP4, 25 fps) at a small size.
Also makes the bad kinds a corpus really contains: empty, truncated, not a video, silent, corrupt.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import tempfile
from pathlib import Path

SAMPLE_LINES = [
    ("sample_00000001", "我真的太开心了，终于通过考试了！", "I am so happy, I finally passed the exam!"),
    ("sample_00000002", "你为什么总是这样对我？", "Why do you always treat me like this?"),
    ("sample_00000003", "没关系，我一个人也可以的。", ""),
    ("sample_00000004", "", "Get out of here, I never want to see you again."),
    ("samplenew_00004251", "这是什么？我完全没想到。", "What is this? I never expected it."),
]


# How every generated clip is encoded: H.264 and AAC at 44.1 kHz, as the real MER clips are.
H264_AAC = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ar", "44100"]


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {done.stderr[-2000:]}")


def speech_wav(text: str, path: Path, voice: str = "en") -> Path:
    _run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(path), text])
    return path


def talking_clip(
    path: Path,
    text: str,
    *,
    size: str = "320x180",
    pattern: str = "testsrc2",
    seconds: float | None = None,
    faststart: bool = True,
) -> Path:
    """A clip whose audio speaks `text` (espeak-ng) over a moving test pattern, H.264 + AAC."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = speech_wav(text, Path(tmp) / "speech.wav")
        duration = seconds or max(1.5, _duration(wav) + 0.3)
        cmd = [
            "ffmpeg",
            "-y",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            f"{pattern}=size={size}:rate=25:duration={duration}",
            "-i",
            str(wav),
        ]
        cmd += [
            "-af",
            "apad",
            "-t",
            str(duration),
            *H264_AAC,
        ]
        _run(cmd + (["-movflags", "+faststart"] if faststart else []) + [str(path)])
    return path


def portrait_image() -> Path:
    """A photographic portrait that ships inside matplotlib (Grace Hopper): a real face, no download."""
    from matplotlib import cbook

    return Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def face_clip(
    path: Path, text: str | None, *, seconds: float | None = None, voice: str = "en", gain_db: float = 0.0
) -> Path:
    """A talking head: a real photographed face (matplotlib's portrait) whose mouth opens and closes with `text`
    spoken (data/photo_clips.py), or a still face over digital silence for None; `gain_db` below 0 makes the voice
    quiet. The mouth moves with the voice, so the active-speaker check sees the visible person speak."""
    from data.photo_clips import photo_clip  # photo_clips imports this module's encoder settings

    if not text:
        return photo_clip(path, face="grace_hopper", texts=None, mouth="still", seconds=seconds or 2.5)
    return photo_clip(
        path, face="grace_hopper", texts=[text], voice=voice, seconds=seconds, gain_db=gain_db, lead_s=0, edge_s=0.3
    )


def silent_clip(path: Path, seconds: float = 2.0, *, audio: bool = True) -> Path:
    """A readable video whose audio track is digital silence (or absent)."""
    cmd = ["ffmpeg", "-y", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=25:duration={seconds}"]
    if audio:
        cmd += ["-f", "lavfi", "-i", "anullsrc=r=44100:cl=mono", "-t", str(seconds), "-c:a", "aac"]
    _run(cmd + ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(path)])
    return path


def empty_file(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def not_a_video(path: Path) -> Path:
    path.write_text("this is a subtitle file someone saved with the wrong extension\n")
    return path


def truncated_copy(source: Path, path: Path, keep: float = 0.4) -> Path:
    """The first `keep` share of a clip's bytes, as an interrupted download leaves it."""
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def corrupted_copy(source: Path, path: Path) -> Path:
    """A clip with its media data overwritten by garbage (header intact, so ffprobe still reads it)."""
    data = bytearray(source.read_bytes())
    start = len(data) // 3
    data[start:] = bytes((i * 131 + 7) % 256 for i in range(len(data) - start))
    path.write_bytes(bytes(data))
    return path


def _duration(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip() or 0)


def write_subtitles(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    """MER2025's subtitle_chieng.csv: name, chinese, english; empty cells common."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "chinese", "english"])
        writer.writerows(rows)
    return path


def make_sample_corpus(root: Path) -> Path:
    """The README's sample: five talking heads, a silent one, speech over a test pattern (no face),
    an empty file, and a subtitle row without a clip."""
    if root.exists():
        shutil.rmtree(root)
    video = root / "video"
    video.mkdir(parents=True)
    for name, _, english in SAMPLE_LINES:
        face_clip(video / f"{name}.mp4", english or "I can manage on my own, it is fine.")
    face_clip(video / "sample_00000005.mp4", None)
    empty_file(video / "sample_00000006.mp4")
    talking_clip(video / "sample_00000007.mp4", "Can anybody hear me? Hello?")
    rows = [
        *SAMPLE_LINES,
        ("sample_00000005", "", ""),
        ("sample_00000007", "", "Can anybody hear me? Hello?"),
        ("sample_00000099", "这个视频丢失了。", "This clip is missing."),
    ]
    write_subtitles(root / "subtitle_chieng.csv", rows)
    return root


if __name__ == "__main__":
    import sys

    make_sample_corpus(Path(sys.argv[1] if len(sys.argv) > 1 else "data/sample"))
