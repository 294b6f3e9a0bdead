"""Adding a stage through the contract alone (README: "Adding a stage"): a toy role declared here, named
in a line-up's `extra_stages` and configured as a role, runs in a real build (Prefect local mode), is
checkpointed (a re-run asks it nothing) and is exported with the rows. No engine module is edited.

Checked against what the build writes (the Parquet shards, build.json, the card) and the requests a
scripted OpenAI-compatible server received, not against the stage code."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from prefect.artifacts import Artifact
from pydantic import Field

from data import synth_clips as synth
from flows.build_coarse import build_coarse
from schemas.replies import Reply, Text
from stages.contract import Question, Stage
from stages.translation import DescriptionInputs
from tests.fakes import ScriptedServer, completion

ROOT = Path(__file__).resolve().parents[2]


class IntensityReply(Reply):
    intensity: int = Field(ge=1, le=5, description="How strongly the emotion is expressed, 1..5")
    because: Text


class IntensityStage(Stage[DescriptionInputs]):
    """The whole of the toy stage: what it reads, asks, expects and writes."""

    name = "intensity"
    inputs = DescriptionInputs
    reply = IntensityReply
    writes = ("intensity", "because")
    prompt = str(ROOT / "tests" / "fixtures" / "prompts" / "intensity.toml")

    def questions(self, inputs: DescriptionInputs) -> list[Question]:
        return [Question("intensity", "default", {"description": inputs.description_en})]


@pytest.fixture(scope="module")
def toy_server():
    def answer(body):
        assert body["response_format"]["json_schema"]["name"] == "IntensityReply"
        return completion(json.dumps({"intensity": 4, "because": "The voice rises sharply."}))

    server = ScriptedServer(handler=answer)
    yield server
    server.close()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("toy-corpus")
    synth.talking_clip(root / "toy_1.mp4", "I finally passed the exam, I am so happy!")
    synth.talking_clip(root / "toy_2.mp4", "Why do you always treat me like this?", size="640x360")
    return root


def toy_config(path: Path, url: str) -> Path:
    """The zero-download line-up plus the toy role: nothing but configuration."""
    signals = (ROOT / "data" / "configs" / "cpu-signals.toml").read_text()
    path.write_text(
        'extra_stages = ["tests.engine.test_adding_a_stage:IntensityStage"]\n'
        + signals
        + f'\n[roles.intensity]\nendpoints = [{{ base_url = "{url}", model = "toy" }}]\nmax_retries = 0\n'
    )
    return path


def rows_of(out: Path) -> list[dict]:
    return [r for shard in sorted((out / "data").glob("*.parquet")) for r in pq.read_table(shard).to_pylist()]


def test_a_stage_added_by_configuration_runs_is_checkpointed_and_exported(toy_server, corpus, tmp_path):
    config, out = toy_config(tmp_path / "toy.toml", toy_server.url), tmp_path / "out"
    first = build_coarse(str(corpus), str(out), str(config))
    rows = rows_of(out)
    complete = [r for r in rows if r["complete"]]
    assert len(complete) == 2 and len(toy_server.requests) == 2
    for row in complete:
        extra = {(e["stage"], e["field"]): json.loads(e["value"]) for e in row["extra"]}
        assert extra == {("intensity", "intensity"): 4, ("intensity", "because"): "The voice rises sharply."}
        assert "intensity" in [c["stage"] for c in row["provenance"]]
    assert first["stages"]["intensity"]["runs"] == 2 and first["stages"]["intensity"]["requests"] == 2
    with sqlite3.connect(out / ".state" / "checkpoint.sqlite") as db:
        assert db.execute("SELECT count(*) FROM results WHERE stage = 'intensity' AND ok = 1").fetchone() == (2,)
    card = (out / "README.md").read_text()
    assert "| intensity | toy |" in card  # the line-up table names the role and its model
    # Its cost in the card's per-stage table: 0 hits, 2 runs, 2 requests, 2 attempts, 0 failures.
    assert "| intensity | 0 | 2 | 2 | 2 | 0 |" in card
    artifact = Artifact.get("build-coarse-stages")  # and in the flow run's table artifact
    assert {"stage": "intensity", "runs": 2, "requests": 2}.items() <= next(
        r for r in json.loads(artifact.data) if r["stage"] == "intensity"
    ).items()

    again = build_coarse(str(corpus), str(out), str(config))
    assert len(toy_server.requests) == 2  # answered from the checkpoint
    assert again["stages"]["intensity"]["checkpoint_hits"] == 2 and again["stages"]["intensity"]["runs"] == 0
    assert rows_of(out) == rows  # the same dataset
