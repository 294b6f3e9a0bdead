"""`evaluate`: a built dataset or a predictions CSV against gold labels -> report.md, report.json, labels.png.

The fixtures are the metric tests' (tests/fixtures/metrics): their hand-computed values are checked
again here, end to end through the Prefect flow and the CLI. The LLM grouping path runs against the
session's tiny vLLM text server: a random model answers schema-valid noise, so the test checks the
shape, the metric and the cache, not which words it grouped.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prefect.logging.handlers import APILogWorker
from typer.testing import CliRunner

from flows.cli import app
from flows.evaluate import evaluate as evaluate_flow
from flows.evaluate import read_predictions
from metrics.openset import read_openset_csv
from metrics.synonym_llm import label_union, needs_grouping
from schemas.arrow import to_table
from schemas.metrics import EvaluateConfig, EvaluateReport, SynonymGroupsReply
from schemas.row import CoarseRow
from tests.fixtures.metrics.emotion_wheel import write_emotion_wheel

FIXTURES = Path(__file__).parent / "fixtures" / "metrics"
GOLD = FIXTURES / "gold.csv"

# The fixtures' hand-computed values (tests/test_metrics_emer.py, tests/test_metrics_wheel.py):
ACCURACY_S, RECALL_S = 2 / 6, 2.5 / 6  # with groups.json; Avg = 0.375
WHEEL_L1_F1, WHEEL_L2_F1 = (0.5 + 0.6) / 2, (0.0 + 0.6 / 1.1) / 2


@pytest.fixture(scope="module")
def wheel_dir(tmp_path_factory) -> Path:
    return write_emotion_wheel(tmp_path_factory.mktemp("emotion_wheel"))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A build-coarse output: the train split holds pred.csv's rows; c6 sits in the failed split."""
    import pyarrow.parquet as pq

    out = tmp_path_factory.mktemp("build")
    (out / "data").mkdir()
    pred = read_openset_csv(FIXTURES / "pred.csv")
    rows = [
        CoarseRow(name=name, clip_status="ok", labels=labels, complete=True, accepted=True)
        for name, labels in pred.items()
    ]
    pq.write_table(to_table(rows, CoarseRow), out / "data" / "train-00000-of-00001.parquet")
    # Were the failed split read, c6 (gold: happy) would score (1, 1) and change every number below.
    pq.write_table(
        to_table([CoarseRow(name="c6", clip_status="ok", labels=["happy"])], CoarseRow),
        out / "data" / "failed-00000-of-00001.parquet",
    )
    return out


def evaluate(**params) -> dict:
    try:
        return evaluate_flow(**params)
    finally:
        APILogWorker.drain_all(timeout=30)  # send the run's logs while the local Prefect server is still up


def invoke(args: list[str]):
    try:
        return CliRunner().invoke(app, args)
    finally:
        APILogWorker.drain_all(timeout=30)


def load_report(out: Path) -> EvaluateReport:
    return EvaluateReport.model_validate_json((out / "report.json").read_text())


