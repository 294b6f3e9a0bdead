"""The signal annotators: what is measured from real clips, and what is written from it."""

from __future__ import annotations

import glob
import subprocess
from pathlib import Path

import cv2
import pytest
from skimage import data as skimage_data

from annotators.signals.acoustics import EVIDENCE, corpus_norms, read_voice
from annotators.signals.clues import acoustic_clue, visual_clue
from annotators.signals.describe import NotATemplate, describe, translate_to_zh
from annotators.signals.faces import measure_frames, measure_images
from annotators.signals.prosody import measure_audio
from annotators.signals.vocabulary import lexicon
from data import synth_clips as synth
from schemas.signals import AcousticReading, ActionUnit, ActiveSpeaker, AudioSignals, ClipSignals, VisualSignals
from tests.fakes import RAISED_VOICE, SUBDUED_VOICE, conversational_corpus, voice


def wav_and_frames(clip: Path) -> tuple[str, list[str]]:
    wav, frames = clip.with_suffix(".wav"), clip.parent / f"{clip.stem}-frames"
    frames.mkdir()
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(clip), "-ac", "1", "-ar", "16000", "-acodec", "pcm_s16le", str(wav)],
        check=True,
    )
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip), "-vf", "fps=2", str(frames / "f_%02d.jpg")], check=True)
    return str(wav), sorted(glob.glob(str(frames / "*.jpg")))


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("sig")
    return {
        "head": wav_and_frames(
            synth.face_clip(d / "head.mp4", "I am so happy, I finally passed the exam! This is wonderful news.")
        ),
        "quiet_head": wav_and_frames(
            synth.face_clip(d / "quiet.mp4", "I am so happy, I finally passed the exam!", gain_db=-32)
        ),
        "silent_head": wav_and_frames(synth.face_clip(d / "silent.mp4", None)),
        "pattern": wav_and_frames(
            synth.talking_clip(d / "pattern.mp4", "Get out of here, I never want to see you again.")
        ),
    }


def test_speech_and_prosody_are_measured_from_the_voice(clips):
    head = measure_audio(clips["head"][0])
    assert head.speech_ratio > 0.6 and head.pauses >= 0
    assert 70 < head.pitch_hz < 200  # espeak-ng's default voice speaks near 100 Hz
    assert 2.5 < head.speaking_rate < 7  # ~150 words per minute
    quiet = measure_audio(clips["quiet_head"][0])
    assert (
        quiet.speech_ratio > 0.5 and quiet.loudness_db < head.loudness_db - 25
    )  # 32 dB quieter, within Praat's framing
    silent = measure_audio(clips["silent_head"][0])
    assert silent.speech_seconds == 0 and silent.loudness_db is None and silent.pitch_hz is None


def test_faces_are_found_in_a_portrait_and_not_in_a_test_pattern(clips):
    head = measure_frames(clips["head"][1])
    assert head.frames >= 4 and head.face_ratio == 1.0
    pattern = measure_frames(clips["pattern"][1])
    assert pattern.face_ratio == 0.0 and pattern.motion > head.motion  # the test pattern scrolls


# The voices the clue tests read: a corpus of conversational voices, one raised well above it, one subdued.
CORPUS, RAISED, SUBDUED = conversational_corpus(), RAISED_VOICE, SUBDUED_VOICE


@pytest.fixture(scope="module")
def astronaut() -> VisualSignals:
    """scikit-image's astronaut, a broad smile, measured as a still clip of four frames."""
    frame = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)
    return measure_images([frame] * 4, [0.0, 0.25, 0.5, 0.75])


def face(**kw) -> VisualSignals:
    measured = {"frames": 16, "face_ratio": 1.0, "smile_ratio": 0.0, "motion": 0.02, "brightness": 0.4}
    return VisualSignals(**(measured | kw))


def unit(code: str, ratio: float) -> ActionUnit:
    return ActionUnit(au=code, name=code, active_ratio=ratio, peak=ratio)


