"""The emotion-wheel metric (OV-MER onward): labels mapped onto five emotion wheels, F1 at two levels.

Deterministic, unlike the EMER metric's per-clip LLM grouping. The logic and the resource formats are
the authors' (AffectGPT's `my_affectgpt/evaluation/wheel.py`, as shipped in MERTools
MER2025/MER2025_Track23 and the AffectGPT release with `emotion_wheel/`):

- `wheel1.xlsx` .. `wheel5.xlsx`: first sheet, columns `level1, level2, level3`, a blank cell
  inheriting the value above (`read_wheel_to_map`);
- `synonym.xlsx`: columns `word_run1..8` (a wheel word) and `synonym_run1..8` (its synonyms as a list
  cell), one pair per LLM run, merged over the runs (`read_candidate_synonym_merge`);
- `format.csv`: columns `name, format`: a base word and its inflected forms (`read_format2raws`);
- or `wheel_mapping.npz` (the newer release, `config.OUTSIDE_WHEEL_MAPPING`): the same mappings
  precomputed, keys `format_mapping`, `raw_mapping` and `wheel_map_whole` (wheel -> level -> map).

A label maps form -> base words -> the wheel words they are synonyms of -> the first of those (sorted)
that the wheel holds -> its level-1 root or level-2 node (`func_backward_case3`); labels that do not
map are dropped. Per clip P = |Y ∩ Ŷ| / |Ŷ| and R = |Y ∩ Ŷ| / |Y|, clips whose mapped gold is empty
skipped and an empty prediction scoring (0, 0); per wheel F = 2PR / (P + R) of the averaged P and R
(0 when both are 0); the level's score is the mean over the wheels (`wheel_metric_calculation`).
"""

from __future__ import annotations

import csv
import re
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from metrics.emer import EmptyGold, normalise, set_scores
from metrics.openset import parse_openset
from schemas.metrics import WheelClipScore, WheelScore, WheelSummary
from schemas.npz import read_npy

LEVELS = ("level1", "level2")
NPZ_NAME = "wheel_mapping.npz"
SYNONYM_NAME = "synonym.xlsx"
FORMAT_NAME = "format.csv"
_WHEEL_FILE = re.compile(r"^(wheel\d+)\.xlsx$")
_RUN_COLUMN = re.compile(r"^word_(run\d+)$")

WheelTree = dict[str, dict[str, list[str]]]  # level1 -> level2 -> [level3]


@dataclass(frozen=True)
class WheelResources:
    format_mapping: dict[str, list[str]]  # any inflected form -> the base words it is a form of
    raw_mapping: dict[str, list[str]]  # base word -> the wheel words it is a synonym of
    wheel_maps: dict[str, dict[str, dict[str, str]]]  # wheel -> level -> wheel word -> its root/node
    source: str

    @property
    def wheels(self) -> list[str]:
        return sorted(self.wheel_maps, key=lambda w: (len(w), w))  # wheel1 .. wheel10 in number order

    def map_label(self, label: str, wheel: str, level: str) -> str | None:
        """One lower-cased label onto a wheel's level, or None when it does not map."""
        if label not in self.format_mapping:
            return None
        wheel_map = self.wheel_maps[wheel][level]
        # `.get`: the authors index raw_mapping directly; in their files every base word has an entry.
        candidates = [word for base in self.format_mapping[label] for word in self.raw_mapping.get(base, ())]
        for word in sorted(candidates):  # sorted: the same label always lands on the same node
            if word in wheel_map:
                return wheel_map[word]
        return None

    def map_labels(self, labels: Iterable[str], wheel: str, level: str) -> set[str]:
        mapped = (self.map_label(label, wheel, level) for label in normalise(labels))
        return {m for m in mapped if m is not None}


# --- the spreadsheets ---------------------------------------------------------------------------


def _sheet_rows(path: Path) -> tuple[list[str], list[tuple]]:
    """Header and rows of the first sheet (pandas.read_excel's default, which the authors used)."""
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        rows = list(workbook.worksheets[0].iter_rows(values_only=True))
    finally:
        workbook.close()
    if not rows:
        raise ValueError(f"{path}: the first sheet is empty")
    header = [str(h).strip() if h is not None else "" for h in rows[0]]
    return header, [r for r in rows[1:] if any(_text(c) for c in r)]


def _text(cell: object) -> str | None:
    """A cell as text; None for a blank one."""
    if cell is None:
        return None
    text = str(cell)
    return text if text.strip() else None


def _columns(header: list[str], path: Path, *names: str) -> list[int]:
    missing = [n for n in names if n not in header]
    if missing:
        raise ValueError(f"{path}: missing columns {missing} (found {header})")
    return [header.index(n) for n in names]


