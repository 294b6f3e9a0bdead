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
    name: str
    sha256: str | None = None
    duration: float | None = None
    clip_status: str
    clip_error: str | None = Field(None, description="Why the clip is not ok (the manifest's error)")
    subtitle_chinese: str | None = None
    subtitle_english: str | None = None
    subtitle_english_translated: str | None = Field(
        None, description="A Chinese-only subtitle in English, as the models read it"
    )
    audio_clue: ClueSet | None = None
    visual_clue: ClueSet | None = None
    subtitle_analysis: str | None = None
    description_en: str | None = None
    description_zh: str | None = None
    labels: list[str] = Field(default_factory=list)
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
    errors: list[StageError] = Field(default_factory=list)
    provenance: list[ModelCall] = Field(default_factory=list)
    extra: list[StageExtra] = Field(default_factory=list, description="Outputs of stages added beyond the method's")

    @property
    def subtitle(self) -> str | None:
        """The subtitle as the models read it: the English one, else the Chinese one in English (or as is)."""
        return self.subtitle_english or self.subtitle_english_translated or self.subtitle_chinese
