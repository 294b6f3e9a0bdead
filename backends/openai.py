"""The served-model backend: a stage's questions as chat messages to an OpenAI-compatible server
(vLLM), through the one client layer (annotators/client.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from annotators.client import Answer, RoleClient
from annotators.media_parts import audio_parts, visual_parts, with_media
from schemas.config import MediaTransport
from schemas.stage import StageOutcome
from stages.contract import Backend, ClipContext, Stage, StageInputs


class OpenAIBackend(Backend):
    kind = "openai"

    def __init__(self, client: RoleClient) -> None:
        self.client = client

    def identity(self, stage: Stage) -> dict[str, Any]:
        # Endpoints' URLs are left out: replicas of one model agree.
        cfg, prompt = self.client.config, self.client.prompt
        return {
            "kind": self.kind,
            "models": sorted({ep.model for ep in cfg.endpoints}),
            "prompt": [prompt.id, prompt.version, prompt.sha],
            # exclude_none: settings left unset (beam search) leave the keys of existing line-ups as they were.
            "sampling": cfg.sampling.model_dump(exclude_none=True),
            "media": cfg.media.value,
            "schema": stage.reply.model_json_schema(),
        } | ({"reply_format": "prose"} if cfg.reply_format == "prose" else {})

    def reads_media(self, stage: Stage) -> bool:
        return bool(stage.media) and self.client.config.media is not MediaTransport.none

    def lineup_entry(self) -> dict[str, Any]:
        cfg, prompt = self.client.config, self.client.prompt
        return {
            "models": [ep.model for ep in cfg.endpoints],
            "prompt": f"{prompt.id}@{prompt.version}",
            "media": cfg.media.value,
        }

    def _media_parts(self, stage: Stage, clip: ClipContext) -> list[dict]:
        parts: list[dict] = []
        for medium in stage.media:
            if medium == "audio":
                assert clip.media.wav is not None, f"{stage.name} asked for a clip without audio"
                parts += audio_parts(self.client.config, Path(clip.media.wav))
            else:
                parts += visual_parts(self.client.config, [Path(f) for f in clip.media.frames], Path(clip.record.path))
        return parts

    async def answer(self, stage: Stage, inputs: StageInputs, clip: ClipContext) -> StageOutcome:
        parts = self._media_parts(stage, clip) if stage.media else []
        prompt = self.client.prompt
        asks = {q.key: with_media(prompt.messages(q.template, **q.values), parts) for q in stage.questions(inputs)}
        replies = await asyncio.gather(*(self.client.ask(m, stage.reply) for m in asks.values()))
        answers = dict(zip(asks, replies))
        usable = {key: a.value for key, a in answers.items() if a.ok}
        value = stage.combine(inputs, usable) if usable else None
        return outcome_of(stage.name, self.identity_hash(stage), answers, value)


def outcome_of(stage: str, config_hash: str, answers: dict[str, Answer], value: dict | None) -> StageOutcome:
    """One outcome from one or more answers: ok only when every answer is.

    Provenance names the stage, not the role: one role (translation) serves two stages."""
    failed = {key: a for key, a in answers.items() if not a.ok}
    return StageOutcome(
        value=value,
        calls=[a.call.model_copy(update={"stage": stage, "config_hash": config_hash}) for a in answers.values()],
        error="; ".join(f"{key}: {a.error}" for key, a in failed.items()) or None,
        raw=next((a.raw for a in failed.values() if a.raw), None),
        transient=any(a.transient for a in failed.values()),
    )
