"""The evaluation report: JSON (the pydantic model), Markdown with the paper-style table, and a plot
of the label distribution.

Scores are printed as the papers print them: percentages with two decimals (MER2024/AffectGPT's
open-vocabulary table: Avg, Accuracy_s, Recall_s; OV-MER's emotion-wheel F1 at level 1 and level 2; AffectGPT's
English and Chinese columns: the EMER Avg on labels read from each language's description).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from metrics.emer import normalise
from schemas.metrics import ClipScore, EvaluateReport, LanguageScore

JSON_NAME, MARKDOWN_NAME, PLOT_NAME = "report.json", "report.md", "labels.png"
R = TypeVar("R", bound=BaseModel)
LANGUAGE_NAMES = {"en": "English", "zh": "Chinese"}
MARKDOWN_CLIP_ROWS = 500  # beyond this the per-clip table lives in report.json only
PLOT_TOP = 25


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _labels(labels: Iterable[str]) -> str:
    return _cell(", ".join(labels)) or "∅"


def method_name(predictions: str) -> str:
    path = Path(predictions)
    return path.stem if path.suffix else path.name


def paper_table(report: EvaluateReport) -> str:
    header = ["Method", "Avg", "Accuracy_s", "Recall_s"]
    values = [
        method_name(report.predictions),
        pct(report.emer.avg),
        pct(report.emer.accuracy_s),
        pct(report.emer.recall_s),
    ]
    if report.wheel is not None:
        header += ["EW-F1 L1", "EW-F1 L2", "EW-F1 Avg"]
        w = report.wheel
        values += [pct(w.level1_f1), pct(w.level2_f1), pct((w.level1_f1 + w.level2_f1) / 2)]
    for score in report.languages:
        header.append(f"Avg ({score.language} description)")
        values.append(pct(score.emer.avg))
    return "\n".join(
        [
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
            "| " + " | ".join(_cell(v) for v in values) + " |",
        ]
    )


def language_table(languages: list[LanguageScore]) -> list[str]:
    """Both languages' EMER scores, one row each, against the same gold labels."""
    lines = [
        "| Language | Labels read from | Avg | Accuracy_s | Recall_s | Clips described |",
        "|---|---|---|---|---|---|",
    ]
    for s in languages:
        lines.append(
            f"| {LANGUAGE_NAMES[s.language]} | {_cell(s.labels_from)} | {pct(s.emer.avg)} | {pct(s.emer.accuracy_s)} "
            f"| {pct(s.emer.recall_s)} | {s.described} |"
        )
    return lines


def _language_cell(clip: ClipScore, language: str) -> str:
    score = clip.by_language.get(language)
    if score is None or not score.described:
        return "∅ (no description)" + ("" if clip.scored else ", skipped")
    if not clip.scored:
        return f"{_labels(score.pred)} (skipped)"
    return f"{_labels(score.pred)} ({pct(score.accuracy_s)} / {pct(score.recall_s)})"


