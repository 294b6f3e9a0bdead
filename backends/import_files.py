"""Readers for files of existing outputs keyed by clip name, which the import backend answers from
(backends/imported.py). A file holds one kind of answer per clip: a text (a clue or a description) or a
label list.

- CSV: a `name` column and the column holding the answer (`column`; default `description` for a text,
  `openset` for labels, whose cells read as the authors' label CSVs do: metrics/openset.py). Encodings as
  every table a user gives (schemas/text_tables.py). A `subtitle_analysis` column, when there is one, is kept.
- JSONL: one JSON object per line with a string `name` and the field (`column`, same defaults); labels as
  a JSON list of strings or a list cell like the CSV's.
- npz, in the layout the authors published their OV-MER results in, one pair per MLLM:
  `output-reason-<mllm>-eng.npz` holds one pickled dict under `name2reason` (clip -> description), and
  `*-openset.npz` parallel arrays `filenames` and `fileitems` (cells like "[confusion, helplessness]", no
  quotes: read by the authors' `string_to_list` rule). Pickles go through the allow-list of schemas/npz.py.

A file that cannot be read as its format is one ImportFileError naming it and what is wrong; an entry that
cannot be used (an empty text, a broken label cell) is that clip's problem, reported on its row.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import pickle
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from metrics.openset import MalformedCell, parse_openset_strict
from schemas.config import IMPORT_SUFFIXES
from schemas.errors import UserError
from schemas.npz import read_npz
from schemas.text_tables import decode_text_table

Holds = Literal["text", "labels"]
DEFAULT_COLUMN: dict[Holds, str] = {"text": "description", "labels": "openset"}
ANALYSIS_COLUMN = "subtitle_analysis"
REASON_KEY, NAMES_KEY, ITEMS_KEY = "name2reason", "filenames", "fileitems"
WHAT: dict[Holds, str] = {"text": "descriptions", "labels": "label lists"}


class ImportFileError(UserError, ValueError):
    """A file of outputs that cannot be read as its format: one line naming the file and what is wrong."""


@dataclass(frozen=True)
class ImportedFile:
    path: Path
    sha256: str
    format: str
    holds: Holds
    entries: Mapping[str, str | list[str]]  # clip name -> its text, or its labels
    problems: Mapping[str, str] = field(default_factory=dict)  # clip name -> why its entry cannot be used
    analyses: Mapping[str, str] = field(default_factory=dict)  # clip name -> its subtitle analysis, when given

    @property
    def model(self) -> str:
        return model_name(self.path)


def model_name(path: Path) -> str:
    """The MLLM a file's name says wrote it: `output-reason-salmonn-eng.npz` and `salmonn-openset.npz` -> salmonn;
    any other file its stem."""
    stem = path.name.removesuffix(path.suffix)
    stem = re.sub(r"-(eng|chi)$", "", stem.removesuffix("-openset"))
    return stem.removeprefix("output-reason-") or stem


def file_sha256(path: str | Path) -> str:
    return _sha256(*_stat_key(Path(path)))


@functools.lru_cache(maxsize=64)
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _stat_key(path: Path) -> tuple[str, int, int]:
    try:
        stat = path.stat()
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return str(path.resolve()), stat.st_mtime_ns, stat.st_size


def read_import(path: str | Path, holds: Holds, format: str | None = None, column: str | None = None) -> ImportedFile:
    """The file's entries, read once per content (cached by path, modification time and size: the pre-flight
    check and the engine read it once between them)."""
    path = Path(path)
    format = format or IMPORT_SUFFIXES.get(path.suffix.lower())
    if format is None:
        raise ImportFileError(f"{path}: cannot tell its format from its name; set format to csv, jsonl or npz")
    return _read(*_stat_key(path), holds, format, column)


@functools.lru_cache(maxsize=16)
def _read(resolved: str, mtime_ns: int, size: int, holds: Holds, format: str, column: str | None) -> ImportedFile:
    path = Path(resolved)
    reader = {"csv": _read_csv, "jsonl": _read_jsonl, "npz": _read_npz}[format]
    entries, problems, analyses = reader(path, holds, column)
    if not entries and not problems:
        raise ImportFileError(f"{path}: holds no clip")
    return ImportedFile(path, _sha256(resolved, mtime_ns, size), format, holds, entries, problems, analyses)


Read = tuple[dict[str, str | list[str]], dict[str, str], dict[str, str]]


def _entry(value: object, holds: Holds) -> str | list[str]:
    """One clip's answer; MalformedCell when it is not one (an empty text, a cell that is not one flat list)."""
    if holds == "labels":
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return [v.strip() for v in value if v.strip()]
        if isinstance(value, str):
            return parse_openset_strict(value)
        raise MalformedCell(f"a label list is wanted, got {type(value).__name__}")
    if not isinstance(value, str):
        raise MalformedCell(f"a text is wanted, got {type(value).__name__}")
    if not value.strip():
        raise MalformedCell("the text is empty")
    return value.strip()


