"""Open-vocabulary labels: the clearly identifiable emotional states, as a JSON list."""

from __future__ import annotations

from flows.stages.base import ModelStage, outcome_of
from schemas.replies import LabelsReply
from schemas.stage import StageOutcome


def normalise_labels(labels: list[str]) -> list[str]:
    """Lower-case, trimmed, de-duplicated in order; the EMER metric compares lower-case words."""
    seen: dict[str, None] = {}
    for label in labels:
        word = " ".join(label.strip().strip("'\".,;").lower().split())
        if word:
            seen.setdefault(word, None)
    return list(seen)


class LabelsStage(ModelStage):
    name = "labels"

    async def run(self, description: str) -> StageOutcome:
        answer = await self.client.ask(self.client.prompt.messages("default", description=description), LabelsReply)
        value = {"labels": normalise_labels(answer.value.labels)} if answer.ok else None
        return outcome_of(self.name, {"labels": answer}, value)
