"""Synonym groups for the EMER metric, and the word -> group-head mapping they define.

The authors grouped each clip's labels with an LLM ("a list containing multiple lists") and mapped every
word to the first word of its group (MERTools MER2024/main-ov.py, `calculate_openset_overlap_rate_mer2024`).
Groups come from a file here (metrics/synonym_llm.py asks a model instead):

- JSON: a list of lists (global groups), or `{clip_name: list of lists}` (per clip; a value may also
  be the model's raw text, `[['a', 'b'], ['c']]`, read the authors' way);
- the engine's lexicon TOML (`data/lexicon/emotion_groups.toml`): `[[group]]` tables, groups = `words`;
- a folder of `{clip_name}.npy` files, each the model's raw reply: the layout of the authors'
  published `openset-synonym.zip`.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

Groups = list[list[str]]

# The authors' `listlist_to_list` (MERTools toolkit/utils/functions.py): split on brackets, then each
# inner list on quotes; pieces that are only "," or blank are separators.
_BRACKETS = re.compile(r"[\[\]]")
_QUOTES = re.compile(r"['\"]")


def parse_group_lists(text: str) -> Groups:
    """`"[['happy', 'joyful'], ['sad']]"` -> `[['happy', 'joyful'], ['sad']]`."""
    groups = []
    for chunk in _BRACKETS.split(text):
        if chunk.strip() in ("", ","):
            continue
        words = [w.strip() for w in _QUOTES.split(chunk) if w.strip() not in ("", ",")]
        if words:
            groups.append(words)
    return groups


def synonym_map(groups: Iterable[Iterable[str]]) -> dict[str, str]:
    """Every word -> the first word of its group, lower-cased like the labels it will be looked up with.

    A word in two groups ends in the later one: the authors fill one dict group by group."""
    mapping: dict[str, str] = {}
    for group in groups:
        words = [w.lower().strip() for w in group if w and w.strip()]
        for word in words:
            mapping[word] = words[0]
    return mapping


@dataclass
class SynonymGroups:
    """Global groups, per-clip groups, or both: a clip's own groups win when it has them."""

    global_groups: Groups = field(default_factory=list)
    per_clip: dict[str, Groups] = field(default_factory=dict)
    source: str = "none"  # what the groups are, for the report: "file:PATH", "lexicon", "llm:MODEL"
    _maps: dict[str | None, dict[str, str]] = field(default_factory=dict, repr=False)

    def groups_for(self, clip: str | None = None) -> Groups:
        return self.per_clip[clip] if clip in self.per_clip else self.global_groups

    def mapping(self, clip: str | None = None) -> dict[str, str]:
        """The word -> head mapping for `clip` (its own groups if any, else the global ones)."""
        key = clip if clip in self.per_clip else None
        if key not in self._maps:
            self._maps[key] = synonym_map(self.groups_for(clip))
        return self._maps[key]

    def has_clip(self, clip: str) -> bool:
        return clip in self.per_clip


def load_groups(path: str | Path) -> SynonymGroups:
    """Groups from a JSON file, the lexicon TOML, or a folder of per-clip `.npy` replies."""
    path = Path(path)
    if path.is_dir():
        return _from_npy_folder(path)
    if path.suffix == ".toml":
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        if "group" not in data:
            raise ValueError(f"{path}: a lexicon TOML has [[group]] tables with `words`")
        return SynonymGroups(global_groups=[list(g["words"]) for g in data["group"]], source=f"file:{path.name}")
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, list):
        return SynonymGroups(global_groups=_groups(data, path), source=f"file:{path.name}")
    if isinstance(data, dict):
        return SynonymGroups(per_clip={str(k): _groups(v, path) for k, v in data.items()}, source=f"file:{path.name}")
    raise ValueError(f"{path}: expected a list of lists or {{clip: list of lists}}, got {type(data).__name__}")


def lexicon_groups(path: Path | None = None) -> SynonymGroups:
    """The engine's own vocabulary (data/lexicon/emotion_groups.toml): the default when nothing else is given."""
    from annotators.signals.vocabulary import LEXICON_PATH

    groups = load_groups(path or LEXICON_PATH)
    groups.source = "lexicon"
    return groups


def _groups(value: object, path: Path) -> Groups:
    if isinstance(value, str):  # a model's raw reply, stored as text
        return parse_group_lists(value)
    if isinstance(value, list) and all(isinstance(g, list) and all(isinstance(w, str) for w in g) for g in value):
        return [list(g) for g in value]
    raise ValueError(f"{path}: groups must be a list of lists of words (or the reply text), got {value!r:.80}")


def _from_npy_folder(folder: Path) -> SynonymGroups:
    import numpy as np

    per_clip = {}
    for npy in sorted(folder.glob("*.npy")):
        # The authors saved each reply with np.save(path, response_text): a unicode scalar, no pickle.
        per_clip[npy.stem] = parse_group_lists(str(np.load(npy, allow_pickle=False).tolist()))
    if not per_clip:
        raise ValueError(f"{folder}: no {{clip}}.npy synonym files")
    return SynonymGroups(per_clip=per_clip, source=f"file:{folder.name}/")


def as_mapping(
    groups: Mapping[str, str] | Iterable[Iterable[str]] | SynonymGroups | None, clip: str | None = None
) -> Mapping[str, str]:
    """Whatever a caller holds (a word -> head dict, a list of lists, SynonymGroups, nothing) as a mapping."""
    if groups is None:
        return {}
    if isinstance(groups, SynonymGroups):
        return groups.mapping(clip)
    if isinstance(groups, Mapping):
        return {str(k).lower().strip(): str(v).lower().strip() for k, v in groups.items()}
    return synonym_map(groups)
