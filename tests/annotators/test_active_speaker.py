"""Is the visible face the one speaking? Clips from real photographs whose mouth moves with espeak-ng's voice, against
it, or not at all, and speech over a photo with no face (data/photo_clips.py), measured end to end (dlib's landmarks,
WebRTC's voice activity) and judged by the A/V gate."""

from __future__ import annotations

import pytest

from annotators.signals.active_speaker import MIN_SCORE, active_speaker
from annotators.signals.prosody import measure_audio
from gates import av_match
from schemas.config import AVMatchGate
from schemas.row import CoarseRow
from schemas.signals import ClipSignals
from tests.annotators.photo_fixture import clip_set, visual_of, wav_of

NAMES = ["talking", "talking_hopper", "dark", "turned", "unsynced", "still", "no_face", "silent_face"]


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> dict[str, ClipSignals]:
    out = {}
    for name, clip in clip_set(tmp_path_factory, NAMES).items():
        wav = wav_of(clip)
        audio, visual = measure_audio(wav), visual_of(clip)
        out[name] = ClipSignals(audio=audio, visual=visual, active_speaker=active_speaker(audio, visual, wav))
    return out


def test_a_talking_head_speaks(measured):
    for name in ("talking", "talking_hopper", "dark", "turned"):
        speaker = measured[name].active_speaker
        assert speaker.verdict == "speaks" and speaker.score >= MIN_SCORE, (name, speaker)
        assert abs(speaker.lag_s) <= 0.3 and speaker.frames_compared >= 20


def test_the_voice_track_alone_gives_the_same_verdict(measured):
    sig = measured["talking"]
    assert active_speaker(sig.audio, sig.visual).verdict == "speaks"


def test_a_mouth_that_moves_against_the_voice_scores_lower_than_one_that_moves_with_it(measured):
    unsynced, synced = measured["unsynced"].active_speaker, measured["talking"].active_speaker
    assert unsynced.verdict == "out_of_sync" and unsynced.score < MIN_SCORE < synced.score


def test_a_still_face_under_speech_speech_with_no_face_and_a_silent_face(measured):
    assert measured["still"].active_speaker.verdict == "still_face"
    assert measured["no_face"].active_speaker.verdict == "no_face"
    assert measured["silent_face"].active_speaker.verdict == "no_speech"


def row(sig: ClipSignals) -> CoarseRow:
    return CoarseRow(name="c", sha256="a" * 64, clip_status="ok", complete=True, signals=sig)


def test_the_av_gate_passes_the_talking_head_and_holds_back_the_others_with_the_score(measured):
    gate = AVMatchGate()
    talking = av_match.check(row(measured["talking"]), gate)
    assert talking.passed and "active-speaker score" in talking.reason and talking.score >= gate.min_speaker_score
    for name, reason in [
        ("still", "a voice over a still face"),
        ("unsynced", "does not speak with the voice, active-speaker score"),
        ("no_face", "someone talks but no face is visible"),
        ("silent_face", "a face is visible but there is no speech"),
    ]:
        held = av_match.check(row(measured[name]), gate)
        assert not held.passed and reason in held.reason, (name, held.reason)
