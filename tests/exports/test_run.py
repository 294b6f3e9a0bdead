"""What every export does whatever its format: only the tier's rows of the train split, the folder rules, a
missing medium reported per row, and the `export` command and flow."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from exports.run import export_training
from exports.source import ExportError, read_build
from flows.cli import app
from schemas.config import TiersConfig
from stages.tiers import in_tier
from tests.exports.conftest import split_rows


def names(folder) -> set[str]:
    return set(pd.read_csv(folder / "track2_train_mercaptionplus.csv")["name"])


def test_plus_is_the_subset_of_coarse_the_tier_thresholds_choose(built, train, config, tmp_path):
    coarse = export_training(built, "mercaption", tmp_path / "coarse", config=config)
    plus = export_training(built, "mercaption", tmp_path / "plus", tier="plus", config=config)
    assert names(tmp_path / "coarse") == set(train) and names(tmp_path / "plus") <= set(train)
    # With the thresholds the build recorded, the rows build.json counts.
    build = read_build(built, config)
    assert names(tmp_path / "plus") == {row.name for row in build.rows("coarse") if in_tier(row, "plus", build.tiers)}
    assert (coarse.tier, plus.tier, plus.rows) == ("coarse", "plus", plus.source.tier_counts["plus"])
    # Other thresholds choose other rows, from what the rows carry (no model is asked anything).
    lenient = TiersConfig.model_validate({"plus": {"min_score": {}, "max_score": {}}})
    export_training(built, "mercaption", tmp_path / "lenient", tier="plus", config=config, tiers=lenient)
    strict = TiersConfig.model_validate({"plus": {"min_score": {"length": 10_000}}})
    export_training(built, "mercaption", tmp_path / "strict", tier="plus", config=config, tiers=strict)
    assert names(tmp_path / "lenient") == set(train) and names(tmp_path / "strict") == set()


def test_a_missing_clip_or_audio_is_reported_per_row_not_a_crash(built, train, config, tmp_path):
    build = read_build(built, config)
    clip = build.clip(next(build.rows("coarse")))
    moved = clip.video.with_suffix(".moved")
    shutil.move(clip.video, moved)
    wav = clip.audio.with_suffix(".moved")
    try:
        manifest = export_training(built, "mercaption", tmp_path / "gone", config=config)
        assert [(s.name, "not found" in s.reason) for s in manifest.skipped] == [(clip.row.name, True)]
        assert manifest.rows == len(train) - 1
        shutil.move(moved, clip.video)
        other = build.clip(next(r for r in build.rows("coarse") if r.name != clip.row.name))
        wav = other.audio.with_suffix(".moved")
        shutil.move(other.audio, wav)
        manifest = export_training(built, "llamafactory", tmp_path / "no-audio", config=config)
        assert manifest.rows == len(train) and [(p.name, p.medium) for p in manifest.media_problems] == [
            (other.row.name, "audio")
        ]
    finally:
        if moved.exists():
            shutil.move(moved, clip.video)
        if wav.exists():
            shutil.move(wav, wav.with_suffix(".wav"))


def test_a_folder_it_did_not_write_is_refused_and_its_own_is_replaced(built, config, tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty"):
        export_training(built, "affectgpt", foreign, config=config)
    assert (foreign / "notes.txt").read_text() == "mine"
    again = tmp_path / "again"
    export_training(built, "llamafactory", again, config=config)
    export_training(built, "affectgpt", again, config=config)  # replaces the earlier export's files only
    assert sorted(p.name for p in again.iterdir()) == ["emer_coarse_train.csv", "export-manifest.json", "video"]
    with pytest.raises(ExportError, match="inside the build"):
        export_training(built, "affectgpt", built / "x", config=config)


def test_the_export_command_runs_the_flow_and_says_mistakes_in_a_line(built, train, signals_config, tmp_path):
    runner = CliRunner()
    to = tmp_path / "cli"
    args = ["export", str(built), "--format", "atomic", "--to", str(to), "--config", str(signals_config)]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    assert json.loads((to / "export-manifest.json").read_text())["rows"] == len(train)
    wrong = runner.invoke(app, ["export", str(built), "--format", "csv", "--to", str(tmp_path / "x")])
    assert wrong.exit_code == 2 and "--format csv: no such format" in wrong.output
    avi = runner.invoke(app, [*args, "--avi"])
    assert avi.exit_code == 2 and "--avi" in avi.output
    assert split_rows(built, "review")  # the held-back row exists, and no export above wrote it
