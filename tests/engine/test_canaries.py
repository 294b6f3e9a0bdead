"""Modality canaries: before a run, generated clips show whether each role uses its media.

The clips are real (espeak-ng speech over a test pattern, a test pattern with no one in it, matplotlib's
photographed portrait), prepared by the engine's own media stage and sent through each role's own client and
transport. Two scripted OpenAI-compatible servers answer them: one that ignores its media (it always hears the same
greeting and sees a smiling woman), and one that uses it: it answers the spoken words only when the request carries
audio with sound in it, and finds faces in the frames it is sent with OpenCV's own face detector."""

from __future__ import annotations

import base64
import io
import json
import threading
import wave
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from data import synth_clips as synth
from engine.canaries import canary_data, run_canaries, word_overlap
from flows.build_coarse import build_coarse
from flows.cli import app
from schemas.config import CanariesConfig, Endpoint, EngineConfig, MediaConfig, MediaTransport, RoleConfig
from tests.conftest import write_flow_config
from tests.fakes import RoleServer, ScriptedServer, completion

SENTENCE = canary_data("canary_audio")["sentence"]
CANARY_REPLIES = ("TranscriptReply", "SceneReply")
FACES = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
FACES_LOCK = threading.Lock()  # one classifier, requests on the server's threads: OpenCV's detector is not thread-safe


def _parts(body: dict, kind: str) -> list[dict]:
    content = body["messages"][-1]["content"]
    return [p for p in content if isinstance(p, dict) and p.get("type") == kind] if isinstance(content, list) else []


def _audible_seconds(part: dict) -> float:
    with wave.open(io.BytesIO(base64.b64decode(part["input_audio"]["data"]))) as wav:
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16).astype(np.float32)
        rate = wav.getframerate()
    return float((np.abs(samples) > 1000).sum()) / rate


def _faces_in(part: dict) -> int:
    data = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
    gray = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    with FACES_LOCK:
        return len(FACES.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24)))


def attentive(body: dict) -> tuple[int, dict]:
    """A model that uses its media: it says the words when it hears speech, and what its frames show."""
    kind = body["response_format"]["json_schema"]["name"] if "response_format" in body else "prose"
    if kind == "TranscriptReply":
        heard = any(_audible_seconds(p) > 0.5 for p in _parts(body, "input_audio"))
        return completion(json.dumps({"transcript": SENTENCE if heard else "I hear no speech."}))
    seen = any(_faces_in(p) for p in _parts(body, "image_url"))
    words = "A woman's face, looking at the camera." if seen else "Colour bars and a moving pattern; no person."
    if kind == "prose":
        return completion(words)
    return completion(json.dumps({"description": words, "person_visible": seen}))


def inattentive(body: dict) -> tuple[int, dict]:
    """A model whose server dropped its media: it answers from the prompt alone."""
    if body["response_format"]["json_schema"]["name"] == "TranscriptReply":
        return completion(json.dumps({"transcript": "Hello, how are you doing today?"}))
    return completion(json.dumps({"description": "A woman smiles warmly at the camera.", "person_visible": True}))


def lineup(url: str, **roles: RoleConfig) -> EngineConfig:
    def role(media=MediaTransport.none) -> RoleConfig:
        return RoleConfig(endpoints=[Endpoint(base_url=url, model="m")], media=media, max_retries=0)

    default = {"audio_clue": role(MediaTransport.input_audio), "visual_clue": role(MediaTransport.frames)}
    names = ("disambiguation", "translation", "labels")
    return EngineConfig(
        roles=default | {n: role() for n in names} | roles, media=MediaConfig(max_frames=3, frame_max_side=160)
    )


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> Path:
    """One state folder for the module: the canary clips are made once (and their media prepared once)."""
    return tmp_path_factory.mktemp("state")


@pytest.fixture
def server(request):
    scripted = ScriptedServer(handler=request.param)
    yield scripted
    scripted.close()


def by_canary(report) -> dict[tuple[str, str], object]:
    return {(r.role, r.canary): r for r in report.results}


@pytest.mark.parametrize("server", [inattentive], indirect=True)
def test_a_server_that_ignores_its_media_fails_the_canaries(server, state):
    report = run_canaries(lineup(server.url), state)
    results = by_canary(report)
    assert set(results) == {("audio_clue", "audio_words"), ("visual_clue", "no_face"), ("visual_clue", "face")}
    assert not report.passed
    heard = results["audio_clue", "audio_words"]
    assert heard.status == "failed" and heard.score < 0.5 and "did not hear" in heard.reason
    assert results["visual_clue", "no_face"].status == "failed"
    assert results["visual_clue", "face"].status == "passed"  # a blind guess of a face is right where there is one
    # The requests did carry the media: it is the server that ignored them.
    assert all(_parts(b, "input_audio") or _parts(b, "image_url") for b in server.requests)
    assert heard.requests == 1 and heard.model == "m"


@pytest.mark.parametrize("server", [attentive], indirect=True)
def test_a_server_that_uses_its_media_passes_them(server, state):
    report = run_canaries(lineup(server.url), state)
    assert report.passed, report.lines()
    results = by_canary(report)
    assert results["audio_clue", "audio_words"].score == 1.0
    assert "no person" in results["visual_clue", "no_face"].answer
    assert len(server.requests) == 3  # one question per canary; the text roles read no media and are not asked


