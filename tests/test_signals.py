"""The signal annotators: what is measured from real clips, and what is written from it."""

from __future__ import annotations

import glob
import subprocess
from pathlib import Path

import pytest

from annotators.signals.clues import acoustic_clue, visual_clue
from annotators.signals.describe import NotATemplate, describe, translate_to_zh
from annotators.signals.faces import measure_frames
from annotators.signals.prosody import measure_audio
from annotators.signals.vocabulary import lexicon
from data import synth_clips as synth
from schemas.row import ClueSet
from schemas.signals import AudioSignals, ClipSignals, VisualSignals


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


def test_clues_say_what_was_measured():
    loud = AudioSignals(
        seconds=4,
        speech_seconds=3.5,
        speech_ratio=0.875,
        loudness_db=72,
        pitch_hz=220,
        pitch_range_semitones=10,
        speaking_rate=6.1,
        pauses=0,
    )
    clue = acoustic_clue(loud)
    assert "loud voice, wide pitch range, fast speech" in clue.clues and clue.emotional_states == ["excited"]
    assert (
        acoustic_clue(None).clues == "No speech is heard in the audio track."
        and acoustic_clue(None).emotional_states == []
    )
    smiling = VisualSignals(frames=8, face_ratio=1.0, smile_ratio=0.5, motion=0.02, brightness=0.4)
    assert visual_clue(smiling).emotional_states == ["happy"]
    assert (
        "No face is clearly visible"
        in visual_clue(VisualSignals(frames=8, face_ratio=0.0, smile_ratio=0, motion=0.3, brightness=0.4)).clues
    )


def test_the_description_reads_the_subtitle_in_the_light_of_the_clues_and_renders_in_chinese():
    audio = AudioSignals(
        seconds=4,
        speech_seconds=3.5,
        speech_ratio=0.875,
        loudness_db=72,
        pitch_hz=220,
        pitch_range_semitones=10,
        speaking_rate=6.1,
        pauses=0,
    )
    visual = VisualSignals(frames=8, face_ratio=1.0, smile_ratio=0.5, motion=0.02, brightness=0.4)
    sig = ClipSignals(audio=audio, visual=visual)
    analysis, en = describe(
        "We won the game!",
        ClueSet(without_subtitle=acoustic_clue(audio)),
        ClueSet(without_subtitle=visual_clue(visual)),
        sig,
    )
    # The subtitle's cue ("we won": excited) leads; the smile (happy) shares its sentiment and supports it.
    assert en.endswith("Taken together, the person most likely feels excited, happy.")
    assert lexicon().labels_in(en) == ["excited", "happy"]
    zh = translate_to_zh(en)
    assert zh.startswith("在音频中，声音听起来兴奋（声音响亮、语调起伏大、语速快）。") and zh.endswith(
        "综合来看，此人最可能的感受是兴奋、开心。"
    )
    assert "“We won the game!”" in zh  # the quoted subtitle is kept as said


def test_the_template_translator_refuses_free_text():
    with pytest.raises(NotATemplate, match="no template sentence matches"):
        translate_to_zh("She seems quietly furious, although she smiles.")


def test_lexicon_reading_skips_negations_and_prefers_the_conclusion():
    lex = lexicon()
    assert lex.labels_in("She is not angry at all, but rather calm and a bit anxious.") == ["relaxed", "worried"]
    assert lex.labels_in("At first she seems sad. Overall, she is relieved and grateful.") == ["relaxed", "grateful"]
    assert lex.labels_in("Why do you always do this?") == [] and lex.labels_in(
        "Why do you always do this?", cues=True
    ) == ["annoyed"]
