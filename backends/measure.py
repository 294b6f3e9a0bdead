"""The measurement backend: the measuring annotators (annotators/signals) run on the prepared media,
in the isolated decoder pool, since native code (Praat, WebRTC VAD, OpenCV, dlib, decord) may crash a process."""

from __future__ import annotations

from typing import Any

from annotators.signals.active_speaker import active_speaker
from annotators.signals.expressions import model_identity
from annotators.signals.faces import measure_video
from annotators.signals.prosody import measure_audio
from runtime.isolation import IsolatedPool
from schemas.signals import ClipSignals
from schemas.stage import StageOutcome
from stages.contract import Backend, ClipContext, Stage, StageInputs

# Bump when a measurement changes: stored signals are then re-measured. 1.1.0: measurements an older version
# took of audio cut short by a full disk are not trusted. 2.0.0: faces, landmarks and action units with dlib on
# frames decoded densely from the clip, expressions, optical-flow motion, the voice track, eGeMAPS, the active
# speaker.
MEASURE_VERSION = "2.1.0"


class MeasurementBackend(Backend):
    kind = "measure"

    def __init__(self, pool: IsolatedPool) -> None:
        self.pool = pool

    def identity(self, stage: Stage) -> dict[str, Any]:
        # The expression model's file too: a measurement taken while it was missing is taken again once it is there.
        return {"kind": self.kind, "version": MEASURE_VERSION, "expressions": model_identity()}

    def reads_media(self, stage: Stage) -> bool:
        return True

    def lineup_entry(self) -> dict[str, Any]:
        return {"models": ["measure"], "prompt": f"measure@{MEASURE_VERSION}", "media": "measured"}

    async def answer(self, stage: Stage, inputs: StageInputs, clip: ClipContext) -> StageOutcome:
        media = clip.media
        try:
            audio = await self.pool.run(measure_audio, media.wav) if media.wav else None
            # The clip decoded densely (8 frames/s): the mouth track needs more than the roles' 1 frame/s.
            visual = await self.pool.run(measure_video, clip.record.path)
            speaker = await self.pool.run(active_speaker, audio, visual, media.wav)
        except OSError:
            raise  # the disk or the system, not the clip: never checkpointed (engine/pipeline.py stops the run)
        except Exception as exc:  # a measurement that fails is this clip's error, kept with the row
            return StageOutcome(error=f"cannot measure: {type(exc).__name__}: {exc}")
        return StageOutcome(value=ClipSignals(audio=audio, visual=visual, active_speaker=speaker).model_dump())
