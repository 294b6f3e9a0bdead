"""Translation both ways: the description into Chinese, a Chinese-only subtitle into English."""

from __future__ import annotations

from typing import Literal

from annotators.client import RoleClient
from stages.base import ModelStage, outcome_of
from schemas.replies import TranslationReply
from schemas.stage import StageOutcome


class TranslationStage(ModelStage):
    def __init__(self, client: RoleClient, name: str, direction: Literal["en_to_zh", "zh_to_en"]) -> None:
        super().__init__(client)
        self.name, self.direction = name, direction

    async def run(self, text: str) -> StageOutcome:
        answer = await self.client.ask(self.client.prompt.messages(self.direction, text=text), TranslationReply)
        return outcome_of(self.name, {self.direction: answer}, answer.value.model_dump() if answer.ok else None)