def read_wheel_xlsx(path: str | Path) -> WheelTree:
    """`level1 -> level2 -> [level3]`; a blank cell takes the last value above it (`read_wheel_to_map`)."""
    path = Path(path)
    header, rows = _sheet_rows(path)
    cols = _columns(header, path, "level1", "level2", "level3")
    tree: WheelTree = {}
    current = ["", "", ""]
    for row in rows:
        for i, col in enumerate(cols):
            value = _text(row[col]) if col < len(row) else None
            if value is not None:
                current[i] = value
        level1, level2, level3 = (v.lower().strip() for v in current)
        tree.setdefault(level1, {}).setdefault(level2, []).append(level3)
    return tree


def wheel_cluster(tree: WheelTree, level: str) -> dict[str, str]:
    """Every word of one wheel -> its level-1 root, or its level-2 node (`func_get_wheel_cluster`).

    At level 2 a root maps to the first (sorted) of its level-2 nodes, as the authors fix it."""
    wheel_map: dict[str, str] = {}
    for level1, branches in tree.items():
        if level == "level1":
            wheel_map[level1] = level1
        elif level == "level2":
            wheel_map[level1] = sorted(branches)[0]
        else:
            raise ValueError(f"level is level1 or level2, not {level!r}")
        for level2, leaves in branches.items():
            node = level1 if level == "level1" else level2
            wheel_map[level2] = node
            for level3 in leaves:
                wheel_map[level3] = node
    return wheel_map


def wheel_words(trees: Iterable[WheelTree]) -> set[str]:
    """Every word on any wheel (`convert_all_wheels_to_candidate_labels`)."""
    return {
        w
        for tree in trees
        for l1, branches in tree.items()
        for w in [l1, *branches, *(x for ls in branches.values() for x in ls)]
    }


def read_synonym_xlsx(path: str | Path, on_wheels: set[str]) -> dict[str, list[str]]:
    """Word -> the wheel words it is a synonym of, merged over every `word_runN`/`synonym_runN` pair.

    Each wheel word maps to itself, each synonym to its wheel word (`read_candidate_synonym_onerun`);
    runs are merged by union (`func_merge_map`). A `word_runN` that is on no wheel is an error, as the
    authors assert."""
    path = Path(path)
    header, rows = _sheet_rows(path)
    runs = [m.group(1) for h in header if (m := _RUN_COLUMN.match(h))]
    if not runs:
        raise ValueError(f"{path}: no word_runN / synonym_runN columns (found {header})")
    merged: dict[str, set[str]] = defaultdict(set)
    for run in runs:
        word_col, synonym_col = _columns(header, path, f"word_{run}", f"synonym_{run}")
        for row in rows:
            word = _text(row[word_col]) if word_col < len(row) else None
            if word is None:
                continue  # a run with fewer rows than the sheet
            word = word.strip().lower()
            if word not in on_wheels:
                raise ValueError(f"{path}: word_{run} {word!r} is on no wheel")
            merged[word].add(word)
            cell = row[synonym_col] if synonym_col < len(row) else None
            for synonym in parse_openset(cell):
                merged[synonym.strip().lower()].add(word)
    return {k: sorted(v) for k, v in merged.items()}


def read_format_csv(path: str | Path) -> dict[str, list[str]]:
    """Form -> base words (`read_format2raws`): every listed form, and the base word itself, maps to it.

    Names and forms are used as written (the authors' file is lower-case already)."""
    path = Path(path)
    mapping: dict[str, list[str]] = defaultdict(list)
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or "name" not in reader.fieldnames:
            raise ValueError(f"{path}: a format table has columns name, format (found {reader.fieldnames})")
        for row in reader:
            raw = row["name"] or ""
            if not raw:
                continue
            for form in parse_openset(row.get("format")):
                mapping[form].append(raw)
            mapping[raw].append(raw)
    return dict(mapping)


def read_wheel_folder(folder: str | Path) -> WheelResources:
    """The spreadsheets release: `wheel*.xlsx`, `synonym.xlsx` and `format.csv` in one folder."""
    folder = Path(folder)
    wheel_files = {m.group(1): p for p in folder.iterdir() if (m := _WHEEL_FILE.match(p.name))}
    if not wheel_files:
        raise ValueError(f"{folder}: no wheel1.xlsx .. wheel5.xlsx")
    trees = {name: read_wheel_xlsx(p) for name, p in wheel_files.items()}
    return WheelResources(
        format_mapping=read_format_csv(folder / FORMAT_NAME),
        raw_mapping=read_synonym_xlsx(folder / SYNONYM_NAME, wheel_words(trees.values())),
        wheel_maps={name: {level: wheel_cluster(tree, level) for level in LEVELS} for name, tree in trees.items()},
        source=str(folder),
    )


