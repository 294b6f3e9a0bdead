"""Command line: `emer-coarse build CORPUS --out DIR [--config FILE]` runs the build-coarse flow;
`emer-coarse push OUT --repo ORG/NAME [--public]` runs the push-coarse flow (token from HF_TOKEN);
`emer-coarse evaluate PRED --gold CSV --out DIR` runs the evaluate flow."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from flows import progress as run_progress
from flows.prefect_defaults import apply_prefect_defaults

app = typer.Typer(help="Build coarse, explainable emotion datasets from human-centric video.", no_args_is_help=True)
console = Console()


@app.command()
def build(
    corpus: Path = typer.Argument(
        ..., exists=True, file_okay=False, help="Corpus folder: MER layout (video/, subtitle CSV) or plain clips"
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output folder for manifest, Parquet shards, DatasetDict and card"
    ),
    config: Path | None = typer.Option(
        None, "--config", "-c", exists=True, dir_okay=False, help="TOML or YAML engine config"
    ),
) -> None:
    """Run the build-coarse flow (Prefect; local mode unless PREFECT_API_URL points at a server)."""
    apply_prefect_defaults()
    check_lineup_or_exit(config)
    from flows.build_coarse import build_coarse  # Prefect import is slow: keep --help fast

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task_id = bar.add_task("annotating clips", total=None)
        listener = lambda done, total: bar.update(task_id, completed=done, total=total)  # noqa: E731
        run_progress.add_listener(listener)
        try:
            summary = build_coarse(corpus=str(corpus), out_dir=str(out), config_path=str(config) if config else None)
        finally:
            run_progress.remove_listener(listener)
    console.print_json(json.dumps(summary, ensure_ascii=False))
    console.print(stage_table(summary.get("stages", {})))


def check_lineup_or_exit(config: Path | None) -> None:
    """A line-up the stages cannot run (a role missing or unknown, a stage or prompt not found) is one
    line before any work, not a failed flow run."""
    from annotators.prompts import PromptNotFound
    from engine.assembly import LineupError, check_lineup
    from schemas.config import EngineConfig
    from stages.registry import UnknownStage

    try:
        check_lineup(EngineConfig.from_file(config))
    except (LineupError, UnknownStage, PromptNotFound) as exc:
        console.print(f"{config or 'the default line-up'}: {exc}", style="red", markup=False)
        raise typer.Exit(2) from None


def stage_table(stages: dict[str, dict]) -> Table:
    table = Table(title="What each stage cost in this run (tokens: prompt / completion)")
    columns = {"checkpoint_hits": "hits", "runs": "runs", "requests": "req", "attempts": "try"}
    columns |= {"failures": "fail", "prompt_tokens": "tok in", "completion_tokens": "tok out"}
    table.add_column("stage", no_wrap=True)
    for header in [*columns.values(), "s"]:
        table.add_column(header, justify="right")
    for stage, entry in stages.items():
        table.add_row(stage, *(str(entry[c]) for c in columns), f"{entry['seconds']:.1f}")
    return table


@app.command()
def push(
    out: Path = typer.Argument(..., exists=True, file_okay=False, help="A build-coarse output folder"),
    repo: str = typer.Option(..., "--repo", "-r", help="Dataset repo on the Hub, ORG/NAME"),
    public: bool = typer.Option(False, "--public", help="Create the repo public (default: private)"),
    endpoint: str | None = typer.Option(
        None, "--endpoint", help="Hub URL (default: HF_ENDPOINT, else huggingface.co)"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Stage what would be uploaded into OUT/.push and stop"),
) -> None:
    """Push the gated rows (the train split) and the dataset card to the Hub; the failed split stays local.

    The token is read from the HF_TOKEN environment variable only.
    """
    from flows import publish

    try:
        if dry_run:
            staged = publish.stage(out)
            console.print_json(
                json.dumps(
                    {
                        "staged": str(staged.folder),
                        "files": staged.files,
                        "rows": staged.rows,
                        "held_back": staged.held_back,
                    }
                )
            )
            return
        publish.hub_token()  # before Prefect starts: a missing token is the commonest mistake
        apply_prefect_defaults()
        from flows.push_coarse import push_coarse  # Prefect import is slow: keep --help fast

        result = push_coarse(out_dir=str(out), repo_id=repo, private=not public, endpoint=endpoint)
    except publish.PushError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    console.print_json(json.dumps(result, ensure_ascii=False))


@app.command()
def evaluate(
    predictions: Path = typer.Argument(
        ..., exists=True, help="A build-coarse output folder (its train split) or a predictions CSV (name, openset)"
    ),
    gold: Path = typer.Option(
        ..., "--gold", "-g", exists=True, dir_okay=False, help="Gold labels CSV (name, openset)"
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for report.md, report.json and labels.png"),
    groups: Path | None = typer.Option(
        None,
        "--groups",
        exists=True,
        help="Synonym groups: JSON (list of lists, or per clip), the lexicon TOML, or a folder of {clip}.npy",
    ),
    wheel: Path | None = typer.Option(
        None,
        "--wheel",
        exists=True,
        help=(
            "Emotion-wheel resources: wheel_mapping.npz, "
            "or a folder with it or with wheel1-5.xlsx, synonym.xlsx, format.csv"
        ),
    ),
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        exists=True,
        dir_okay=False,
        help="TOML or YAML with a [synonyms] role: group each clip's labels with that LLM (cached)",
    ),
) -> None:
    """Score labels with the EMER metric (and the emotion-wheel metric with --wheel); write the report.

    Synonym groups: --groups if given, else per clip from the [synonyms] role of --config, else the engine's lexicon.
    """
    apply_prefect_defaults()
    from flows.evaluate import evaluate as evaluate_flow  # Prefect import is slow: keep --help fast

    try:
        summary = evaluate_flow(
            predictions=str(predictions),
            gold=str(gold),
            out_dir=str(out),
            groups=str(groups) if groups else None,
            wheel=str(wheel) if wheel else None,
            config_path=str(config) if config else None,
        )
    except ValueError as exc:  # a malformed input file: say which and why, no traceback
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    console.print_json(json.dumps(summary, ensure_ascii=False))


@app.command("make-sample")
def make_sample(out: Path = typer.Argument(Path("data/sample"), help="Where to write the sample corpus")) -> None:
    """Regenerate the bundled sample corpus (ffmpeg + espeak-ng)."""
    from data.synth_clips import make_sample_corpus

    make_sample_corpus(out)
    console.print(f"sample corpus written to {out}")


review_app = typer.Typer(
    help="Human review of held-back rows in Label Studio (API key from LABEL_STUDIO_API_KEY only).",
    no_args_is_help=True,
)
app.add_typer(review_app, name="review")
LABEL_STUDIO_URL = typer.Option(
    "http://localhost:8080", "--url", envvar="LABEL_STUDIO_URL", help="Label Studio's address"
)
REVIEW_PROJECT = typer.Option(
    "EMER coarse review", "--project", "-p", help="Title of the Label Studio project (created by push if missing)"
)


@review_app.command("push")
def review_push(
    out: Path = typer.Argument(
        ..., exists=True, file_okay=False, help="A build-coarse output folder (its review split and manifest)"
    ),
    url: str = LABEL_STUDIO_URL,
    project: str = REVIEW_PROJECT,
    document_root: str | None = typer.Option(
        None,
        "--document-root",
        help="Label Studio's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT (default: that variable here)",
    ),
) -> None:
    """Queue the review split's rows as Label Studio tasks.

    Rows already queued (same clip content) are not queued again."""
    from review import label_studio, media, queue

    try:
        with label_studio.connect(url) as client:
            result = queue.push(out, client, project=project, document_root=document_root)
    except (label_studio.ReviewError, media.MediaError, FileNotFoundError) as exc:
        console.print(str(exc), style="red", markup=False)
        raise typer.Exit(2) from None
    console.print_json(json.dumps(result.summary(), ensure_ascii=False))


@review_app.command("pull")
def review_pull(
    out: Path = typer.Argument(
        ..., exists=True, file_okay=False, help="The build-coarse output folder the rows were pushed from"
    ),
    url: str = LABEL_STUDIO_URL,
    project: str = REVIEW_PROJECT,
) -> None:
    """Import the reviewers' decisions into OUT/review/decisions.parquet; the next build applies them."""
    from review import decisions, label_studio

    try:
        with label_studio.connect(url) as client:
            found = decisions.pull(out, client, project=project)
    except (label_studio.ReviewError, decisions.PullError) as exc:
        console.print(str(exc), style="red", markup=False)
        raise typer.Exit(2) from None
    accepted = sum(d.accepted for d in found)
    console.print_json(
        json.dumps(
            {
                "decisions": len(found),
                "accepted": accepted,
                "rejected": len(found) - accepted,
                "file": str(decisions.decisions_path(out)),
            }
        )
    )


if __name__ == "__main__":
    app()
