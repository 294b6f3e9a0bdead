"""What each model role must answer: sent as `response_format` JSON schemas, used to validate replies."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Reply(BaseModel):
    # Structured outputs need closed objects; extra keys from a model are an error, not data.
    model_config = ConfigDict(extra="forbid")

    @classmethod
    def response_format(cls) -> dict:
        """The OpenAI `response_format` that makes vLLM constrain decoding to this model."""
        return {
            "type": "json_schema",
            "json_schema": {"name": cls.__name__, "schema": cls.model_json_schema(), "strict": True},
        }


class ClueReply(Reply):
    """Audio or visual clue: what the signal shows and what it suggests about the person."""

    clues: str = Field(description="The emotion-related clues observed in the signal")
    emotional_states: list[str] = Field(description="The person's likely emotional states")


class DescriptionReply(Reply):
    """Disambiguation: the subtitle read in the light of both clues, merged into one description."""

    subtitle_analysis: str = Field(description="Which words of the subtitle reveal the emotional state, and why")
    description: str = Field(description="Emotion-reasoning description: in the video ...; in the audio ...; in the text ...")


class TranslationReply(Reply):
    translation: str


class LabelsReply(Reply):
    """Open-vocabulary labels: the clearly identifiable emotional states of the main character."""

    labels: list[str] = Field(description="Lower-case emotion words; empty when none is clear")
