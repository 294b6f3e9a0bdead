"""The measurement stage on its own, over the measurement backend: real media (ffmpeg, decord) of a
generated talking head, measured by Praat, WebRTC VAD and OpenCV in the isolated pool.

Checked against what the clip is made of (speech or none, a face or none), not against the measures'
own code; tests/test_signals.py covers what each measure means."""

from __future__ import annotations

import asyncio

import pytest

from backends.measure import MeasurementBackend
from data import synth_clips as synth
from runtime.isolation import IsolatedPool
from schemas.config import MediaConfig
from schemas.manifest import Subtitles
from stages.contract import ClipContext
from stages.ingest import probe_clip
from stages.media_prep import MediaPrep
from stages.signals import MeasureSignalsStage
from tests.fakes import OneStage, row_for


@pytest.fixture(scope="module")
def pool():
    pool = IsolatedPool(1)
    yield pool
    pool.close()


def prepared(path, pool, cache, hears=True) -> ClipContext:
    record = probe_clip(path, Subtitles(), None, 30, -60)
    prep = MediaPrep(cache, MediaConfig(max_frames=4, frame_max_side=160), pool)
    media = asyncio.run(prep.prepare(record, with_audio=hears))
    return ClipContext(record=record, media=media, media_keys=prep.keys(record))


def test_a_talking_head_is_measured_with_speech_and_a_face(pool, tmp_path):
    clip = prepared(synth.face_clip(tmp_path / "head.mp4", "I finally passed the exam!"), pool, tmp_path / "cache")
    one = OneStage(MeasureSignalsStage(), MeasurementBackend(pool), tmp_path / "checkpoint.sqlite")
    row = row_for(sha256=clip.record.sha256)
    outcome, stats = one.run(row, clip)
    assert outcome.ok and stats.runs == 1 and stats.requests == 0  # measured, nothing asked of a model
    assert row.signals.audio.speech_ratio > 0.3 and row.signals.visual.face_ratio > 0.5
    # The face is measured on a denser track than the sampled frames (the active-speaker check needs it).
    assert row.signals.visual.frames > len(clip.media.frames)
    assert row.signals.active_speaker.verdict == "speaks"
    _, stats = one.run(row_for(sha256=clip.record.sha256), clip)
    assert stats.checkpoint_hits == 1


def test_a_silent_clip_is_measured_from_its_frames_only(pool, tmp_path):
    clip = prepared(synth.silent_clip(tmp_path / "silent.mp4"), pool, tmp_path / "cache", hears=False)
    one = OneStage(MeasureSignalsStage(), MeasurementBackend(pool), tmp_path / "checkpoint.sqlite")
    row = row_for(sha256=clip.record.sha256, clip_status="silent")
    outcome, _ = one.run(row, clip)
    assert outcome.ok and row.signals.audio is None and row.signals.visual.frames >= 1


def test_media_that_cannot_be_measured_is_this_clips_error_and_remembered(pool, tmp_path):
    clip = prepared(synth.face_clip(tmp_path / "head.mp4", "Hello there."), pool, tmp_path / "cache")
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00")  # a header and nothing else
    clip.media = clip.media.model_copy(update={"wav": str(broken)})
    one = OneStage(MeasureSignalsStage(), MeasurementBackend(pool), tmp_path / "checkpoint.sqlite")
    row = row_for(sha256=clip.record.sha256)
    outcome, stats = one.run(row, clip)
    assert not outcome.ok and stats.failures == 1 and row.signals is None
    assert [e.stage for e in row.errors] == ["signals"] and row.errors[0].message.startswith("cannot measure:")
