"""What is measured from the clip itself, with no model weights: prosody, voice activity, faces."""

from __future__ import annotations

from pydantic import BaseModel, Field


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


class VisualSignals(BaseModel):
    frames: int
    face_ratio: float = Field(description="Share of sampled frames with a frontal face")
    smile_ratio: float = Field(description="Share of face frames with a smile inside the face")
    motion: float = Field(description="Mean absolute difference between consecutive frames, 0..1")
    brightness: float = Field(description="Mean luma, 0..1")


class ClipSignals(BaseModel):
    audio: AudioSignals | None = None
    visual: VisualSignals | None = None
