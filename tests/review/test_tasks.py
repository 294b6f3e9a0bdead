"""What a reviewer reads in a Label Studio task, built from rows the real gates judged (no server here;
tests/test_review.py shows the same tasks in a real Label Studio).

The rows are judged by `gates.run.judge` with the engine's default gate settings, so a gate line is checked
against the verdict the gate really gives; the silent clip is annotated by the demo's own engine
(data/configs/cpu-signals.toml) from the bundled sample."""

from __future__ import annotations

import pytest

from engine.assembly import Engine
from gates import run
from gates.base import LengthBounds
from review.config import SECTIONS, label_config
from review.tasks import SCORED_CHECK, gate_text, task_data
from runtime.checkpoint import Checkpoint
from schemas.config import EngineConfig, GatesConfig
from schemas.gates import GateVerdict
from schemas.manifest import Subtitles
from schemas.replies import ClueReply
from schemas.row import ClueSet, CoarseRow
from schemas.signals import AudioSignals, ClipSignals, VisualSignals
from stages.ingest import probe_clip
from tests.conftest import ROOT

EN = (
    "In the video, she smiles; in the audio, her voice is bright; in the text, she says she passed. "
    "Overall, she feels happy."
)
ZH = "视频中她在微笑；音频中她的声音明亮；文本中她说自己通过了。总体来看，她很开心。"
BOUNDS = LengthBounds(10, 400, "fixed")


def talking(speech: float = 0.8, face: float = 1.0, smile: float = 0.5) -> ClipSignals:
    return ClipSignals(
        audio=AudioSignals(
            seconds=4,
            speech_seconds=4 * speech,
            speech_ratio=speech,
            loudness_db=65.0,
            pitch_hz=180,
            pitch_range_semitones=5,
            speaking_rate=4.5,
        ),
        visual=VisualSignals(frames=8, face_ratio=face, smile_ratio=smile, motion=0.02, brightness=0.4),
    )


def judged(**kw) -> CoarseRow:
    happy = ClueReply(clues="She smiles and her voice is bright.", emotional_states=["happy"])
    base = {
        "name": "sample_00000001",
        "sha256": "a" * 64,
        "clip_status": "ok",
        "complete": True,
        "subtitle_english": "I finally passed the exam!",
        "audio_clue": ClueSet(without_subtitle=happy, with_subtitle=happy),
        "visual_clue": ClueSet(without_subtitle=happy, with_subtitle=happy),
        "description_en": EN,
        "description_zh": ZH,
        "labels": ["happy"],
        "signals": talking(),
    }
    return run.judge(CoarseRow(**(base | kw)), GatesConfig(), BOUNDS)


def data(row: CoarseRow) -> dict:
    return task_data(row, video_url="/data/local-files/?d=v.mp4")


def failed(row: CoarseRow, gate: str) -> GateVerdict:
    return next(g for g in row.gates if g.gate == gate and not g.passed)


def line(row: CoarseRow, gate: str) -> str:
    """The task's line for one gate."""
    [found] = [x for x in data(row)["gates"].splitlines() if x.startswith(f"{gate}: ")]
    return found


# --- the gate lines -------------------------------------------------------------------------------


def test_a_score_is_shown_only_beside_the_check_it_measures():
    # Validity's score is the Chinese share of the Chinese description: "no labels" is another check.
    no_labels = judged(labels=[])
    verdict = failed(no_labels, "validity")
    assert verdict.score == 1.0 and verdict.threshold == 0.5  # the gate does score the (fine) Chinese text
    assert line(no_labels, "validity") == "validity: no labels"

    english_zh = judged(description_zh="She is happy.")
    assert line(english_zh, "validity") == (
        "validity: Chinese description is 0% Chinese (< 50%): wrong-language translation (score 0, threshold 0.5)"
    )

    both = judged(labels=[], description_zh="She is happy.")
    assert line(both, "validity") == (
        "validity: no labels; Chinese description is 0% Chinese (< 50%): wrong-language translation "
        "(score 0, threshold 0.5)"
    )


def test_single_check_gates_show_their_numbers_after_the_reason():
    faceless = judged(signals=talking(face=0.0))
    av = line(faceless, "av_match")
    assert av.startswith("av_match: someone talks but no face is visible (speech in 80% of the track")
    assert av.endswith("(score 0, threshold 1)")

    short = judged(description_en="She is happy.")
    assert (
        line(short, "length")
        == "length: description has 3 words, below 10 (fixed): cut off or empty of reasoning (score 3, threshold 10)"
    )


def test_a_gate_without_a_score_shows_its_reason_alone():
    unmeasured = judged(signals=None)
    assert line(unmeasured, "av_match") == "av_match: no measurements for this clip"


def clue(text: str, state: str) -> ClueSet:
    return ClueSet(without_subtitle=ClueReply(clues=text, emotional_states=[state]))


