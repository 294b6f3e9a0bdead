"""A second line-up cross-validates the first: its labels are one more view for the cross-validation gate, with
its own provenance and cost, and the stages both line-ups declare alike are asked once.

Two scripted OpenAI-compatible servers stand for two models: the first line-up asks every role of server A; the
second asks its audio clue and its labels of server B and the rest of A, exactly as the first does. What is shared
is read off the requests each server received; what the gate makes of the second line-up, off the rows the build
exported."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from data import synth_clips as synth
from engine.assembly import Engine, PreflightError, preflight
from flows.build_coarse import build_coarse
from gates import cross_validation
from runtime.checkpoint import Checkpoint
from schemas.config import CrossValidationGate, Endpoint, EngineConfig, MediaConfig, MediaTransport, RoleConfig
from schemas.manifest import Subtitles
from stages.ingest import probe_clip
from tests.fakes import RoleServer, completion, role_of

AGREED = "I finally passed the exam, I did it!"  # the second line-up's labels agree with the first's on this clip
DISPUTED = "Why do you always treat me like this?"  # ... and contradict them on this one


def subtitle_in(body: dict) -> str:
    text = json.dumps(body["messages"], ensure_ascii=False)
    [said] = [s for s in (AGREED, DISPUTED) if s in text]
    return said


class ModelA(RoleServer):
    """The first line-up's model: the default answers, with a description that quotes the clip's subtitle (so the
    labels requests of the two clips differ)."""

    def answer(self, body: dict) -> tuple[int, dict]:
        if role_of(body) == "disambiguation":
            description = (
                "In the video, the person keeps a steady look at the camera; in the audio, the voice is raised and "
                f"fast; in the text, the person says '{subtitle_in(body)}'. Overall, the person feels angry."
            )
            return completion(json.dumps({"subtitle_analysis": "the words carry it", "description": description}))
        return super().answer(body)


class ModelB(RoleServer):
    """The second line-up's own model: another audio clue, and labels that agree on one clip only."""

    def answer(self, body: dict) -> tuple[int, dict]:
        if role_of(body) == "audio_clue":
            return completion(json.dumps({"clues": "a loud, sharp voice", "emotional_states": ["angry", "tense"]}))
        labels = ["angry"] if AGREED in subtitle_in(body) else ["happy", "joyful"]
        return completion(json.dumps({"labels": labels}))


def role(url: str, model: str, media: MediaTransport = MediaTransport.none) -> RoleConfig:
    return RoleConfig(endpoints=[Endpoint(base_url=url, model=model)], media=media, max_retries=0)


def lineup(a: str, b: str | None = None, **top) -> EngineConfig:
    """Every role on A; with `b`, the audio clue and the labels on B."""
    b = b or a
    return EngineConfig(
        roles={
            "audio_clue": role(b, "model-b" if b != a else "model-a", MediaTransport.input_audio),
            "visual_clue": role(a, "model-a", MediaTransport.frames),
            "disambiguation": role(a, "model-a"),
            "translation": role(a, "model-a"),
            "labels": role(b, "model-b" if b != a else "model-a"),
        },
        media=MediaConfig(max_frames=2, frame_max_side=64),
        **top,
    )


def write(config: EngineConfig, path: Path) -> Path:
    path.write_text(json.dumps(config.model_dump(mode="json", exclude_none=True)))  # YAML reads JSON
    return path


@pytest.fixture
def models():
    a, b = ModelA(), ModelB()
    yield a, b
    a.close()
    b.close()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    (root / "video").mkdir()
    synth.talking_clip(root / "video" / "agreed.mp4", AGREED)
    synth.talking_clip(root / "video" / "disputed.mp4", DISPUTED)
    synth.write_subtitles(root / "subtitle_chieng.csv", [("agreed", "", AGREED), ("disputed", "", DISPUTED)])
    return root


def exported_rows(out: Path) -> dict[str, dict]:
    return {r["name"]: r for f in sorted((out / "data").glob("*.parquet")) for r in pq.read_table(f).to_pylist()}


