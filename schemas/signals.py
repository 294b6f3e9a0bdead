"""What is measured from the clip itself, with no weights downloaded: prosody and eGeMAPS, voice activity,
faces and their landmarks, facial action units, facial expressions, the active speaker; and the corpus
statistics the acoustic readings are judged against.

Every field a newer measurement adds has a default, so rows measured by an older version still load."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field, PlainSerializer


def _from_pairs(value: Any) -> Any:
    if isinstance(value, list):  # as stored: [{"name": ..., "value": ...}, ...]
        return {item["name"]: item["value"] for item in value}
    return value


# A name -> number table (eGeMAPS functionals, expression probabilities). A dict in Python, stored as a list of
# {name, value} pairs: Arrow's map type, which a dict would become, is one Hugging Face `datasets` cannot hold.
NamedValues = Annotated[
    dict[str, float],
    BeforeValidator(_from_pairs),
    PlainSerializer(lambda d: [{"name": k, "value": v} for k, v in d.items()], return_type=list[dict[str, Any]]),
]


class AudioSignals(BaseModel):
    seconds: float = Field(description="Length of the analysed audio")
    speech_seconds: float = Field(description="Voiced speech found by the voice-activity detector")
    speech_ratio: float = Field(description="speech_seconds / seconds")
    loudness_db: float | None = Field(
        None,
        description="Median intensity of speech, dB as Praat reports it (full scale = 91 dB); None without speech",
    )
    loudness_range_db: float | None = Field(None, description="95th minus 5th percentile of intensity over speech")
    pitch_hz: float | None = Field(None, description="Median F0 of voiced frames")
    pitch_range_semitones: float | None = Field(
        None, description="Spread of F0 (90th over 10th percentile), semitones"
    )
    speaking_rate: float | None = Field(None, description="Syllable nuclei per second of speech")
    pauses: int = Field(0, description="Silences of 0.3 s or more between speech")
    voice_track_step_s: float = Field(0.1, description="Time step of voice_track")
    voice_track: list[float] = Field(
        default_factory=list, description="Share of voice activity in each step of the track, 0..1 (the VAD's)"
    )
    egemaps: NamedValues | None = Field(
        None, description="openSMILE eGeMAPSv02 functionals of the whole track (feature name -> value)"
    )


class ActionUnit(BaseModel):
    """A facial action (FACS) measured from landmark geometry, summarised over the clip's face frames."""

    au: str = Field(description="FACS code, e.g. AU12; AU1_2 for the brow raise that AU1 and AU2 make together")
    name: str = Field(description="What the face does, e.g. 'lip corner puller (smile)'")
    active_ratio: float = Field(description="Share of face frames in which the action is present, 0..1")
    peak: float = Field(description="Strongest intensity measured, 0..1 (relative to the face's own neutral)")
    series: list[float | None] = Field(
        default_factory=list, description="Intensity per analysed frame (None where no face was found)"
    )


class VisualSignals(BaseModel):
    frames: int
    face_ratio: float = Field(description="Share of analysed frames with a face found")
    smile_ratio: float = Field(description="Share of face frames with a smile (AU12 present)")
    motion: float = Field(description="Movement in the frames, 0..1 (see annotators/signals/faces.py)")
    brightness: float = Field(description="Mean luma, 0..1")
    detector: str | None = Field(None, description="Face detector and landmark model that measured the faces")
    frame_times: list[float] = Field(default_factory=list, description="Time (s) of each analysed frame")
    mouth_opening: list[float | None] = Field(
        default_factory=list, description="Lip gap over face size per analysed frame (None where no face)"
    )
    action_units: list[ActionUnit] = Field(default_factory=list)
    face_size: float | None = Field(
        None, description="Median height of the face box over the frame height (None without a face)"
    )
    blinks: int | None = Field(None, description="Eye closures (AU45) counted over the analysed frames")
    head_yaw_deg: float | None = Field(None, description="Median head turn, degrees (0 = facing the camera)")
    head_pitch_deg: float | None = Field(None, description="Median head tilt up/down, degrees")
    head_movement_deg: float | None = Field(None, description="Spread of the head pose over the clip, degrees")
    expressions: NamedValues | None = Field(
        None, description="Mean facial-expression probabilities over the face crops (class -> probability)"
    )
    expression_model: str | None = Field(
        None,
        description="The expression classifier and its weights' origin; when `expressions` is None because the "
        "classifier could not run: 'not run: <why, and the command that fixes it>'",
    )


class ActiveSpeaker(BaseModel):
    """Is the visible face the one speaking? Mouth movement correlated with the voice-activity track."""

    verdict: str = Field(
        description="speaks | out_of_sync (the mouth moves, not with the voice) | still_face | no_face | no_speech | "
        "uncertain (too few frames, or a face too small to read its lips)"
    )
    score: float | None = Field(None, description="Correlation of mouth movement with voice activity, -1..1")
    lag_s: float | None = Field(None, description="Shift of the mouth track that correlates best, seconds")
    frames_compared: int = 0
    evidence: str = Field("", description="The measurement in words")


class ClipSignals(BaseModel):
    audio: AudioSignals | None = None
    visual: VisualSignals | None = None
    active_speaker: ActiveSpeaker | None = None


class FeatureNorm(BaseModel):
    median: float
    iqr: float = Field(description="Interquartile range (75th minus 25th percentile)")
    clips: int


class CorpusNorms(BaseModel):
    """Statistics of the corpus's measured speech: acoustic readings (arousal and its evidence) are judged
    relative to these, not against fixed dB or semitone thresholds."""

    clips: int = 0
    features: dict[str, FeatureNorm] = Field(default_factory=dict)
    source: str = Field("", description="Where the norms come from, e.g. '412 clips of this corpus'")


class AcousticReading(BaseModel):
    """One clip's voice read against the corpus norms."""

    arousal: float | None = Field(None, description="Relative arousal, about -1 (subdued) .. +1 (aroused)")
    level: str = Field("unknown", description="high | mid | low | unknown")
    evidence: list[str] = Field(default_factory=list, description="e.g. 'louder than 85% of the corpus'")
