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


class PromptNotFound(FileNotFoundError):
    pass


@cache
def load_prompt(prompt_ref: str, directory: Path = PROMPT_DIR) -> Prompt:
    """A prompt by id (annotators/prompts/<id>.toml), or by the path of a .toml file of the same shape
    (a line-up's own prompts, outside the package)."""
    path = Path(prompt_ref) if prompt_ref.endswith(".toml") else directory / f"{prompt_ref}.toml"
    prompt_id = path.stem
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in directory.glob("*.toml")))
        raise PromptNotFound(f"no prompt {prompt_ref!r} ({path}): name one of {known}, or the path of a .toml file")
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
