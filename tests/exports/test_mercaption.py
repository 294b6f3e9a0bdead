"""The MER-Caption+ export, read back as AffectGPT 2025's reader reads it.

The reader, written from ouyangjutian/AffectGPT@447851ed289132e74e296595988229f1a7b47540
AffectGPT/my_affectgpt/datasets/datasets/mercaptionplus_dataset.py (`MERCaptionPlus_Dataset.__init__` and the
`_get_*_path` methods) with its config.py (DATA_DIR holds the track CSVs and `subtitle_chieng.csv`; `video/`,
`audio/`), and MERTools' `string_to_list` as in toolkit/utils/functions.py (Wz1h1NG/AffectAgent@
999947fa3f56044da5743b57f5a8f4a3e2392260 carries it unchanged).
"""

from __future__ import annotations

import os
import re
import wave

import decord
import numpy as np
import pandas as pd

from exports.run import export_training


def string_to_list(cell):
    # MERTools' string_to_list, as written there.
    if type(cell) == np.ndarray:  # noqa: E721
        cell = cell.tolist()
    if isinstance(cell, list):
        return cell
    if cell == "" or pd.isna(cell):
        return []
    if cell[0] == "[":
        cell = cell[1:]
    if cell[-1] == "]":
        cell = cell[:-1]
    return [item.strip() for item in re.split("['\",]", cell) if item.strip() not in ["", ","]]


def mercaptionplus_annotation(data_dir) -> list[dict]:
    name2openset = {}
    for _, row in pd.read_csv(os.path.join(data_dir, "track2_train_mercaptionplus.csv")).iterrows():
        openset = string_to_list(row["openset"])
        if len(openset) == 0:
            openset = ["neutral"]
        name2openset[row["name"]] = ", ".join(openset)
    name2reason = {
        row["name"]: row["reason"]
        for _, row in pd.read_csv(os.path.join(data_dir, "track3_train_mercaptionplus.csv")).iterrows()
    }
    name2subtitle = {}
    for _, row in pd.read_csv(os.path.join(data_dir, "subtitle_chieng.csv")).iterrows():
        subtitle = row["english"]
        if pd.isna(subtitle):
            subtitle = ""
        name2subtitle[row["name"]] = subtitle
    # The reader indexes both tables with every track-2 name: a missing one is its KeyError.
    return [
        {"name": n, "subtitle": name2subtitle[n], "description": name2reason[n], "ovlabel": name2openset[n]}
        for n in name2openset
    ]


def test_the_tracks_and_subtitles_read_back_as_the_rows_say(built, train, config, tmp_path):
    to = tmp_path / "mercaption"
    export_training(built, "mercaption", to, config=config)
    annotation = mercaptionplus_annotation(to)
    assert {a["name"] for a in annotation} == set(train)
    for a in annotation:
        row = train[a["name"]]
        assert a["ovlabel"] == ", ".join(row["labels"]) and row["labels"]
        assert a["description"] == row["description_en"] and a["subtitle"] == row["subtitle_english"]
    chinese = pd.read_csv(to / "subtitle_chieng.csv").set_index("name")["chinese"]
    assert chinese["sample_00000001"] == train["sample_00000001"]["subtitle_chinese"]
    assert pd.isna(chinese["samplenew_00004251"])  # no Chinese subtitle: an empty cell, NaN to pandas


def test_clips_and_16khz_audio_are_at_the_readers_paths(built, train, config, tmp_path):
    to = tmp_path / "mercaption-mp4"
    manifest = export_training(built, "mercaption", to, media="copy", convert=True, config=config)
    assert not manifest.media_problems and manifest.media_files == 4
    for sample in mercaptionplus_annotation(to):
        video_path = os.path.join(to, "video", sample["name"] + ".mp4")
        assert len(decord.VideoReader(video_path)) > 8
        with wave.open(os.path.join(to, "audio", sample["name"] + ".wav")) as w:
            assert (w.getframerate(), w.getnchannels()) == (16000, 1) and w.getnframes() > 16000
