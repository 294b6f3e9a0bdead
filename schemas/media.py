"""What media prep leaves for the model roles: files in the content-hash cache."""

from __future__ import annotations

from pydantic import BaseModel


class PreparedMedia(BaseModel):
    frames: list[str]  # JPEG paths, in time order
    frame_times: list[float]  # seconds
    wav: str | None = None  # 16 kHz mono PCM, at most audio_max_seconds
