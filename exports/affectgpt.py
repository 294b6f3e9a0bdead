"""AffectGPT's EMER-Coarse stage-1 reader: one CSV with `names`, `subtitles`, `reasons`, and each clip at
`{vis_root}/{name}.avi`.

Matched against zeroQiaoba/AffectGPT@617ae18a9c89d63963cd2e140eff1361d2614f4c,
AffectGPT/video_llama/datasets/datasets/emotion_instruct_dataset.py (`Emotion_Reasoning_Dataset`): it reads
`ann_path` with `pandas.read_csv`, takes `row['names']`, `row['subtitles']` (NaN read as "") and
`row['reasons']`, and opens `os.path.join(vis_root, name + '.avi')` for both the frames and the audio. The
file name is hard-coded: clips in another container are re-muxed only when asked (--avi), else the manifest
says what the reader expects.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from exports.manifest import Written
from exports.media import Placer
from exports.source import Clip

VIDEO_DIR = "video"
EXPECTED = ".avi"


def csv_name(tier: str) -> str:
    return "emer_coarse_train.csv" if tier == "coarse" else f"emer_coarse_{tier}_train.csv"


def write(clips: Iterable[Clip], to: Path, placer: Placer, tier: str) -> Written:
    written = Written()
    name = csv_name(tier)
    other_containers: set[str] = set()
    with (to / name).open("w", encoding="utf-8", newline="") as f:
        table = csv.writer(f)
        table.writerow(["names", "subtitles", "reasons"])
        for clip in clips:
            row = clip.row
            if (suffix := placer.place_video(clip, VIDEO_DIR, EXPECTED, written)) is None:
                continue
            if suffix != EXPECTED:
                other_containers.add(suffix)
            # An empty cell is what pandas reads as NaN, which the reader turns into "".
            table.writerow([row.name, row.subtitle or "", row.description_en])
            written.rows += 1
    written.samples = written.rows
    written.files.append(name)
    written.reader = {
        "ann_path": name,
        "vis_root": VIDEO_DIR if placer.mode != "none" else "the corpus's video folder",
        "video": "{vis_root}/{name}.avi",
    }
    if other_containers:
        written.notes.append(
            f"Emotion_Reasoning_Dataset opens {{vis_root}}/{{name}}.avi (hard-coded); these clips are "
            f"{', '.join(sorted(other_containers))}: export with --avi (and --media link or copy) to re-mux them"
        )
    return written
