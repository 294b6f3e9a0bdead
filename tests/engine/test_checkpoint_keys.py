"""Checkpoint keys are derived from what each stage declares it reads and from its backend's identity:
change one thing an answer depends on and exactly the stages that depend on it run again.

Checked against the method's data flow (which stage reads what, README "Pipeline") with two counts that
do not come from the key code: the requests a scripted server received, per role, and the per-stage
statistics' runs (answers made rather than read back)."""

from __future__ import annotations

import shutil

import pytest

from annotators.prompts import PROMPT_DIR
from data import synth_clips as synth
from engine.assembly import Engine
from runtime.checkpoint import Checkpoint
from schemas.config import Endpoint, EngineConfig, GatesConfig, MediaConfig, MediaTransport, RoleConfig, Sampling
from schemas.manifest import Subtitles
from schemas.signals import CorpusNorms, FeatureNorm
from stages.ingest import probe_clip
from tests.fakes import RoleServer

ALL_MODEL_STAGES = {"audio_clue", "visual_clue", "disambiguation", "translation", "labels"}


@pytest.fixture(scope="module")
def clips(tmp_path_factory, good_clip):
    folder = tmp_path_factory.mktemp("clips")
    silent = synth.silent_clip(folder / "silent.mp4")
    other = synth.talking_clip(folder / "other.mp4", "Why do you always treat me like this?", size="640x360")
    # Three different contents: the same content is asked once whatever its name (single flight).
    return {
        "talking": probe_clip(good_clip, Subtitles(english="Why are you always like this?"), None, 30, -60),
        "chinese": probe_clip(other, Subtitles(chinese="你为什么总是这样？"), None, 30, -60),
        "silent": probe_clip(silent, Subtitles(english="..."), None, 30, -60),
    }


@pytest.fixture
def models():
    server = RoleServer()
    yield server
    server.close()


def lineup(url: str, **changes) -> EngineConfig:
    """The scripted line-up; `changes` are RoleConfig fields per role, and `media` the media settings."""

    def role(name: str, media: MediaTransport = MediaTransport.none) -> RoleConfig:
        fields = {"endpoints": [Endpoint(base_url=url, model="m")], "media": media, "max_retries": 0, "max_reasks": 0}
        return RoleConfig(**(fields | changes.get(name, {})))

    return EngineConfig(
        roles={
            "audio_clue": role("audio_clue", MediaTransport.input_audio),
            "visual_clue": role("visual_clue", MediaTransport.frames),
            "disambiguation": role("disambiguation"),
            "translation": role("translation"),
            "labels": role("labels"),
        },
        media=MediaConfig(max_frames=2, frame_max_side=64).model_copy(update=changes.get("media", {})),
        gates=changes.get("gates", GatesConfig()),
    )


def signals_lineup(**media) -> EngineConfig:
    roles = {r: RoleConfig(backend="signals") for r in ALL_MODEL_STAGES}
    return EngineConfig(roles=roles, media=MediaConfig(max_frames=2, frame_max_side=64).model_copy(update=media))


def build(config: EngineConfig, state, records, norms: CorpusNorms | None = None):
    """Rows, and the stages that answered anew (not from the checkpoint), per clip count."""
    checkpoint = Checkpoint(state / "checkpoint.sqlite")
    try:
        with Engine(config, state, checkpoint) as engine:
            rows, stats = engine.annotate(records, norms)
    finally:
        checkpoint.close()
    ran = {stage: s.runs for stage, s in stats.stages.items() if s.runs and stage != "media_prep"}
    return rows, ran


def test_an_unchanged_run_answers_nothing_anew(models, clips, tmp_path):
    records = list(clips.values())
    build(lineup(models.server.url), tmp_path, records)
    models.asked()
    _, ran = build(lineup(models.server.url), tmp_path, records)
    assert ran == {} and models.asked() == []


