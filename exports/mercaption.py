"""AffectGPT 2025's MER-Caption+ reader: `track2_train_mercaptionplus.csv` (`name`, `openset`),
`track3_train_mercaptionplus.csv` (`name`, `reason`), the subtitle CSV (`name`, `chinese`, `english`), and per
clip `video/{name}.mp4` and `audio/{name}.wav`, all under one data folder.

Matched against ouyangjutian/AffectGPT@447851ed289132e74e296595988229f1a7b47540,
AffectGPT/my_affectgpt/datasets/datasets/mercaptionplus_dataset.py (`MERCaptionPlus_Dataset`) and its
config.py (@14b5ebce8f29d6a41a6aad42a31b587cf345c72e: DATA_DIR holds both track CSVs, `subtitle_chieng.csv`,
`video/`, `audio/`, `openface_face/`): `openset` goes through MERTools' `string_to_list` (one leading "[" and
one trailing "]" dropped, split on quotes and commas) and an empty list becomes ['neutral']; every name of
track 2 is looked up in track 3 and in the subtitle table (a missing one is a KeyError there), `english` NaN
is read as "". Faces (`openface_face/{name}/{name}.npy`, OpenFace crops) are not written: the engine keeps
no face crops.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from exports.manifest import Written
from exports.media import Placer
from exports.source import Clip
from metrics.openset import format_openset

TRACK2 = "track2_train_mercaptionplus.csv"
TRACK3 = "track3_train_mercaptionplus.csv"
SUBTITLES = "subtitle_chieng.csv"
EXPECTED = ".mp4"
_SPLITTERS = str.maketrans("", "", "'\",[]")  # what string_to_list splits on or strips


def openset(labels: list[str]) -> str:
    """The labels as the list string string_to_list reads back; characters it would split a label on are
    dropped from the label (emotion words carry none)."""
    return format_openset([cleaned for label in labels if (cleaned := label.translate(_SPLITTERS).strip())])


def write(clips: Iterable[Clip], to: Path, placer: Placer) -> Written:
    written = Written()
    other_containers: set[str] = set()
    with (
        (to / TRACK2).open("w", encoding="utf-8", newline="") as f2,
        (to / TRACK3).open("w", encoding="utf-8", newline="") as f3,
        (to / SUBTITLES).open("w", encoding="utf-8", newline="") as fs,
    ):
        track2, track3, subtitles = csv.writer(f2), csv.writer(f3), csv.writer(fs)
        track2.writerow(["name", "openset"])
        track3.writerow(["name", "reason"])
        subtitles.writerow(["name", "chinese", "english"])
        for clip in clips:
            row = clip.row
            if (suffix := placer.place_video(clip, "video", EXPECTED, written)) is None:
                continue
            if suffix != EXPECTED:
                other_containers.add(suffix)
            if clip.audio is None:
                placer.missing(row.name, "audio", dict(clip.problems).get("audio", "no audio"))
            else:
                placer.place(row.name, "audio", clip.audio, f"audio/{row.name}.wav")
            track2.writerow([row.name, openset(row.labels)])
            track3.writerow([row.name, row.description_en])
            english = row.subtitle_english or row.subtitle_english_translated or ""
            subtitles.writerow([row.name, row.subtitle_chinese or "", english])
            written.rows += 1
    written.samples = written.rows
    written.files += [TRACK2, TRACK3, SUBTITLES]
    media_root = "DIR" if placer.mode != "none" else "the corpus"
    written.reader = {
        "DATA_DIR": "DIR (config.DATA_DIR['MERCaptionPlus'])",
        "PATH_TO_TRANSCRIPTIONS": f"DIR/{SUBTITLES}",
        "PATH_TO_RAW_VIDEO": f"{media_root}/video" + ("" if placer.mode != "none" else " (the clips' folder)"),
        "PATH_TO_RAW_AUDIO": f"{media_root}/audio" if placer.mode != "none" else "the corpus's 16 kHz wav folder",
    }
    written.notes.append("faces (openface_face/{name}/{name}.npy) are not exported: the engine keeps no face crops")
    if other_containers:
        written.notes.append(
            f"MERCaptionPlus_Dataset opens video/{{name}}.mp4 (hard-coded); these clips are "
            f"{', '.join(sorted(other_containers))}: export with --convert (and --media link or copy) to re-mux them"
        )
    return written
