"""The AffectGPT (EMER-Coarse stage 1) export, read back as its reader reads it.

The reader, written from zeroQiaoba/AffectGPT@617ae18a9c89d63963cd2e140eff1361d2614f4c
AffectGPT/video_llama/datasets/datasets/emotion_instruct_dataset.py (`Emotion_Reasoning_Dataset.__init__` and
`_get_video_path`): `pd.read_csv(ann_path)`, per row `row['names']`, `row['subtitles']` (NaN -> ""),
`row['reasons']`; the clip at `os.path.join(vis_root, name + '.avi')`, opened with decord (`load_video`) for
the frames and for the audio track.
"""

from __future__ import annotations

import json
import os

import decord
import ffmpeg
import pandas as pd

from exports.run import export_training


def emotion_reasoning_annotation(ann_path) -> list[dict]:
    annotation = []
    for _, row in pd.read_csv(ann_path).iterrows():
        subtitle = row["subtitles"]
        if pd.isna(subtitle):
            subtitle = ""
        annotation.append({"name": row["names"], "subtitle": subtitle, "reason": row["reasons"]})
    return annotation


def test_the_csv_holds_every_train_row_with_its_subtitle_and_description(built, train, config, tmp_path):
    to = tmp_path / "affectgpt"
    manifest = export_training(built, "affectgpt", to, config=config)
    annotation = emotion_reasoning_annotation(to / manifest.reader["ann_path"])
    assert {a["name"] for a in annotation} == set(train)  # the review row is not there
    for a in annotation:
        assert a["reason"] == train[a["name"]]["description_en"]
        assert a["subtitle"] == train[a["name"]]["subtitle_english"]
    written = json.loads((to / "export-manifest.json").read_text())
    assert written["rows"] == 2 and written["tier"] == "coarse" and written["format"] == "affectgpt"
    assert written["source"]["splits"]["review"] == 1 and written["config_fingerprint"]
    assert written["source"]["tier_counts"]["coarse"] == 2  # build.json's tier counts
    # Without --avi the .mp4 clip keeps its container, and the manifest says the reader wants .avi.
    assert (to / "video" / "sample_00000001.mp4").is_symlink()
    assert any(".avi" in note and "--avi" in note for note in written["notes"])


def test_with_avi_every_clip_is_where_the_reader_opens_it_and_decodes(built, train, config, tmp_path):
    to = tmp_path / "affectgpt-avi"
    manifest = export_training(built, "affectgpt", to, media="copy", convert=True, config=config)
    assert manifest.converted_to == ".avi" and not manifest.notes and not manifest.media_problems
    vis_root = to / manifest.reader["vis_root"]
    for sample in emotion_reasoning_annotation(to / manifest.reader["ann_path"]):
        video_path = os.path.join(vis_root, sample["name"] + ".avi")
        reader = decord.VideoReader(video_path, width=224, height=224)
        assert len(reader) > 8 and reader.get_batch([0, len(reader) - 1]).shape[1:] == (224, 224, 3)
        probe = ffmpeg.probe(video_path)
        assert probe["format"]["format_name"] == "avi"
        assert {s["codec_type"] for s in probe["streams"]} == {"video", "audio"}  # the audio is read from it too
