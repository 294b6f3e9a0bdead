"""Issue 16.14: `evaluate` on malformed, empty, non-UTF-8 and zipped inputs.

Checked against the authors' own file formats (MERTools MER2024: `name, openset` CSVs whose cells are
flat lists like `['happy', 'sad']`; `openset-synonym.zip`, the {clip}.npy replies saved with
`np.save(path, reply_text)`), against scores worked out by hand for the tiny tables below, and against
what the `emer-coarse evaluate` command exits with, prints and writes (report.json, report.md).
"""

from __future__ import annotations

import json
import zipfile
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from prefect.logging.handlers import APILogWorker
from typer.testing import CliRunner

import flows.evaluate  # noqa: F401  Prefect sets up its console logging once, here: not on a CliRunner's stream
from flows.cli import app


def evaluate(tmp_path: Path, gold: Path, pred: Path, *more: str):
    try:
        return CliRunner().invoke(
            app, ["evaluate", str(pred), "--gold", str(gold), "--out", str(tmp_path / "report"), *more]
        )
    finally:
        APILogWorker.drain_all(timeout=30)  # the run's logs go out while the local Prefect server is up


def table(path: Path, rows: list[tuple[str, str]], encoding: str = "utf-8") -> Path:
    """A `name, openset` CSV with the cells exactly as given (quoted the way spreadsheets quote)."""
    lines = ["name,openset"] + [f'{name},"{cell}"' if cell else f"{name}," for name, cell in rows]
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def last_line(result) -> str:
    """What the user reads when the command refuses: one line, no traceback."""
    [line] = result.output.strip().splitlines()
    return line


def summary_of(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# --- malformed cells ------------------------------------------------------------------------------


def test_malformed_list_cells_are_clip_errors_with_their_line_never_labels(tmp_path):
    gold = table(
        tmp_path / "gold.csv",
        [
            ("c1", "['happy', 'sad']"),
            ("c2", "[["),
            ("c3", "]]"),
            ("c4", "{"),
            ("c5", "['happy, 'sad']"),
            ("c6", "[['angry'], ['mad']]"),
            ("c7", "['angry']"),
        ],
    )
    pred = table(tmp_path / "pred.csv", [("c1", "['happy']"), ("c7", "['angry'")])
    summary = summary_of(evaluate(tmp_path, gold, pred))
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    labels = {label for clip in report["clips"] for label in clip["gold"] + clip["pred"]}
    assert not labels & {"[[", "]]", "{", "[", "]"} and labels == {"happy", "sad", "angry"}
    # c1: (1/1, 1/2); c7: its prediction is malformed, so it is scored as missing: (0, 0).
    assert [c["name"] for c in report["clips"]] == ["c1", "c7"]
    assert summary["emer"]["clips"] == 2 and summary["emer"]["avg"] == pytest.approx((0.5 + 0.25) / 2)
    errors = summary["input_errors"]
    assert len(errors) == 6
    assert errors[0].startswith("gold c2 (gold.csv line 3: ") and errors[0].endswith("not scored")
    assert any(e.startswith("gold c6 (gold.csv line 7: brackets or braces inside the list") for e in errors)
    assert any(e.startswith("gold c5 (gold.csv line 6: unbalanced ' quotes") for e in errors)
    assert errors[-1].startswith("prediction c7 (pred.csv line 3: ") and "missing prediction" in errors[-1]
    assert "Label cells that could not be read (6)" in (tmp_path / "report" / "report.md").read_text()


# --- nothing to score ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rows, why",
    [
        ([], "it has no clip rows"),
        ([("c1", ""), ("c2", "[]")], "every openset cell of its 2 clips is empty"),
        ([("c1", "[[")], "not one of its 1 openset cells can be read"),
    ],
)
def test_a_gold_file_with_nothing_to_score_stops_with_one_line(tmp_path, rows, why):
    gold = table(tmp_path / "gold.csv", rows)
    pred = table(tmp_path / "pred.csv", [("c1", "['happy']")])
    result = evaluate(tmp_path, gold, pred)
    assert result.exit_code == 2
    line = last_line(result)
    assert line.startswith(f"{gold}: nothing to score: {why}")
    assert not (tmp_path / "report" / "report.json").exists()


