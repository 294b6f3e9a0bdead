"""What each model role must answer: sent as `response_format` JSON schemas, used to validate replies."""

from __future__ import annotations

import functools
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from schemas.text_clean import strip_leaked_prefix

# Bounds go into the JSON schema, so constrained decoding itself guarantees a reply that ends: a
# model that rambles is cut by the grammar, not by max_tokens. EMER-Fine English descriptions
# average ~220 words (~1,300 characters); the bounds leave ample room.
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
Word = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]


def _without_scaffolding(text: str) -> str:
    cleaned = strip_leaked_prefix(text)
    if not cleaned:
        raise ValueError("nothing left after removing leaked prompt scaffolding")
    return cleaned


# Prose is cleaned while it is validated, so a reply that is only scaffolding or blank is re-asked.
Prose = Annotated[Text, AfterValidator(_without_scaffolding)]


class Reply(BaseModel):
    # Structured outputs need closed objects; extra keys from a model are an error, not data.
    model_config = ConfigDict(extra="forbid")

    @classmethod
    def from_prose(cls, text: str) -> Reply:
        """The reply read from a model's own words (a role with reply_format = "prose"); only replies whose
        meaning survives that say how."""
        raise NotImplementedError(f"{cls.__name__} cannot be read from prose: its role needs reply_format = json")

    @classmethod
    def reads_prose(cls) -> bool:
        return cls.from_prose.__func__ is not Reply.from_prose.__func__

    @classmethod
    def response_format(cls) -> dict:
        """The OpenAI `response_format` that makes vLLM constrain decoding to this model."""
        return _response_format(cls)


@functools.cache
def _response_format(cls: type[Reply]) -> dict:
    # Built once per reply model: generating a JSON schema costs more CPU than sending the request.
    return {
        "type": "json_schema",
        "json_schema": {"name": cls.__name__, "schema": cls.model_json_schema(), "strict": True},
    }


class ClueReply(Reply):
    """Audio or visual clue: what the signal shows and what it suggests about the person."""

    clues: Text = Field(description="The emotion-related clues observed in the signal")
    emotional_states: list[Word] = Field(max_length=12, description="The person's likely emotional states")

    @classmethod
    def from_prose(cls, text: str) -> ClueReply:
        # The method's pre-labellers describe the clues in prose and name no list of states: the description
        # is the clue, and the disambiguation reads the states from it.
        return cls(clues=text, emotional_states=[])


class DescriptionReply(Reply):
    """Disambiguation: the subtitle read in the light of both clues, merged into one description."""

    subtitle_analysis: Text = Field(description="Which words of the subtitle reveal the emotional state, and why")
    description: Prose = Field(
        description="Emotion-reasoning description: in the video ...; in the audio ...; in the text ..."
    )


class TranslationReply(Reply):
    translation: Prose


class LabelsReply(Reply):
    """Open-vocabulary labels: the clearly identifiable emotional states of the main character."""

    labels: list[Word] = Field(max_length=12, description="Lower-case emotion words; empty when none is clear")
