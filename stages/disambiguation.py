"""Disambiguation: the subtitle read in the light of both clues, merged into one description."""

from __future__ import annotations

from stages.base import ModelStage, outcome_of
from schemas.replies import DescriptionReply
from schemas.stage import StageOutcome


class DisambiguationStage(ModelStage):
    name = "disambiguation"

    async def run(self, subtitle: str | None, audio_clue: str, visual_clue: str, **structured: object) -> StageOutcome:
        # `structured` (clue sets, measurements) serves the signals backend; the model reads the texts.
        messages = self.client.prompt.messages(
            "default", subtitle=subtitle or "(no subtitle)", audio_clue=audio_clue, visual_clue=visual_clue
        )
        answer = await self.client.ask(messages, DescriptionReply)
        return outcome_of(self.name, {"description": answer}, answer.value.model_dump() if answer.ok else None)
