"""Translation both ways: the description into Chinese, a Chinese-only subtitle into English."""

from __future__ import annotations

from typing import Literal

from annotators.client import RoleClient
from annotators.text_clean import strip_leaked_prefix
from flows.stages.base import ModelStage, outcome_of
from schemas.replies import TranslationReply
from schemas.stage import StageOutcome


class TranslationStage(ModelStage):
    def __init__(self, client: RoleClient, name: str, direction: Literal["en_to_zh", "zh_to_en"]) -> None:
        super().__init__(client)
        self.name, self.direction = name, direction

    async def run(self, text: str) -> StageOutcome:
        answer = await self.client.ask(self.client.prompt.messages(self.direction, text=text), TranslationReply)
        value = None
        if answer.ok:
            value = {"translation": strip_leaked_prefix(answer.value.translation)}
            if not value["translation"]:
                answer.value, answer.error = None, "empty translation"
        return outcome_of({self.direction: answer}, value)