@pytest.mark.parametrize(
    "change, reruns",
    [
        # The backend's identity: model, sampling, media transport, prompt (below).
        (lambda url: {"labels": {"endpoints": [Endpoint(base_url=url, model="another-model")]}}, {"labels": 2}),
        (lambda url: {"visual_clue": {"sampling": Sampling(temperature=0.7)}}, {"visual_clue": 2}),
        (lambda url: {"audio_clue": {"media": MediaTransport.audio_url}}, {"audio_clue": 2}),
        # One role serves two stages: both re-run (the Chinese-only clip's subtitle translation too).
        (
            lambda url: {"translation": {"sampling": Sampling(max_tokens=300)}},
            {"translation": 2, "subtitle_translation": 1},
        ),
        # Media settings: only the stages that look at that medium (the measurements read the prepared audio; the
        # picture they decode from the clip itself).
        (lambda url: {"media": {"max_frames": 3}}, {"visual_clue": 2}),
        (lambda url: {"media": {"audio_sample_rate": 8000}}, {"signals": 2, "audio_clue": 2}),
        # Gates judge rows at export: no stage's answer depends on them.
        (lambda url: {"gates": GatesConfig.model_validate({"length": {"min_words": 3}})}, {}),
    ],
    ids=["model", "sampling", "media-transport", "shared-role", "max_frames", "sample-rate", "gates"],
)
def test_a_changed_setting_re_runs_exactly_the_stages_that_depend_on_it(models, clips, tmp_path, change, reruns):
    records = [clips["talking"], clips["chinese"]]
    url = models.server.url
    build(lineup(url), tmp_path, records)
    models.asked()
    _, ran = build(lineup(url, **change(url)), tmp_path, records)
    assert ran == reruns
    expected_requests = [
        "translation" if stage == "subtitle_translation" else stage
        for stage, clips_run in reruns.items()
        if stage != "signals"
        for _ in range(clips_run * _asks(stage))
    ]
    assert sorted(models.asked()) == sorted(expected_requests)


def _asks(stage: str) -> int:
    return 2 if stage in ("audio_clue", "visual_clue") else 1  # clues are asked without and with the subtitle


def test_an_edited_prompt_file_re_runs_only_its_stage(models, clips, tmp_path):
    edited = tmp_path / "prompts" / "labels.toml"
    edited.parent.mkdir()
    shutil.copy(PROMPT_DIR / "labels.toml", edited)
    records = [clips["talking"]]
    build(lineup(models.server.url, labels={"prompt": str(edited)}), tmp_path, records)
    edited.write_text(
        edited.read_text().replace("extract emotion labels precisely", "extract emotion labels carefully")
    )
    from annotators.prompts import load_prompt

    load_prompt.cache_clear()  # a new run reads the file anew
    models.asked()
    _, ran = build(lineup(models.server.url, labels={"prompt": str(edited)}), tmp_path, records)
    assert ran == {"labels": 1} and models.asked() == ["labels"]


def test_a_changed_answer_re_runs_what_reads_it_and_no_further(models, clips, tmp_path):
    """A new audio clue changes the disambiguation's input; the same description again leaves
    translation and labels to the checkpoint."""
    records = [clips["talking"]]
    build(lineup(models.server.url), tmp_path, records)
    models.replies["audio_clue"] = {"clues": "a trembling, quiet voice", "emotional_states": ["sad"]}
    models.asked()
    _, ran = build(lineup(models.server.url, audio_clue={"sampling": Sampling(seed=7)}), tmp_path, records)
    assert ran == {"audio_clue": 1, "disambiguation": 1}


def test_a_changed_subtitle_re_runs_the_stages_that_read_it(models, clips, tmp_path):
    build(lineup(models.server.url), tmp_path, [clips["talking"]])
    changed = clips["talking"].model_copy(update={"subtitles": Subtitles(english="I never said that.")})
    models.asked()
    _, ran = build(lineup(models.server.url), tmp_path, [changed])
    # The clues asked with the subtitle, and the disambiguation that reads it; the clues' answers
    # without the subtitle come back the same, so the description does too.
    assert ran == {"audio_clue": 1, "visual_clue": 1, "disambiguation": 1}
    assert sorted(models.asked()) == ["audio_clue", "audio_clue", "disambiguation", "visual_clue", "visual_clue"]


