"""The per-clip pipeline's branches, deterministically: a scripted OpenAI-compatible server answers
each role (or fails it on demand), so each rule of the pipeline can be shown by counting requests."""

from __future__ import annotations

import pytest

from data import synth_clips as synth
from engine.assembly import Engine
from runtime.checkpoint import Checkpoint
from schemas.config import Endpoint, EngineConfig, MediaConfig, MediaTransport, RoleConfig, Sampling
from schemas.manifest import Subtitles
from stages.ingest import probe_clip
from tests.fakes import RoleServer, role_of


@pytest.fixture
def models():
    m = RoleServer()
    yield m
    m.server.close()


def config_for(url: str, **labels) -> EngineConfig:
    def role(name, media=MediaTransport.none, **kw):
        return RoleConfig(
            endpoints=[Endpoint(base_url=url, model="m")], prompt=name, media=media, max_retries=0, max_reasks=0, **kw
        )

    return EngineConfig(
        roles={
            "audio_clue": role("audio_clue", MediaTransport.input_audio),
            "visual_clue": role("visual_clue", MediaTransport.frames),
            "disambiguation": role("disambiguation"),
            "translation": role("translation"),
            "labels": role("labels", **labels),
        },
        media=MediaConfig(max_frames=2, frame_max_side=64),
    )


def annotate(config: EngineConfig, tmp_path, records, models: RoleServer):
    checkpoint = Checkpoint(tmp_path / "checkpoint.sqlite")
    seen = len(models.server.requests)
    try:
        with Engine(config, tmp_path, checkpoint) as engine:
            rows, stats = engine.annotate(records)
    finally:
        checkpoint.close()
    assert stats.model_calls == len(models.server.requests) - seen  # the batch counts exactly the requests it made
    return rows


@pytest.fixture(scope="module")
def records(tmp_path_factory, good_clip):
    silent = synth.silent_clip(tmp_path_factory.mktemp("s") / "silent.mp4")
    subs = Subtitles(chinese="你为什么总是这样？", english="Why are you always like this?")
    return {
        "talking": probe_clip(good_clip, subs, None, 30, -60),
        "silent": probe_clip(silent, Subtitles(english="..."), None, 30, -60),
        "chinese_only": probe_clip(good_clip, Subtitles(chinese="你为什么总是这样？"), None, 30, -60).model_copy(
            update={"name": "zh"}
        ),
    }


def test_a_talking_clip_gets_every_stage(models, records, tmp_path):
    [row] = annotate(config_for(models.server.url), tmp_path, [records["talking"]], models)
    assert row.complete and not row.errors
    assert sorted(models.asked()) == sorted(
        ["audio_clue"] * 2 + ["visual_clue"] * 2 + ["disambiguation", "translation", "labels"]
    )
    assert row.audio_clue.with_subtitle.emotional_states == ["angry"] and row.visual_clue.without_subtitle
    assert (row.description_zh, row.labels) == ("视频中……", ["angry", "frustrated"])


def test_a_duplicated_clip_in_flight_is_asked_once_and_both_rows_agree(models, records, tmp_path):
    twin = records["talking"].model_copy(update={"name": "talking_copy"})  # same content, same subtitle
    first, second = annotate(config_for(models.server.url), tmp_path, [records["talking"], twin], models)
    assert sorted(models.asked()) == sorted(
        ["audio_clue"] * 2 + ["visual_clue"] * 2 + ["disambiguation", "translation", "labels"]
    )
    assert (
        first.complete and second.complete and (first.name, second.name) == (records["talking"].name, "talking_copy")
    )
    assert first.model_dump(exclude={"name"}) == second.model_dump(exclude={"name"})


def test_media_parts_follow_each_roles_transport(models, records, tmp_path):
    annotate(config_for(models.server.url), tmp_path, [records["talking"]], models)
    parts = {
        role_of(b): [p["type"] for p in b["messages"][-1]["content"]]
        for b in models.server.requests
        if isinstance(b["messages"][-1]["content"], list)
    }
    assert parts["audio_clue"] == ["input_audio", "text"]
    assert parts["visual_clue"] == ["image_url", "image_url", "text"]


def test_a_server_outage_stops_the_clip_and_the_next_run_asks_only_what_is_missing(models, records, tmp_path):
    models.failing = {"visual_clue": 503}
    [row] = annotate(config_for(models.server.url), tmp_path, [records["talking"]], models)
    assert not row.complete and [e.stage for e in row.errors] == ["visual_clue"]
    assert "disambiguation" not in models.asked()  # nothing built on the gap

    models.failing = {}
    [row] = annotate(config_for(models.server.url), tmp_path, [records["talking"]], models)
    assert row.complete
    assert sorted(models.asked()) == sorted(
        ["visual_clue"] * 2 + ["disambiguation", "translation", "labels"]
    )  # audio clue kept


def test_no_clue_means_no_description_and_the_verdict_is_kept(models, records, tmp_path):
    models.failing = {"visual_clue": 400, "audio_clue": 400}
    [row] = annotate(config_for(models.server.url), tmp_path, [records["talking"]], models)
    assert row.audio_clue is None and row.visual_clue is None and not row.complete
    assert "skipped: no clue to disambiguate" in [e.message for e in row.errors]
    assert "disambiguation" not in models.asked()
    annotate(config_for(models.server.url), tmp_path, [records["talking"]], models)
    assert models.asked() == []  # a request the server rejects is not sent again


def test_a_silent_clip_is_complete_without_an_audio_clue(models, records, tmp_path):
    [row] = annotate(config_for(models.server.url), tmp_path, [records["silent"]], models)
    assert row.complete and row.audio_clue is None and row.clip_status == "silent"
    assert "audio_clue" not in models.asked()
    assert [e.message.split(":")[0] for e in row.errors] == ["skipped"]


def test_a_chinese_only_subtitle_is_translated_and_read_in_english(models, records, tmp_path):
    [row] = annotate(config_for(models.server.url), tmp_path, [records["chinese_only"]], models)
    assert row.complete and row.subtitle_english_translated == "视频中……"
    asks = models.server.requests
    assert role_of(asks[0]) == "translation" and "你为什么总是这样？" in asks[0]["messages"][-1]["content"]


def test_a_changed_role_setting_re_runs_only_that_stage(models, records, tmp_path):
    annotate(config_for(models.server.url), tmp_path, [records["talking"]], models)
    models.asked()
    annotate(config_for(models.server.url, sampling=Sampling(max_tokens=100)), tmp_path, [records["talking"]], models)
    assert models.asked() == ["labels"]
