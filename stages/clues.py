"""Pre-labelling: the audio and the visual clue, each asked without and with the subtitle."""

from __future__ import annotations

import asyncio
from pathlib import Path

from annotators.media_parts import audio_parts, visual_parts, with_media
from stages.base import ModelStage, outcome_of
from schemas.manifest import ClipRecord
from schemas.media import PreparedMedia
from schemas.replies import ClueReply
from schemas.row import ClueSet
from schemas.signals import ClipSignals
from schemas.stage import StageOutcome


class ClueStage(ModelStage):
    def media_parts(self, record: ClipRecord, media: PreparedMedia) -> list[dict]:
        raise NotImplementedError

    async def run(self, record: ClipRecord, media: PreparedMedia, subtitle: str | None, signals: ClipSignals | None = None) -> StageOutcome:
        # `signals` (the clip's measurements) are for the signals backend; a model sees the media.
        parts = self.media_parts(record, media)
        prompt = self.client.prompt
        asks = {"without_subtitle": with_media(prompt.messages("without_subtitle"), parts)}
        if subtitle:
            asks["with_subtitle"] = with_media(prompt.messages("with_subtitle", subtitle=subtitle), parts)
        answers = dict(zip(asks, await asyncio.gather(*(self.client.ask(m, ClueReply) for m in asks.values()))))
        clues = ClueSet(**{key: a.value for key, a in answers.items() if a.ok})
        value = clues.model_dump() if any(a.ok for a in answers.values()) else None  # nothing heard is no clue
        return outcome_of(self.name, answers, value)


class AudioClueStage(ClueStage):
    name = "audio_clue"

    def media_parts(self, record: ClipRecord, media: PreparedMedia) -> list[dict]:
        assert media.wav is not None, "audio clue asked for a clip without audio"
        return audio_parts(self.client.config, Path(media.wav))


class VisualClueStage(ClueStage):
    name = "visual_clue"

    def media_parts(self, record: ClipRecord, media: PreparedMedia) -> list[dict]:
        return visual_parts(self.client.config, [Path(f) for f in media.frames], Path(record.path))


def clue_text(clues: ClueSet | None, missing: str) -> str:
    """The clue the disambiguation reads: the one asked without the subtitle, so the text is read
    in the light of the signal rather than the signal in the light of the text."""
    reply = clues and (clues.without_subtitle or clues.with_subtitle)
    if reply is None:
        return missing
    states = ", ".join(reply.emotional_states) or "none stated"
    return f"{reply.clues}\nLikely emotional states: {states}"
