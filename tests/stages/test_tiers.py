"""Quality tiers: `coarse` is the corpus (the train split), `plus` the train rows whose stored gate scores clear
the stricter thresholds of `[tiers.plus]`; a changed threshold re-chooses the tier from the checkpoint with no
model call.

The rule is specified on rows with gate verdicts given here; the build is real (face clips made with ffmpeg
and espeak-ng, measured for real, the build flow, the gates, push's staging), its model line-up a scripted
OpenAI-compatible server whose received requests are the count of model calls (tests/fakes.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from data import synth_clips as synth
from flows import publish
from flows.build_coarse import build_coarse
from schemas.config import ConfigError, EngineConfig, TiersConfig
from schemas.gates import GateVerdict
from schemas.row import CoarseRow
from stages.tiers import UnknownTier, in_tier, misses, recorded_tiers
from tests.fakes import ScriptedServer, completion, role_of

# ------------------------------------------------------------------ the rule, on rows


def row(accepted: bool = True, **scores: float | None) -> CoarseRow:
    """A complete row whose gates measured `scores` (every gate passed when `accepted`)."""
    gates = [GateVerdict(gate=g, passed=accepted, score=s, reason="measured") for g, s in scores.items()]
    return CoarseRow(name="clip", clip_status="ok", complete=True, accepted=accepted, gates=gates)


STRONG = {"validity": 1.0, "length": 80, "av_match": 0.8, "cross_validation": 0.9, "grounding": 0}


def test_coarse_is_the_corpus_and_plus_a_subset_of_it():
    assert in_tier(row(**STRONG), "coarse") and in_tier(row(**STRONG), "plus")
    # Scores good enough for plus, but no gate passed it into the corpus: in neither tier.
    held_back = row(False, **STRONG)
    assert not in_tier(held_back, "coarse") and not in_tier(held_back, "plus")
    assert misses(False, held_back.gates, "plus") == ["not in the corpus (train)"]


@pytest.mark.parametrize(
    "gate, score, plus",
    [
        ("validity", 0.79, False),
        ("validity", 0.8, True),  # at the threshold: in
        ("length", 29, False),
        ("length", 301, False),  # both tails
        ("length", 300, True),
        ("av_match", 0.45, False),  # the mouth moves with the voice (gate: >= 0.2), but not clearly (>= 0.5)
        ("av_match", 0.5, True),
        ("cross_validation", 0.3, False),
        ("grounding", 1, False),
    ],
)
def test_plus_applies_the_default_thresholds_to_each_gates_score(gate, score, plus):
    assert in_tier(row(**(STRONG | {gate: score})), "plus") is plus
    assert in_tier(row(**(STRONG | {gate: score})), "coarse")


def test_a_gate_that_measured_nothing_keeps_the_row_out_unless_configured_and_a_gate_not_run_is_no_threshold():
    unscored = row(**(STRONG | {"cross_validation": None}))
    assert misses(True, unscored.gates, "plus") == ["cross_validation: no score"]
    assert in_tier(unscored, "plus", TiersConfig.model_validate({"plus": {"unscored": "in"}}))
    not_run = row(**{g: s for g, s in STRONG.items() if g != "av_match"})  # the gate was disabled
    assert in_tier(not_run, "plus")


def test_thresholds_come_from_the_configuration_and_a_mistake_is_named():
    lenient = EngineConfig.model_validate({"tiers": {"plus": {"min_score": {"av_match": 0.3}}}})
    assert in_tier(row(**(STRONG | {"av_match": 0.35, "length": 5})), "plus", lenient)  # only what is named
    with pytest.raises(ValueError, match="no tier named 'gold'"):
        in_tier(row(**STRONG), "gold")
    assert issubclass(UnknownTier, ValueError)


def test_an_unknown_gate_in_the_tier_configuration_is_refused_with_its_key(tmp_path):
    path = tmp_path / "engine.toml"
    path.write_text("[tiers.plus.min_score]\navmatch = 2\n")
    with pytest.raises(ConfigError) as refused:
        EngineConfig.from_file(path)
    [problem] = [p for p in refused.value.problems if "tiers" in p]
    assert "tiers.plus.min_score" in problem and "no gate named avmatch" in problem and "av_match" in problem


# ------------------------------------------------------------------ a build, rebuilt with other thresholds

CLIPS = {
    # name -> (subtitle, how many words the scripted description has)
    "short_face": ("I am so happy, I finally passed the exam!", 35),
    "long_face": ("We won the game, I still cannot believe it.", 70),
}
ZH = "视频中，这位女士平静地看着镜头；音频中，她的声音平稳而温暖。总体来看，她感到开心和如释重负。"
FACELESS = ("faceless_talk", "Please tell me what happened yesterday.", 70)  # held back: no face on screen


def description(words: int) -> str:
    text = (
        "In the video, the woman looks at the camera with a calm, open face; in the audio, her voice is steady "
        "and warm; in the text, she says what happened. "
    )
    filler = "She smiles a little as she speaks and keeps looking at the camera. "
    while len(text.split()) < words - 6:
        text += filler
    return " ".join(text.split()[: words - 6]) + " Overall, she feels happy and relieved."


class PerClipLineUp:
    """Answers every role; the description's length is per clip, recognised by its subtitle in the request."""

    def __init__(self) -> None:
        self.server = ScriptedServer(handler=self.answer)
        self.lengths = dict(CLIPS.values()) | {FACELESS[1]: FACELESS[2]}

    def answer(self, body: dict):
        role = role_of(body)
        if role in ("audio_clue", "visual_clue"):
            reply = {"clues": "A steady, warm voice and a calm face.", "emotional_states": ["happy"]}
        elif role == "disambiguation":
            asked = json.dumps(body["messages"], ensure_ascii=False)
            [words] = [n for subtitle, n in self.lengths.items() if subtitle in asked]
            reply = {"subtitle_analysis": "The words say she is glad.", "description": description(words)}
        elif role == "translation":
            reply = {"translation": ZH}
        else:
            reply = {"labels": ["happy", "relieved"]}
        return completion(json.dumps(reply, ensure_ascii=False))

    def requests(self) -> int:
        return len(self.server.requests)


