"""Open-vocabulary label lists as the MER / AffectGPT authors store them: CSVs with `name, openset`.

A cell is a Python-looking list, `['happy', 'sad']`. It is parsed the authors' way, not with
`ast.literal_eval`: their files hold cells that are not valid Python (unquoted words, stray quotes),
and the metric's numbers depend on reading those exactly as they did.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from schemas.errors import UserError
from schemas.text_tables import decode_text_table

# The newer `string_to_list` (AffectGPT / MERTools MER2025_Track23 my_affectgpt/evaluation/wheel.py and
# toolkit/utils/functions.py): drop one leading "[" and one trailing "]", split on quotes and commas.
_SEPARATORS = re.compile(r"['\",]")
# Left inside a cell once its one pair of outer brackets is gone, these mean a nested or broken list
# (`[[`, `]]`, `{`): the authors' splitter would turn them into labels.
_STRUCTURE = re.compile(r"[\[\]{}]")


class LabelFileError(UserError, ValueError):
    """A label file that cannot be read as a `name, openset` table; the message names the file and line."""


class MalformedCell(ValueError):
    """An openset cell that is not one flat list of labels."""


@dataclass
class OpensetTable:
    """A label file read: `name -> labels`, and the clips whose cell could not be read (`name -> why`)."""

    labels: dict[str, list[str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    rows: int = 0


def parse_openset(cell: object) -> list[str]:
    """`"['happy', 'sad']"` -> `['happy', 'sad']`; blank or missing -> `[]`.

    Case is kept (the metrics lower-case); a list given as a list is returned as its strings.
    Surrounding whitespace is removed before the brackets are looked for: a padded cell would
    otherwise yield a stray "[" label, which no reading of the file intends.
    """
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return []
    if isinstance(cell, (list, tuple)):
        return [str(item).strip() for item in cell if str(item).strip()]
    text = str(cell).strip()
    if text.startswith("["):
        text = text[1:]
    if text.endswith("]"):
        text = text[:-1]
    return [item.strip() for item in _SEPARATORS.split(text) if item.strip()]


def openset_cell_problem(cell: object) -> str | None:
    """Why a cell is not one flat list of labels (`[[`, `]]`, `{`, a bracket not closed, an odd number
    of quotes), or None when it reads as one."""
    if cell is None or isinstance(cell, (float, list, tuple)):
        return None
    text = str(cell).strip()
    if text.startswith("[") != text.endswith("]"):
        return "a list opened with [ is not closed with ] (or the reverse)"
    inner = text[1:-1] if text.startswith("[") else text
    if _STRUCTURE.search(inner):
        return "brackets or braces inside the list: not one flat list of labels"
    for quote in "'\"":
        if inner.count(quote) % 2:
            return f"unbalanced {quote} quotes"
    return None


def parse_openset_strict(cell: object) -> list[str]:
    """parse_openset, refusing with MalformedCell a cell that the authors' splitter would turn into junk labels."""
    if problem := openset_cell_problem(cell):
        raise MalformedCell(problem)
    return parse_openset(cell)


def decode_table(path: str | Path) -> str:
    """A label table's text (schemas/text_tables.py: BOM, UTF-8 or GB18030); LabelFileError when it is not text."""
    return decode_text_table(Path(path), LabelFileError)[0]


def read_openset_table(path: str | Path) -> OpensetTable:
    """`name, openset` rows (see read_openset_csv); a malformed cell is that clip's error, with its line."""
    table = OpensetTable()
    # csv's own limit is 128 KiB a cell; a label list is far shorter, so a bigger cell is an error below.
    reader = csv.DictReader(io.StringIO(decode_table(path), newline=""))
    try:
        if reader.fieldnames is None or "name" not in reader.fieldnames:
            raise LabelFileError(f"{path}: a label CSV has a `name` column (and `openset`); found {reader.fieldnames}")
        for row in reader:
            name = (row.get("name") or "").strip()
            if not name:
                continue
            table.rows += 1
            try:
                table.labels[name] = parse_openset_strict(row.get("openset"))
                table.errors.pop(name, None)  # a repeated name keeps its last row
            except MalformedCell as exc:
                table.labels.pop(name, None)
                table.errors[name] = f"{Path(path).name} line {reader.line_num}: {exc} in {row.get('openset')!r:.60}"
    except csv.Error as exc:
        raise LabelFileError(f"{path}: line {reader.line_num}: not a CSV table ({exc})") from None
    return table


def format_openset(labels: Iterable[str]) -> str:
    """The inverse, in the authors' cell format: `['happy', 'sad']`."""
    return "[" + ", ".join(f"'{label}'" for label in labels) + "]"


def read_openset_csv(path: str | Path) -> dict[str, list[str]]:
    """`name -> labels` from a CSV with columns `name, openset` (a missing openset column reads as empty,
    as the authors' `func_read_key_from_csv` does). A repeated name keeps its last row. Encodings as
    decode_table; a malformed cell raises LabelFileError naming the clip and line (read_openset_table
    keeps the others)."""
    table = read_openset_table(path)
    if table.errors:
        name, why = next(iter(table.errors.items()))
        raise LabelFileError(f"{path}: clip {name}: {why}")
    return table.labels


def write_openset_csv(path: str | Path, labels: dict[str, list[str]]) -> Path:
    """Write `name, openset` rows that the authors' own scripts read back unchanged."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["name", "openset"])
        for name, items in labels.items():
            writer.writerow([name, format_openset(items)])
    return path
