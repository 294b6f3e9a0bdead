"""Each gate on hand-made rows: what passes, what fails, and the reason a reviewer reads."""

from __future__ import annotations

import pytest

from gates import av_match, grounding, length, validity
from gates.base import LengthBounds
from schemas.config import AVMatchGate, LengthGate, ValidityGate
from schemas.replies import ClueReply
from schemas.row import ClueSet, CoarseRow
from schemas.signals import AudioSignals, ClipSignals, VisualSignals

EN = (
    "In the video, she smiles; in the audio, her voice is bright; in the text, she says she passed. "
    "Overall, she feels happy."
)
ZH = "视频中她在微笑；音频中她的声音明亮；文本中她说自己通过了。总体来看，她很开心。"


def row(**kw) -> CoarseRow:
    base = {
        "name": "c",
        "sha256": "a" * 64,
        "clip_status": "ok",
        "complete": True,
        "description_en": EN,
        "description_zh": ZH,
        "labels": ["happy"],
    }
    return CoarseRow(**(base | kw))


def signals(speech=0.8, face=1.0, loudness=65.0, rate=4.5, motion=0.02) -> ClipSignals:
    audio = (
        AudioSignals(
            seconds=4,
            speech_seconds=4 * speech,
            speech_ratio=speech,
            loudness_db=loudness,
            pitch_hz=180,
            pitch_range_semitones=5,
            speaking_rate=rate,
        )
        if speech
        else None
    )
    return ClipSignals(
        audio=audio, visual=VisualSignals(frames=8, face_ratio=face, smile_ratio=0.0, motion=motion, brightness=0.4)
    )


def test_validity_passes_a_clean_bilingual_row():
    v = validity.check(row(), ValidityGate())
    assert v.passed and v.score == 1.0


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"description_zh": "She is happy."}, "wrong-language translation"),
        ({"description_zh": ""}, "description_zh is empty"),
        ({"description_en": EN + " 她很开心。"}, "English description contains CJK"),
        ({"description_en": "Visual clues: a smile.\n" + EN}, "leaks prompt scaffolding: 'Visual clues:'"),
        ({"description_en": EN + " <|im_end|>"}, "leaks prompt scaffolding"),
        ({"labels": ["happy", "she seems to be very happy today"]}, "not emotion words"),
        ({"labels": []}, "no labels"),
    ],
)
def test_validity_names_what_is_wrong(change, reason):
    v = validity.check(row(**change), ValidityGate())
    assert not v.passed and reason in v.reason


def test_a_quoted_subtitle_does_not_count_against_the_language():
    # A Chinese description may quote an English subtitle, and the other way round.
    zh = "字幕说“I am so happy, I finally passed the exam and I cannot believe it”，她很开心。"
    en = EN + ' The subtitle reads "我太开心了".'
    assert validity.check(row(description_zh=zh, description_en=en), ValidityGate()).passed


def test_length_bounds_are_fixed_for_a_small_corpus_and_quantiles_for_a_large_one():
    cfg = LengthGate(min_words=10, max_words=400, lower_quantile=0.05, upper_quantile=0.95, min_rows_for_quantiles=100)
    assert length.length_bounds([50] * 99, cfg) == LengthBounds(
        10, 400, "fixed (only 99 descriptions, quantiles need 100)"
    )
    # 100 descriptions of 100..199 words: the 5% quantile is 104.95 (floor 104), the 95% 194.05 (ceil 195).
    bounds = length.length_bounds(range(100, 200), cfg)
    assert (bounds.low, bounds.high) == (104, 195)
    # Outer bounds clamp the quantiles.
    clamped = length.length_bounds([5] * 50 + [1000] * 50, cfg)
    assert (clamped.low, clamped.high) == (10, 400)


def test_length_rejects_both_tails_with_the_numbers():
    bounds = LengthBounds(20, 30, "quantiles")
    short = length.check(row(description_en="In the video, the woman"), bounds)
    assert not short.passed and short.score == 5 and "5 words, below 20" in short.reason
    assert not length.check(row(description_en="word " * 31), bounds).passed
    assert length.check(row(description_en="word " * 25), bounds).passed


@pytest.mark.parametrize(
    "sig, passed, reason",
    [
        (signals(speech=0.8, face=1.0), True, "a talking face"),
        (signals(speech=0.8, face=0.0), False, "someone talks but no face is visible"),
        (signals(speech=0.0, face=1.0), False, "a face is visible but there is no speech"),
        (signals(speech=0.05, face=0.1), False, "neither speech nor a face"),
        (None, False, "no measurements"),
    ],
)
def test_av_match(sig, passed, reason):
    v = av_match.check(row(signals=sig), AVMatchGate())
    assert v.passed is passed and reason in v.reason


def clues(audio: str | None = None, visual: str | None = None) -> dict:
    make = lambda text: ClueSet(without_subtitle=ClueReply(clues=text, emotional_states=[])) if text else None
    return {"audio_clue": make(audio), "visual_clue": make(visual)}


def test_grounding_flags_claims_the_measurements_contradict():
    quiet = grounding.check(row(signals=signals(loudness=40.0), **clues(audio="She is shouting at him.")))
    assert (
        not quiet.passed
        and "audio_clue says 'shouting': claims a loud voice, but speech measures 40 dB" in quiet.reason
    )
    faceless = grounding.check(row(signals=signals(face=0.0), **clues(visual="A broad smile lights up her face.")))
    assert (
        not faceless.passed and "describes a face, but a face is found in 0 of the sampled frames" in faceless.reason
    )
    # A silent track has no loudness at all: a shouting claim is contradicted by the missing speech.
    assert not grounding.check(row(signals=signals(speech=0.0), **clues(audio="Loud shouting."))).passed


def test_grounding_accepts_what_is_measured_and_what_is_denied():
    assert grounding.check(
        row(signals=signals(loudness=75.0), **clues(audio="She is shouting.", visual="She smiles."))
    ).passed
    # Negated claims are not claims.
    assert grounding.check(
        row(
            signals=signals(face=0.0, loudness=40.0),
            **clues(audio="She is not shouting.", visual="No smile, no face is visible."),
        )
    ).passed
