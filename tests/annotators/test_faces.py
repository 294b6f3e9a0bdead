"""Faces, landmarks, action units, expressions and motion, measured on clips made from real photographs
(data/photo_clips.py: scikit-image's astronaut, who smiles, and matplotlib's portrait of Grace Hopper), with the
real detectors and models (dlib, fer's FER2013 network). Checked against how each clip was made."""

from __future__ import annotations

import numpy as np
import pytest

from annotators.signals import faces
from data.photo_clips import SPEECH, photo, photo_clip
from schemas.signals import VisualSignals
from tests.annotators.photo_fixture import clip_set, visual_of

NAMES = ["talking", "still", "silent_face", "dark", "small", "turned", "no_face"]


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> dict[str, VisualSignals]:
    clips = clip_set(tmp_path_factory, NAMES)
    return {name: visual_of(path) for name, path in clips.items()}


def unit(v: VisualSignals, code: str):
    return next(u for u in v.action_units if u.au == code)


def test_the_smiling_astronaut_measures_a_face_and_a_smile(measured):
    for name in ("talking", "still"):  # the photo as it is (still) and with its mouth moving
        v = measured[name]
        assert v.face_ratio == 1.0 and "dlib" in v.detector
        assert v.smile_ratio >= 0.5 and unit(v, "AU12").active_ratio == v.smile_ratio
    # Grace Hopper's closed mouth smiles less than the astronaut's broad smile.
    assert measured["silent_face"].face_ratio == 1.0
    assert unit(measured["silent_face"], "AU12").peak < unit(measured["still"], "AU12").peak


def test_dark_small_and_turned_faces_are_found(measured):
    plain = measured["talking"]
    dark, small, turned = measured["dark"], measured["small"], measured["turned"]
    assert dark.brightness < plain.brightness / 2 and dark.face_ratio >= 0.9
    # The small face is Grace Hopper's portrait at a third of the frame height (silent_face shows it whole).
    assert small.face_size < measured["silent_face"].face_size / 2 and small.face_ratio >= 0.9
    assert turned.face_ratio >= 0.9 and abs(turned.head_yaw_deg) > 20 > abs(plain.head_yaw_deg)
    nothing = measured["no_face"]
    assert nothing.face_ratio == 0.0 and nothing.action_units == [] and nothing.expressions is None
    assert all(m is None for m in nothing.mouth_opening)


def test_the_mouth_track_is_dense_and_follows_the_mouth(measured):
    talking, still = measured["talking"], measured["still"]
    times = np.array(talking.frame_times)
    assert len(times) == len(talking.mouth_opening) and np.median(np.diff(times)) <= 0.2  # >= 5 frames a second
    opening = np.array(talking.mouth_opening, dtype=float)
    assert np.ptp(opening) > 0.15 and np.ptp(np.array(still.mouth_opening, dtype=float)) < 0.02
    # The jaw drops while it speaks, never in the photo as it is.
    assert unit(talking, "AU26").active_ratio > 0.2 and unit(still, "AU26").active_ratio == 0.0
    assert all(len(u.series) == len(times) for u in talking.action_units)


def test_the_expression_classifier_reads_the_face_crops(measured):
    smiling = measured["talking"].expressions
    assert measured["talking"].expression_model
    assert sum(smiling.values()) == pytest.approx(1.0, abs=0.01)
    assert max(smiling, key=smiling.get) == "happy"


def test_motion_measures_how_fast_the_moving_parts_move():
    """A still picture, a photo sliding a little (a swaying head) and a small patch sweeping across (a pointing
    arm): motion rises with the speed of what moves, not with its share of the frame."""
    picture = photo("astronaut")[:360, :480]
    times = [i / 8 for i in range(16)]
    still = [picture] * 16
    sway = [np.roll(picture, int(i * 1), axis=1) for i in range(16)]  # 8 px a second: 1/60 frame width a second
    arm = []
    for i in range(16):
        frame = picture.copy()
        x = 40 + i * 20  # 160 px a second: a third of the frame width a second
        frame[150:230, x : x + 80] = photo("grace_hopper")[200:280, 200:280]
        arm.append(frame)
    assert faces.motion(still, times) < 0.01
    assert faces.motion(sway, times) < 0.08 <= faces.motion(arm, times)  # templates.toml: 0.08 is "much movement"


@pytest.mark.parametrize("mouth", ["still", "synced"])
def test_a_photo_neither_blinks_nor_frowns_nor_moves_its_head(tmp_path, mouth):
    """Grace Hopper's portrait as it is and talking (only the mouth is warped): the landmark fit's jitter, which
    the moving mouth makes worse, is not read as blinks, a lowered brow or a moving head."""
    texts = None if mouth == "still" else SPEECH
    v = faces.measure_video(str(photo_clip(tmp_path / "hopper.mp4", face="grace_hopper", texts=texts, mouth=mouth)))
    assert v.face_ratio >= 0.9
    assert v.blinks == 0
    assert v.head_movement_deg < 3.0
    assert unit(v, "AU4").active_ratio < 0.1
