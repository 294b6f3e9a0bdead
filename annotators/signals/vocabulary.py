"""The signal annotators' words: the engine's emotion lexicon and the bilingual sentence templates."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

LEXICON_PATH = Path(__file__).resolve().parents[2] / "data" / "lexicon" / "emotion_groups.toml"
TEMPLATES_PATH = Path(__file__).with_name("templates.toml")
_NEGATION = re.compile(r"\b(?:not|no|never|without|hardly|n't)\b(?:\W+\w+){0,2}\W*$", re.IGNORECASE)
# Sentences that state a conclusion; when a text has one, its labels are read from the last.
_CONCLUSION = re.compile(r"^(?:taken together|overall|in summary|in conclusion|therefore|thus|in short)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Group:
    head: str
    zh: str
    valence: str
    words: tuple[str, ...]
    cues: tuple[str, ...] = ()


@dataclass(frozen=True)
class Lexicon:
    version: str
    groups: tuple[Group, ...]

    @cached_property
    def head_of(self) -> dict[str, str]:
        return {w: g.head for g in self.groups for w in g.words}

    def group(self, word: str) -> Group | None:
        head = self.head_of.get(word.lower().strip())
        return next((g for g in self.groups if g.head == head), None)

    def valence(self, word: str) -> str | None:
        g = self.group(word)
        return g.valence if g else None

    def zh(self, word: str) -> str | None:
        g = self.group(word)
        return g.zh if g else None

    def synonym_lists(self) -> list[list[str]]:
        """The groups as the EMER metric takes them: lists whose first word names the group."""
        return [list(g.words) for g in self.groups]

    @cached_property
    def cue_head_of(self) -> dict[str, str]:
        return {c: g.head for g in self.groups for c in g.cues}

    def labels_in(self, text: str, cues: bool = False) -> list[str]:
        """Lexicon emotions a text asserts, as group heads in order of first mention.

        Words under a nearby negation ("not angry") are skipped; a text with a concluding sentence
        ("Overall, ...") is read from its last one, as a reader would. With `cues`, phrases that
        point to an emotion without naming it count too (for reading a subtitle)."""
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]
        concluding = [s for s in sentences if _CONCLUSION.match(s)]
        scope = concluding[-1] if concluding else text
        table = self.head_of | (self.cue_head_of if cues else {})
        words = sorted(table, key=len, reverse=True)  # multi-word entries first
        pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)
        found: dict[str, int] = {}
        for match in pattern.finditer(scope):
            if _NEGATION.search(scope[max(0, match.start() - 40) : match.start()]):
                continue
            found.setdefault(table[match.group(1).lower()], match.start())
        return sorted(found, key=found.get)


@cache
def lexicon(path: Path = LEXICON_PATH) -> Lexicon:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    groups = tuple(Group(g["head"], g["zh"], g["valence"], tuple(w.lower() for w in g["words"]), tuple(c.lower() for c in g.get("cues", []))) for g in data["group"])
    return Lexicon(data["version"], groups)


@dataclass(frozen=True)
class Templates:
    version: str
    thresholds: dict[str, float]
    glossary: dict[str, str]
    sentences: dict[str, dict[str, str]]


@cache
def templates(path: Path = TEMPLATES_PATH) -> Templates:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return Templates(data["version"], data["thresholds"], data["glossary"], data["sentences"])


def join_en(words: list[str]) -> str:
    return ", ".join(words)


def join_zh(words: list[str]) -> str:
    return "、".join(words)
