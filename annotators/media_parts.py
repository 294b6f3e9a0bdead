"""Media as OpenAI chat content parts, in the form each role's configuration asks for."""

from __future__ import annotations

import base64
from pathlib import Path

from schemas.config import MediaTransport, RoleConfig

_MIME = {
    ".wav": "audio/wav",
    ".mp4": "video/mp4",
    ".avi": "video/x-msvideo",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
}


def _url(path: Path, media_root: str | None) -> str:
    """A file:// URL when the server can read our files (--allowed-local-media-path), else inline data."""
    if media_root is not None:
        resolved = path.resolve()
        if not resolved.is_relative_to(Path(media_root).resolve()):
            raise ValueError(f"{resolved} is outside media_root {media_root}: the server cannot read it")
        return resolved.as_uri()
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"data:{_MIME.get(path.suffix.lower(), 'application/octet-stream')};base64,{data}"


def audio_parts(config: RoleConfig, wav: Path) -> list[dict]:
    if config.media is MediaTransport.none:
        return []  # a text-only line-up (no audio model reachable): the prompt goes without media
    if config.media is MediaTransport.input_audio:
        data = base64.b64encode(wav.read_bytes()).decode("ascii")
        return [{"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}]
    if config.media is MediaTransport.audio_url:
        return [{"type": "audio_url", "audio_url": {"url": _url(wav, config.media_root)}}]
    raise ValueError(f"media transport {config.media.value!r} cannot carry audio")


def visual_parts(config: RoleConfig, frames: list[Path], video: Path) -> list[dict]:
    if config.media is MediaTransport.none:
        return []  # a text-only line-up (e.g. CPU, where no vision model can be served)
    if config.media is MediaTransport.frames:
        return [{"type": "image_url", "image_url": {"url": _url(f, config.media_root)}} for f in frames]
    if config.media is MediaTransport.video_url:
        return [{"type": "video_url", "video_url": {"url": _url(video, config.media_root)}}]
    raise ValueError(f"media transport {config.media.value!r} cannot carry video")


def with_media(messages: list[dict], parts: list[dict]) -> list[dict]:
    """Put media parts before the text of the last user message (how the served models were trained)."""
    if not parts:
        return messages
    *head, last = messages
    return [*head, {"role": last["role"], "content": [*parts, {"type": "text", "text": last["content"]}]}]
