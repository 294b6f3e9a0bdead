"""The high-level filter (MER-Caption+): classifier views of the clip vote, and labels that disagree with
the vote are held back with the views in the reason.

The faces are real photographs measured for real (annotators/signals/faces.py, the FER2013 classifier):
scikit-image's astronaut smiles broadly, matplotlib's Grace Hopper portrait is calm. The voices are read
against corpus norms by the acoustics module itself; the subtitles by VADER. Rows go through gates.run.judge,
and the card is made by stages/export.py's own summarise and dataset_card."""

from __future__ import annotations

import cv2
import pyarrow.parquet as pq
import pytest
from skimage import data as skimage_data

from annotators.signals.acoustics import corpus_norms
from annotators.signals.faces import measure_images
from annotators.signals.sentiment import subtitle_sentiment
from annotators.signals.vocabulary import lexicon
from data import synth_clips as synth
from gates import high_level
from gates.base import LengthBounds
from gates.run import judge
from schemas.arrow import to_table
from schemas.config import GatesConfig, HighLevelGate
from schemas.row import CoarseRow
from schemas.signals import ClipSignals, VisualSignals
from stages import export
from tests.fakes import RAISED_VOICE, SUBDUED_VOICE, conversational_corpus, voice

BOUNDS = LengthBounds(15, 450, "fixed")
EN = (
    "In the video, the person faces the camera; in the audio, the voice carries the words; in the text, "
    "the subtitle is quoted. Overall, the person feels something."
)


@pytest.fixture(scope="module")
def faces() -> dict[str, VisualSignals]:
    astronaut = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)
    hopper = cv2.imread(str(synth.portrait_image()))
    times = [0.0, 0.25, 0.5, 0.75]
    return {"smiling": measure_images([astronaut] * 4, times), "calm": measure_images([hopper] * 4, times)}


# A corpus of conversational voices, a voice raised well above it and one subdued well below it.
CORPUS, RAISED, SUBDUED = conversational_corpus(), RAISED_VOICE, SUBDUED_VOICE


def judged(labels, face=None, audio=None, subtitle=None, cfg=None, norms=CORPUS, **row) -> CoarseRow:
    gates = GatesConfig(high_level=cfg or HighLevelGate())
    base = CoarseRow(
        name="c",
        sha256="a" * 64,
        clip_status="ok",
        complete=True,
        description_en=EN,
        description_zh="视频中，此人面对镜头。总体来看，此人有某种感受。",
        labels=labels,
        subtitle_english=subtitle,
        signals=ClipSignals(audio=audio, visual=face),
        **row,
    )
    return judge(base, gates, BOUNDS, norms)


def verdict_of(row: CoarseRow):
    return next(g for g in row.gates if g.gate == "high_level")


def test_the_real_faces_measure_what_the_views_read(faces):
    smiling, calm = faces["smiling"], faces["calm"]
    assert smiling.expressions and max(smiling.expressions, key=smiling.expressions.get) == "happy"
    assert calm.expressions and max(calm.expressions, key=calm.expressions.get) == "neutral"


def test_a_smiling_face_with_happy_labels_passes(faces):
    row = judged(["happy"], face=faces["smiling"], subtitle="I am so happy, I finally passed the exam!")
    v = verdict_of(row)
    assert v.passed and v.score == 1.0, v.reason
    assert "face votes happy" in v.reason and "subtitle_sentiment votes positive" in v.reason
    face = next(view for view in row.label_views if view.source == "face")
    assert face.labels == ["happy"] and face.independent and "FER2013" in face.basis


def test_a_smiling_face_over_bitter_words_with_sad_angry_labels_is_held_back_naming_the_views(faces):
    row = judged(["sad", "angry"], face=faces["smiling"], subtitle="I hate you, you ruined everything.")
    v = verdict_of(row)
    assert not v.passed
    assert v.reason.startswith("labels outside the voted group (happy): sad, angry")
    # Every view is named: the face and the words voted (and split on valence), the voice abstained.
    assert "face votes happy" in v.reason and "subtitle_sentiment votes negative" in v.reason
    assert "voice abstains: no speech" in v.reason and "opposite valence" not in v.reason
    assert v.score == 0.5  # the words agree with the labels, the face does not
    assert not row.accepted and "high_level" in {g.gate for g in row.gates if not g.passed}


def test_labels_of_the_valence_opposite_to_the_vote_are_held_back():
    v = verdict_of(judged(["happy"], subtitle="I hate you, you ruined everything."))
    assert not v.passed and v.reason.startswith("labels of the opposite valence (negative voted): happy")
    assert "face abstains: no face" in v.reason
    assert verdict_of(judged(["angry"], subtitle="I hate you, you ruined everything.")).passed


