"""Measure the clip: voice activity and prosody from the audio, faces and motion from the frames.

Runs for every clip whatever the line-up: the A/V-match and grounding gates judge by it, and it is
the signal annotators' input. Native code (Praat, WebRTC VAD, OpenCV) runs in the isolated pool.
"""

from __future__ import annotations

from annotators.signals.faces import measure_frames
from annotators.signals.prosody import measure_audio
from runtime.isolation import IsolatedPool
from schemas.config import stable_hash
from schemas.media import PreparedMedia
from schemas.signals import ClipSignals
from schemas.stage import StageOutcome

MEASURE_VERSION = "1.0.0"  # bump when a measurement changes: stored signals are then re-measured


class MeasureSignalsStage:
    name = "signals"

    def __init__(self, pool: IsolatedPool, media_hash: str) -> None:
        self.pool = pool
        self.config_hash = stable_hash(["signals", MEASURE_VERSION, media_hash])

    async def run(self, media: PreparedMedia) -> StageOutcome:
        try:
            audio = await self.pool.run(measure_audio, media.wav) if media.wav else None
            visual = await self.pool.run(measure_frames, media.frames)
        except Exception as exc:  # a measurement that fails is this clip's error, kept with the row
            return StageOutcome(error=f"cannot measure: {type(exc).__name__}: {exc}")
        return StageOutcome(value=ClipSignals(audio=audio, visual=visual).model_dump())