def test_cross_validation_scores_only_its_agreement_check():
    # Its score is the best agreement of the labels with a clue; its other checks are not scored.
    tears = clue("Tears run down her face.", "sad")
    disagree = judged(audio_clue=tears, visual_clue=tears, signals=talking(smile=0.0))
    verdict = failed(disagree, "cross_validation")
    scored = f"agree with no clue (best EMER Avg 0.00 < {verdict.threshold})"
    assert f"{scored} (score 0, threshold {verdict.threshold:.3g})" in line(disagree, "cross_validation")

    # The labels agree with the audio clue (score 1), but the clues contradict each other.
    torn = judged(audio_clue=clue("A bright, laughing voice.", "happy"), visual_clue=tears, signals=talking(smile=0.0))
    verdict = failed(torn, "cross_validation")
    assert verdict.score == 1.0 and verdict.reason.startswith("contradictory clues")
    assert "score" not in line(torn, "cross_validation")


def test_every_gate_the_engine_runs_is_known_to_the_task():
    every = GatesConfig()
    for name in type(every).model_fields:
        if hasattr(getattr(every, name), "enabled"):
            getattr(every, name).enabled = True
    row = judged()
    gates = {g.gate for g in run.judge(row, every, BOUNDS).gates}
    assert {"validity", "length", "av_match", "cross_validation", "grounding"} <= gates <= set(SCORED_CHECK)


def test_passed_gates_are_not_reasons_to_review():
    row = judged()
    assert all(g.passed for g in row.gates) and gate_text(row.gates) == "—"


# --- the clue blocks ------------------------------------------------------------------------------


def test_both_asks_are_shown_each_under_its_label_and_the_header_says_so():
    row = judged(
        audio_clue=ClueSet(
            without_subtitle=ClueReply(clues="rising pitch, fast speech", emotional_states=["excited"]),
            with_subtitle=ClueReply(clues="the voice sounds relieved", emotional_states=["relieved", "happy"]),
        )
    )
    task = data(row)
    assert task["audio_clues_header"] == "Audio clues (without and with the subtitle)"
    assert task["audio_clues"] == (
        "Without the subtitle: rising pitch, fast speech\nEmotional states: excited\n\n"
        "With the subtitle: the voice sounds relieved\nEmotional states: relieved, happy"
    )


def test_a_clue_asked_once_says_which_ask_it_is_and_why_the_other_is_missing():
    once = ClueSet(without_subtitle=ClueReply(clues="a frontal face, smiling", emotional_states=["happy"]))
    task = data(judged(visual_clue=once, subtitle_english=None))
    assert task["visual_clues_header"] == "Visual clues (without the subtitle only)"
    assert task["visual_clues"].splitlines() == [
        "Without the subtitle: a frontal face, smiling",
        "Emotional states: happy",
        "",
        "With the subtitle: not asked: the clip has no subtitle",
    ]


@pytest.fixture(scope="module")
def silent_row(tmp_path_factory) -> CoarseRow:
    """The bundled sample's silent head, annotated and judged as the demo does (signals backend)."""
    config = EngineConfig.from_file(ROOT / "data" / "configs" / "cpu-signals.toml")
    clip = ROOT / "data" / "sample" / "video" / "sample_00000005.mp4"
    media = config.media
    record = probe_clip(
        clip, Subtitles(english="Hello? Is anyone there?"), None, media.audio_max_seconds, media.silence_threshold_db
    )
    state = tmp_path_factory.mktemp("engine")
    checkpoint = Checkpoint(state / "checkpoint.sqlite")
    try:
        with Engine(config, state, checkpoint) as engine:
            [row], _ = engine.annotate([record])
    finally:
        checkpoint.close()
    return run.judge(row, config.gates, BOUNDS)


def test_a_silent_clip_shows_why_it_has_no_audio_clue(silent_row):
    assert silent_row.complete and silent_row.clip_status == "silent" and silent_row.audio_clue is None
    task = data(silent_row)
    assert task["audio_clues_header"] == "Audio clues (none)"
    assert task["audio_clues"].startswith("skipped: silent audio (peak ")  # the pipeline's own reason
    # The signals backend measures the frames; it never reads the subtitle, and the task says so.
    assert task["visual_clues_header"] == "Visual clues (without the subtitle only)"
    assert task["visual_clues"].endswith(
        "With the subtitle: not asked: measured from the clip (the signals backend does not read the subtitle)"
    )
    assert "av_match: a face is visible but there is no speech" in task["gates"]


# --- the interface --------------------------------------------------------------------------------


def test_every_field_the_interface_reads_is_in_the_task():
    task = data(judged(labels=[]))
    config = label_config()
    for field, header in SECTIONS:
        assert f'value="${field}"' in config and field in task
        if header.startswith("$"):
            assert f'value="{header}"' in config and header[1:] in task
    assert '<Text name="clip" value="$name"/>' in config
    # The name is the interface's first data field: the first column of Label Studio's task list.
    assert config.index("$name") < min(config.index(f"${f}") for f in task if f != "name" and f"${f}" in config)