def test_views_that_abstain_do_not_vote_and_a_row_with_none_passes(faces):
    v = verdict_of(
        judged(["angry"], face=faces["calm"], audio=None, subtitle="Please tell me what happened yesterday.")
    )
    assert v.passed and v.score is None and "no independent view" in v.reason
    assert "face abstains: no expression class other than neutral" in v.reason
    assert "voice abstains: no speech" in v.reason
    assert "subtitle_sentiment abstains: the words are not clearly positive or negative" in v.reason
    chinese_only = judged(["angry"], subtitle=None, subtitle_chinese="你为什么总是这样？")
    assert "subtitle_sentiment abstains: no English subtitle" in verdict_of(chinese_only).reason
    translated = judged(["happy"], subtitle=None, subtitle_chinese="我恨你", subtitle_english_translated="I hate you.")
    view = next(v for v in translated.label_views if v.source == "subtitle_sentiment")
    assert view.valence == "negative" and "translation" in view.basis and not verdict_of(translated).passed


def test_the_voice_votes_arousal_relative_to_the_corpus_never_valence():
    assert not verdict_of(judged(["relaxed"], audio=RAISED)).passed
    assert verdict_of(judged(["relaxed"], audio=RAISED)).reason.startswith("labels of the opposite arousal (high")
    assert verdict_of(judged(["angry"], audio=RAISED)).passed
    assert verdict_of(judged(["sad"], audio=RAISED)).passed  # arousal picks no valence
    assert verdict_of(judged(["happy", "relaxed"], audio=RAISED)).passed  # happy fits a raised voice
    assert not verdict_of(judged(["excited"], audio=SUBDUED)).passed
    assert verdict_of(judged(["tired"], audio=SUBDUED)).passed
    # The same raised voice in a corpus of raised voices is an ordinary voice there: it does not vote.
    loud_corpus = corpus_norms([voice(72 + i % 4, 13 + i % 4, 6 + 0.2 * (i % 4), 250 + 6 * i) for i in range(12)])
    relative = verdict_of(judged(["relaxed"], audio=RAISED, norms=loud_corpus))
    assert relative.passed and "voice abstains: the voice is neither raised nor subdued" in relative.reason


def test_the_thresholds_and_comparisons_are_configuration(faces):
    case = {"face": faces["smiling"], "subtitle": "I hate you, you ruined everything."}
    assert verdict_of(judged(["sad", "angry"], cfg=HighLevelGate(compare_groups=False), **case)).passed
    strict_face = HighLevelGate(min_expression_probability=1.0)
    assert verdict_of(judged(["sad", "angry"], cfg=strict_face, **case)).passed  # the face no longer votes
    off = judged(["sad", "angry"], cfg=HighLevelGate(enabled=False), **case)
    assert "high_level" not in {g.gate for g in off.gates} and any(v.source == "face" for v in off.label_views)


def test_every_lexicon_emotion_and_expression_class_has_one_level1_group():
    table = high_level.groups()
    assert {g.head for g in lexicon().groups} == set(table.group_of)
    fer_heads = ["angry", "disgusted", "fearful", "happy", "sad", "surprised", "neutral"]
    assert len({table.group_of[h] for h in fer_heads}) == 7  # the seven classes, seven groups


def test_the_card_reports_the_high_level_gate(faces, tmp_path):
    good = judged(["happy"], face=faces["smiling"], subtitle="I am so happy, I finally passed the exam!")
    held = judged(["sad", "angry"], face=faces["smiling"], subtitle="I hate you, you ruined everything.")
    parts = {}
    for split, rows in (("train", [good]), ("review", [held.model_copy(update={"name": "d"})])):
        path = tmp_path / f"{split}-00000-of-00001.parquet"
        pq.write_table(to_table(rows, CoarseRow), path)
        parts[split] = [path]
    summary = export.summarise(parts)
    assert summary["gates"]["high_level"] == {"judged": 2, "passed": 1, "pass_rate": 0.5}
    card = export.dataset_card(summary, {}, str(tmp_path), "f1ngerpr1nt")
    assert "| high_level | 2 | 1 | 50.0% |" in card


def test_words_whose_cues_point_against_vader_leave_the_subtitle_view_abstaining():
    # VADER reads "like" as the verb and scores this reproach clearly positive; the lexicon's cues read annoyed.
    subtitle = "Why do you always treat me like this?"
    assert subtitle_sentiment(subtitle).valence(HighLevelGate().min_subtitle_sentiment) == "positive"
    row = judged(["annoyed"], subtitle=subtitle)
    view = next(v for v in row.label_views if v.source == "subtitle_sentiment")
    assert view.valence is None and view.abstained == "VADER says positive, the words' cues say annoyed: ambiguous"
    assert verdict_of(row).passed, verdict_of(row).reason
    # Words whose cues agree with VADER still vote.
    agreeing = judged(["happy"], subtitle="I am so happy, I finally passed the exam!")
    assert next(v for v in agreeing.label_views if v.source == "subtitle_sentiment").valence == "positive"