def test_the_acoustic_clue_reads_the_voice_against_the_corpus_and_names_no_state():
    clue = acoustic_clue(RAISED, read_voice(RAISED, CORPUS))
    assert clue.clues.startswith("Speech fills 88% of the track (3.5 s, 1 pauses). Loudness 74.0 dB")
    assert "Against the corpus the voice is raised (louder than most of the corpus" in clue.clues
    assert clue.emotional_states == []  # arousal is energy, not a feeling: the voice alone names none
    assert "the voice is subdued" in acoustic_clue(SUBDUED, read_voice(SUBDUED, CORPUS)).clues
    # Relative, not absolute: among voices as loud and lively, the same voice is not raised.
    lively = corpus_norms([voice(72 + i % 4, 13 + i % 4, 6 + 0.2 * (i % 4), 250 + 6 * i) for i in range(12)])
    assert "the voice is raised" not in acoustic_clue(RAISED, read_voice(RAISED, lively)).clues
    silent = acoustic_clue(None)
    assert silent.clues == "No speech is heard in the audio track." and silent.emotional_states == []


def test_the_visual_clue_says_what_a_real_smiling_face_does(astronaut):
    clue = visual_clue(astronaut)
    assert "the lip corners pull up into a smile in 100% of the face frames (AU12)" in clue.clues
    assert "The expression classifier reads happy" in clue.clues and clue.emotional_states == ["happy"]


def test_the_visual_clue_names_actions_and_expression_classes_from_given_measurements():
    frowning = face(
        action_units=[unit("AU4", 0.6), unit("AU12", 0.0)],
        expressions={"angry": 0.62, "neutral": 0.2, "sad": 0.18},
        blinks=3,
    )
    clue = visual_clue(frowning)
    assert "the brows are drawn down in 60% of the face frames (AU4)" in clue.clues and "3 blinks (AU45)" in clue.clues
    assert "The expression classifier reads angry 62%, neutral 20%, sad 18%." in clue.clues
    assert clue.emotional_states == ["angry"]
    calm = visual_clue(face(action_units=[unit("AU12", 0.0)], expressions={"neutral": 0.8, "sad": 0.1}))
    assert "No facial action stands out." in calm.clues and calm.emotional_states == []
    unseen = visual_clue(face(face_ratio=0.0))
    assert "No face is clearly visible" in unseen.clues and unseen.emotional_states == []


WORST = "This is the worst day of my life."  # clearly negative words (VADER) that name no feeling


def described(subtitle, audio=None, visual=None, **kw):
    sig = ClipSignals(audio=audio, visual=visual, **kw)
    analysis, en = describe(subtitle, sig, read_voice(audio, CORPUS) if audio else None)
    return analysis, en, en.rsplit("Taken together, ", 1)[1]


def test_the_description_of_a_smiling_face_a_raised_voice_and_happy_words(astronaut):
    speaker = ActiveSpeaker(verdict="speaks", score=0.7, frames_compared=4)
    _, en, verdict = described("I am so happy, I finally passed the exam!", RAISED, astronaut, active_speaker=speaker)
    assert "the voice is more aroused than usual (louder than most of the corpus" in en
    assert "the lip corners pull up into a smile (AU12)" in en and "the mouth opens and closes with the speech" in en
    assert "The expression classifier reads the face as happy." in en
    # The words name happy; a raised voice over positive words reads excited, and the smile happy.
    assert verdict == "the person most likely feels happy, excited."
    assert lexicon().labels_in(en) == ["happy", "excited"]
    zh = translate_to_zh(en)
    assert "嘴角上扬" in zh and "嘴巴随话语开合" in zh and zh.endswith("综合来看，此人最可能的感受是开心、兴奋。")