def test_the_second_lineups_labels_reach_the_gate_and_shared_stages_are_asked_once(models, corpus, tmp_path):
    a, b = models
    second = write(lineup(a.server.url, b.server.url), tmp_path / "B.yaml")
    config = write(lineup(a.server.url, second_lineup=str(second)), tmp_path / "A.yaml")
    summary = build_coarse(str(corpus), str(tmp_path / "out"), str(config))

    # Per clip, A answered the first line-up's seven questions and the second's disambiguation (its audio clue
    # differs); the visual clue, which both line-ups ask alike, was asked once; the second's translation never.
    assert sorted(a.asked()) == sorted(
        2 * ["visual_clue", "visual_clue", "audio_clue", "audio_clue", "disambiguation", "disambiguation"]
        + 2 * ["translation", "labels"]
    )
    assert sorted(b.asked()) == sorted(2 * ["audio_clue", "audio_clue", "labels"])

    rows = exported_rows(tmp_path / "out")
    verdicts = {name: next(g for g in row["gates"] if g["gate"] == "cross_validation") for name, row in rows.items()}
    assert verdicts["agreed"]["passed"], verdicts["agreed"]["reason"]
    assert "compared with second_lineup:B (angry)" in verdicts["agreed"]["reason"]
    assert not verdicts["disputed"]["passed"]
    assert "disagree with second_lineup:B (happy, joyful)" in verdicts["disputed"]["reason"]
    view = next(v for v in rows["disputed"]["label_views"] if v["source"] == "second_lineup:B")
    assert view["labels"] == ["happy", "joyful"] and view["independent"] and "model-b" in view["basis"]

    # Its own provenance: every stage it ran, marked as its own, the shared one included.
    mark = "second_lineup:B/"
    calls = rows["agreed"]["provenance"]
    ours = {c["stage"].removeprefix(mark): c["model"] for c in calls if c["stage"].startswith(mark)}
    assert ours == {
        "audio_clue": "model-b",
        "visual_clue": "model-a",
        "disambiguation": "model-a",
        "labels": "model-b",
    }
    assert {c["stage"] for c in calls if not c["stage"].startswith(mark)} >= {"visual_clue", "translation", "labels"}

    # Its own cost, under its own name, in build.json and the card.
    stages = json.loads((tmp_path / "out" / "build.json").read_text())["stages"]
    assert stages == summary["stages"]
    assert stages["second_lineup:B/audio_clue"]["requests"] == 4
    assert stages["second_lineup:B/visual_clue"]["checkpoint_hits"] == 2
    assert stages["second_lineup:B/visual_clue"]["requests"] == 0
    assert stages["second_lineup:B/labels"]["requests"] == 2
    assert "second_lineup:B/translation" not in stages and stages["visual_clue"]["requests"] == 4
    card = (tmp_path / "out" / "README.md").read_text()
    assert "second_lineup:B/audio_clue" in card and "model-b" in card


def test_a_second_lineup_that_asks_nothing_new_is_not_counted_as_a_view_of_its_own(models, tmp_path):
    a, _ = models
    same = write(lineup(a.server.url), tmp_path / "same.yaml")
    clip = synth.talking_clip(tmp_path / "clip.mp4", DISPUTED)
    record = probe_clip(clip, Subtitles(english=DISPUTED), None, 30, -60)
    checkpoint = Checkpoint(tmp_path / "checkpoint.sqlite")
    try:
        with Engine(lineup(a.server.url, second_lineup=str(same)), tmp_path, checkpoint) as engine:
            [row], _ = engine.annotate([record])
    finally:
        checkpoint.close()
    assert len(a.asked()) == 7  # the first line-up's questions only: the second's are all checkpoint hits
    view = next(v for v in row.label_views if v.source == "second_lineup:same")
    assert view.labels == row.labels and not view.independent
    row.label_views = cross_validation.label_views(row)
    verdict = cross_validation.check(row, CrossValidationGate())
    assert "second_lineup:same" in verdict.reason and "not counted" in verdict.reason


def test_preflight_checks_the_second_lineup_as_it_checks_the_first(tmp_path):
    missing = lineup("http://127.0.0.1:9/v1", second_lineup=str(tmp_path / "nowhere.toml"))
    with pytest.raises(PreflightError) as refused:
        preflight(missing)
    assert any(
        line.startswith("second_lineup: ") and "no such configuration file" in line for line in refused.value.problems
    )

    nested = write(lineup("http://127.0.0.1:9/v1", second_lineup=str(tmp_path / "x.toml")), tmp_path / "nested.yaml")
    with pytest.raises(PreflightError) as refused:
        preflight(lineup("http://127.0.0.1:9/v1", second_lineup=str(nested)))
    assert any("names a second line-up of its own" in line for line in refused.value.problems)

    down = write(lineup("http://127.0.0.1:9/v1"), tmp_path / "down.yaml")
    with pytest.raises(PreflightError) as refused:
        preflight(lineup("http://127.0.0.1:9/v1", second_lineup=str(down)))
    assert any(line.startswith("second_lineup down: roles ") for line in refused.value.problems)