def test_predictions_naming_no_gold_clip_are_refused(tmp_path):
    gold = table(tmp_path / "gold.csv", [("sample_1", "['happy']")])
    pred = table(tmp_path / "pred.csv", [("sample_1.mp4", "['happy']")])
    result = evaluate(tmp_path, gold, pred)
    assert result.exit_code == 2 and "the `name` columns must name the same clips" in last_line(result)


# --- encodings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["gb18030", "gbk", "utf-16", "utf-8-sig"])
def test_a_gold_file_in_a_chinese_spreadsheet_encoding_is_read(tmp_path, encoding):
    gold = table(tmp_path / "gold.csv", [("c1", "['轻松', '愉快']"), ("c2", "['紧张']")], encoding)
    pred = table(tmp_path / "pred.csv", [("c1", "['轻松']"), ("c2", "['紧张']")])
    summary = summary_of(evaluate(tmp_path, gold, pred))
    # c1: (1/1, 1/2), c2: (1, 1)
    assert summary["emer"]["accuracy_s"] == 1.0 and summary["emer"]["recall_s"] == pytest.approx(0.75)


@pytest.mark.parametrize(
    "raw, where",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "line 3, byte offset 8: NUL bytes"),
        ("name,openset\nc1,\"['轻松', '愉快']\"\n".encode()[:-8] + b"\xff\xfe']\"\n", "line 2"),
    ],
)
def test_a_gold_file_that_is_not_text_is_named_with_the_line_and_byte(tmp_path, raw, where):
    gold = tmp_path / "gold.csv"
    gold.write_bytes(raw)
    result = evaluate(tmp_path, gold, table(tmp_path / "pred.csv", [("c1", "['happy']")]))
    assert result.exit_code == 2
    line = last_line(result)
    assert line.startswith(f"{gold}: {where}") and "save the table as UTF-8" in line


# --- the authors' synonym zip ---------------------------------------------------------------------


def npy_bytes(reply: str) -> bytes:
    buffer = BytesIO()
    np.save(buffer, reply)  # how the authors stored each model reply
    return buffer.getvalue()


def test_the_authors_openset_synonym_zip_is_accepted_as_published(tmp_path):
    groups = tmp_path / "openset-synonym.zip"
    with zipfile.ZipFile(groups, "w") as archive:
        archive.writestr("openset-synonym/", "")
        archive.writestr("openset-synonym/c1.npy", npy_bytes("[['happy', 'joyful'], ['sad', 'down']]"))
        archive.writestr("openset-synonym/c2.npy", npy_bytes("[['angry', 'furious']]"))
        archive.writestr("__MACOSX/openset-synonym/._c1.npy", b"\x00\x05\x16\x07 AppleDouble")
    gold = table(tmp_path / "gold.csv", [("c1", "['happy', 'sad']"), ("c2", "['angry']")])
    pred = table(tmp_path / "pred.csv", [("c1", "['joyful', 'down']"), ("c2", "['furious']")])
    summary = summary_of(evaluate(tmp_path, gold, pred, "--groups", str(groups)))
    assert summary["emer"]["avg"] == 1.0  # every predicted word is its gold word's synonym
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["groups"] == f"per clip groups from {groups}"


def test_a_zip_that_is_not_a_synonym_archive_is_refused_saying_what_is_expected(tmp_path):
    groups = tmp_path / "groups.zip"
    with zipfile.ZipFile(groups, "w") as archive:
        archive.writestr("notes.txt", "hello")
    gold = table(tmp_path / "gold.csv", [("c1", "['happy']")])
    result = evaluate(tmp_path, gold, gold, "--groups", str(groups))
    assert result.exit_code == 2
    line = last_line(result)
    assert line.startswith(f"{groups}: a zip of {{clip}}.npy replies") and "found notes.txt" in line
