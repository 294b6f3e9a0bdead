"""Disambiguation: the subtitle read in the light of both clues, merged into one description."""

from __future__ import annotations

from schemas.replies import ClueReply, DescriptionReply
from schemas.row import CoarseRow
from stages.clues import clue_text, primary_clue
from stages.contract import Question, Stage, StageInputs


class DisambiguationInputs(StageInputs):
    subtitle: str | None
    audio_clue: ClueReply | None  # the primary clue of each modality (stages.clues.primary_clue)
    visual_clue: ClueReply | None
    clip_error: str | None  # why there is no audio clue, when there is none

    @classmethod
    def read(cls, row: CoarseRow) -> DisambiguationInputs:
        return cls(
            subtitle=row.subtitle,
            audio_clue=primary_clue(row.audio_clue),
            visual_clue=primary_clue(row.visual_clue),
            clip_error=row.clip_error,
        )


class DisambiguationStage(Stage[DisambiguationInputs]):
    name = "disambiguation"
    inputs = DisambiguationInputs
    reply = DescriptionReply
    writes = ("subtitle_analysis", "description_en")
    prompt = "disambiguation"

    def questions(self, inputs: DisambiguationInputs) -> list[Question]:
        no_audio = "(no usable audio: " + (inputs.clip_error or "the audio clue failed") + ")"
        values = {
            "subtitle": inputs.subtitle or "(no subtitle)",
            "audio_clue": clue_text(inputs.audio_clue, no_audio),
            "visual_clue": clue_text(inputs.visual_clue, "(no visual clue available)"),
        }
        return [Question("description", "default", values)]

    def write(self, row: CoarseRow, value: dict) -> None:
        row.subtitle_analysis, row.description_en = value["subtitle_analysis"], value["description"]