# --- the precomputed .npz -------------------------------------------------------------------------


def _read_pickled_npy(blob) -> object:
    array = read_npy(blob)  # schemas/npz.py: object arrays are unpickled through an allow-list
    if array.dtype != object:
        raise ValueError(f"expected a pickled object array, found dtype {array.dtype.str}")
    return array.item()


def _str_lists(value: object, what: str) -> dict[str, list[str]]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{what}: expected a dict, got {type(value).__name__}")
    return {str(k): [str(x) for x in v] for k, v in value.items()}


def read_wheel_npz(path: str | Path) -> WheelResources:
    """`wheel_mapping.npz`: `format_mapping`, `raw_mapping`, `wheel_map_whole[wheel][level]`."""
    path = Path(path)
    loaded = {}
    with zipfile.ZipFile(path) as archive:
        for key in ("format_mapping", "raw_mapping", "wheel_map_whole"):
            try:
                with archive.open(f"{key}.npy") as blob:
                    loaded[key] = _read_pickled_npy(blob)
            except KeyError:
                raise ValueError(
                    f"{path}: no {key!r} array (keys: format_mapping, raw_mapping, wheel_map_whole)"
                ) from None
    whole = loaded["wheel_map_whole"]
    if not isinstance(whole, Mapping) or not whole:
        raise ValueError(f"{path}: wheel_map_whole is not a dict of wheels")
    wheel_maps = {
        str(wheel): {level: {str(k): str(v) for k, v in levels[level].items()} for level in LEVELS}
        for wheel, levels in whole.items()
    }
    return WheelResources(
        format_mapping=_str_lists(loaded["format_mapping"], f"{path}: format_mapping"),
        raw_mapping=_str_lists(loaded["raw_mapping"], f"{path}: raw_mapping"),
        wheel_maps=wheel_maps,
        source=str(path),
    )


def save_wheel_npz(resources: WheelResources, path: str | Path) -> Path:
    """Write the mappings the way the newer release ships them (np.savez_compressed of dicts)."""
    import numpy as np

    path = Path(path)
    np.savez_compressed(
        path,
        format_mapping=resources.format_mapping,
        raw_mapping=resources.raw_mapping,
        wheel_map_whole=resources.wheel_maps,
    )
    return path


def load_wheel_resources(path: str | Path) -> WheelResources:
    """An .npz file, or a folder: its `wheel_mapping.npz` when it has one (the authors' evaluation
    reads that by default), else its spreadsheets."""
    path = Path(path)
    if path.is_file():
        return read_wheel_npz(path)
    if (path / NPZ_NAME).is_file():
        return read_wheel_npz(path / NPZ_NAME)
    return read_wheel_folder(path)


# --- the metric -----------------------------------------------------------------------------------


def wheel_corpus(
    gold: Mapping[str, list[str]], pred: Mapping[str, list[str]], resources: WheelResources
) -> tuple[WheelSummary, dict[str, dict[str, WheelClipScore]]]:
    """The wheel metric over a corpus, and per clip its P and R at each level averaged over the wheels
    that scored it. A gold clip without a prediction counts as an empty prediction."""
    per_wheel: list[WheelScore] = []
    per_clip: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for level in LEVELS:
        for wheel in resources.wheels:
            precision, recall = [], []
            for name, gold_labels in gold.items():
                try:
                    p, r = set_scores(
                        resources.map_labels(gold_labels, wheel, level),
                        resources.map_labels(pred.get(name) or [], wheel, level),
                    )
                except EmptyGold:
                    continue
                precision.append(p)
                recall.append(r)
                per_clip[name][level].append((p, r))
            p, r = _mean(precision), _mean(recall)
            per_wheel.append(
                WheelScore(wheel=wheel, level=level, precision=p, recall=r, f1=_f1(p, r), clips=len(precision))
            )
    means = {
        level: [_mean([getattr(s, f) for s in per_wheel if s.level == level]) for f in ("f1", "precision", "recall")]
        for level in LEVELS
    }
    summary = WheelSummary(
        level1_f1=means["level1"][0],
        level1_precision=means["level1"][1],
        level1_recall=means["level1"][2],
        level2_f1=means["level2"][0],
        level2_precision=means["level2"][1],
        level2_recall=means["level2"][2],
        source=resources.source,
        per_wheel=per_wheel,
    )
    clips = {
        name: {
            level: WheelClipScore(
                precision=_mean([p for p, _ in pairs]), recall=_mean([r for _, r in pairs]), wheels=len(pairs)
            )
            for level, pairs in levels.items()
        }
        for name, levels in per_clip.items()
    }
    return summary, clips


def _f1(p: float, r: float) -> float:
    # P + R = 0 happens (no hit anywhere): the authors' newer code scores it 0.
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
