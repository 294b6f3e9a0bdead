"""`emer-coarse compare` (issue 14, item 1) and the shipped line-ups (item 5).

Line-ups answered by one scripted OpenAI-compatible server that answers by the model each request names, so
the expected ranking is known by hand: `gold-labels` labels every clip with exactly its gold labels (EMER
Avg 100 whatever the synonym groups), `off-labels` says "happy" for angry clips (0), and the two differ in
the labels role only (an ablation: the other four stages are the same questions to the same model). `broken`
gets HTTP 500 for every labels request (no clip completes) and `offline` names a port nothing listens on (its
preflight fails). Checked against: the leaderboard files as their readers read them (json, PIL, the Markdown
table's rows), the server's own request log (a shared stage asked once), the builds' manifests, and the
request and token counts the method implies per clip (two questions per clue, one per other stage; the
scripted usage is 5 + 3 tokens a reply).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image
from prefect.logging.handlers import APILogWorker
from typer.testing import CliRunner

from data import synth_clips as synth
from engine.assembly import Engine, check_lineup, lineup
from flows.cli import app
from metrics.openset import write_openset_csv
from runtime.checkpoint import Checkpoint
from schemas.compare import Leaderboard
from schemas.config import EngineConfig
from schemas.manifest import Subtitles
from stages.ingest import probe_clip
from tests.conftest import ROOT, free_port
from tests.fakes import REPLIES, ScriptedServer, completion, role_of

CLIPS = {"angry_0001": "Why do you always do this to me?", "angry_0002": "Get out of here, I never want to see you."}
GOLD = {"angry_0001": ["angry", "frustrated"], "angry_0002": ["Frustrated", "angry"]}
LABELS = {"labeller-gold": ["Angry", "frustrated"], "labeller-off": ["happy"]}
SHARED_STAGES = {"audio_clue": 2, "visual_clue": 2, "disambiguation": 1, "translation": 1}  # questions per clip
PER_CLIP = sum(SHARED_STAGES.values()) + 1  # and the labels
TOKENS = 5 + 3  # tests/fakes.completion's usage
# The shared description, in both languages: the evaluation reads labels from each (the language columns).
DESCRIPTION = {"subtitle_analysis": "'always' shows frustration", "description": "She sounds angry and frustrated."}
TRANSLATION = {"translation": "她听起来既生气又沮丧。"}


class LineupServer:
    """Answers every method role; the labels by the model asked (LABELS), HTTP 500 for model `broken`.
    Counts the requests by (model, role)."""

    def __init__(self) -> None:
        self.asked: Counter = Counter()
        self._lock = threading.Lock()
        self.server = ScriptedServer(handler=self.answer)

    def answer(self, body: dict) -> tuple[int, dict]:
        role, model = role_of(body), body["model"]
        with self._lock:
            self.asked[(model, role)] += 1
        if model == "broken":
            return 500, {"error": {"message": "injected"}}
        replies = REPLIES | {"DescriptionReply": DESCRIPTION, "TranslationReply": TRANSLATION}
        schema = body["response_format"]["json_schema"]["name"]
        reply = {"labels": LABELS.get(model, ["angry"])} if role == "labels" else replies[schema]
        return completion(json.dumps(reply, ensure_ascii=False))


def lineup_file(path: Path, url: str, labeller: str) -> Path:
    """A line-up: every role at `url`; the four shared roles ask model `shared`, the labels `labeller`."""
    text = "batch_size = 4\ntask_workers = 1\ndecode_workers = 1\n[media]\nmax_frames = 2\nframe_max_side = 64\n"
    for role in ("audio_clue", "visual_clue", "disambiguation", "translation", "labels"):
        media = {"audio_clue": "input_audio", "visual_clue": "frames"}.get(role, "none")
        model = labeller if role == "labels" else "shared"
        text += (
            f'[roles.{role}]\nmedia = "{media}"\nmax_retries = 0\nmax_reasks = 0\n'
            f'endpoints = [{{ base_url = "{url}", model = "{model}" }}]\n'
        )
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def models():
    server = LineupServer()
    yield server
    server.server.close()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    (root / "video").mkdir()
    for name, line in CLIPS.items():
        synth.talking_clip(root / "video" / f"{name}.mp4", line, size="160x90")
    synth.silent_clip(root / "video" / "unlabelled_0003.mp4", seconds=1.0)  # no gold labels: never built
    rows = [(name, "", line) for name, line in CLIPS.items()] + [("unlabelled_0003", "", "")]
    synth.write_subtitles(root / "subtitle_chieng.csv", rows)
    return root


@pytest.fixture(scope="module")
def gold(tmp_path_factory) -> Path:
    return write_openset_csv(tmp_path_factory.mktemp("gold") / "gold.csv", GOLD | {"not_in_corpus_0009": ["sad"]})


@pytest.fixture(scope="module")
def lineups(models, tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("lineups")
    url = models.server.url
    return [
        lineup_file(folder / "off-labels.toml", url, "labeller-off"),  # first: it asks the shared stages
        lineup_file(folder / "gold-labels.toml", url, "labeller-gold"),
        lineup_file(folder / "broken.toml", url, "broken"),
        lineup_file(folder / "offline.toml", f"http://127.0.0.1:{free_port()}/v1", "labeller-gold"),
    ]


def invoke(args: list[str]):
    try:
        return CliRunner().invoke(app, args)
    finally:
        APILogWorker.drain_all(timeout=30)  # send the run's logs while the local Prefect server is still up


@pytest.fixture(scope="module")
def compared(corpus, gold, lineups, models, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare") / "out"
    result = invoke(["compare", str(corpus), "--gold", str(gold), "--lineups", *map(str, lineups), "--out", str(out)])
    assert result.exit_code == 0, result.output
    asked = Counter(models.asked)
    models.asked.clear()
    board = Leaderboard.model_validate(json.loads((out / "leaderboard.json").read_text()))
    return out, board, asked


def by_name(board: Leaderboard) -> dict:
    return {r.name: r for r in board.lineups}


def test_the_line_up_whose_labels_match_the_gold_ranks_first(compared):
    out, board, _ = compared
    assert [r.name for r in board.lineups][:2] == ["gold-labels", "off-labels"]
    assert board.best == "gold-labels" and board.verdict.startswith("gold-labels scores best (EMER Avg 100.00)")
    results = by_name(board)
    assert results["gold-labels"].emer["labels"].avg == 1.0 and results["off-labels"].emer["labels"].avg == 0.0
    assert results["gold-labels"].emer["labels"].clips == len(GOLD)
    # Both languages, as the evaluation reports them: labels read from the English and the Chinese description,
    # which the two line-ups share (the same stages asked once), so they score alike there.
    assert set(results["gold-labels"].emer) == {"labels", "en", "zh"}
    for language in ("en", "zh"):
        assert results["gold-labels"].emer[language] == results["off-labels"].emer[language]
        assert results["gold-labels"].emer[language].avg > 0
    # Each line-up's own evaluation report and predictions sit beside its build.
    report = json.loads((Path(results["gold-labels"].files["evaluation"]) / "report.json").read_text())
    assert report["emer"]["avg"] == 1.0
    assert {r["name"] for r in pq.read_table(results["off-labels"].files["predictions"]).to_pylist()} == set(GOLD)


def test_the_leaderboard_is_a_table_json_and_a_chart(compared):
    out, board, _ = compared
    markdown = (out / "leaderboard.md").read_text()
    rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    labels = "Avg (labels) | Accuracy_s (labels) | Recall_s (labels)"
    assert rows[0].startswith(f"| Line-up | Audio | Video | Text | {labels} | Avg (en) |")
    assert "| Avg (zh) | Accuracy_s (zh) | Recall_s (zh) |" in rows[0]
    assert [row.split(" | ")[0].lstrip("| ") for row in rows[1:]] == [r.name for r in board.lineups]
    assert "| **100.00** | **100.00** | **100.00** |" in rows[1]  # the best of each column in bold
    assert board.verdict in markdown and "![line-up comparison](leaderboard.png)" in markdown
    with Image.open(out / "leaderboard.png") as chart:
        chart.verify()
        assert chart.format == "PNG" and chart.size[0] > 300


def test_every_line_up_is_built_over_the_gold_clips_only(compared):
    out, board, _ = compared
    for name in ("off-labels", "gold-labels", "broken"):
        manifest = pq.read_table(Path(by_name(board)[name].files["build"]) / "manifest.parquet").to_pylist()
        assert sorted(r["name"] for r in manifest) == sorted(GOLD)
    assert board.clips == len(GOLD) and board.gold_not_in_corpus == ["not_in_corpus_0009"]
    assert "not_in_corpus_0009" in (out / "leaderboard.md").read_text()


def test_a_stage_two_line_ups_share_is_asked_once(compared):
    _, board, asked = compared
    # Three line-ups ran the four shared stages (the same questions to model `shared`): asked once per clip.
    assert {role: asked[("shared", role)] for role in SHARED_STAGES} == {
        role: n * len(GOLD) for role, n in SHARED_STAGES.items()
    }
    assert asked[("labeller-off", "labels")] == asked[("labeller-gold", "labels")] == len(GOLD)
    assert by_name(board)["off-labels"].differs_from["gold-labels"] == ["labels"]  # the ablation, said


def test_cost_per_clip_counts_shared_stages_in_full_for_each_line_up(compared):
    _, board, _ = compared
    results = by_name(board)
    for name in ("off-labels", "gold-labels"):
        cost = results[name].cost
        assert (cost.clips, cost.requests, cost.tokens) == (len(GOLD), PER_CLIP, PER_CLIP * TOKENS)
        assert cost.seconds is not None and cost.seconds > 0 and cost.seconds_complete
    # What this run asked for each: the first line-up everything, the ablation only its labels.
    assert results["off-labels"].cost.asked_now == PER_CLIP * len(GOLD)
    assert results["gold-labels"].cost.asked_now == len(GOLD)


def test_line_ups_that_fail_are_rows_with_their_error(compared):
    out, board, asked = compared
    results = by_name(board)
    assert [r.name for r in board.lineups][2:] == ["broken", "offline"]  # unscored: last
    broken, offline = results["broken"], results["offline"]
    assert broken.emer == {} and broken.failed == len(GOLD) and broken.complete == 0
    assert broken.error.startswith("no clip completed") and "labels" in broken.error and "500" in broken.error
    assert asked[("broken", "labels")] == len(GOLD)
    assert offline.cost is None and "no server answers at" in offline.error
    markdown = (out / "leaderboard.md").read_text()
    for result in (broken, offline):
        row = next(line for line in markdown.splitlines() if line.startswith(f"| {result.name} |"))
        assert row.split(" | ")[4:13] == ["-"] * 9 and result.error[:40] in row.replace("\\|", "|")


def test_a_re_run_asks_nothing_and_scores_the_same(compared, corpus, gold, lineups, models):
    """Last in this module: it writes the same OUT again, from the shared checkpoint."""
    out, board, _ = compared
    result = invoke(["compare", str(corpus), "--gold", str(gold), "--lineups", str(lineups[1]), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sum(models.asked.values()) == 0
    again = Leaderboard.model_validate(json.loads((out / "leaderboard.json").read_text()))
    [only] = again.lineups
    first = by_name(board)["gold-labels"]
    assert only.emer == first.emer and only.cost.asked_now == 0
    assert (only.cost.requests, only.cost.tokens) == (first.cost.requests, first.cost.tokens)


def test_two_line_ups_of_one_name_are_refused_in_a_line(lineups, corpus, gold, tmp_path):
    twin = tmp_path / "gold-labels.toml"
    twin.write_text(lineups[1].read_text())
    result = invoke(
        ["compare", str(corpus), "--gold", str(gold), "--lineups", str(lineups[1]), str(twin), "--out", str(tmp_path)]
    )
    assert result.exit_code == 2 and "are both named 'gold-labels'" in result.output
    assert "Traceback" not in result.output


SHIPPED = sorted((ROOT / "data" / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_line_up_passes_the_line_up_check(path):
    config = EngineConfig.from_file(path)
    check_lineup(config)
    assert set(lineup(config)) == set(config.roles)


def test_the_shipped_line_ups_include_the_method_qwen_and_omni_ones():
    models = {
        name: {
            role: [e.model for e in cfg.endpoints]
            for role, cfg in EngineConfig.from_file(ROOT / "data" / "configs" / f"{name}.toml").roles.items()
        }
        for name in ("gpu-method", "gpu-qwen", "gpu-omni")
    }
    assert models["gpu-method"]["audio_clue"] == ["salmonn"] and models["gpu-method"]["visual_clue"] == ["chat-univi"]
    assert models["gpu-qwen"]["audio_clue"] == ["Qwen/Qwen2-Audio-7B-Instruct"]
    assert models["gpu-omni"]["audio_clue"] == models["gpu-omni"]["visual_clue"] == ["Qwen/Qwen2.5-Omni-7B"]


def test_the_omni_line_up_sends_audio_and_frames_as_separate_parts(models, good_clip, tmp_path):
    """Both clue roles ask the one omni model, each with its own medium as its own content parts (never a
    video_url whose audio track vLLM may drop), through the engine's real request path."""
    shipped = EngineConfig.from_file(ROOT / "data" / "configs" / "gpu-omni.toml")
    roles = {
        role: cfg.model_copy(
            update={
                "endpoints": [
                    e.model_copy(update={"base_url": models.server.url, "api_key_env": None}) for e in cfg.endpoints
                ],
                "max_retries": 0,
            }
        )
        for role, cfg in shipped.roles.items()
    }
    config = shipped.model_copy(
        update={"roles": roles, "media": shipped.media.model_copy(update={"max_frames": 2, "frame_max_side": 64})}
    )
    models.server.requests.clear()
    record = probe_clip(good_clip, Subtitles(english="I passed!"), None, 30, -60)
    checkpoint = Checkpoint(tmp_path / "checkpoint.sqlite")
    try:
        with Engine(config, tmp_path, checkpoint) as engine:
            engine.annotate([record])
    finally:
        checkpoint.close()
        models.asked.clear()
    sent = {}
    for body in models.server.requests:
        parts = body["messages"][-1]["content"]
        kinds = [p["type"] for p in parts] if isinstance(parts, list) else ["text"]
        sent.setdefault(role_of(body), []).append((body["model"], kinds))
        assert "mm_processor_kwargs" not in body
    omni = "Qwen/Qwen2.5-Omni-7B"
    assert sent["audio_clue"] == [(omni, ["input_audio", "text"])] * 2
    assert sent["visual_clue"] == [(omni, ["image_url", "image_url", "text"])] * 2
    assert all("video_url" not in kinds for asks in sent.values() for _, kinds in asks)
