"""The build-coarse flow end to end: real Prefect (local mode), ffmpeg/decord, vLLM, datasets.

Specifies what a researcher gets back for a corpus with good and bad clips, that a re-run costs no
model calls, and that a killed run resumes to the same dataset without redoing finished work.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from datasets import load_from_disk

from flows.build_coarse import build_coarse
from tests.conftest import ROOT, served_requests, write_flow_config

GOOD = {"sample_00000001", "sample_00000002", "samplenew_00004251"}
STAGES = {"audio_clue", "visual_clue", "disambiguation", "translation", "labels"}


def total_requests(servers) -> int:
    return served_requests(servers["text"]) + served_requests(servers["audio"])


def rows(out: Path, split: str) -> list[dict]:
    files = sorted((out / "data").glob(f"{split}-*.parquet"))
    return sorted((r for f in files for r in pq.read_table(f).to_pylist()), key=lambda r: r["name"])


def dataset(out: Path) -> dict[str, list[dict]]:
    return {split: rows(out, split) for split in ("train", "review", "rejected", "failed")}


def complete_rows(out: Path) -> dict[str, dict]:
    """Rows every stage answered for: in the corpus, or held back by a gate (random weights write
    noise, which the gates mostly send to review: tests/test_gates_build.py shows the gates' rules)."""
    return {r["name"]: r for split in ("train", "review", "rejected") for r in rows(out, split)}


@pytest.fixture(scope="module")
def config(servers, tmp_path_factory) -> Path:
    return write_flow_config(tmp_path_factory.mktemp("cfg") / "engine.toml", servers)


@pytest.fixture(scope="module")
def built(servers, mer_corpus, config, tmp_path_factory):
    out = tmp_path_factory.mktemp("built")
    before = total_requests(servers)
    summary = build_coarse(str(mer_corpus), str(out), str(config))
    return out, summary, total_requests(servers) - before


def test_every_clip_and_subtitle_row_is_accounted_for(built):
    out, summary, _ = built
    manifest = {r["name"]: r for r in pq.read_table(out / "manifest.parquet").to_pylist()}
    assert set(manifest) == GOOD | {f"sample_000000{i}" for i in range(10, 16)} | {"sample_00000099"}
    status = {name: r["status"] for name, r in manifest.items()}
    assert {n for n, s in status.items() if s == "ok"} == GOOD
    assert status["sample_00000010"] == status["sample_00000011"] == "silent"
    # empty, not a video, truncated (ffprobe), corrupt (caught when decoding, then recorded here too)
    assert [status[f"sample_000000{i}"] for i in (12, 13, 14, 15)] == ["invalid"] * 4
    assert "cannot decode" in manifest["sample_00000015"]["error"]
    assert status["sample_00000099"] == "missing"
    assert all(r["error"] for r in manifest.values() if r["status"] != "ok")

    data = dataset(out)
    names = [r["name"] for split in data.values() for r in split]
    assert sorted(names) == sorted(manifest) and len(set(names)) == len(names)
    failed = {r["name"]: r for r in data["failed"]}
    for name in ("sample_00000012", "sample_00000013", "sample_00000014", "sample_00000015", "sample_00000099"):
        assert failed[name]["errors"] and not failed[name]["complete"]
    assert summary["splits"] == {split: len(r) for split, r in data.items()}


def test_rows_carry_clues_bilingual_description_labels_and_provenance(built):
    out, _, _ = built
    train = complete_rows(out)
    assert set(train) == GOOD | {"sample_00000010", "sample_00000011"}
    for _name, row in train.items():
        assert row["complete"] and row["description_en"] and row["subtitle_analysis"]
        # The tiny random models' Chinese may be nothing but control characters, which judge removes (every
        # published text is cleaned): then the validity gate holds the row back as empty.
        validity = next(g for g in row["gates"] if g["gate"] == "validity")
        assert row["description_zh"] or (not validity["passed"] and "description_zh" in validity["reason"])
        assert isinstance(row["labels"], list) and row["visual_clue"]["without_subtitle"]["clues"]
        stages = {p["stage"] for p in row["provenance"]}
        assert STAGES - {"audio_clue"} <= stages
        for call in row["provenance"]:
            assert (
                call["prompt_version"]
                and call["model"].startswith("tiny-")
                and call["server"].startswith("http://127.0.0.1")
            )
            assert json.loads(call["sampling"])["temperature"] == 0.0
    for name in GOOD:  # clips with speech were heard, asked with and without the subtitle
        clue = train[name]["audio_clue"]
        assert clue["without_subtitle"]["clues"] and clue["with_subtitle"]["clues"]
        assert "audio_clue" in {p["stage"] for p in train[name]["provenance"]}
    # Chinese-only subtitle: translated to English first, the original kept
    assert "subtitle_translation" in {p["stage"] for p in train["sample_00000002"]["provenance"]}
    assert (
        train["sample_00000002"]["subtitle_chinese"] == "你为什么总是这样对我？"
        and train["sample_00000002"]["subtitle_english"] is None
    )
    # silent clips are described from what is seen, without an audio clue
    for name in ("sample_00000010", "sample_00000011"):
        assert train[name]["audio_clue"] is None and "audio_clue" not in {
            p["stage"] for p in train[name]["provenance"]
        }
        assert [e["message"].split(":")[0] for e in train[name]["errors"]] == ["skipped"]
    assert train["sample_00000002"]["subtitle_english_translated"]


def test_every_complete_row_is_judged_by_every_gate_and_routed_by_its_verdicts(built):
    out, summary, _ = built
    for split, expected in (("train", True), ("review", False)):
        for row in rows(out, split):
            assert [g["gate"] for g in row["gates"]] == [
                "validity",
                "length",
                "av_match",
                "cross_validation",
                "grounding",
                "high_level",
            ]
            assert all(g["reason"] for g in row["gates"])
            assert all(g["passed"] for g in row["gates"]) is expected and row["accepted"] is expected
            assert row["signals"]["visual"]["frames"] >= 1
    assert all(not r["gates"] for r in rows(out, "failed"))
    # Test-pattern clips show no face: the A/V gate holds every one of them back.
    assert summary["gates"]["av_match"]["passed"] == 0 and summary["gates"]["av_match"]["judged"] == len(
        complete_rows(out)
    )


def test_model_calls_are_counted_exactly(built):
    _, summary, served = built
    assert summary["model_calls"] == served > 0


def test_dataset_dict_shards_and_card(built):
    out, summary, _ = built
    ds = load_from_disk(str(out / "hf"))
    assert set(ds) == {"train", "review", "rejected", "failed"} and all(
        ds[s].num_rows == n for s, n in summary["splits"].items()
    )
    assert sorted(p.name for p in (out / "data").glob("*.parquet")) == [
        f"{s}-00000-of-00001.parquet" for s in ("failed", "rejected", "review", "train")
    ]
    card = (out / "README.md").read_text()
    for text in (
        "tiny-audio",
        "tiny-text",
        "audio_clue@1.0.0",
        "labels@1.0.0",
        "MER EULA",
        "| train |",
        "## Quality gates",
        "| av_match |",
        "## How to load",
        "## Tiers",
    ):
        assert text in card
    for split, n in summary["splits"].items():  # the YAML lists the splits with rows: load_dataset reads them
        assert (f"path: data/{split}-*.parquet" in card) is (n > 0)
    assert "```json" not in card


def test_a_re_run_makes_no_model_calls_and_gives_the_same_dataset(built, servers, mer_corpus, config):
    out, _, _ = built
    first = dataset(out)
    before = total_requests(servers)
    summary = build_coarse(str(mer_corpus), str(out), str(config))
    assert summary["model_calls"] == 0 and total_requests(servers) == before
    assert dataset(out) == first
    assert summary["export"] == "unchanged since the last run" and summary["splits"] == built[1]["splits"]


def test_a_gate_setting_changed_since_the_last_run_re_exports_without_model_calls(
    built, servers, mer_corpus, config, tmp_path
):
    out = tmp_path / "out"
    shutil.copytree(built[0], out)  # its state (checkpoint, media) comes along in out/.state
    strict = tmp_path / "strict.toml"
    strict.write_text(config.read_text() + "\n[gates.length]\nmin_words = 10000\nmax_words = 20000\n")
    before = total_requests(servers)
    summary = build_coarse(str(mer_corpus), str(out), str(strict))
    assert summary["model_calls"] == 0 and total_requests(servers) == before and "export" not in summary
    assert (
        summary["gates"]["length"]["judged"] > 0
        and summary["gates"]["length"]["passed"] == 0
        and summary["splits"]["train"] == 0
    )
    back = build_coarse(str(mer_corpus), str(out), str(config))  # and back: exported again, as it was
    assert "export" not in back and back["splits"] == built[1]["splits"] and dataset(out) == dataset(built[0])


def checkpointed(db: Path) -> tuple[int, int]:
    """(stage results, model attempts they cost) in a run's checkpoint."""
    if not db.exists():
        return 0, 0
    with sqlite3.connect(db, timeout=30) as con:
        payloads = [json.loads(p) for (p,) in con.execute("SELECT payload FROM results WHERE stage != 'probe'")]
    return len(payloads), sum(c["attempts"] for p in payloads for c in p["calls"])


def test_a_killed_run_resumes_to_the_same_dataset_without_redoing_work(
    built, servers, mer_corpus, servers_config_slow, tmp_path
):
    reference, ref_summary, _ = built
    out = tmp_path / "out"
    db = out / ".state" / "checkpoint.sqlite"
    cmd = [
        sys.executable,
        "-m",
        "flows.cli",
        "build",
        str(mer_corpus),
        "--out",
        str(out),
        "--config",
        str(servers_config_slow),
    ]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    while checkpointed(db)[0] < 6 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_results, done_attempts = checkpointed(db)
    assert done_results >= 6 and not (out / "build.json").exists()

    before = total_requests(servers)
    summary = build_coarse(str(mer_corpus), str(out), str(servers_config_slow))
    served = total_requests(servers) - before
    # finished stages were not asked again: the two runs together cost what one uninterrupted run costs
    assert summary["model_calls"] == served
    assert done_attempts + summary["model_calls"] == ref_summary["model_calls"]
    assert dataset(out) == dataset(reference)


@pytest.fixture
def servers_config_slow(servers, tmp_path) -> Path:
    """Small batches, one at a time: the run lasts long enough to be killed in the middle."""
    return write_flow_config(tmp_path / "slow.toml", servers, batch_size=1, task_workers=1)


def test_a_local_dask_cluster_builds_the_same_dataset(built, servers, mer_corpus, tmp_path):
    """Scale-out: batch tasks on Dask worker processes (each builds its own engine) against the same servers."""
    reference, ref_summary, _ = built
    config = write_flow_config(
        tmp_path / "dask.toml", servers, batch_size=2, task_workers=1, task_runner="dask", dask_workers=2
    )
    out = tmp_path / "out"
    before = total_requests(servers)
    summary = build_coarse(str(mer_corpus), str(out), str(config))
    assert summary["model_calls"] == total_requests(servers) - before == ref_summary["model_calls"]
    assert dataset(out) == dataset(reference)
