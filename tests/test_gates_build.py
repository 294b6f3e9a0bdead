"""The quality gates over a build: planted defects are held back for review with the right reason,
good clips reach the corpus, and a reviewer's decision moves a held-back row on the next build.

The clips are real (ffmpeg + espeak-ng, a photographic portrait for the talking head) and measured
for real; the model line-up is a scripted OpenAI-compatible server that answers per clip, so that
each model mistake (a cut-off description, an English "translation", clues that contradict each
other, a clue that claims shouting) is planted exactly where the test wants it.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pyarrow.parquet as pq
import pytest

from data import synth_clips as synth
from flows.build_coarse import build_coarse
from schemas.review import ReviewDecision
from tests.fakes import ScriptedServer, completion

GOOD_EN = (
    "In the video, the woman looks at the camera with a calm, open face; in the audio, her voice is steady and warm; "
    "in the text, she says she passed the exam. Overall, she feels happy and relieved."
)
GOOD_ZH = (
    "视频中，这位女士平静地看着镜头；音频中，她的声音平稳而温暖；文本中，她说自己通过了考试。"
    "总体来看，她感到开心和如释重负。"
)
WORRIED_EN = (
    "In the video, the woman keeps a still, serious face; in the audio, her voice is low and hesitant; "
    "in the text, she says she cannot sleep before tomorrow. Overall, she feels worried and nervous."
)
WORRIED_ZH = (
    "视频中，这位女士表情严肃；音频中，她的声音低沉而犹豫；文本中，她说明天之前睡不着。总体来看，她感到担忧和紧张。"
)


def clip_script(
    audio: tuple[str, list[str]] | None, visual: tuple[str, list[str]], description: str, zh: str, labels: list[str]
) -> dict:
    return {"audio": audio, "visual": visual, "description": description, "zh": zh, "labels": labels}


# name -> (how the clip is made, subtitle, what the scripted models answer for it)
CLIPS = {
    "good_happy": (
        lambda p: synth.face_clip(p, "I am so happy, I finally passed the exam!"),
        "I am so happy, I finally passed the exam!",
        clip_script(
            ("A steady, warm voice at a moderate pace.", ["happy"]),
            ("A woman faces the camera, eyes bright.", ["happy"]),
            GOOD_EN,
            GOOD_ZH,
            ["happy", "relieved"],
        ),
    ),
    "good_worried": (
        lambda p: synth.face_clip(p, "I cannot sleep, I keep thinking about tomorrow."),
        "I cannot sleep, I keep thinking about tomorrow.",
        clip_script(
            ("A low, hesitant voice with pauses.", ["worried"]),
            ("A still face with a serious expression.", ["worried", "serious"]),
            WORRIED_EN,
            WORRIED_ZH,
            ["worried", "nervous"],
        ),
    ),
    "silent_head": (
        lambda p: synth.face_clip(p, None),
        "I have nothing more to say.",
        clip_script(
            None,
            ("A woman faces the camera, calm expression.", ["calm"]),
            GOOD_EN.replace("happy and relieved", "calm"),
            GOOD_ZH,
            ["calm"],
        ),
    ),
    "faceless_speech": (
        lambda p: synth.talking_clip(p, "Please tell me what happened yesterday."),
        "Please tell me what happened yesterday.",
        clip_script(
            ("A curious, questioning tone.", ["curious"]),
            ("A colourful moving test pattern; no person is visible.", ["curious"]),
            GOOD_EN.replace("happy and relieved", "curious"),
            GOOD_ZH,
            ["curious"],
        ),
    ),
    "truncated": (
        lambda p: synth.face_clip(p, "I finally got the job I wanted."),
        "I finally got the job I wanted.",
        clip_script(
            ("A bright, lively voice.", ["happy"]),
            ("A woman faces the camera, eyes bright.", ["happy"]),
            "In the video, the woman",
            GOOD_ZH,
            ["happy"],
        ),
    ),
    "wrong_language": (
        lambda p: synth.face_clip(p, "We won the game, I cannot believe it."),
        "We won the game, I cannot believe it.",
        clip_script(
            ("An energetic voice.", ["excited"]),
            ("A woman faces the camera, eyes bright.", ["excited"]),
            GOOD_EN.replace("happy and relieved", "excited and happy"),
            GOOD_EN,
            ["excited", "happy"],
        ),
    ),
    "contradictory": (
        lambda p: synth.face_clip(p, "Fine, do whatever you want."),
        "Fine, do whatever you want.",
        clip_script(
            ("A harsh, tense tone.", ["angry"]),
            ("A woman faces the camera with a broad smile.", ["happy"]),
            GOOD_EN.replace("happy and relieved", "angry and happy"),
            GOOD_ZH,
            ["angry", "happy"],
        ),
    ),
    "quiet_shout": (
        lambda p: synth.face_clip(p, "I am telling you this for the last time, listen to me.", gain_db=-32),
        "I am telling you this for the last time, listen to me.",
        clip_script(
            ("He is shouting furiously.", ["angry"]),
            ("A woman faces the camera, stern eyes.", ["angry"]),
            GOOD_EN.replace("happy and relieved", "angry"),
            GOOD_ZH,
            ["angry"],
        ),
    ),
}
PLANTED = {
    "silent_head": ("av_match", "a face is visible but there is no speech"),
    "faceless_speech": ("av_match", "someone talks but no face is visible"),
    "truncated": ("length", "below"),
    "wrong_language": ("validity", "wrong-language translation"),
    "contradictory": ("cross_validation", "contradictory clues"),
    "quiet_shout": ("grounding", "claims a loud voice"),
}


class ScriptedLineUp:
    """Answers every role per clip: clue requests carry the clip (file:// URLs), text roles its words."""

    def __init__(self, corpus: Path, state: Path):
        self.corpus, self.state = corpus, state
        self.by_sha = {hashlib.sha256((corpus / "video" / f"{n}.mp4").read_bytes()).hexdigest(): n for n in CLIPS}
        self.server = ScriptedServer(handler=self.answer)

    def _clip_of_media(self, content: list[dict]) -> str:
        for part in content:
            url = (part.get("video_url") or part.get("audio_url") or {}).get("url")
            if url:
                path = Path(unquote(urlsplit(url).path))
                return path.stem if path.suffix == ".mp4" else self.by_sha[path.parent.name]
        raise AssertionError(f"no media in {content}")

    def _clip_of_text(self, text: str) -> str:
        # The longest quoted match wins: one clip's cut-off description is the start of another's.
        found = [
            (len(key), name)
            for name, (_, subtitle, script) in CLIPS.items()
            for key in (subtitle, script["description"])
            if key in text
        ]
        assert found, f"unknown clip in {text[:200]}"
        return max(found)[1]

    def answer(self, body: dict):
        kind = body["response_format"]["json_schema"]["name"]
        content = body["messages"][-1]["content"]
        if kind == "ClueReply":
            name = self._clip_of_media(content)
            role = "audio" if any("audio_url" in p for p in content) else "visual"
            clues, states = CLIPS[name][2][role]
            return completion(json.dumps({"clues": clues, "emotional_states": states}))
        name = self._clip_of_text(content)
        script = CLIPS[name][2]
        reply = {
            "DescriptionReply": {
                "subtitle_analysis": f"The words '{CLIPS[name][1]}' carry the feeling.",
                "description": script["description"],
            },
            "TranslationReply": {"translation": script["zh"]},
            "LabelsReply": {"labels": script["labels"]},
        }[kind]
        return completion(json.dumps(reply, ensure_ascii=False))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("planted")
    (root / "video").mkdir()
    for name, (make, _, _) in CLIPS.items():
        make(root / "video" / f"{name}.mp4")
    synth.write_subtitles(root / "subtitle_chieng.csv", [(n, "", sub) for n, (_, sub, _) in CLIPS.items()])
    return root


def write_config(path: Path, url: str, corpus: Path, state: Path) -> Path:
    roles = {
        "audio_clue": f'media = "audio_url"\nmedia_root = "{state}"',
        "visual_clue": f'media = "video_url"\nmedia_root = "{corpus}"',
    }
    lines = ["batch_size = 4", f'state_dir = "{state}"', "[media]", "max_frames = 8", "frame_max_side = 320"]
    for role in ("audio_clue", "visual_clue", "disambiguation", "translation", "labels"):
        lines += [
            f"[roles.{role}]",
            f'prompt = "{role}"',
            roles.get(role, ""),
            "max_retries = 0",
            f'endpoints = [{{ base_url = "{url}", model = "scripted" }}]',
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def rows(out: Path, split: str) -> dict[str, dict]:
    return {
        r["name"]: r for f in sorted((out / "data").glob(f"{split}-*.parquet")) for r in pq.read_table(f).to_pylist()
    }


@pytest.fixture(scope="module")
def built(corpus, tmp_path_factory):
    work = tmp_path_factory.mktemp("build")
    state = work / "state"
    lineup = ScriptedLineUp(corpus, state)
    config = write_config(work / "engine.toml", lineup.server.url, corpus, state)
    out = work / "out"
    summary = build_coarse(str(corpus), str(out), str(config))
    yield out, summary, config
    lineup.server.close()


def test_every_planted_defect_is_held_back_with_its_reason(built):
    out, summary, _ = built
    review = rows(out, "review")
    assert set(review) == set(PLANTED), {n: [g for g in r["gates"] if not g["passed"]] for n, r in review.items()}
    for name, (gate, reason) in PLANTED.items():
        failed = {g["gate"]: g for g in review[name]["gates"] if not g["passed"]}
        assert gate in failed, (name, review[name]["gates"])
        assert reason in failed[gate]["reason"], (name, failed[gate])
        assert not review[name]["accepted"] and review[name]["complete"]


def test_good_clips_reach_the_corpus_with_every_gate_passed(built):
    out, summary, _ = built
    train = rows(out, "train")
    assert set(train) == {"good_happy", "good_worried"}
    for row in train.values():
        assert row["accepted"] and [g["gate"] for g in row["gates"]] == [
            "validity",
            "length",
            "av_match",
            "cross_validation",
            "grounding",
            "high_level",
        ]
        assert all(g["passed"] and g["reason"] for g in row["gates"])
        sources = {v["source"] for v in row["label_views"]}
        # The measured views (face, voice) and the subtitle's sentiment beside the clues and the description.
        assert {"audio_clue", "visual_clue", "description", "face", "voice", "subtitle_sentiment"} <= sources
        assert row["signals"]["audio"]["speech_ratio"] > 0.5 and row["signals"]["visual"]["face_ratio"] >= 0.5


def test_the_card_reports_each_gates_pass_rate(built):
    out, summary, _ = built
    assert summary["splits"] == {"train": 2, "review": 6, "rejected": 0, "failed": 0}
    assert summary["gates"]["av_match"] == {"judged": 8, "passed": 6, "pass_rate": 0.75}
    card = (out / "README.md").read_text()
    assert "| av_match | 8 | 6 | 75.0% |" in card and "| grounding | 8 | 7 | 87.5% |" in card
    assert re.search(r"Length bounds: \[15, 450\] words, fixed", card)


def test_a_reviewers_decision_moves_the_row_on_the_next_build(built, corpus):
    out, _, config = built
    review = rows(out, "review")
    (out / "review").mkdir(exist_ok=True)
    decisions = [
        ReviewDecision(
            name="contradictory",
            sha256=review["contradictory"]["sha256"],
            accepted=True,
            labels=["annoyed"],
            reviewer="r1",
            reviewed_at="2026-11-23T10:00:00+00:00",
        ),
        ReviewDecision(name="truncated", sha256=review["truncated"]["sha256"], accepted=False, note="cut off"),
        ReviewDecision(name="faceless_speech", sha256="0" * 64, accepted=True),  # made on other content
    ]
    from review.decisions import write_decisions

    write_decisions(decisions, out)
    summary = build_coarse(str(corpus), str(out), str(config))
    assert summary["model_calls"] == 0  # gating and routing re-use every checkpointed answer
    train, rejected, held = rows(out, "train"), rows(out, "rejected"), rows(out, "review")
    assert train["contradictory"]["accepted"] and train["contradictory"]["labels"] == ["annoyed"]
    assert train["contradictory"]["review"]["reviewer"] == "r1"
    assert not train["contradictory"]["gates"][3]["passed"]  # the verdict stays on the row
    assert set(rejected) == {"truncated"} and rejected["truncated"]["review"]["note"] == "cut off"
    assert "faceless_speech" in held and held["faceless_speech"]["review"] is None
