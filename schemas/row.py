"""One row of the coarse dataset, and the provenance each stage leaves on it."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

from schemas.gates import GateVerdict, LabelView
from schemas.replies import ClueReply
from schemas.review import ReviewDecision
from schemas.signals import ClipSignals


class ModelCall(BaseModel):
    """Provenance of one stage's answer: what asked whom, with which settings."""

    stage: str
    prompt_id: str
    prompt_version: str
    model: str
    server: str = Field(description="Base URL of the endpoint that answered")
    server_version: str | None = Field(
        None, description="The server's own version (vLLM's GET /version), when it reports one"
    )
    sampling: str = Field(description="Sampling parameters as canonical JSON")
    config_hash: str = Field(description="Hash of everything that determines the stage's answer")
    finish_reason: str | None = None
    attempts: int = 1
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class StageError(BaseModel):
    stage: str
    message: str
    raw: str | None = Field(None, description="The model's raw text when it could not be parsed")


class ClueSet(BaseModel):
    """A clue asked twice, as the method does: without and with the subtitle."""

    without_subtitle: ClueReply | None = None
    with_subtitle: ClueReply | None = None


class StageExtra(BaseModel):
    """An output of a stage added beyond the method's (stages/contract.py): no column of its own."""

    stage: str
    field: str
    value: str = Field(description="The value as JSON")

    @classmethod
    def of(cls, stage: str, field: str, value: Any) -> StageExtra:
        return cls(stage=stage, field=field, value=json.dumps(value, ensure_ascii=False, sort_keys=True))


class CoarseRow(BaseModel):
    name: str = Field(description="The clip's name (its file name without extension), e.g. sample_00000001")
    sha256: str | None = Field(None, description="SHA-256 of the clip file: which content was annotated")
    duration: float | None = Field(None, description="Clip duration in seconds")
    clip_status: str = Field(description="ok, silent (no audible audio), invalid or missing, from the manifest")
    clip_error: str | None = Field(None, description="Why the clip is not ok (the manifest's error)")
    subtitle_chinese: str | None = Field(None, description="The corpus's Chinese subtitle")
    subtitle_english: str | None = Field(None, description="The corpus's English subtitle")
    subtitle_english_translated: str | None = Field(
        None, description="A Chinese-only subtitle in English, as the models read it"
    )
    audio_clue: ClueSet | None = Field(
        None, description="What the voice conveys (clues, emotional states), asked without and with the subtitle"
    )
    visual_clue: ClueSet | None = Field(
        None, description="What the face and body convey (clues, emotional states), without and with the subtitle"
    )
    subtitle_analysis: str | None = Field(None, description="What the subtitle's words mean in the clues' light")
    description_en: str | None = Field(
        None, description="The emotion-reasoning description: clues -> reasoning -> emotional state, in English"
    )
    description_zh: str | None = Field(None, description="The description in Chinese")
    labels: list[str] = Field(default_factory=list, description="Open-vocabulary emotion labels")
    complete: bool = Field(False, description="Every stage answered for this clip")
    signals: ClipSignals | None = Field(None, description="Prosody, voice activity and faces measured from the clip")
    label_views: list[LabelView] = Field(
        default_factory=list, description="Labels from independent annotators, for cross-validation"
    )
    gates: list[GateVerdict] = Field(default_factory=list, description="One verdict per quality gate")
    review: ReviewDecision | None = Field(
        None, description="A human reviewer's decision, when a gate held the row back"
    )
    accepted: bool = Field(
        False, description="In the corpus: complete and every gate passed, or accepted by a reviewer"
    )
    errors: list[StageError] = Field(default_factory=list, description="What went wrong or was skipped, per stage")
    provenance: list[ModelCall] = Field(
        default_factory=list, description="Per stage: prompt version, model, sampling, server and its version"
    )
    extra: list[StageExtra] = Field(default_factory=list, description="Outputs of stages added beyond the method's")

    @property
    def subtitle(self) -> str | None:
        """The subtitle as the models read it: the English one, else the Chinese one in English (or as is)."""
        return self.subtitle_english or self.subtitle_english_translated or self.subtitle_chinese
