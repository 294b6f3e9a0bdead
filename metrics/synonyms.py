"""Synonym groups for the EMER metric, and the word -> group-head mapping they define.

The authors grouped each clip's labels with an LLM ("a list containing multiple lists") and mapped every
word to the first word of its group (MERTools MER2024/main-ov.py, `calculate_openset_overlap_rate_mer2024`).
Groups come from a file here (metrics/synonym_llm.py asks a model instead):

- JSON: a list of lists (global groups), or `{clip_name: list of lists}` (per clip; a value may also
  be the model's raw text, `[['a', 'b'], ['c']]`, read the authors' way);
- the engine's lexicon TOML (`data/lexicon/emotion_groups.toml`): `[[group]]` tables, groups = `words`;
- a folder of `{clip_name}.npy` files, each the model's raw reply, or the authors' published
  `openset-synonym.zip` itself (MERTools MER2024/ov_store: those files, zipped).
"""

from __future__ import annotations

import io
import json
import re
import tomllib
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from schemas.errors import UserError

Groups = list[list[str]]
EXPECTED = (
    "--groups takes a JSON list of lists (or {clip: list of lists}), the lexicon TOML, a folder of {clip}.npy "
    "replies, or the authors' openset-synonym.zip"
)


class GroupsFileError(UserError, ValueError):
    """A synonym-groups file that cannot be read; the message names it and says what is expected."""


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
    if zipfile.is_zipfile(path):
        return _from_zip(path)
    if path.suffix == ".toml":
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise GroupsFileError(f"{path}: not a lexicon TOML ({exc}); {EXPECTED}") from None
        if "group" not in data:
            raise GroupsFileError(f"{path}: a lexicon TOML has [[group]] tables with `words`")
        from annotators.signals.vocabulary import lexicon

        # The lexicon's own reading of its groups, their `forms` too ("wrath" falls with "angry"): the groups the
        # lexicon labeller and the gates use.
        groups = lexicon(path.resolve(), None).synonym_lists()
        return SynonymGroups(global_groups=groups, source=f"file:{path.name}")
    return _from_json(path.read_bytes(), path, f"file:{path.name}")


def _from_json(raw: bytes, path: Path | str, source: str) -> SynonymGroups:
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise GroupsFileError(f"{path}: byte {exc.start} is not UTF-8 text: not a groups file; {EXPECTED}") from None
    except json.JSONDecodeError as exc:
        raise GroupsFileError(
            f"{path}: line {exc.lineno}, column {exc.colno}: not JSON ({exc.msg}); {EXPECTED}"
        ) from None
    if isinstance(data, list):
        return SynonymGroups(global_groups=_groups(data, path), source=source)
    if isinstance(data, dict):
        return SynonymGroups(per_clip={str(k): _groups(v, path) for k, v in data.items()}, source=source)
    raise GroupsFileError(f"{path}: expected a list of lists or {{clip: list of lists}}, got {type(data).__name__}")


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
    raise GroupsFileError(f"{path}: groups must be a list of lists of words (or the reply text), got {value!r:.80}")


def _reply(data: bytes | Path, where: str) -> Groups:
    import numpy as np

    try:
        # The authors saved each reply with np.save(path, response_text): a unicode scalar, no pickle.
        reply = np.load(io.BytesIO(data) if isinstance(data, bytes) else data, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise GroupsFileError(f"{where}: not a saved reply (.npy of the reply text): {exc}") from None
    return parse_group_lists(str(reply.tolist()))


def _metadata(name: str) -> bool:
    # macOS archivers add __MACOSX/ and AppleDouble `._x` companions: not replies.
    parts = PurePosixPath(name).parts
    return "__MACOSX" in parts or parts[-1].startswith(".")


def _from_npy_folder(folder: Path) -> SynonymGroups:
    per_clip = {npy.stem: _reply(npy, str(npy)) for npy in sorted(folder.glob("*.npy")) if not _metadata(npy.name)}
    if not per_clip:
        raise GroupsFileError(f"{folder}: no {{clip}}.npy synonym files; {EXPECTED}")
    return SynonymGroups(per_clip=per_clip, source=f"file:{folder.name}/")


def _from_zip(path: Path) -> SynonymGroups:
    """The authors' openset-synonym.zip as published (its {clip}.npy replies, in a folder or not), or a
    zip of one JSON groups file."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if not m.is_dir() and not _metadata(m.filename)]
            replies = sorted((m for m in members if m.filename.endswith(".npy")), key=lambda m: m.filename)
            if replies:
                per_clip = {
                    PurePosixPath(m.filename).stem: _reply(archive.read(m), f"{path}:{m.filename}") for m in replies
                }
                return SynonymGroups(per_clip=per_clip, source=f"file:{path.name}")
            documents = [m for m in members if m.filename.endswith(".json")]
            if len(documents) == 1:
                return _from_json(archive.read(documents[0]), f"{path}:{documents[0].filename}", f"file:{path.name}")
    except (zipfile.BadZipFile, OSError) as exc:
        raise GroupsFileError(f"{path}: a zip that cannot be read ({exc})") from None
    found = ", ".join(m.filename for m in members[:3]) or "nothing"
    raise GroupsFileError(
        f"{path}: a zip of {{clip}}.npy replies (or of one JSON groups file) is expected; found {found}"
    )


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
