"""Open-vocabulary labels: the clearly identifiable emotional states, as a JSON list."""

from __future__ import annotations

from stages.base import ModelStage, outcome_of
from schemas.labels import normalise_labels
from schemas.replies import LabelsReply
from schemas.stage import StageOutcome



class LabelsStage(ModelStage):
    name = "labels"

    async def run(self, description: str) -> StageOutcome:
        answer = await self.client.ask(self.client.prompt.messages("default", description=description), LabelsReply)
        value = {"labels": normalise_labels(answer.value.labels)} if answer.ok else None
        return outcome_of(self.name, {"labels": answer}, value)
