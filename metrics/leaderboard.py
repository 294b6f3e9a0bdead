"""The line-up leaderboard: ranking, the paper-style table (Markdown), JSON and a bar chart.

As AffectGPT's Table 1 (its choice of pre-labelling MLLMs): one row per line-up with its models, the metric
columns in percent (EMER Avg, Accuracy_s, Recall_s on the labels, and on the labels the evaluation reads from
the English and the Chinese description; the emotion wheels' F1 when evaluated), the best of each column in
bold; then what each line-up cost per clip. Line-ups are ranked by EMER Avg on the labels stage's labels (the
paper's headline column), a tie going to the cheaper line-up; a line-up without scores (it could not run, or
no clip completed) is listed last with its error.
"""

from __future__ import annotations

from pathlib import Path

from metrics.report import pct, write_files
from schemas.compare import Leaderboard, LineupResult

JSON_NAME, MARKDOWN_NAME, PLOT_NAME = "leaderboard.json", "leaderboard.md", "leaderboard.png"
RANKED_BY = "EMER Avg (labels)"
PRIMARY = "labels"  # the reading ranked by: the labels stage's labels
CLUE_ROLES = {"audio_clue": "Audio", "visual_clue": "Video"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def score(result: LineupResult) -> float | None:
    emer = result.emer.get(PRIMARY)
    return None if result.error or emer is None else emer.avg


def rank(results: list[LineupResult]) -> list[LineupResult]:
    """Best first; equal scores: fewer requests per clip first, then the order given; unscored ones last."""
    order = {id(r): i for i, r in enumerate(results)}

    def key(r: LineupResult) -> tuple:
        s = score(r)
        cost = r.cost.requests if r.cost else float("inf")
        return (s is None, -(s or 0.0), cost, order[id(r)])

    return sorted(results, key=key)


def wheel_avg(result: LineupResult) -> float | None:
    w = result.wheel
    return None if w is None else (w.level1_f1 + w.level2_f1) / 2


def _cost_words(result: LineupResult) -> str:
    c = result.cost
    if c is None:
        return "an unknown cost"
    at_least = "" if c.seconds_complete else "at least "
    seconds = "" if c.seconds is None else f" and {at_least}{c.seconds:.2f} model s"
    return f"{c.requests:.1f} requests, {c.tokens:.0f} tokens{seconds} per clip"


def verdict(ranked: list[LineupResult]) -> str:
    scored = [r for r in ranked if score(r) is not None]
    if not scored:
        return "No line-up could be scored: " + "; ".join(f"{r.name}: {r.error}" for r in ranked)
    best = scored[0]
    wheel = f", EW-F1 Avg {pct(wheel_avg(best))}" if best.wheel is not None else ""
    text = f"{best.name} scores best (EMER Avg {pct(score(best))}{wheel}) at {_cost_words(best)}."
    if len(scored) > 1:
        runner = scored[1]
        if score(runner) == score(best):
            return (
                f"{best.name} and {runner.name} score alike (EMER Avg {pct(score(best))}{wheel}): {best.name} at "
                f"{_cost_words(best)}, {runner.name} at {_cost_words(runner)}."
            )
        text += f" Next: {runner.name} (EMER Avg {pct(score(runner))}) at {_cost_words(runner)}."
    return text


def _readings(results: list[LineupResult]) -> list[str]:
    found = {key for r in results for key in r.emer}
    return [PRIMARY, *sorted(found - {PRIMARY})] if PRIMARY in found or not found else sorted(found)


def _models(result: LineupResult) -> tuple[str, str, str]:
    audio = ", ".join(result.models.get("audio_clue", [])) or "-"
    video = ", ".join(result.models.get("visual_clue", [])) or "-"
    text = [m for role, ms in result.models.items() if role not in CLUE_ROLES for m in ms]
    return audio, video, ", ".join(dict.fromkeys(text)) or "-"


def columns(results: list[LineupResult]) -> list[tuple[str, callable]]:
    """(header, line-up -> value) for every metric column the line-ups have, in the paper's order."""
    readings = _readings(results)
    cols: list[tuple[str, callable]] = []
    for reading in readings:
        suffix = f" ({reading})" if len(readings) > 1 else ""
        for field, header in (("avg", "Avg"), ("accuracy_s", "Accuracy_s"), ("recall_s", "Recall_s")):
            cols.append(
                (
                    header + suffix,
                    lambda r, reading=reading, field=field: (
                        None if r.error or reading not in r.emer else getattr(r.emer[reading], field)
                    ),
                )
            )
    if any(r.wheel is not None for r in results):
        cols += [
            ("EW-F1 L1", lambda r: None if r.wheel is None else r.wheel.level1_f1),
            ("EW-F1 L2", lambda r: None if r.wheel is None else r.wheel.level2_f1),
            ("EW-F1 Avg", wheel_avg),
        ]
    return cols


def render_markdown(board: Leaderboard, plot_name: str | None = PLOT_NAME) -> str:
    results = board.lineups
    cols = columns(results)
    best = {}
    for h, get in cols:
        values = [v for r in results if (v := get(r)) is not None]
        # No bold where every line-up scores alike: there is no best to show.
        best[h] = max(values) if len(values) == 1 or len(set(values)) > 1 else None
    header = ["Line-up", "Audio", "Video", "Text", *(h for h, _ in cols), "req/clip", "tokens/clip", "model s/clip"]
    header.append("Note")
    lines = [
        "# Line-up comparison",
        "",
        f"Corpus `{board.corpus}`, gold `{board.gold}`: {board.clips} gold clips, each line-up built over them only "
        f"with one shared checkpoint (a stage two line-ups share is asked once). Scores in percent, the best of "
        f"each column in bold; ranked by {board.ranked_by}.",
        "",
        f"**{board.verdict}**",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for r in results:
        cells = [r.name, *_models(r)]
        for h, get in cols:
            value = get(r)
            text = pct(value)
            cells.append(f"**{text}**" if value is not None and value == best[h] else text)
        c = r.cost
        if c is None:
            cells += ["-", "-", "-"]
        else:
            seconds = "-" if c.seconds is None else ("" if c.seconds_complete else "≥") + f"{c.seconds:.2f}"
            cells += [f"{c.requests:.1f}", f"{c.tokens:.0f}", seconds]
        note = r.error or (f"{r.failed} of {r.clips} clips failed (scored as missing)" if r.failed else "")
        cells.append(note)
        lines.append("| " + " | ".join(_cell(str(x)) for x in cells) + " |")
    lines += [
        "",
        "- Cost per clip counts every question a line-up's answers took, whichever run asked it (a stage shared "
        "with another line-up counts in full for each); model seconds are the stages' answering time, summed over "
        "clips (they overlap), as measured in the run that asked.",
        f"- Synonym groups: {board.groups or 'as the evaluation reports'}.",
    ]
    if len(_readings(results)) > 1:
        lines.append(
            "- (labels): the labels stage's labels; (en), (zh): labels read from the English and the Chinese "
            "description (the evaluation's language columns; the wheels stay English)."
        )
    if board.gold_not_in_corpus:
        shown = ", ".join(board.gold_not_in_corpus[:10]) + (" ..." if len(board.gold_not_in_corpus) > 10 else "")
        count = len(board.gold_not_in_corpus)
        lines.append(f"- Gold clips not in the corpus (not built, not scored): {count}: {shown}")
    said = set()
    for r in results:
        for other, roles in r.differs_from.items():
            if len(roles) == 1 and frozenset((r.name, other)) not in said:
                said.add(frozenset((r.name, other)))
                lines.append(f"- {r.name} and {other} differ in one setting only: {roles[0]} (an ablation).")
    for r in results:
        if r.cost is not None:
            lines.append(f"- {r.name}: {r.cost.asked_now} HTTP requests made in this run.")
        if r.canaries:
            counts = ", ".join(f"{n} {status}" for status, n in sorted(r.canaries.items()))
            lines.append(f"- {r.name}: modality canaries {counts} (its build.json says which and why).")
    if plot_name:
        lines += ["", f"![line-up comparison]({plot_name})"]
    return "\n".join(lines) + "\n"


def plot(board: Leaderboard, path: Path) -> Path:
    """Grouped bars: each line-up's headline scores (EMER Avg per reading, EW-F1 Avg), and its requests per clip."""
    # The object-oriented API on the Agg canvas: no pyplot global state, safe in Prefect's worker threads.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    results = board.lineups
    series = [(h, get) for h, get in columns(results) if h.startswith("Avg") or h == "EW-F1 Avg"]
    names = [r.name for r in results]
    fig = Figure(figsize=(max(6.0, 1.6 * len(names) + 3), 4.2))
    FigureCanvasAgg(fig)
    scores, costs = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 1.4]})
    width = 0.8 / max(1, len(series))
    for i, (header, get) in enumerate(series):
        xs = [x - 0.4 + width * (i + 0.5) for x in range(len(names))]
        values = [100 * (get(r) or 0.0) for r in results]
        bars = scores.bar(xs, values, width=width, label="EMER " + header if header.startswith("Avg") else header)
        scores.bar_label(bars, labels=[pct(get(r)) if get(r) is not None else "" for r in results], fontsize=7)
    for x, r in enumerate(results):
        if r.error:
            scores.text(x, 2, "failed", ha="center", va="bottom", rotation=90, fontsize=8, color="firebrick")
    scores.set_xticks(range(len(names)), names, rotation=20, ha="right")
    scores.set_ylim(0, 105)
    scores.set_ylabel("score (%)")
    scores.set_title(f"Scores on {board.clips} gold clips")
    if series:
        scores.legend(loc="upper right", fontsize=8)
    costs.bar(range(len(names)), [r.cost.requests if r.cost else 0.0 for r in results], color="gray")
    costs.set_xticks(range(len(names)), names, rotation=20, ha="right")
    costs.set_ylabel("requests per clip")
    costs.set_title("Cost")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    return path


def write(board: Leaderboard, out_dir: Path) -> Leaderboard:
    """leaderboard.json, leaderboard.md and leaderboard.png into `out_dir`; returns the board with `files` set."""
    names = (JSON_NAME, MARKDOWN_NAME, PLOT_NAME)
    return write_files(board, out_dir, names, render_markdown, lambda path: plot(board, path))
