"""The measuring annotators as a backend: every method stage it answers, from given measurements, and
what its answers depend on (the measurements each stage reads, and nothing else).

Checked against the measurements given (a loud, fast voice; a smiling face) and the template and
lexicon files the annotators read, not against a copy of the backend."""

from __future__ import annotations

import pytest

from annotators.signals.acoustics import corpus_norms
from annotators.signals.vocabulary import lexicon
from backends.signals import ANSWERS, SignalsBackend
from schemas.signals import ActionUnit, AudioSignals, ClipSignals, VisualSignals
from stages.contract import checkpoint_key
from stages.registry import METHOD_STAGES
from tests.fakes import OneStage, clip_context, row_for

SIGNALS = ClipSignals(
    audio=AudioSignals(
        seconds=3.0,
        speech_seconds=2.7,
        speech_ratio=0.9,
        loudness_db=75.0,
        loudness_range_db=20.0,
        pitch_hz=210.0,
        pitch_range_semitones=12.0,
        speaking_rate=6.0,
        pauses=0,
    ),
    visual=VisualSignals(
        frames=4,
        face_ratio=1.0,
        smile_ratio=1.0,
        motion=0.02,
        brightness=0.5,
        action_units=[ActionUnit(au="AU12", name="lip corner puller (smile)", active_ratio=1.0, peak=0.9)],
        expressions={"happy": 0.9, "neutral": 0.1},
    ),
)


@pytest.fixture
def clip(tmp_path):
    context = clip_context(tmp_path)
    context.signals = SIGNALS
    context.measurement_hashes = {"audio": "a-hash", "visual": "v-hash"}
    return context


def run(stage_name: str, row, clip, tmp_path):
    one = OneStage(METHOD_STAGES[stage_name](), SignalsBackend(), tmp_path / "checkpoint.sqlite")
    return one.run(row, clip)


def test_the_clues_say_what_was_measured(clip, tmp_path):
    row = row_for(subtitle_english="I did it!")
    (audio, _), (visual, _) = run("audio_clue", row, clip, tmp_path), run("visual_clue", row, clip, tmp_path)
    assert audio.ok and visual.ok
    assert row.audio_clue.without_subtitle.clues and row.audio_clue.with_subtitle is None  # one clue for both asks
    assert "smil" in row.visual_clue.without_subtitle.clues.lower()  # a smiling face is said to smile
    assert [c.model for c in row.provenance] == ["signals", "signals"] and all(c.attempts == 0 for c in row.provenance)


def test_the_description_reads_subtitle_and_clues_and_its_labels_are_lexicon_words(clip, tmp_path):
    row = row_for(subtitle_english="I am so happy today!")
    for stage in ("audio_clue", "visual_clue", "disambiguation", "labels", "translation"):
        outcome, _ = run(stage, row, clip, tmp_path)
        assert outcome.ok, (stage, outcome.error)
    assert "I am so happy today!" in row.description_en
    assert row.labels and all(label in lexicon().head_of for label in row.labels)
    assert row.description_zh and row.description_zh != row.description_en
    # The description reads the measures themselves: the smile, the expression classes, the voice.
    assert "the lip corners pull up into a smile (AU12)" in row.description_en
    assert "The expression classifier reads the face as happy." in row.description_en
    assert "In the audio, the voice is more aroused than usual" in row.description_en


def test_the_voice_is_read_against_the_corpus_the_clip_is_in(clip, tmp_path):
    row = row_for(subtitle_english="I am so happy today!")
    # Twelve clips as loud and lively as this one: against them the voice is an ordinary one.
    clip.norms = corpus_norms([SIGNALS.audio] * 12)
    for stage in ("audio_clue", "disambiguation"):
        outcome, _ = run(stage, row, clip, tmp_path)
        assert outcome.ok, (stage, outcome.error)
    assert "the voice is neither raised nor subdued" in row.audio_clue.without_subtitle.clues
    assert "In the audio, the voice is neither raised nor subdued." in row.description_en
    assert ANSWERS["disambiguation"].reads == ("audio", "visual", "corpus")


def test_a_free_chinese_subtitle_is_a_permanent_error_not_a_guess(clip, tmp_path):
    row = row_for(subtitle_chinese="你为什么总是这样？")
    outcome, stats = run("subtitle_translation", row, clip, tmp_path)
    assert not outcome.ok and not outcome.transient and stats.failures == 1
    assert row.subtitle_english_translated is None and row.errors[0].stage == "subtitle_translation"


@pytest.mark.parametrize("stage_name", sorted(ANSWERS))
def test_an_answer_depends_on_the_measurements_its_stage_reads_and_no_others(clip, stage_name):
    stage, backend = METHOD_STAGES[stage_name](), SignalsBackend()
    row = row_for(subtitle_english="Hi.", subtitle_chinese="你好", description_en="In the video ...")
    inputs = stage.read(row)
    before = checkpoint_key(stage, backend, inputs, clip)
    for part in ("audio", "visual"):
        clip.measurement_hashes = {"audio": "a-hash", "visual": "v-hash"} | {part: "changed"}
        changed = checkpoint_key(stage, backend, inputs, clip) != before
        assert changed == (part in ANSWERS[stage_name].reads), part
