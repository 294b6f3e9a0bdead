"""Prompts are versioned data files (annotators/prompts/<id>.toml), not strings in code."""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PROMPT_DIR = Path(__file__).parent / "prompts"


@dataclass(frozen=True)
class Prompt:
    id: str
    version: str
    system: str
    templates: dict[str, str]
    sha: str  # content hash: an edited file without a version bump still changes stage hashes

    def messages(self, template: str, **values: str) -> list[dict]:
        """System + user chat messages; `values` fill the template's {placeholders}."""
        return [
            {"role": "system", "content": self.system},
            {"role": "user", "content": self.templates[template].format(**values)},
        ]


@cache
def load_prompt(prompt_id: str, directory: Path = PROMPT_DIR) -> Prompt:
    path = directory / f"{prompt_id}.toml"
    raw = path.read_bytes()
    data = tomllib.loads(raw.decode("utf-8"))
    if data.get("id") != prompt_id:
        raise ValueError(f"{path}: id {data.get('id')!r} does not match the file name")
    return Prompt(
        id=data["id"],
        version=str(data["version"]),
        system=data["system"],
        templates=dict(data["templates"]),
        sha=hashlib.sha256(raw).hexdigest()[:12],
    )
