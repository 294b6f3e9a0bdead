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
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")  # lower-cased text; hyphens separate words
_CONCLUSION = re.compile(
    r"^(?:taken together|overall|in summary|in conclusion|therefore|thus|in short)\b", re.IGNORECASE
)


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

    @cache  # noqa: B019 - a lexicon lives as long as the process; built once per flag, not per text
    def _matcher(self, cues: bool) -> tuple[dict[str, str], int]:
        """Entries keyed by their words joined with single spaces, and the longest entry's length."""
        table = {
            " ".join(_WORD.findall(w)): head for w, head in (self.head_of | (self.cue_head_of if cues else {})).items()
        }
        return table, max(len(k.split()) for k in table)

    def labels_in(self, text: str, cues: bool = False) -> list[str]:
        """Lexicon emotions a text asserts, as group heads in order of first mention.

        Words under a nearby negation ("not angry") are skipped; a text with a concluding sentence
        ("Overall, ...") is read from its last one, as a reader would. With `cues`, phrases that
        point to an emotion without naming it count too (for reading a subtitle)."""
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]
        concluding = [s for s in sentences if _CONCLUSION.match(s)]
        scope = concluding[-1] if concluding else text
        table, longest = self._matcher(cues)
        # Word n-grams looked up in a dict, longest first, left to right: what one regex alternation
        # of every entry did, at a fraction of the cost (it was the gates' hottest line).
        words = list(_WORD.finditer(scope.lower()))
        found: dict[str, int] = {}
        i = 0
        while i < len(words):
            for n in range(min(longest, len(words) - i), 0, -1):
                head = table.get(" ".join(m.group() for m in words[i : i + n]))
                if head is not None:
                    start = words[i].start()
                    if not _NEGATION.search(scope[max(0, start - 40) : start]):
                        found.setdefault(head, start)
                    i += n
                    break
            else:
                i += 1
        return sorted(found, key=found.get)


@cache
def lexicon(path: Path = LEXICON_PATH) -> Lexicon:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    groups = tuple(
        Group(
            g["head"],
            g["zh"],
            g["valence"],
            tuple(w.lower() for w in g["words"]),
            tuple(c.lower() for c in g.get("cues", [])),
        )
        for g in data["group"]
    )
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