def engine_toml(path: Path, url: str, state: Path, plus: str) -> Path:
    lines = ["batch_size = 4", f'state_dir = "{state}"', "[media]", "max_frames = 6", "frame_max_side = 240"]
    for role in ("audio_clue", "visual_clue", "disambiguation", "translation", "labels"):
        lines += [f"[roles.{role}]", "max_retries = 0", f'endpoints = [{{ base_url = "{url}", model = "scripted" }}]']
    path.write_text("\n".join(lines) + "\n[tiers.plus]\n" + plus + "\n")
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiers")
    corpus = root / "corpus"
    (corpus / "video").mkdir(parents=True)
    for name, (subtitle, _) in CLIPS.items():
        synth.face_clip(corpus / "video" / f"{name}.mp4", subtitle)
    synth.talking_clip(corpus / "video" / f"{FACELESS[0]}.mp4", FACELESS[1], size="320x240")
    subtitles = [(n, "", s) for n, (s, _) in CLIPS.items()] + [(FACELESS[0], "", FACELESS[1])]
    synth.write_subtitles(corpus / "subtitle_chieng.csv", subtitles)
    lineup = PerClipLineUp()
    # The first build's plus tier: descriptions of at least 30 words (and nothing else asked).
    config = engine_toml(
        root / "engine.toml", lineup.server.url, root / "state", "min_score = { length = 30 }\nmax_score = {}"
    )
    out = root / "out"
    summary = build_coarse(str(corpus), str(out), str(config))
    yield corpus, out, summary, lineup, root
    lineup.server.close()


def names(paths) -> set[str]:
    return {n for p in paths for n in pq.read_table(p, columns=["name"]).column("name").to_pylist()}


def test_build_json_counts_both_tiers_and_plus_is_a_subset_of_coarse(built):
    _, out, summary, lineup, _ = built
    assert lineup.requests() > 0 and summary["model_calls"] == lineup.requests()
    train = names((out / "data").glob("train-*.parquet"))
    assert train == set(CLIPS) and names((out / "data").glob("review-*.parquet")) == {FACELESS[0]}
    recorded = json.loads((out / "build.json").read_text())["tiers"]
    assert recorded["coarse"]["rows"] == 2 and recorded["plus"]["rows"] == 2  # both train rows have >= 30 words
    assert recorded["plus"]["min_score"] == {"length": 30} and recorded["plus"]["max_score"] == {}
    # The held-back row's description is as long as the longest, yet it is in no tier.
    staged = publish.stage(out, tiers=("plus",))
    assert names((staged.folder / "plus").glob("*.parquet")) <= train and staged.tiers == {"plus": 2}


def test_a_changed_threshold_changes_the_tier_with_no_model_call(built):
    corpus, out, first, lineup, root = built
    rows = [
        CoarseRow.model_validate(r)
        for p in (out / "data").glob("train-*.parquet")
        for r in pq.read_table(p).to_pylist()
    ]
    words = {r.name: next(g.score for g in r.gates if g.gate == "length") for r in rows}
    assert words["short_face"] < 50 <= words["long_face"]  # what the scripted server wrote

    before = lineup.requests()
    stricter = engine_toml(
        root / "stricter.toml", lineup.server.url, root / "state", "min_score = { length = 50 }\nmax_score = {}"
    )
    summary = build_coarse(str(corpus), str(out), str(stricter))
    assert lineup.requests() == before and summary["model_calls"] == 0  # answered from the checkpoint
    assert summary["splits"] == first["splits"] and "export" not in summary  # re-exported, the same splits
    assert summary["tiers"]["coarse"]["rows"] == 2 and summary["tiers"]["plus"]["rows"] == 1
    assert json.loads((out / "build.json").read_text())["tiers"]["plus"]["rows"] == 1
    assert "| plus | 1 |" in (out / "README.md").read_text()

    # push re-applies the thresholds the build recorded: the plus config holds exactly the long description.
    assert recorded_tiers(out).plus.min_score == {"length": 50}
    staged = publish.stage(out, tiers=("coarse", "plus"))
    assert names((staged.folder / "plus").glob("*.parquet")) == {"long_face"}
    assert names((staged.folder / "data").glob("*.parquet")) == set(CLIPS)
    assert staged.tiers == {"coarse": 2, "plus": 1}

    # A threshold no row reaches: the tier is empty, and push says so instead of publishing an empty config.
    none = engine_toml(root / "none.toml", lineup.server.url, root / "state", "min_score = { length = 1000 }")
    assert build_coarse(str(corpus), str(out), str(none))["tiers"]["plus"]["rows"] == 0
    assert lineup.requests() == before
    with pytest.raises(publish.PushError, match="plus tier of .* has no rows"):
        publish.stage(out, tiers=("plus",))
