"""Pre-labelling: the audio and the visual clue, each asked without and with the subtitle."""

from __future__ import annotations

from typing import Any

from schemas.replies import ClueReply, Reply
from schemas.row import ClueSet
from stages.contract import Question, Stage, StageInputs


class ClueInputs(StageInputs):
    subtitle: str | None  # CoarseRow.subtitle: the English subtitle, or the Chinese one as the models read it


class ClueStage(Stage[ClueInputs]):
    inputs = ClueInputs
    reply = ClueReply

    def questions(self, inputs: ClueInputs) -> list[Question]:
        asks = [Question("without_subtitle", "without_subtitle", {})]
        if inputs.subtitle:
            asks.append(Question("with_subtitle", "with_subtitle", {"subtitle": inputs.subtitle}))
        return asks

    def combine(self, inputs: ClueInputs, replies: dict[str, Reply]) -> dict[str, Any] | None:
        # One of the two asks is still a clue; nothing heard is no clue.
        return ClueSet(**replies).model_dump(mode="json") if replies else None


class AudioClueStage(ClueStage):
    name = "audio_clue"
    writes = ("audio_clue",)
    prompt = "audio_clue"
    media = ("audio",)

    def write(self, row, value: dict[str, Any]) -> None:
        row.audio_clue = ClueSet.model_validate(value)


class VisualClueStage(ClueStage):
    name = "visual_clue"
    writes = ("visual_clue",)
    prompt = "visual_clue"
    media = ("frames",)

    def write(self, row, value: dict[str, Any]) -> None:
        row.visual_clue = ClueSet.model_validate(value)


def primary_clue(clues: ClueSet | None) -> ClueReply | None:
    """The clue the disambiguation reads: the one asked without the subtitle, so the text is read in
    the light of the signal rather than the signal in the light of the text."""
    return clues and (clues.without_subtitle or clues.with_subtitle)


def clue_text(reply: ClueReply | None, missing: str) -> str:
    if reply is None:
        return missing
    states = ", ".join(reply.emotional_states) or "none stated"
    return f"{reply.clues}\nLikely emotional states: {states}"
