"""The dataset card's plots: PNG files beside the card (`plots/`), embedded by it.

Four pictures a reader takes in faster than the tables: the label distribution, the gates' pass rates with
the commonest reasons a gate held a row back, the tier sizes, and the clip durations. matplotlib draws them
on its Agg backend (files only, no display). The build's card plots every row of the build; the published
card plots only what is published (flows/publish.py), so nothing about held-back rows leaves the builder.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

import pyarrow.parquet as pq

PLOTS = "plots"  # the folder beside the card
LABELS, GATES, TIERS, DURATIONS = "labels.png", "gates.png", "tiers.png", "durations.png"
TITLES = {
    LABELS: "Label distribution",
    GATES: "Gate pass rates and the commonest reasons",
    TIERS: "Tier sizes",
    DURATIONS: "Clip durations",
}
_BLUE, _GREY, _RED = "#4C72B0", "#B0B0B0", "#C44E52"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # A label in a script the bundled font lacks (a reviewer's Chinese label) is drawn as boxes, not an error.
        warnings.simplefilter("ignore", UserWarning)
        fig.tight_layout()
        # No Software/date metadata: the same build draws the same bytes.
        fig.savefig(path, format="png", dpi=100, metadata={"Software": None})
    fig.clf()
    import matplotlib.pyplot as plt

    plt.close(fig)


def _counts(axis) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))  # rows come whole


def _short(text: str, width: int = 48) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _empty(ax, what: str) -> None:
    ax.text(0.5, 0.5, what, ha="center", va="center", transform=ax.transAxes, color="#555555")
    ax.set_xticks([])
    ax.set_yticks([])


def label_plot(top: Iterable[tuple[str, int]], path: Path, *, scope: str) -> Path:
    plt = _pyplot()
    top = list(top)[:15]
    fig, ax = plt.subplots(figsize=(6.4, 0.3 * max(len(top), 4) + 1.2))
    if top:
        names = [_short(str(w), 30) for w, _ in top][::-1]
        ax.barh(names, [n for _, n in top][::-1], color=_BLUE)
        ax.set_xlabel("rows")
        _counts(ax.xaxis)
    else:
        _empty(ax, "no labels")
    ax.set_title(f"Most frequent labels ({scope})")
    _save(fig, path)
    return path


def gate_plot(gates: Mapping[str, Mapping], failures: Mapping[str, int], path: Path) -> Path:
    plt = _pyplot()
    reasons = list(failures.items())[:8]
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(10, 0.35 * max(len(gates), len(reasons), 4) + 1.4), gridspec_kw={"width_ratios": [2, 3]}
    )
    if gates:
        names = list(gates)[::-1]
        rates = [100 * gates[g]["pass_rate"] for g in names]
        left.barh(names, rates, color=_BLUE)
        left.barh(names, [100 - r for r in rates], left=rates, color=_GREY)
        left.set_xlim(0, 100)
        left.set_xlabel("% of judged rows passing")
    else:
        _empty(left, "no complete rows")
    left.set_title("Pass rate per gate")
    if reasons:
        right.barh([_short(r) for r, _ in reasons][::-1], [n for _, n in reasons][::-1], color=_RED)
        right.set_xlabel("rows held back")
        _counts(right.xaxis)
    else:
        _empty(right, "no row was held back")
    right.set_title("Commonest reasons")
    _save(fig, path)
    return path


def tier_plot(tiers: Mapping[str, int], held_back: Mapping[str, int], path: Path) -> Path:
    plt = _pyplot()
    bars = {f"{tier}": n for tier, n in tiers.items()} | {
        f"{split} (not published)": n for split, n in held_back.items()
    }
    fig, ax = plt.subplots(figsize=(6.4, 0.35 * max(len(bars), 3) + 1.2))
    names = list(bars)[::-1]
    colours = [_BLUE if name in tiers else _GREY for name in names]
    ax.barh(names, [bars[n] for n in names], color=colours)
    for y, name in enumerate(names):
        ax.text(bars[name], y, f" {bars[name]}", va="center")
    ax.set_xlabel("rows")
    _counts(ax.xaxis)
    ax.set_xlim(0, max([*bars.values(), 1]) * 1.15)
    ax.set_title("Rows per tier (plus is a subset of coarse)")
    _save(fig, path)
    return path


def duration_plot(durations: list[float], path: Path, *, scope: str) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    if durations:
        bins = min(30, max(5, int(math.sqrt(len(durations))) * 2))
        ax.hist(durations, bins=bins, color=_BLUE)
        ax.set_xlabel("seconds")
        ax.set_ylabel("clips")
        _counts(ax.yaxis)
    else:
        _empty(ax, "no durations")
    ax.set_title(f"Clip durations ({scope})")
    _save(fig, path)
    return path


def durations_of(paths: Iterable[Path]) -> list[float]:
    out: list[float] = []
    for path in paths:
        out += [d for d in pq.read_table(path, columns=["duration"]).column("duration").to_pylist() if d is not None]
    return out


def write_plots(
    folder: Path,
    *,
    top_labels: Iterable[tuple[str, int]],
    tiers: Mapping[str, int],
    held_back: Mapping[str, int],
    durations: list[float],
    scope: str,
    gates: Mapping[str, Mapping] | None = None,
    failures: Mapping[str, int] | None = None,
) -> list[str]:
    """Draw the card's plots into `folder/plots/`; returns their paths relative to `folder`, in card order.
    The gate plot is drawn only when `gates` is given (the build's card: the published one has no held-back
    rows to give reasons for)."""
    plots = folder / PLOTS
    plots.mkdir(parents=True, exist_ok=True)
    label_plot(top_labels, plots / LABELS, scope=scope)
    names = [LABELS]
    if gates is not None:
        gate_plot(gates, failures or {}, plots / GATES)
        names.append(GATES)
    tier_plot(tiers, held_back, plots / TIERS)
    duration_plot(durations, plots / DURATIONS, scope=scope)
    names += [TIERS, DURATIONS]
    return [f"{PLOTS}/{name}" for name in names]


def plots_markdown(paths: Iterable[str]) -> str:
    """The plots as Markdown images (relative links: they resolve beside the card, locally and on the Hub)."""
    return "\n\n".join(f"![{TITLES[Path(p).name]}]({p})" for p in paths)