def _clip_row(clip: ClipScore, wheel: bool, languages: tuple[str, ...] = ()) -> str:
    cells = [clip.name, _labels(clip.gold), _labels(clip.pred) + (" (missing)" if clip.prediction_missing else "")]
    cells += [pct(clip.accuracy_s), pct(clip.recall_s)] if clip.scored else ["skipped", "skipped"]
    if wheel:
        for level in ("level1", "level2"):
            s = clip.wheel.get(level)
            cells.append(f"{pct(s.precision)} / {pct(s.recall)}" if s else "skipped")
    cells += [_language_cell(clip, language) for language in languages]
    cells.append(clip.groups_source)
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def render_markdown(report: EvaluateReport, plot_name: str | None = PLOT_NAME) -> str:
    emer = report.emer
    lines = [
        f"# Evaluation of `{report.predictions}`",
        "",
        f"Gold: `{report.gold}`. Scores in percent.",
        "",
        paper_table(report),
        "",
        f"- EMER (MER2024 open-vocabulary metric): {emer.clips} clips scored, {emer.skipped} skipped (empty gold).",
        f"- Gold clips without a prediction (scored as empty predictions): {report.missing_predictions}; "
        f"predictions not in the gold file (ignored): {report.extra_predictions}.",
        f"- Synonym groups: {report.groups}; model requests in this run: {report.model_calls}.",
    ]
    if input_errors := report.input_errors:
        lines.append(
            f"- Label cells that could not be read ({len(input_errors)}): "
            + "; ".join(_cell(e) for e in input_errors[:10])
            + (f" ... ({len(input_errors) - 10} more in the run's log)" if len(input_errors) > 10 else "")
        )
    if report.grouping_errors:
        lines.append(
            f"- Grouping failed for {len(report.grouping_errors)} clips (they used the fallback groups): "
            + "; ".join(_cell(e) for e in report.grouping_errors[:5])
            + (" ..." if len(report.grouping_errors) > 5 else "")
        )
    if report.wheel is not None:
        lines += [
            "",
            "## Emotion wheels",
            "",
            f"Resources: `{report.wheel.source}`.",
            "",
            "| Wheel | Level | Precision | Recall | F1 | Clips |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {s.wheel} | {s.level} | {pct(s.precision)} | {pct(s.recall)} | {pct(s.f1)} | {s.clips} |"
            for s in report.wheel.per_wheel
        ]
    if report.languages:
        groups = {s.groups for s in report.languages}
        lines += [
            "",
            "## Both languages",
            "",
            "The EMER metric on labels read from each description, against the gold.",
        ]
        lines += ["", *language_table(report.languages), "", f"Synonym groups: {'; '.join(sorted(groups))}."]
    if plot_name:
        lines += ["", "## Label distribution", "", f"![label distribution]({plot_name})"]
    wheel = report.wheel is not None
    languages = tuple(s.language for s in report.languages)
    header = (
        ["Clip", "Gold", "Prediction", "Accuracy_s", "Recall_s"]
        + (["EW L1 P / R", "EW L2 P / R"] if wheel else [])
        + [f"From the {language} description (Acc. / Rec.)" for language in languages]
        + ["Groups"]
    )
    lines += ["", "## Per clip", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [_clip_row(c, wheel, languages) for c in report.clips[:MARKDOWN_CLIP_ROWS]]
    if len(report.clips) > MARKDOWN_CLIP_ROWS:
        lines += ["", f"{len(report.clips) - MARKDOWN_CLIP_ROWS} more clips in `{JSON_NAME}`."]
    return "\n".join(lines) + "\n"


def label_counts(clips: Iterable[ClipScore]) -> tuple[Counter, Counter]:
    gold, pred = Counter(), Counter()
    for clip in clips:
        gold.update(set(normalise(clip.gold)))
        pred.update(set(normalise(clip.pred)))
    return gold, pred


def plot_label_distribution(clips: list[ClipScore], path: Path, top: int = PLOT_TOP) -> Path:
    """Horizontal bars: how many clips carry each label, gold beside prediction, the most frequent first."""
    # The object-oriented API on the Agg canvas: no pyplot global state, safe in Prefect's worker threads.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    gold, pred = label_counts(clips)
    total = gold + pred
    labels = sorted(total, key=lambda label: (-total[label], label))[
        :top
    ]  # ties alphabetical: the same plot every run
    fig = Figure(figsize=(8, max(2.5, 0.32 * len(labels) + 1.2)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    rows = range(len(labels))
    ax.barh([r - 0.2 for r in rows], [gold[label] for label in labels], height=0.4, label="gold")
    ax.barh([r + 0.2 for r in rows], [pred[label] for label in labels], height=0.4, label="prediction")
    ax.set_yticks(list(rows), labels)
    ax.invert_yaxis()
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # counts of clips
    ax.set_xlabel("clips")
    ax.set_title(f"Label distribution (top {len(labels)} of {len(set(gold) | set(pred))} labels)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    return path


def write_files(
    result: R, out_dir: Path, names: tuple[str, str, str], markdown: Callable[[R], str], plot: Callable[[Path], Path]
) -> R:
    """`result` as JSON, Markdown and a PNG (`names`) into `out_dir`; returns it with `files` set (an evaluation
    report, a leaderboard)."""
    json_name, markdown_name, plot_name = names
    out_dir.mkdir(parents=True, exist_ok=True)
    chart = plot(out_dir / plot_name)
    files = {"json": str(out_dir / json_name), "markdown": str(out_dir / markdown_name), "plot": str(chart)}
    result = result.model_copy(update={"files": files})
    (out_dir / markdown_name).write_text(markdown(result), encoding="utf-8")
    (out_dir / json_name).write_text(json.dumps(result.model_dump(mode="json"), ensure_ascii=False, indent=1), "utf-8")
    return result


def write_report(report: EvaluateReport, out_dir: Path) -> EvaluateReport:
    """Write report.json, report.md and labels.png into `out_dir`; returns the report with `files` set."""
    names = (JSON_NAME, MARKDOWN_NAME, PLOT_NAME)
    return write_files(report, out_dir, names, render_markdown, lambda p: plot_label_distribution(report.clips, p))