@pytest.mark.parametrize(
    "subtitle, audio, visual, feels",
    [
        # A smile over bitter words and a raised voice: the words say what is meant (the smile goes).
        (WORST, RAISED, face(smile_ratio=0.8), "angry"),
        (WORST, SUBDUED, None, "sad"),
        (WORST, None, face(action_units=[unit("AU4", 0.5)]), "annoyed"),
        (WORST, None, face(action_units=[unit("AU1_2", 0.5)]), "worried"),
        (None, RAISED, face(action_units=[unit("AU4", 0.5)]), "angry"),
        ("Fine.", None, face(expressions={"sad": 0.6, "neutral": 0.3}), "sad"),
        ("Fine.", None, face(expressions={"neutral": 0.7, "sad": 0.2}), "neutral"),
    ],
)
def test_the_rules_name_states_from_what_was_measured(subtitle, audio, visual, feels):
    _, en, verdict = described(subtitle, audio, visual)
    assert verdict == f"the person most likely feels {feels}."
    assert lexicon().labels_in(en) == [feels]
    translate_to_zh(en)  # every sentence is a template sentence


def test_nothing_measured_names_no_state_and_the_words_tone_is_said():
    analysis, en, verdict = described(None)
    assert verdict == "no emotional state is clear." and analysis == "There is no subtitle to analyse."
    # Speech too short for its prosody to be measured is still speech: said, not called silence.
    brief = AudioSignals(seconds=0.24, speech_seconds=0.21, speech_ratio=0.88, pauses=0)
    _, en, _ = described("Ah", brief)
    assert "there is only brief speech" in en and "no speech is heard" not in en and translate_to_zh(en)
    analysis, en, _ = described(WORST)
    assert "and its words sound clearly negative." in en and "VADER" in analysis


def test_every_phrase_the_measures_can_say_has_its_chinese():
    # Every evidence phrase the acoustics module says, every action unit and every face phrase.
    reading = AcousticReading(arousal=0.8, level="high", evidence=list(EVIDENCE))
    acting = face(
        action_units=[unit(code, 0.9) for code in ("AU12", "AU4", "AU1_2", "AU25", "AU26")],
        blinks=8,
        frame_times=[i / 4 for i in range(16)],
        head_yaw_deg=40.0,
        head_movement_deg=20.0,
        motion=0.5,
    )
    sig = ClipSignals(audio=RAISED, visual=acting, active_speaker=ActiveSpeaker(verdict="still_face", score=0.0))
    _, en = describe("Fine.", sig, reading)
    zh = translate_to_zh(en)
    assert "the jaw drops" not in en  # while the person speaks, speech opens the mouth
    assert "说话声响起时嘴巴却不动" in zh and "脸侧向一边" in zh and "频繁眨眼" in zh
    # With no speech, an open mouth and a dropped jaw are the face's own actions, and are said.
    _, en = describe(None, ClipSignals(visual=acting))
    assert "the jaw drops (AU26)" in en and "下颌张开" in translate_to_zh(en)


def test_the_template_translator_refuses_free_text():
    with pytest.raises(NotATemplate, match="no template sentence matches"):
        translate_to_zh("She seems quietly furious, although she smiles.")


def test_a_voice_neither_raised_nor_subdued_names_its_standing_out_cues_as_exceptions():
    # Louder than the corpus but flatter and slower: the cues cancel out, and the voice reads mid.
    mixed = voice(74, 4, 3.4, 160)
    reading = read_voice(mixed, CORPUS)
    assert reading.level == "mid" and "louder than most of the corpus" in reading.evidence
    _, en, _ = described("Fine.", mixed)
    assert (
        "the voice is neither raised nor subdued overall, though some cues stand out (louder than most of the corpus"
        in en
    )
    assert "neither raised nor subdued (louder" not in en  # no evidence of one direction given as the reason
    assert "声音总体上既不激动也不低沉，只是个别线索较为突出（比语料中多数声音更响亮" in translate_to_zh(en)
    clue = acoustic_clue(mixed, reading).clues
    assert "the voice is neither raised nor subdued overall, though some cues stand out (louder than most" in clue
