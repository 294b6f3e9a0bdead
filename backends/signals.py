"""The measuring annotators as a backend: stages answered from the clip's measurements with templates
and the emotion lexicon (annotators/signals) instead of a served model. Nothing is requested, so their
provenance records zero attempts and the server `local`.

Each stage this backend can answer has one function here, from the stage's typed inputs (and the
measurements, where it reads them) to the replies the stage combines, as a model's would be."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from annotators.signals.acoustics import READING_VERSION, read_voice
from annotators.signals.clues import acoustic_clue, visual_clue
from annotators.signals.describe import NotATemplate, describe, translate_to_zh
from annotators.signals.sentiment import vader_version
from annotators.signals.vocabulary import lexicon, templates
from backends.measure import MEASURE_VERSION
from schemas.replies import DescriptionReply, LabelsReply, Reply, TranslationReply
from schemas.row import ModelCall
from schemas.signals import ClipSignals, CorpusNorms
from schemas.stage import StageOutcome
from stages.contract import Backend, ClipContext, Stage, StageInputs

VERSION = (
    f"measure-{MEASURE_VERSION}+templates-{templates().version}+lexicon-{lexicon().version}"
    f"+acoustics-{READING_VERSION}+vader-{vader_version()}"  # the description reads the words' sentiment
)


@dataclass(frozen=True)
class SignalAnswer:
    # The measurements the answer is made from: "audio", "visual", and "corpus" (the corpus's acoustic norms,
    # then passed to `replies` as `norms=`).
    reads: tuple[str, ...]
    replies: Callable[..., dict[str, Reply]]


def _audio_clue(inputs: Any, signals: ClipSignals, norms: CorpusNorms | None) -> dict[str, Reply]:
    # The voice judged against the corpus (annotators/signals/acoustics.py), not fixed dB thresholds.
    return {"without_subtitle": acoustic_clue(signals.audio, read_voice(signals.audio, norms))}


def _describe(inputs: Any, signals: ClipSignals, norms: CorpusNorms | None) -> dict[str, Reply]:
    # Written from the measurements the clues template (the voice read against the corpus, the face, the
    # active speaker) and the subtitle, not from the clues' text.
    analysis, description = describe(inputs.subtitle, signals, read_voice(signals.audio, norms))
    return {"description": DescriptionReply(subtitle_analysis=analysis, description=description)}


def _untranslatable(inputs: Any, signals: ClipSignals) -> dict[str, Reply]:
    raise NotATemplate(
        "the signals backend renders its own English sentences in Chinese; it cannot translate a free Chinese subtitle"
    )


# Measurements do not read the subtitle: one clue serves both asks.
ANSWERS: dict[str, SignalAnswer] = {
    "audio_clue": SignalAnswer(("audio", "corpus"), _audio_clue),
    "visual_clue": SignalAnswer(("visual",), lambda i, s: {"without_subtitle": visual_clue(s.visual)}),
    "disambiguation": SignalAnswer(("audio", "visual", "corpus"), _describe),
    "subtitle_translation": SignalAnswer((), _untranslatable),
    "translation": SignalAnswer(
        (),
        lambda i, s: {"en_to_zh": TranslationReply(translation=translate_to_zh(i.description_en, i.subtitle_chinese))},
    ),
    "labels": SignalAnswer((), lambda i, s: {"labels": LabelsReply(labels=lexicon().labels_in(i.description_en))}),
}


class SignalsBackend(Backend):
    kind = "signals"

    def identity(self, stage: Stage) -> dict[str, Any]:
        return {"kind": self.kind, "version": VERSION}

    def reads_measurements(self, stage: Stage) -> tuple[str, ...]:
        return ANSWERS[stage.name].reads

    def lineup_entry(self) -> dict[str, Any]:
        return {"models": ["signals"], "prompt": f"signals@{VERSION}", "media": "measured"}

    async def answer(self, stage: Stage, inputs: StageInputs, clip: ClipContext) -> StageOutcome:
        call = ModelCall(
            stage=stage.name,
            prompt_id=f"signals/{stage.name}",
            prompt_version=VERSION,
            model="signals",
            server="local",
            sampling="{}",
            config_hash=self.identity_hash(stage),
            attempts=0,
        )
        try:
            answer = ANSWERS[stage.name]
            given = {"norms": clip.norms} if "corpus" in answer.reads else {}
            replies = answer.replies(inputs, clip.signals or ClipSignals(), **given)
            value = stage.combine(inputs, replies)
        except (NotATemplate, ValidationError) as exc:  # permanent for this input: checkpointed as such
            return StageOutcome(calls=[call], error=str(exc))
        return StageOutcome(value=value, calls=[call])
