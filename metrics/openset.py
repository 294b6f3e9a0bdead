"""Open-vocabulary label lists as the MER / AffectGPT authors store them: CSVs with `name, openset`.

A cell is a Python-looking list, `['happy', 'sad']`. It is parsed the authors' way, not with
`ast.literal_eval`: their files hold cells that are not valid Python (unquoted words, stray quotes),
and the metric's numbers depend on reading those exactly as they did.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable
from pathlib import Path

# The newer `string_to_list` (AffectGPT / MERTools MER2025_Track23 my_affectgpt/evaluation/wheel.py and
# toolkit/utils/functions.py): drop one leading "[" and one trailing "]", split on quotes and commas.
_SEPARATORS = re.compile(r"['\",]")


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


def format_openset(labels: Iterable[str]) -> str:
    """The inverse, in the authors' cell format: `['happy', 'sad']`."""
    return "[" + ", ".join(f"'{label}'" for label in labels) + "]"


def read_openset_csv(path: str | Path) -> dict[str, list[str]]:
    """`name -> labels` from a CSV with columns `name, openset` (a missing openset column reads as empty,
    as the authors' `func_read_key_from_csv` does). A repeated name keeps its last row."""
    with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: spreadsheet exports start with a BOM
        reader = csv.DictReader(f)
        if reader.fieldnames is None or "name" not in reader.fieldnames:
            raise ValueError(f"{path}: a label CSV has a `name` column (and `openset`); found {reader.fieldnames}")
        return {
            row["name"].strip(): parse_openset(row.get("openset")) for row in reader if (row["name"] or "").strip()
        }


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
