"""The roles on the `signals` backend: the same stage interfaces, answered by the built-in
signal annotators (annotators/signals) instead of a served model. Nothing is requested, so their
provenance records zero attempts and the server `local`."""

from __future__ import annotations

from typing import Callable

from pydantic import ValidationError

from annotators.signals.clues import acoustic_clue, visual_clue
from annotators.signals.describe import NotATemplate, describe, translate_to_zh
from annotators.signals.vocabulary import lexicon, templates
from stages.signals import MEASURE_VERSION
from schemas.config import stable_hash
from schemas.manifest import ClipRecord
from schemas.media import PreparedMedia
from schemas.replies import ClueReply, DescriptionReply, LabelsReply, Reply, TranslationReply
from schemas.row import ClueSet, ModelCall
from schemas.signals import ClipSignals
from schemas.stage import StageOutcome

VERSION = f"measure-{MEASURE_VERSION}+templates-{templates().version}+lexicon-{lexicon().version}"


class SignalStage:
    def __init__(self, name: str) -> None:
        self.name = name
        self.config_hash = stable_hash(["signals-backend", name, VERSION])

    def _outcome(self, reply: Callable[[], Reply]) -> StageOutcome:
        call = ModelCall(stage=self.name, prompt_id=f"signals/{self.name}", prompt_version=VERSION, model="signals", server="local", sampling="{}", config_hash=self.config_hash, attempts=0)
        try:
            value = reply()
        except (NotATemplate, ValidationError) as exc:  # permanent for this input: checkpointed as such
            return StageOutcome(calls=[call], error=str(exc))
        return StageOutcome(value=value if isinstance(value, dict) else value.model_dump(), calls=[call])


class SignalAudioClueStage(SignalStage):
    def __init__(self) -> None:
        super().__init__("audio_clue")

    async def run(self, record: ClipRecord, media: PreparedMedia, subtitle: str | None, signals: ClipSignals | None = None) -> StageOutcome:
        # Measurements do not read the subtitle: one clue serves both asks.
        return self._outcome(lambda: ClueSet(without_subtitle=acoustic_clue(signals and signals.audio)).model_dump())


class SignalVisualClueStage(SignalStage):
    def __init__(self) -> None:
        super().__init__("visual_clue")

    async def run(self, record: ClipRecord, media: PreparedMedia, subtitle: str | None, signals: ClipSignals | None = None) -> StageOutcome:
        return self._outcome(lambda: ClueSet(without_subtitle=visual_clue(signals and signals.visual)).model_dump())


class SignalDisambiguationStage(SignalStage):
    def __init__(self) -> None:
        super().__init__("disambiguation")

    async def run(self, subtitle, audio_clue, visual_clue, audio: ClueSet | None = None, visual: ClueSet | None = None, signals: ClipSignals | None = None) -> StageOutcome:
        def reply() -> DescriptionReply:
            analysis, description = describe(subtitle, audio, visual, signals)
            return DescriptionReply(subtitle_analysis=analysis, description=description)

        return self._outcome(reply)


class SignalTranslationStage(SignalStage):
    def __init__(self, name: str, direction: str) -> None:
        super().__init__(name)
        self.direction = direction

    async def run(self, text: str) -> StageOutcome:
        def reply() -> TranslationReply:
            if self.direction != "en_to_zh":
                raise NotATemplate("the signals backend renders its own English sentences in Chinese; it cannot translate a free Chinese subtitle")
            return TranslationReply(translation=translate_to_zh(text))

        return self._outcome(reply)


class SignalLabelsStage(SignalStage):
    def __init__(self) -> None:
        super().__init__("labels")

    async def run(self, description: str) -> StageOutcome:
        return self._outcome(lambda: LabelsReply(labels=lexicon().labels_in(description)))


def lineup_entry() -> dict:
    return {"models": ["signals"], "prompt": f"signals@{VERSION}", "media": "measured"}


