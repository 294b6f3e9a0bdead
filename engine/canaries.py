"""Modality canaries: before a corpus run, a few generated clips check that each role really uses its media.

A server can drop a modality without an error (vLLM's audio-in-video path has, in several releases), and a model
then answers from the prompt alone: fluent clues about a clip it never received. So each role whose stages read
media is asked about clips whose answer is known: the roles that listen are sent a sentence spoken by espeak-ng and
must return its words (fuzzy word overlap); the roles that watch are sent a test pattern with no face, which they
must not describe as a face (or must say no one is there), and a still photographed face, which they must see.
The questions are versioned prompts (annotators/prompts/canary_*.toml, whose [canary] tables hold the sentence and
the words), asked through the role's own client and backend (its endpoints, transport, sampling and reply format).
Answers are never reused: a server upgraded since the last run must be caught on this one (three requests).
Roles on the signals or import backends read no media through a model: reported as skipped.
"""

from __future__ import annotations

import asyncio
import difflib
import re
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from annotators.client import EndpointPool, RoleClient
from annotators.prompts import PROMPT_DIR, load_prompt
from backends.openai import OpenAIBackend
from engine import second_lineup as second
from engine.assembly import stage_classes
from runtime.gateway import Gateway
from schemas.canaries import CanaryReport, CanaryResult, CanaryStatus, SceneReply, TranscriptReply
from schemas.config import EngineConfig, MediaConfig, MediaTransport, RoleConfig, stable_hash
from schemas.errors import UserError
from schemas.manifest import Subtitles
from stages.contract import ClipContext, Question, Stage, StageInputs
from stages.ingest import probe_clip
from stages.media_prep import MediaPrep

ANSWER_CHARS = 300  # of a role's answer kept in the report
WORD_MATCH = 0.8  # difflib ratio from which a word of the answer counts as a word of the sentence (ASR spellings)


class CanaryFailure(UserError):
    """A canary failed and the configuration asks for the run to stop (canaries.stop_on_failure)."""


class _Nothing(StageInputs):
    """A canary reads nothing from a row: its question is fixed."""


class _Canary(Stage):
    """A canary as a stage, so that the role's own backend asks it (messages, media parts, reply format)."""

    role = "canary"
    inputs = _Nothing
    writes = ()
    template: ClassVar[str]

    def questions(self, inputs: StageInputs) -> list[Question]:
        return [Question(self.template, self.template, {})]


class AudioCanary(_Canary):
    name, prompt, media, reply, template = "canary_audio", "canary_audio", ("audio",), TranscriptReply, "transcript"


class VisualCanary(_Canary):
    name, prompt, media, reply, template = "canary_visual", "canary_visual", ("frames",), SceneReply, "describe"


def canary_data(prompt_id: str) -> dict[str, Any]:
    """The [canary] table of a canary prompt: what its check looks for, versioned with the question."""
    return tomllib.loads((PROMPT_DIR / f"{prompt_id}.toml").read_text(encoding="utf-8"))["canary"]


