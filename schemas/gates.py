"""Quality-gate verdicts: every row gets one per gate, kept in the dataset."""

from __future__ import annotations

from pydantic import BaseModel, Field


class GateVerdict(BaseModel):
    gate: str = Field(
        description="Gate name, e.g. validity, length, av_match, cross_validation, high_level, grounding"
    )
    passed: bool
    score: float | None = Field(None, description="The measured quantity the threshold applies to")
    threshold: float | None = None
    reason: str = Field(description="Why the row passed or failed, in words a reviewer can act on")


class LabelView(BaseModel):
    """What one annotator says of the clip's emotion, for cross-validation and the high-level filter.

    Every view records what it is made from (`basis`). A view that is a template of another view's
    measurements (a clue the signals backend wrote from the face or voice measurements) is kept for the
    record with `independent` false, and no gate counts it beside the measurement it templates."""

    source: str = Field(
        description="audio_clue, visual_clue, description, description_lexicon (the annotators' labels); "
        "face, voice, subtitle_sentiment (classifier views of the clip itself)"
    )
    labels: list[str] = Field(default_factory=list)
    basis: str = Field("", description="What the view is made from: the model, the classifier, the measurement")
    independent: bool = Field(
        True,
        description="False when the view templates another view's measurements, or no annotator wrote it (a skipped "
        "clue)",
    )
    valence: str | None = Field(None, description="positive | negative, when the view reads a valence")
    arousal: str | None = Field(None, description="high | low, when the view reads arousal")
    evidence: str = Field("", description="What the view measured, in words")
    abstained: str | None = Field(None, description="Why the view does not vote (no face, no speech, ...)")
