"""Each gate on hand-made rows: what passes, what fails, and the reason a reviewer reads."""

from __future__ import annotations

import pytest

from gates import av_match, cross_validation, grounding, length, validity
from gates.base import LengthBounds
from schemas.config import AVMatchGate, CrossValidationGate, LengthGate, ValidityGate
from schemas.replies import ClueReply
from schemas.row import ClueSet, CoarseRow, ModelCall, StageError
from schemas.signals import ActiveSpeaker, AudioSignals, ClipSignals, VisualSignals

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


def speaking(verdict: str, score: float | None, speech=0.8, face=1.0) -> ClipSignals:
    """Signals with the active-speaker check's finding (annotators/signals/active_speaker.py)."""
    sig = signals(speech=speech, face=face)
    sig.active_speaker = ActiveSpeaker(verdict=verdict, score=score, frames_compared=40, evidence="measured")
    return sig


@pytest.mark.parametrize(
    "sig, passed, reason",
    [
        # Rows measured before the active-speaker check: the shares of speech and face decide.
        (signals(speech=0.8, face=1.0), True, "a talking face"),
        (signals(speech=0.8, face=0.0), False, "someone talks but no face is visible"),
        (signals(speech=0.0, face=1.0), False, "a face is visible but there is no speech"),
        (signals(speech=0.05, face=0.1), False, "neither speech nor a face"),
        (None, False, "no measurements"),
        # The visible face speaks when the voice speaks.
        (speaking("speaks", 0.62), True, "the visible face speaks: active-speaker score 0.62"),
        (speaking("still_face", 0.05), False, "a voice over a still face"),
        (speaking("out_of_sync", -0.4), False, "does not speak with the voice, active-speaker score -0.40 < 0.2"),
        (speaking("no_face", None, face=0.1), False, "someone talks but no face is visible"),
        # A face too small to read its lips: judged by the shares, as before the check.
        (speaking("uncertain", None), True, "a talking face"),
        # A silent clip with a face is still "a face but no speech", whatever the mouth does.
        (speaking("no_speech", None, speech=0.0), False, "a face is visible but there is no speech"),
    ],
)
def test_av_match(sig, passed, reason):
    v = av_match.check(row(signals=sig), AVMatchGate())
    assert v.passed is passed and reason in v.reason


def test_av_match_judges_the_active_speaker_score_against_the_configured_threshold():
    weak = row(signals=speaking("speaks", 0.25))
    assert av_match.check(weak, AVMatchGate()).passed
    strict = av_match.check(weak, AVMatchGate(min_speaker_score=0.3))
    assert not strict.passed and strict.score == 0.25 and strict.threshold == 0.3


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


# --- cross-validation: independent views only -------------------------------------------------------


def made_by(**models: str) -> list[ModelCall]:
    """Provenance naming the model that answered each stage ("signals" is the signals backend)."""
    return [
        ModelCall(
            stage=stage, prompt_id=stage, prompt_version="1", model=m, server="local", sampling="{}", config_hash="h"
        )
        for stage, m in models.items()
    ]


def clue_states(audio: list[str] | None = None, visual: list[str] | None = None) -> dict:
    make = lambda states: ClueSet(without_subtitle=ClueReply(clues="...", emotional_states=states))
    return {"audio_clue": make(audio or []), "visual_clue": make(visual or [])}


MODELS = made_by(audio_clue="qwen2-audio", visual_clue="qwen2-vl", labels="qwen2.5")
SIGNALS_LINEUP = made_by(audio_clue="signals", visual_clue="signals", labels="signals")


def cross_validated(r: CoarseRow):
    r.label_views = cross_validation.label_views(r)
    return cross_validation.check(r, CrossValidationGate())


def smiling_face(**kw) -> VisualSignals:
    return VisualSignals(frames=8, face_ratio=1.0, smile_ratio=0.8, motion=0.02, brightness=0.4, **kw)


def test_cross_validation_passes_labels_that_agree_with_an_independent_clue():
    v = cross_validated(row(labels=["happy"], provenance=MODELS, **clue_states(["excited"], ["happy"])))
    assert v.passed and v.score == 1.0 and "over audio_clue, visual_clue" in v.reason


def test_cross_validation_fails_labels_that_agree_with_no_clue_and_clues_of_opposite_sentiment():
    none = cross_validated(row(labels=["happy"], provenance=MODELS, **clue_states(["angry"], ["annoyed"])))
    assert not none.passed and none.score == 0.0 and "agree with no clue" in none.reason
    opposite = cross_validated(row(labels=["angry", "happy"], provenance=MODELS, **clue_states(["angry"], ["happy"])))
    assert not opposite.passed
    assert (
        "contradictory clues: the audio clue is negative (angry), the visual clue positive (happy)" in opposite.reason
    )


def test_a_clue_the_signals_backend_templated_is_not_counted_beside_the_measurement_it_templates():
    # The signals backend wrote the visual clue from the measured smile; the face view reads the same smile.
    r = row(
        labels=["angry"],
        signals=ClipSignals(visual=smiling_face()),
        provenance=made_by(audio_clue="qwen2-audio", visual_clue="signals", labels="qwen2.5"),
        **clue_states(["angry"], ["happy"]),
    )
    v = cross_validated(r)
    views = {view.source: view for view in r.label_views}
    assert not views["visual_clue"].independent and "template of the face measurements" in views["visual_clue"].basis
    assert views["face"].independent and views["face"].labels == ["happy"]
    # One smile, one contradiction with the model's angry voice: named once, as the face.
    assert v.reason.count("contradictory clues") == 1 and "the face's expression positive (happy)" in v.reason
    assert "the visual clue" not in v.reason


def test_on_the_signals_line_up_the_gate_fails_on_real_disagreement():
    # The face smiles strongly (the expression classifier's view); the labels, read from the words, say sad.
    face = smiling_face(expressions={"happy": 0.8, "neutral": 0.1, "sad": 0.1})
    r = row(labels=["sad"], signals=ClipSignals(visual=face), provenance=SIGNALS_LINEUP, **clue_states([], ["happy"]))
    v = cross_validated(r)
    assert not v.passed and "agree with no clue" in v.reason and "face says happy" in v.reason
    lexical = next(view for view in r.label_views if view.source == "description_lexicon")
    assert not lexical.independent  # the labels stage was this very lexicon
    agreeing = row(labels=["happy"], signals=ClipSignals(visual=face), provenance=SIGNALS_LINEUP)
    assert cross_validated(agreeing).passed


def test_the_skipped_audio_clue_of_a_silent_clip_is_not_counted_as_a_view():
    # A silent clip: the pipeline asks no audio clue and records why; the signals backend wrote the others.
    skipped = StageError(stage="audio_clue", message="skipped: silent audio (peak -91.0 dB < -60.0 dB)")
    r = row(
        provenance=made_by(visual_clue="signals", labels="signals"),
        visual_clue=clue_states(visual=["happy"])["visual_clue"],
        errors=[skipped],
    )
    views = {view.source: view for view in cross_validation.label_views(r)}
    assert views["audio_clue"].labels == [] and not views["audio_clue"].independent
    assert views["audio_clue"].basis == "no clue (skipped: silent audio (peak -91.0 dB < -60.0 dB))"
    assert [views[s].independent for s in ("audio_clue", "visual_clue", "description_lexicon")] == [False] * 3
    # An audio clue a model did write stays a view of its own.
    heard = row(provenance=MODELS, **clue_states(["excited"], ["happy"]))
    assert next(v for v in cross_validation.label_views(heard) if v.source == "audio_clue").independent