def test_evaluate_flow_on_a_built_dataset(built, wheel_dir, tmp_path):
    assert read_predictions(built) == read_openset_csv(FIXTURES / "pred.csv")  # the train split only
    out = tmp_path / "report"
    summary = evaluate(
        predictions=str(built),
        gold=str(GOLD),
        out_dir=str(out),
        groups=str(FIXTURES / "groups.json"),
        wheel=str(wheel_dir),
    )
    assert summary["emer"]["accuracy_s"] == pytest.approx(ACCURACY_S) and summary["emer"]["recall_s"] == pytest.approx(
        RECALL_S
    )
    assert summary["emer"]["avg"] == pytest.approx(0.375)
    assert summary["wheel"]["level1_f1"] == pytest.approx(WHEEL_L1_F1) and summary["wheel"][
        "level2_f1"
    ] == pytest.approx(WHEEL_L2_F1)
    assert summary["model_calls"] == 0

    report = load_report(out)
    assert (report.missing_predictions, report.extra_predictions) == (1, 1)  # c6 has none; c7 is not in the gold
    assert (report.emer.clips, report.emer.skipped) == (6, 1)
    clips = {c.name: c for c in report.clips}
    assert (clips["c3"].accuracy_s, clips["c3"].recall_s) == (0.5, 1.0) and clips["c3"].groups_source == "file"
    assert clips["c1"].wheel["level2"].precision == 0.25  # (0 on wheel1 + 1/2 on wheel2) / 2
    assert clips["c4"].wheel == {}  # its gold maps onto no wheel: skipped there, scored by EMER
    assert len(report.wheel.per_wheel) == 4  # two wheels x two levels

    # The paper-style table, in percent with two decimals, then the per-clip table.
    markdown = (out / "report.md").read_text()
    assert "| Method | Avg | Accuracy_s | Recall_s | EW-F1 L1 | EW-F1 L2 | EW-F1 Avg |" in markdown
    assert f"| {built.name} | 37.50 | 33.33 | 41.67 | 55.00 | 27.27 | 41.14 |" in markdown
    # c6: happy is on wheel2 only, where the missing prediction scores 0 at both levels.
    assert "| c6 | happy | ∅ (missing) | 0.00 | 0.00 | 0.00 / 0.00 | 0.00 / 0.00 | file |" in markdown
    assert "| c8 | ∅ | happy | skipped | skipped | skipped | skipped | file |" in markdown
    assert "![label distribution](labels.png)" in markdown
    png = (out / "labels.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 2000
    assert report.files == {
        "json": str(out / "report.json"),
        "markdown": str(out / "report.md"),
        "plot": str(out / "labels.png"),
    }


def test_cli_on_a_predictions_csv_with_the_npz_release_and_the_lexicon(wheel_dir, tmp_path):
    from metrics.wheel import read_wheel_folder, save_wheel_npz

    npz = save_wheel_npz(read_wheel_folder(wheel_dir), tmp_path / "wheel_mapping.npz")
    out = tmp_path / "report"
    result = invoke(
        ["evaluate", str(FIXTURES / "pred.csv"), "--gold", str(GOLD), "--out", str(out), "--wheel", str(npz)]
    )
    assert result.exit_code == 0, result.output
    report = load_report(out)
    # The wheel metric needs no groups: the same numbers as from the spreadsheets.
    assert report.wheel.level1_f1 == pytest.approx(WHEEL_L1_F1) and report.wheel.level2_f1 == pytest.approx(
        WHEEL_L2_F1
    )
    # No --groups and no model: the engine's lexicon (data/lexicon/emotion_groups.toml 2.0.0, its forms included)
    # groups synonyms. It has happiness, delighted, satisfied -> happy; heartbroken, sorrowful -> sad; mad, livid,
    # wrath -> angry; bored -> tired, and neither happier nor sadly:
    # c1 Y={happy} Ŷ={happier, happy} -> 1/2, 1;   c2 Y={sadly, sad} Ŷ={sad} -> 1, 1/2
    # c3 Y={angry} Ŷ={angry, tired} -> 1/2, 1;     c4 Y={tired} Ŷ={happy} -> 0, 0;  c5, c6 -> 0, 0;  c8 skipped
    # Accuracy_s = 2/6, Recall_s = 2.5/6, Avg = 4.5/12 = 0.375
    assert (report.emer.accuracy_s, report.emer.recall_s, report.emer.avg) == (
        pytest.approx(2 / 6),
        pytest.approx(2.5 / 6),
        pytest.approx(0.375),
    )
    assert report.groups.startswith("the engine's lexicon") and {c.groups_source for c in report.clips} == {"lexicon"}
    assert json.loads(result.output[result.output.index("{") :])["emer"]["avg"] == pytest.approx(0.375)


def test_cli_reports_a_malformed_file_without_a_traceback(tmp_path):
    bad = tmp_path / "gold.csv"
    bad.write_text("clip,labels\nx,[]\n")
    result = invoke(["evaluate", str(FIXTURES / "pred.csv"), "--gold", str(bad), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "name" in result.output


def test_evaluate_config(tmp_path, monkeypatch):
    path = tmp_path / "eval.toml"
    path.write_text('[synonyms]\nendpoints = [{ base_url = "http://127.0.0.1:9/v1", model = "m" }]\n')
    config = EvaluateConfig.from_file(path)
    assert config.synonyms.prompt == "synonym_groups" and config.synonyms.sampling.temperature == 0.0
    monkeypatch.setenv("EMER_EVAL_STATE_DIR", str(tmp_path / "cache"))
    assert EvaluateConfig.from_file(path).state_dir == tmp_path / "cache"
    assert EvaluateConfig.from_file(None).synonyms is None
    with pytest.raises(ValueError):
        EvaluateConfig(unknown=1)


def test_only_clips_whose_score_groups_can_change_are_sent():
    assert label_union(["Happy", "sad"], ["happy ", "angry"]) == ["angry", "happy", "sad"]
    assert needs_grouping(["happy"], ["glad"])
    assert not needs_grouping([], ["glad"])  # skipped
    assert not needs_grouping(["happy"], [])  # (0, 0) whatever the groups
    assert not needs_grouping(["Happy", "sad"], ["sad", "happy"])  # equal sets map to equal sets


@pytest.mark.vllm
def test_llm_groups_per_clip_are_cached(servers, tmp_path):
    from tests.conftest import served_requests

    text = servers["text"]
    config = tmp_path / "eval.toml"
    config.write_text(
        "[synonyms]\nsampling = { max_tokens = 1024 }\n"
        f'endpoints = [{{ base_url = "{text.base_url}", model = "{text.spec.served_model_name}" }}]\n'
    )
    gold, pred = read_openset_csv(GOLD), read_openset_csv(FIXTURES / "pred.csv")
    asked = {n for n in gold if needs_grouping(gold[n], pred.get(n) or [])}
    assert asked == {"c1", "c2", "c3", "c4"}  # c5, c6: no prediction; c8: no gold
    out = tmp_path / "report"

    before = served_requests(text)
    first = evaluate(predictions=str(FIXTURES / "pred.csv"), gold=str(GOLD), out_dir=str(out), config_path=str(config))
    sent = served_requests(text) - before
    report = load_report(out)
    assert sent == first["model_calls"] == report.model_calls >= len(asked)  # one per clip, plus any re-asks
    assert report.grouping_errors == []
    sources = {c.name: c.groups_source for c in report.clips}
    assert {n for n, s in sources.items() if s == "llm"} == asked and {sources[n] for n in set(sources) - asked} == {
        "lexicon"
    }
    assert report.groups.startswith(f"per clip from {text.spec.served_model_name} (prompt synonym_groups@1.0.0)")
    # The metric is computed from whatever the model grouped: bounded, and the clips no group can help stay 0.
    assert (
        0 <= report.emer.accuracy_s <= 1
        and 0 <= report.emer.recall_s <= 1
        and (report.emer.clips, report.emer.skipped) == (6, 1)
    )
    assert all((c.accuracy_s, c.recall_s) == (0, 0) for c in report.clips if c.name in ("c5", "c6"))
    # What was cached is a reply of the schema's shape.
    import sqlite3

    rows = sqlite3.connect(out / ".state" / "synonyms.sqlite").execute("SELECT payload, ok FROM results").fetchall()
    assert len(rows) == len(asked) and all(ok for _, ok in rows)
    for payload, _ in rows:
        SynonymGroupsReply.model_validate({"groups": json.loads(payload)["groups"]})

    # Again: every grouping comes from the cache; the server sees no request and the scores are identical.
    before = served_requests(text)
    second = evaluate(
        predictions=str(FIXTURES / "pred.csv"), gold=str(GOLD), out_dir=str(out), config_path=str(config)
    )
    assert served_requests(text) - before == 0 and second["model_calls"] == 0
    again = load_report(out)
    assert again.emer == report.emer
    assert {c.name for c in again.clips if c.groups_source == "cache"} == asked


def test_the_emer_metric_in_both_languages_on_labels_read_from_each_description(tmp_path):
    """AffectGPT reports the EMER metric on labels from the English and from the Chinese description. The labels
    are read with the engine's lexicon (English base words for both), then scored against the same gold."""
    import pyarrow.parquet as pq

    descriptions = {  # name -> (English, Chinese, what the lexicon reads in each)
        "d1": (
            "In the video, he smiles. Therefore, he feels happy and relieved.",
            "视频中，他在微笑。因此，他感到开心和宽慰。",
        ),
        "d2": (
            "In the audio, her voice trembles. Overall, she is sad.",
            "音频中，她的声音颤抖。总的来说，她很难过，也很焦虑。",
        ),
        "d3": ("He shouts. Therefore, he is angry.", "他在大喊。因此，他很生气。"),
        "d4": ("She looks calm.", None),  # no Chinese description: an empty prediction there
    }
    out = tmp_path / "build"
    (out / "data").mkdir(parents=True)
    rows = [
        CoarseRow(name=n, clip_status="ok", labels=["happy"], description_en=en, description_zh=zh, complete=True)
        for n, (en, zh) in descriptions.items()
    ]
    pq.write_table(to_table(rows, CoarseRow), out / "data" / "train-00000-of-00001.parquet")
    gold = tmp_path / "gold.csv"
    gold.write_text("name,openset\nd1,['happy']\nd2,\"['sad', 'worried']\"\nd3,['angry']\nd4,['calm']\n")
    groups = tmp_path / "groups.json"
    groups.write_text(json.dumps([["happy", "joyful"], ["sad", "sorrowful"]]))  # anxious and worried stay apart

    summary = evaluate(predictions=str(out), gold=str(gold), out_dir=str(tmp_path / "report"), groups=str(groups))
    report = load_report(tmp_path / "report")
    clips = {c.name: c for c in report.clips}
    assert {n: (c.by_language["en"].pred, c.by_language["zh"].pred) for n, c in clips.items()} == {
        "d1": (["happy", "relieved"], ["happy", "relieved"]),
        "d2": (["sad"], ["sad", "anxious"]),
        "d3": (["angry"], ["angry"]),
        "d4": (["calm"], []),
    }
    # English: d1 (1/2, 1), d2 (1, 1/2), d3 (1, 1), d4 (1, 1) -> Accuracy_s 3.5/4, Recall_s 3.5/4.
    # Chinese: d1 (1/2, 1), d2 (1/2, 1/2), d3 (1, 1), d4 undescribed (0, 0) -> Accuracy_s 2/4, Recall_s 2.5/4.
    en, zh = (summary["languages"][lang] for lang in ("en", "zh"))
    assert (en["accuracy_s"], en["recall_s"], en["avg"]) == (0.875, 0.875, 0.875)
    assert (zh["accuracy_s"], zh["recall_s"], zh["avg"]) == (0.5, 0.625, 0.5625)
    assert [(s.language, s.described) for s in report.languages] == [("en", 4), ("zh", 3)]
    assert not clips["d4"].by_language["zh"].described
    # The labels stage's score is the main one, unchanged; the wheel metric is not asked for here.
    assert summary["emer"]["accuracy_s"] == 0.25  # labels ["happy"] everywhere: only d1 hits

    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "| Method | Avg | Accuracy_s | Recall_s | Avg (en description) | Avg (zh description) |" in markdown
    assert "| build | 25.00 | 25.00 | 25.00 | 87.50 | 56.25 |" in markdown
    assert "| Chinese | the engine's lexicon" in markdown and "| 56.25 | 50.00 | 62.50 | 3 |" in markdown
    assert "| d4 | calm | happy | 0.00 | 0.00 | calm (100.00 / 100.00) | ∅ (no description) | file |" in markdown
