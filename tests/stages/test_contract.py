"""Every model stage on its own, over a scripted client (no HTTP): what it sends, what it writes on a
good reply, on an invalid reply and on a transient error, and what is checkpointed of each.

Checked against the stage declarations and the prompt files themselves (the text a model is sent is
the prompt file's template filled with the row's values), not against a copy of the stage code."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from annotators.prompts import load_prompt
from backends.openai import OpenAIBackend
from schemas.config import MediaTransport
from schemas.row import CoarseRow
from stages.clues import AudioClueStage, VisualClueStage
from stages.contract import Stage
from stages.disambiguation import DisambiguationStage
from stages.labels import LabelsStage
from stages.translation import SubtitleTranslationStage, TranslationStage
from tests.fakes import Fails, FakeClient, OneStage, clue_set, row_for

CLUE = {"clues": "a raised voice", "emotional_states": ["angry"]}


@dataclass
class Case:
    stage: Stage
    row: CoarseRow
    good: dict  # a valid reply
    written: Callable[[CoarseRow], object]  # what the stage wrote, read back from the row
    expected: object
    sent: tuple[str, ...]  # texts every question must carry (the row's values)
    media: MediaTransport = MediaTransport.none


CASES = {
    "audio_clue": Case(
        AudioClueStage(),
        row_for(subtitle_english="Why me?"),
        CLUE,
        lambda r: r.audio_clue.without_subtitle.clues,
        "a raised voice",
        (),
        MediaTransport.input_audio,
    ),
    "visual_clue": Case(
        VisualClueStage(),
        row_for(subtitle_english="Why me?"),
        CLUE,
        lambda r: r.visual_clue.with_subtitle.emotional_states,
        ["angry"],
        (),
        MediaTransport.frames,
    ),
    "subtitle_translation": Case(
        SubtitleTranslationStage(),
        row_for(subtitle_chinese="为什么是我？"),
        {"translation": "Why me?"},
        lambda r: r.subtitle_english_translated,
        "Why me?",
        ("为什么是我？",),
    ),
    "disambiguation": Case(
        DisambiguationStage(),
        row_for(
            subtitle_english="Why me?", audio_clue=clue_set("a raised voice", "angry"), visual_clue=clue_set("a frown")
        ),
        {"subtitle_analysis": "'why me' is a complaint", "description": "In the video, a frown; in the audio ..."},
        lambda r: (r.subtitle_analysis, r.description_en),
        ("'why me' is a complaint", "In the video, a frown; in the audio ..."),
        ("Why me?", "a raised voice", "Likely emotional states: angry", "a frown"),
    ),
    "translation": Case(
        TranslationStage(),
        row_for(description_en="In the video, she smiles."),
        {"translation": "视频中，她在微笑。"},
        lambda r: r.description_zh,
        "视频中，她在微笑。",
        ("In the video, she smiles.",),
    ),
    "translation_quoting_the_chinese_subtitle": Case(
        TranslationStage(),
        row_for(
            subtitle_english="Why me?",
            subtitle_chinese="为什么是我？",
            description_en='In the text, the subtitle says "Why me?", a complaint.',
        ),
        {"translation": "在文本中，字幕说“为什么是我？”，这是一句抱怨。"},
        lambda r: r.description_zh,
        "在文本中，字幕说“为什么是我？”，这是一句抱怨。",
        ('In the text, the subtitle says "Why me?", a complaint.', "为什么是我？"),
    ),
    "labels": Case(
        LabelsStage(),
        row_for(description_en="She is happy and relaxed."),
        {"labels": [" Happy", "relaxed", "happy."]},
        lambda r: r.labels,
        ["happy", "relaxed"],
        ("She is happy and relaxed.",),
    ),
}


def harness(case: Case, tmp_path, script) -> tuple[OneStage, FakeClient]:
    client = FakeClient(case.stage.role, script, media=case.media, prompt_id=case.stage.prompt)
    return OneStage(case.stage, OpenAIBackend(client), tmp_path / "checkpoint.sqlite"), client


@pytest.fixture(params=sorted(CASES))
def case(request) -> Case:
    return CASES[request.param]


def fresh(case: Case) -> CoarseRow:
    return case.row.model_copy(deep=True)


def declared_fields(stage: Stage, row: CoarseRow) -> dict:
    return {field: getattr(row, field) for field in stage.writes}


def test_it_sends_its_prompt_filled_with_the_row_and_its_media(case, clip, tmp_path):
    one, client = harness(case, tmp_path, lambda m, r: case.good)
    one.run(fresh(case), clip)
    prompt = load_prompt(case.stage.prompt)
    assert len(client.asked) == len(case.stage.questions(case.stage.read(case.row)))
    expected_parts = {
        MediaTransport.none: [],
        MediaTransport.input_audio: ["input_audio"],
        MediaTransport.frames: ["image_url"] * len(clip.media.frames),
    }[case.media]
    for messages in client.asked:
        assert messages[0] == {"role": "system", "content": prompt.system}
        content = messages[-1]["content"]
        text = content if isinstance(content, str) else content[-1]["text"]
        assert any(fills(template, text) for template in prompt.templates.values())
        assert all(value in text for value in case.sent)
        # Media before the text, as the served models were trained.
        assert ([] if isinstance(content, str) else [part["type"] for part in content[:-1]]) == expected_parts


def test_a_good_reply_is_written_to_the_declared_fields_and_checkpointed(case, clip, tmp_path):
    one, client = harness(case, tmp_path, lambda m, r: case.good)
    row = fresh(case)
    outcome, stats = one.run(row, clip)
    assert outcome.ok and case.written(row) == case.expected
    assert [c.stage for c in row.provenance] == [case.stage.name] * len(client.asked)
    assert stats.runs == 1 and stats.requests == len(client.asked) and stats.failures == 0 and stats.prompt_tokens > 0
    asked = len(client.asked)
    _, stats = one.run(fresh(case), clip)
    assert stats.checkpoint_hits == 1 and stats.runs == 0 and len(client.asked) == asked  # same inputs: read back


def test_an_invalid_reply_is_an_error_on_the_row_and_is_not_asked_again(case, clip, tmp_path):
    one, client = harness(case, tmp_path, lambda m, r: {"unexpected": "shape"})
    row = fresh(case)
    outcome, stats = one.run(row, clip)
    assert not outcome.ok and not outcome.transient and stats.failures == 1
    assert [e.stage for e in row.errors] == [case.stage.name] and "invalid reply" in row.errors[0].message
    assert row.errors[0].raw  # the model's text is kept for the reviewer
    assert declared_fields(case.stage, row) == declared_fields(case.stage, case.row)  # nothing written
    asked = len(client.asked)
    _, stats = one.run(fresh(case), clip)
    assert len(client.asked) == asked and stats.checkpoint_hits == 1  # a permanent failure is remembered


def test_a_transient_error_is_not_checkpointed_so_the_next_run_asks_again(case, clip, tmp_path):
    one, client = harness(case, tmp_path, lambda m, r: Fails("server answered 503: busy", transient=True))
    row = fresh(case)
    outcome, _ = one.run(row, clip)
    assert outcome.transient and [e.stage for e in row.errors] == [case.stage.name]
    assert declared_fields(case.stage, row) == declared_fields(case.stage, case.row)
    asked = len(client.asked)
    client.script = lambda m, r: case.good
    outcome, stats = one.run(fresh(case), clip)
    assert outcome.ok and len(client.asked) > asked and stats.runs == 1 and stats.checkpoint_hits == 0


def fills(template: str, text: str) -> bool:
    """Whether `text` is `template` with its {placeholders} filled: its fixed pieces, in order."""
    pos = 0
    for piece in re.split(r"\{[a-z_]+\}", template):
        found = text.find(piece, pos)
        if found < 0:
            return False
        pos = found + len(piece)
    return True


def test_the_translation_is_told_to_quote_the_corpus_chinese_subtitle_only_when_there_is_one():
    """The Chinese description quotes the subtitle as the corpus has it, not the English one translated back."""
    prompt, stage = load_prompt("translation"), TranslationStage()
    with_zh = CASES["translation_quoting_the_chinese_subtitle"].row
    [question] = stage.questions(stage.read(with_zh))
    assert question.template == "en_to_zh_with_subtitle" and question.values["subtitle"] == "为什么是我？"
    assert "verbatim" in prompt.templates[question.template]
    [question] = stage.questions(stage.read(CASES["translation"].row))  # no Chinese subtitle: the plain ask
    assert question.template == "en_to_zh" and "subtitle" not in question.values
    # A different Chinese subtitle is a different answer: the subtitle is one of the stage's declared inputs.
    other = with_zh.model_copy(update={"subtitle_chinese": "凭什么是我？"})
    assert stage.read(other) != stage.read(with_zh)
