"""Quality-gate verdicts: every row gets one per gate, kept in the dataset."""

from __future__ import annotations

from pydantic import BaseModel, Field


class GateVerdict(BaseModel):
    gate: str = Field(description="Gate name, e.g. validity, length, av_match, cross_validation, grounding")
    passed: bool
    score: float | None = Field(None, description="The measured quantity the threshold applies to")
    threshold: float | None = None
    reason: str = Field(description="Why the row passed or failed, in words a reviewer can act on")


class LabelView(BaseModel):
    """Labels one independent annotator gave the clip, for cross-validation."""

    source: str = Field(description="Where the labels come from: audio_clue, visual_clue, description, signals, ...")
    labels: list[str] = Field(default_factory=list)