@pytest.mark.parametrize("server", [attentive], indirect=True)
def test_a_prose_role_is_judged_by_its_words(server, state):
    prose = RoleConfig(
        endpoints=[Endpoint(base_url=server.url, model="m")], media=MediaTransport.frames, reply_format="prose"
    )
    report = run_canaries(lineup(server.url, visual_clue=prose), state)
    results = by_canary(report)
    assert results["visual_clue", "no_face"].status == "passed", report.lines()  # "no person": no one is there
    assert results["visual_clue", "face"].status == "passed"  # "a woman's face"
    assert not any("response_format" in b for b in server.requests if _parts(b, "image_url"))


def test_roles_that_read_no_media_through_a_model_are_skipped_with_the_reason(tmp_path):
    config = EngineConfig(
        roles={r: RoleConfig(backend="signals") for r in ("audio_clue", "disambiguation", "translation", "labels")}
        | {"visual_clue": RoleConfig(endpoints=[Endpoint(base_url="http://127.0.0.1:9/v1", model="m")])}
    )
    report = run_canaries(config, tmp_path)
    results = by_canary(report)
    assert {r.status for r in report.results} == {"skipped"} and report.passed
    assert "signals backend" in results["audio_clue", "audio_words"].reason
    assert 'media = "none"' in results["visual_clue", "no_face"].reason
    assert not (tmp_path / "canaries").exists()  # nothing to ask: no clip is even made


def test_word_overlap_forgives_spelling_but_not_other_words():
    assert word_overlap(SENTENCE, SENTENCE.upper()) == 1.0
    misspelt = "please bring the green umbrela to the kitchin before the rain starts"
    assert word_overlap(SENTENCE, misspelt) == 1.0
    assert word_overlap(SENTENCE, "Hello, how are you doing today?") < 0.2


# --- in a build -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    (root / "video").mkdir()
    synth.talking_clip(root / "video" / "clip_1.mp4", "Why do you always treat me like this?")
    return root


class LineUp:
    """The method's roles answered by fakes.RoleServer, the canaries by `canary` (attentive or inattentive)."""

    def __init__(self, canary) -> None:
        self.roles = RoleServer()
        self.canary = canary
        self.roles.server.handler = self.answer
        self.url = self.roles.server.url

    def answer(self, body: dict) -> tuple[int, dict]:
        if body["response_format"]["json_schema"]["name"] in CANARY_REPLIES:
            return self.canary(body)
        return self.roles.answer(body)

    def config(self, path: Path, state: Path, **canaries) -> Path:
        canaries = CanariesConfig(enabled=True, **canaries)
        config = lineup(self.url).model_copy(update={"canaries": canaries, "state_dir": state})
        path.write_text(json.dumps(config.model_dump(mode="json", exclude_none=True)))  # YAML reads JSON
        return path

    def close(self) -> None:
        self.roles.close()


def test_a_failed_canary_stops_the_build_with_one_line_when_asked(corpus, state, tmp_path):
    models = LineUp(inattentive)
    try:
        config = models.config(tmp_path / "config.yaml", state, stop_on_failure=True)
        result = CliRunner().invoke(app, ["build", str(corpus), "--out", str(tmp_path / "out"), "-c", str(config)])
        asked = [b["response_format"]["json_schema"]["name"] for b in models.roles.server.requests]
    finally:
        models.close()
    assert result.exit_code == 2, result.output
    [line] = [line for line in result.output.strip().splitlines() if "canaries failed" in line]
    assert line == result.output.strip().splitlines()[-1]
    assert "audio_clue/audio_words: did not hear the spoken sentence" in line and "visual_clue/no_face" in line
    assert set(asked) == set(CANARY_REPLIES)  # stopped before any clip was annotated
    assert not (tmp_path / "out" / "build.json").exists()


def test_canary_results_go_in_build_json_and_a_failure_only_warns_by_default(corpus, state, tmp_path):
    models = LineUp(inattentive)
    try:
        summary = build_coarse(str(corpus), str(tmp_path / "out"), str(models.config(tmp_path / "config.yaml", state)))
    finally:
        models.close()
    written = json.loads((tmp_path / "out" / "build.json").read_text())
    assert written["canaries"] == summary["canaries"]
    assert written["canaries"]["passed"] is False
    statuses = {(r["role"], r["canary"]): r["status"] for r in written["canaries"]["results"]}
    assert statuses == {
        ("audio_clue", "audio_words"): "failed",
        ("visual_clue", "no_face"): "failed",
        ("visual_clue", "face"): "passed",
    }
    assert written["clips"] == 1 and sum(written["splits"].values()) == 1  # the build went on


def test_tiny_random_models_fail_the_canaries_as_they_should(servers, state, tmp_path):
    """The CPU line-up's tiny random Qwen2-Audio hears nothing it can repeat; its visual role is sent no frames."""
    config = EngineConfig.from_file(write_flow_config(tmp_path / "tiny.toml", servers))
    report = run_canaries(config, state)
    results = by_canary(report)
    assert results["audio_clue", "audio_words"].status == "failed" and not report.passed
    assert results["audio_clue", "audio_words"].requests >= 1  # asked for real, through vLLM's OpenAI server
    assert {results["visual_clue", c].status for c in ("no_face", "face")} == {"skipped"}