def test_measurement_backed_answers_follow_the_measurements_they_read(clips, tmp_path):
    """The signals line-up answers from measurements. The picture is measured from the clip itself, so the roles'
    frame sampling re-measures nothing; a different audio preparation re-measures every clip and re-answers what
    reads the measurements where they changed (the stale-answer defect: an answer served from the checkpoint
    after its measurement moved)."""
    records = [clips["talking"], clips["silent"]]
    before, _ = build(signals_lineup(), tmp_path, records)
    _, ran = build(signals_lineup(max_frames=3), tmp_path, records)
    assert ran == {}
    after, ran = build(signals_lineup(audio_sample_rate=8000), tmp_path, records)
    audio_changed = sum(a.signals.audio != b.signals.audio for a, b in zip(after, before))
    visual_changed = sum(
        (a.signals.visual, a.signals.active_speaker) != (b.signals.visual, b.signals.active_speaker)
        for a, b in zip(after, before)
    )
    assert ran["signals"] == 2 and audio_changed >= 1
    assert ran.get("audio_clue", 0) == audio_changed and ran.get("visual_clue", 0) == visual_changed
    # What reads only the description re-runs exactly where the description changed.
    description_changed = sum(a.description_en != b.description_en for a, b in zip(after, before))
    assert ran.get("translation", 0) == ran.get("labels", 0) == description_changed


def corpus_around(loudness_db: float, offset_db: float) -> CorpusNorms:
    """Norms of a corpus whose typical voice is `offset_db` from `loudness_db` (what a grown corpus does to them)."""
    typical = FeatureNorm(median=loudness_db + offset_db, iqr=4.0, clips=40)
    return CorpusNorms(clips=40, features={"loudness_db": typical}, source="40 clips with speech of this corpus")


def test_a_changed_corpus_re_runs_exactly_the_answers_that_read_its_norms(clips, tmp_path):
    """The signals line-up's audio clue and description read the voice against the corpus's norms (they declare
    "corpus"): new norms re-answer them on every clip they run for, and what reads the description where it
    changed; never the measurements or the visual clue."""
    records = [clips["talking"], clips["silent"]]  # the silent clip has no audio clue to re-answer
    first, _ = build(signals_lineup(), tmp_path, records)
    loudness = first[0].signals.audio.loudness_db
    quieter_corpus = corpus_around(loudness, -10.0)
    before, _ = build(signals_lineup(), tmp_path, records, quieter_corpus)
    _, ran = build(signals_lineup(), tmp_path, records, quieter_corpus.model_copy(deep=True))
    assert ran == {}  # the same norms (another copy of them): nothing anew
    after, ran = build(signals_lineup(), tmp_path, records, corpus_around(loudness, +10.0))
    # Both clips are described; only the talking one has an audio clue.
    assert ran["audio_clue"] == 1 and ran["disambiguation"] == 2 and not {"signals", "visual_clue"} & set(ran)
    assert before[0].audio_clue != after[0].audio_clue  # louder than that corpus, then softer than this one
    description_changed = sum(a.description_en != b.description_en for a, b in zip(after, before))
    assert ran.get("translation", 0) == ran.get("labels", 0) == description_changed


def test_a_changed_corpus_costs_no_model_call_on_a_model_line_up(models, clips, tmp_path):
    records = [clips["talking"], clips["chinese"]]
    build(lineup(models.server.url), tmp_path, records, corpus_around(60.0, -10.0))
    models.asked()
    _, ran = build(lineup(models.server.url), tmp_path, records, corpus_around(60.0, +10.0))
    assert ran == {} and models.asked() == []
