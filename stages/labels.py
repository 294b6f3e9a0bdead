"""Open-vocabulary labels: the clearly identifiable emotional states, as a JSON list."""

from __future__ import annotations

from typing import Any

from schemas.labels import normalise_labels
from schemas.replies import LabelsReply, Reply
from stages.contract import Question, Stage
from stages.translation import DescriptionInputs


class LabelsStage(Stage[DescriptionInputs]):
    name = "labels"
    inputs = DescriptionInputs
    reply = LabelsReply
    writes = ("labels",)
    prompt = "labels"

    def questions(self, inputs: DescriptionInputs) -> list[Question]:
        return [Question("labels", "default", {"description": inputs.description_en})]

    def combine(self, inputs: DescriptionInputs, replies: dict[str, Reply]) -> dict[str, Any] | None:
        if not replies:
            return None
        return {"labels": normalise_labels(replies["labels"].labels)}
