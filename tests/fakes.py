"""The fakes every test module shares: a scripted OpenAI-compatible server (HTTP, for the client and
the engine) and a scripted role client (no HTTP, for one stage on its own), as distilabel tests its
tasks over a dummy LLM. Real servers (vLLM, Label Studio, Prefect) are in conftest.py's fixtures."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from annotators.client import Answer
from annotators.prompts import Prompt, load_prompt
from annotators.signals.acoustics import corpus_norms
from engine.pipeline import BoundStage, ClipPipeline
from runtime.checkpoint import Checkpoint
from runtime.stats import collect
from schemas.config import Endpoint, MediaTransport, RoleConfig
from schemas.manifest import ClipRecord
from schemas.media import PreparedMedia
from schemas.replies import ClueReply
from schemas.row import ClueSet, CoarseRow, ModelCall
from schemas.signals import AudioSignals, CorpusNorms
from stages.contract import ClipContext


def completion(content: str, finish: str = "stop") -> tuple[int, dict]:
    return 200, {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    }


class ScriptedServer:
    """Answers each request with the next scripted (status, body), or with `handler(request)`;
    records the requests."""

    def __init__(self, script: list[tuple[int, dict]] | None = None, handler=None):
        self.script, self.requests, self.handler = list(script or []), [], handler
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append(body)
                if owner.handler is not None:
                    status, payload = owner.handler(body)
                else:
                    status, payload = owner.script.pop(0) if owner.script else (500, {"error": "script exhausted"})
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self):
        self.httpd.shutdown()


# What a fake client answers: a reply as a dict (valid or not for the reply model), or a failure.
@dataclass(frozen=True)
class Fails:
    error: str
    transient: bool = False
    raw: str | None = None


@dataclass
class FakeClient:
    """A role client that answers from a script, without HTTP: `script(messages, reply_model)` returns
    the reply as a dict or a `Fails`. Records every message list it was asked."""

    role: str
    script: Callable[[list[dict], type], dict | Fails]
    media: MediaTransport = MediaTransport.none
    prompt_id: str | None = None
    asked: list[list[dict]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.config = RoleConfig(endpoints=[Endpoint(base_url="http://fake/v1", model="fake-model")], media=self.media)
        self.prompt: Prompt = load_prompt(self.prompt_id or self.role)

    def _call(self) -> ModelCall:
        return ModelCall(
            stage=self.role,
            prompt_id=self.prompt.id,
            prompt_version=self.prompt.version,
            model="fake-model",
            server="http://fake/v1",
            sampling="{}",
            config_hash="fake",
            attempts=1,
            prompt_tokens=7,
            completion_tokens=3,
        )

    async def ask(self, messages: list[dict], reply_model: type) -> Answer:
        self.asked.append(messages)
        reply = self.script(messages, reply_model)
        if isinstance(reply, Fails):
            return Answer(None, self._call(), error=reply.error, raw=reply.raw, transient=reply.transient)
        try:
            return Answer(reply_model.model_validate(reply), self._call())
        except ValueError as exc:
            return Answer(None, self._call(), error=f"invalid reply: {exc}", raw=json.dumps(reply))


class OneStage:
    """One stage on its own, bound to a backend, through the pipeline's own step (checkpoint, keys,
    statistics) and nothing else: no media preparation, no other stage, no HTTP unless the backend has it."""

    def __init__(self, stage, backend, checkpoint_path) -> None:
        self.stage = stage
        self.checkpoint = Checkpoint(checkpoint_path)
        self.pipeline = ClipPipeline(self.checkpoint, media=None, stages={stage.name: BoundStage(stage, backend)})

    def run(self, row, clip):
        """The stage's outcome for `row` (written onto it) and the run's statistics for the stage."""

        async def go():
            stats = collect()
            outcome = await self.pipeline.step(self.stage.name, row, clip)
            return outcome, stats.stages.get(self.stage.name)

        return asyncio.run(go())

    def close(self) -> None:
        self.checkpoint.close()


def clip_context(folder):
    """A clip as a stage sees it: a manifest record and prepared media files (bytes, not real media:
    the backends under test only read and send them)."""
    frames = []
    for i in range(2):
        frame = folder / f"frame_{i}.jpg"
        frame.write_bytes(b"\xff\xd8fake-jpeg-%d" % i)
        frames.append(str(frame))
    wav = folder / "audio.wav"
    wav.write_bytes(b"RIFFfake-wav")
    record = ClipRecord(name="sample_00000001", path=str(folder / "clip.mp4"), sha256="c0ffee", has_audio=True)
    media = PreparedMedia(frames=frames, frame_times=[0.5, 1.5], wav=str(wav))
    return ClipContext(record=record, media=media, media_keys={"frames": "f1", "audio": ["a1", None]})


def row_for(**fields):
    """A row as the pipeline has it when a stage runs: what earlier stages wrote, given here."""
    return CoarseRow(**({"name": "sample_00000001", "sha256": "c0ffee", "clip_status": "ok"} | fields))


def clue_set(text: str, *states: str):
    return ClueSet(without_subtitle=ClueReply(clues=text, emotional_states=list(states)))


# What the scripted line-up answers by default, per reply model.
REPLIES = {
    "ClueReply": {"clues": "raised voice, fast speech", "emotional_states": ["angry"]},
    "DescriptionReply": {
        "subtitle_analysis": "'always' shows frustration",
        "description": "In the video ...; in the audio ...; in the text ...",
    },
    "TranslationReply": {"translation": "视频中……"},
    "LabelsReply": {"labels": ["Angry", "frustrated"]},
}


def role_of(body: dict) -> str:
    """Which method role a chat-completion request is for (its reply schema; its system prompt for clues)."""
    schema = body["response_format"]["json_schema"]["name"]
    if schema == "ClueReply":
        return "audio_clue" if "listens" in body["messages"][0]["content"] else "visual_clue"
    return {"DescriptionReply": "disambiguation", "TranslationReply": "translation", "LabelsReply": "labels"}[schema]


class RoleServer:
    """A scripted OpenAI-compatible server for a whole line-up: answers every role (`replies[role]`
    overrides the default reply), fails the roles in `failing` with their status, logs the roles asked."""

    def __init__(self) -> None:
        self.failing: dict[str, int] = {}
        self.replies: dict[str, dict] = {}
        self.server = ScriptedServer(handler=self.answer)

    def answer(self, body: dict) -> tuple[int, dict]:
        role = role_of(body)
        if role in self.failing:
            return self.failing[role], {"error": {"message": "injected"}}
        reply = self.replies.get(role, REPLIES[body["response_format"]["json_schema"]["name"]])
        return completion(json.dumps(reply, ensure_ascii=False))

    def asked(self) -> list[str]:
        roles = [role_of(b) for b in self.server.requests]
        self.server.requests.clear()
        return roles

    def close(self) -> None:
        self.server.close()


# --- voices for the tests of what reads the voice against the corpus ---------------------------------


def voice(loudness: float, pitch_range: float, rate: float, pitch: float) -> AudioSignals:
    """Measured speech with the given prosody (3.5 s of speech in a 4 s track)."""
    return AudioSignals(
        seconds=4,
        speech_seconds=3.5,
        speech_ratio=0.875,
        loudness_db=loudness,
        pitch_hz=pitch,
        pitch_range_semitones=pitch_range,
        speaking_rate=rate,
        pauses=1,
    )


def conversational_corpus() -> CorpusNorms:
    """Norms of a corpus of twelve conversational voices."""
    return corpus_norms([voice(58 + i % 5, 5 + i % 4, 3.8 + 0.2 * (i % 5), 140 + 6 * i) for i in range(12)])


RAISED_VOICE = voice(74, 15, 6.5, 280)  # well above that corpus
SUBDUED_VOICE = voice(46, 1.5, 2.4, 110)  # well below it
