"""Disambiguation: the subtitle read in the light of both clues, merged into one description."""

from __future__ import annotations

from annotators.text_clean import strip_leaked_prefix
from flows.stages.base import ModelStage, outcome_of
from schemas.replies import DescriptionReply
from schemas.stage import StageOutcome


class DisambiguationStage(ModelStage):
    name = "disambiguation"

    async def run(self, subtitle: str | None, audio_clue: str, visual_clue: str) -> StageOutcome:
        messages = self.client.prompt.messages(
            "default", subtitle=subtitle or "(no subtitle)", audio_clue=audio_clue, visual_clue=visual_clue
        )
        answer = await self.client.ask(messages, DescriptionReply)
        value = None
        if answer.ok:
            value = answer.value.model_copy(update={"description": strip_leaked_prefix(answer.value.description)}).model_dump()
            if not value["description"]:
                answer.value, answer.error = None, "empty description"
        return outcome_of({"description": answer}, value)
