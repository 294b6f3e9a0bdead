"""Measure the clip: voice activity and prosody from the audio, faces and motion from the frames.

Runs for every clip whatever the line-up: the A/V-match and grounding gates judge by it, and the
measuring annotators (backends/signals.py) answer from it. The measurement backend
(backends/measure.py) runs the native code (Praat, WebRTC VAD, OpenCV) in the isolated pool.
"""

from __future__ import annotations

from schemas.row import CoarseRow
from schemas.signals import ClipSignals
from stages.contract import Stage, StageInputs


class MeasureInputs(StageInputs):
    clip_status: str  # "ok" has audio to measure; "silent" is measured from the frames only

    @property
    def hears(self) -> bool:
        return self.clip_status == "ok"


class MeasureSignalsStage(Stage[MeasureInputs]):
    name = "signals"
    role = "signals"
    inputs = MeasureInputs
    reply = ClipSignals
    writes = ("signals",)
    # The prepared audio; the picture is decoded from the clip itself, densely (annotators/signals/faces.py), so
    # the roles' frame sampling does not enter the measurement's key (the clip's content hash does).
    media = ("audio",)

    def write(self, row: CoarseRow, value: dict) -> None:
        row.signals = ClipSignals.model_validate(value)