def _keep(name: str, value: object, holds: Holds, where: str, entries: dict, problems: dict) -> None:
    # A repeated name keeps its last entry, as the authors' label readers do.
    try:
        entries[name] = _entry(value, holds)
        problems.pop(name, None)
    except MalformedCell as exc:
        entries.pop(name, None)
        problems[name] = f"{where}: {exc}"


def _read_csv(path: Path, holds: Holds, column: str | None) -> Read:
    text = decode_text_table(path, ImportFileError)[0]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    wanted = column or DEFAULT_COLUMN[holds]
    entries, problems, analyses = {}, {}, {}
    try:
        columns = reader.fieldnames or []
        if "name" not in columns or wanted not in columns:
            missing = "`name`" if "name" not in columns else f"`{wanted}`"
            raise ImportFileError(
                f"{path}: no {missing} column (columns: {', '.join(columns) or 'none'}); a CSV of outputs has `name` "
                f"and the column holding the {WHAT[holds]} (set the role's `column`)"
            )
        for row in reader:
            name = (row.get("name") or "").strip()
            if name:
                _keep(name, row.get(wanted) or "", holds, f"{path.name} line {reader.line_num}", entries, problems)
                if (analysis := (row.get(ANALYSIS_COLUMN) or "").strip()) and name in entries:
                    analyses[name] = analysis
    except csv.Error as exc:
        raise ImportFileError(f"{path}: line {reader.line_num}: not a CSV table ({exc})") from None
    return entries, problems, analyses


def _read_jsonl(path: Path, holds: Holds, column: str | None) -> Read:
    text = decode_text_table(path, ImportFileError)[0]
    wanted = column or DEFAULT_COLUMN[holds]
    entries, problems, analyses = {}, {}, {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ImportFileError(f"{path}: line {number}: not JSON ({exc.msg})") from None
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"].strip():
            raise ImportFileError(f"{path}: line {number}: each line is a JSON object with a `name` string")
        if wanted not in item:
            raise ImportFileError(
                f"{path}: line {number}: no `{wanted}` field (fields: {', '.join(item)}); set the role's `column` "
                f"to the field holding the {WHAT[holds]}"
            )
        name = item["name"].strip()
        _keep(name, item[wanted], holds, f"{path.name} line {number}", entries, problems)
        if isinstance(analysis := item.get(ANALYSIS_COLUMN), str) and analysis.strip() and name in entries:
            analyses[name] = analysis.strip()
    return entries, problems, analyses


def _plain(item: object) -> object:
    # numpy strings are str already; an array (a list saved into an object array) becomes its list.
    return item if isinstance(item, str) or not hasattr(item, "tolist") else item.tolist()


def _read_npz(path: Path, holds: Holds, column: str | None) -> Read:
    try:
        arrays = read_npz(path)
    except zipfile.BadZipFile:
        raise ImportFileError(f"{path}: not an npz archive (a zip of .npy arrays)") from None
    except pickle.UnpicklingError as exc:
        raise ImportFileError(f"{path}: {exc}") from None
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise ImportFileError(f"{path}: an array cannot be read ({type(exc).__name__}: {exc})") from None
    if REASON_KEY in arrays:
        found: Holds = "text"
        reasons = arrays[REASON_KEY]
        if reasons.dtype != object or reasons.shape != () or not isinstance(reasons.item(), dict):
            raise ImportFileError(f"{path}: {REASON_KEY} is not one pickled dict (clip -> description)")
        pairs = [(str(name), value) for name, value in reasons.item().items()]
    elif NAMES_KEY in arrays and ITEMS_KEY in arrays:
        found = "labels"
        names, items = arrays[NAMES_KEY], arrays[ITEMS_KEY]
        if names.ndim != 1 or items.ndim != 1 or len(names) != len(items):
            raise ImportFileError(
                f"{path}: {NAMES_KEY} and {ITEMS_KEY} are not parallel lists (shapes {names.shape} and {items.shape})"
            )
        # An item is a list cell ("[a, b]"), or a list (an array) when the file was written from lists.
        pairs = [(str(n), _plain(i)) for n, i in zip(names, items)]
    else:
        raise ImportFileError(
            f"{path}: neither the authors' reason layout (`{REASON_KEY}`) nor their openset layout (`{NAMES_KEY}` and "
            f"`{ITEMS_KEY}`); its arrays: {', '.join(sorted(arrays)) or 'none'}"
        )
    if found != holds:
        use = "a name2reason npz, a CSV or a JSONL" if holds == "text" else "an *-openset.npz, a CSV or a JSONL"
        raise ImportFileError(f"{path}: holds {WHAT[found]}, and this role imports {WHAT[holds]}: give it {use}")
    entries, problems = {}, {}
    for name, value in pairs:
        _keep(name, value, holds, path.name, entries, problems)
    return entries, problems, {}