def canary_version() -> str:
    return "+".join(f"{p.id}@{p.version}" for p in (load_prompt("canary_audio"), load_prompt("canary_visual")))


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+(?:'[a-z]+)?", text.lower())


def word_overlap(sentence: str, answer: str) -> float:
    """The share of the sentence's words that the answer contains, each matched fuzzily (an ASR model may spell
    a word another way; espeak-ng's voice is not a person's). difflib: the standard library's matcher suffices
    for a dozen words."""
    said, heard = _words(sentence), set(_words(answer))
    found = [w for w in said if w in heard or difflib.get_close_matches(w, heard, n=1, cutoff=WORD_MATCH)]
    return len(found) / len(said) if said else 0.0


def describes_face(text: str) -> list[str]:
    """The words of `text` that describe a face or a person."""
    words = set(canary_data("canary_visual")["face_words"])
    return sorted({w for w in _words(text) if w in words})


def says_no_person(text: str) -> bool:
    lowered = text.lower()
    return any(re.search(pattern, lowered) for pattern in canary_data("canary_visual")["no_person"])


def judge_audio(answer: TranscriptReply, min_overlap: float) -> tuple[bool, str, float]:
    sentence = canary_data("canary_audio")["sentence"]
    score = word_overlap(sentence, answer.transcript)
    verdict = "heard" if score >= min_overlap else "did not hear"
    return (
        score >= min_overlap,
        f"{verdict} the spoken sentence: {score:.0%} of its words (needs {min_overlap:.0%})",
        score,
    )


def judge_no_face(answer: SceneReply) -> tuple[bool, str]:
    """A clip with no face: the role must not describe one, or must say that no one is there."""
    words, none = describes_face(answer.description), says_no_person(answer.description)
    if answer.person_visible:
        return False, "says a person is visible in a clip with no one in it"
    if words and not none:
        return False, f"describes a face in a clip with none ({', '.join(words)})"
    return True, "saw no face where there is none"


def judge_face(answer: SceneReply) -> tuple[bool, str]:
    """A clip of a photographed face: the role must see it."""
    if answer.person_visible is not None:
        seen = answer.person_visible
    else:  # a prose answer says it in words
        seen = bool(describes_face(answer.description)) and not says_no_person(answer.description)
    return seen, "saw the face" if seen else "did not see the face in a clip of one"


@dataclass(frozen=True)
class _Clip:
    canary: str  # audio_words | no_face | face
    stage: type[_Canary]
    make: str  # the clip's file name in the canary folder


CANARIES = (
    _Clip("audio_words", AudioCanary, "speech.mp4"),
    _Clip("no_face", VisualCanary, "no_face.mp4"),
    _Clip("face", VisualCanary, "face.mp4"),
)


def make_clips(folder: Path) -> dict[str, Path]:
    """The canary clips, made once per version of the canary set (ffmpeg, espeak-ng, matplotlib's portrait)."""
    from data import synth_clips as synth

    audio = canary_data("canary_audio")
    makers = {
        "speech.mp4": lambda p: synth.talking_clip(p, audio["sentence"]),  # speech over a test pattern
        "no_face.mp4": lambda p: synth.silent_clip(p, seconds=2.0, audio=False),  # a test pattern, no one in it
        "face.mp4": lambda p: synth.face_clip(p, None),  # a still photographed face over silence
    }
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, make in makers.items():
        path = folder / name
        if not path.is_file():
            tmp = path.with_name(f".{path.stem}.tmp.mp4")
            make(tmp)
            tmp.replace(path)  # a clip is there only once it was written whole
        paths[name] = path
    return paths


class _InThread:
    """MediaPrep's decoder pool for the canary clips: the engine made them, so decoding them needs no process
    isolation (and starting one would cost more than the canaries)."""

    async def run(self, fn, *args):
        return await asyncio.to_thread(fn, *args)


def _roles(config: EngineConfig) -> list[tuple[str, RoleConfig, set[str]]]:
    """(role as reported, its configuration, the media its stages read) for every role whose stages read media,
    the second line-up's roles (named under its prefix) among them."""
    lineups = [("", config)]
    if (other := second.second_config(config)) is not None:
        lineups.append((second.prefix(second.lineup_name(config)), other))
    out = []
    for mark, lineup in lineups:
        classes = stage_classes(lineup)
        for role, cfg in lineup.roles.items():
            media = {m for cls in classes.values() if cls.role == role for m in cls.media}
            if media:
                out.append((mark + role, cfg, media))
    return out


def run_canaries(config: EngineConfig, state_dir: Path | None = None) -> CanaryReport:
    """Ask every canary of every role whose stages read media (the servers must be up); the clips and their
    prepared media are kept under `state_dir/canaries` (a temporary folder without one)."""
    with tempfile.TemporaryDirectory(prefix="emer-canaries-") as tmp:
        folder = (state_dir or Path(tmp)) / "canaries"
        return _run(config, folder)


def _run(config: EngineConfig, folder: Path) -> CanaryReport:
    roles = _roles(config)
    asked = [(role, cfg, clip) for role, cfg, media in roles for clip in CANARIES if clip.stage.media[0] in media]
    results: dict[tuple[str, str], CanaryResult] = {}
    to_ask = []
    for role, cfg, clip in asked:
        if (reason := _skipped(cfg, clip)) is not None:
            results[role, clip.canary] = CanaryResult(
                role=role, canary=clip.canary, status=CanaryStatus.skipped, reason=reason
            )
        else:
            to_ask.append((role, cfg, clip))
    if to_ask:
        # Under the prompts' content hashes: an edited sentence makes its clip again, version bumped or not.
        made_from = [load_prompt(p).sha for p in ("canary_audio", "canary_visual")]
        try:
            paths = make_clips(folder / "clips" / stable_hash(made_from))
        except (RuntimeError, OSError) as exc:  # ffmpeg or espeak-ng missing or failing: the machine's, say so
            said = " ".join(str(exc).split())[:200]
            raise CanaryFailure(
                f"canaries: cannot make the canary clips with ffmpeg and espeak-ng ({said}); "
                "install them (scripts/setup) or set canaries.enabled = false"
            ) from None
        gateway = Gateway()
        try:
            answers = gateway.run(
                _ask_all(to_ask, paths, config.media, folder / "media", config.canaries.min_word_overlap)
            )
        finally:
            gateway.close()
        results |= answers
    order = [(role, clip.canary) for role, _, clip in asked]
    return CanaryReport(version=canary_version(), results=[results[key] for key in order])


def _skipped(cfg: RoleConfig, clip: _Clip) -> str | None:
    medium = clip.stage.media[0]
    if cfg.backend != "openai":
        return f"answered by the {cfg.backend} backend, which reads no media through a model"
    if cfg.media is MediaTransport.none:
        sent = "audio" if medium == "audio" else "video"
        return f'the role is sent no {sent} (media = "none"): its answers cannot come from the clip'
    return None


async def _ask_all(to_ask, paths: dict[str, Path], media_cfg: MediaConfig, media_dir: Path, min_overlap: float):
    media = MediaPrep(media_dir, media_cfg, _InThread())
    records = {
        name: probe_clip(path, Subtitles(), None, media_cfg.audio_max_seconds, media_cfg.silence_threshold_db)
        for name, path in paths.items()
    }
    contexts = {}
    for name, record in records.items():
        prepared = await media.prepare(record, with_audio=name == "speech.mp4")
        contexts[name] = ClipContext(record=record, media=prepared, media_keys=media.keys(record))
    endpoints = EndpointPool()
    try:
        done = await asyncio.gather(
            *(_ask(role, cfg, clip, contexts[clip.make], endpoints, min_overlap) for role, cfg, clip in to_ask)
        )
    finally:
        await endpoints.aclose()
    return {(r.role, r.canary): r for r in done}


async def _ask(
    role: str, cfg: RoleConfig, clip: _Clip, context: ClipContext, endpoints: EndpointPool, min_overlap: float
) -> CanaryResult:
    stage = clip.stage()
    prompt = load_prompt(stage.prompt)
    client = RoleClient(role, cfg, prompt, stable_hash([role, cfg.model_dump(mode="json"), prompt.sha]), endpoints)
    base = {"role": role, "canary": clip.canary, "model": ", ".join(ep.model for ep in cfg.endpoints)}
    try:
        outcome = await OpenAIBackend(client).answer(stage, _Nothing(), context)
    except ValueError as exc:  # the role's transport cannot carry this medium (media_parts says which)
        return CanaryResult(**base, status=CanaryStatus.failed, reason=f"cannot send the clip: {exc}")
    calls = outcome.calls
    cost = {
        "requests": sum(c.attempts for c in calls),
        "prompt_tokens": sum(c.prompt_tokens or 0 for c in calls),
        "completion_tokens": sum(c.completion_tokens or 0 for c in calls),
    }
    if not outcome.ok:
        return CanaryResult(
            **base,
            **cost,
            status=CanaryStatus.failed,
            reason=f"no usable answer: {outcome.error}",
            answer=(outcome.raw or "")[:ANSWER_CHARS] or None,
        )
    reply = stage.reply.model_validate(outcome.value)
    score = threshold = None
    if clip.canary == "audio_words":
        passed, reason, score = judge_audio(reply, min_overlap)
        threshold, said = min_overlap, reply.transcript
    else:
        passed, reason = judge_no_face(reply) if clip.canary == "no_face" else judge_face(reply)
        said = reply.description + (
            "" if reply.person_visible is None else f" [person_visible: {reply.person_visible}]"
        )
    return CanaryResult(
        **base,
        **cost,
        status=CanaryStatus.passed if passed else CanaryStatus.failed,
        reason=reason,
        answer=said[:ANSWER_CHARS],
        score=None if score is None else round(score, 3),
        threshold=threshold,
    )


def enforce(report: CanaryReport, config: EngineConfig) -> None:
    """Stop the run when a canary failed and the configuration asks for it: one line naming each failure."""
    failed = report.failed()
    if failed and config.canaries.stop_on_failure:
        said = "; ".join(f"{r.role}/{r.canary}: {r.reason}" for r in failed)
        raise CanaryFailure(
            f"stopped: modality canaries failed ({said}); the line-up does not use its media as configured. "
            "Fix the server or the role's media, or set canaries.stop_on_failure = false to warn only."
        )
