"""Command line: `emer-coarse build CORPUS --out DIR [--config FILE]` runs the build-coarse flow;
`emer-coarse push OUT --repo ORG/NAME [--public]` runs the push-coarse flow (token from HF_TOKEN);
`emer-coarse evaluate PRED --gold CSV --out DIR` runs the evaluate flow;
`emer-coarse export OUT --format FMT --to DIR` runs the export-training flow (files a trainer's loader reads);
`emer-coarse compare CORPUS --gold CSV --lineups A.toml B.toml --out DIR` runs the compare flow."""

from __future__ import annotations

import errno
import functools
import inspect
import json
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from flows import progress as run_progress
from flows.prefect_defaults import apply_prefect_defaults
from runtime import lifecycle
from schemas.errors import UserError

app = typer.Typer(help="Build coarse, explainable emotion datasets from human-centric video.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)
USER_MISTAKE = 2  # exit status for a mistake the user can fix (click's own for a bad option)
NOTHING_ANNOTATED = 1
MACHINE_TROUBLE = 1  # the disk or permissions, not the input: the run stopped, what it finished is kept
# OS errors the user fixes on the machine, by what to do about them; any other OSError is a bug's traceback.
OS_ERROR_ADVICE = {
    errno.ENOSPC: "no space left on the device: free some space and run again (finished work is kept)",
    errno.EDQUOT: "disk quota exceeded: free some space and run again (finished work is kept)",
    errno.EACCES: "permission denied: choose a folder you can write to, or fix its permissions",
    errno.EPERM: "operation not permitted: choose a folder you can write to, or fix its permissions",
    errno.EROFS: "read-only file system: choose a writable --out (and state_dir)",
}
ZERO_DOWNLOAD_CONFIG = "data/configs/cpu-signals.toml"


def debugging() -> bool:
    """--debug (or EMER_DEBUG=1): show tracebacks instead of the one-line answers."""
    return os.environ.get("EMER_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


@app.callback()
def main(
    debug: bool = typer.Option(
        False, "--debug", help="Show the full traceback of an error (also EMER_DEBUG=1) instead of one line"
    ),
) -> None:
    if debug:
        os.environ["EMER_DEBUG"] = "1"  # the flow's own processes (Dask workers) see it too
    # Whatever this run starts (Prefect's temporary server, decoders, vLLM servers) ends with it, however
    # it ends; SIGTERM unwinds like Ctrl-C, so every clean-up on the way runs.
    lifecycle.install()


def refuse(message: object, status: int = USER_MISTAKE) -> NoReturn:
    """A user's mistake: its lines, no traceback (unless debugging), exit status 2."""
    errors.print(str(message), style="red", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(status)


def answered(exc: BaseException) -> bool:
    """An error the CLI answers in a line: a user's mistake, or the disk or permissions of the machine."""
    return isinstance(exc, UserError) or (isinstance(exc, OSError) and exc.errno in OS_ERROR_ADVICE)


def answers_user_errors(command: Callable) -> Callable:
    """A UserError anywhere under the command (config, CSV, paths, a refused OUT) is printed as its lines;
    a full disk or a permission refused, as the path and what to do."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (lifecycle.Terminated)
            if debugging():
                raise
            signum = getattr(exc, "signum", signal.SIGINT)
            refuse(
                f"stopped by {signal.Signals(signum).name}: what the run started is stopped and every answer "
                "so far is kept; run the same command again to resume",
                128 + signum,
            )
        except (UserError, OSError) as exc:
            if debugging() or not answered(exc):
                raise
            if isinstance(exc, UserError):
                refuse(exc)
            where = exc.filename or "writing"
            refuse(f"{where}: {OS_ERROR_ADVICE[exc.errno]}", MACHINE_TROUBLE)

    return run


@contextmanager
def quiet_about_user_errors() -> Iterator[None]:
    """Prefect logs a failed flow or task run with its traceback; for a user's mistake the CLI prints
    the one line itself, so those records stay out of the terminal (they still reach the Prefect API).
    Entered once the flow is imported: Prefect sets up its console handler then."""
    import logging

    from prefect.logging.handlers import PrefectConsoleHandler

    handlers = [h for h in logging.getLogger().handlers if isinstance(h, PrefectConsoleHandler)]
    names = _user_error_names()

    def keep(record: logging.LogRecord) -> bool:
        raised = record.exc_info[1] if record.exc_info else None
        if raised is not None:
            return not answered(raised)
        message = record.getMessage()
        named = any(f"{n}:" in message or f"{n}(" in message for n in names)
        return not named and not any(f"[Errno {code}]" in message for code in OS_ERROR_ADVICE)

    if debugging():
        handlers = []
    for handler in handlers:
        handler.addFilter(keep)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(keep)


def _user_error_names() -> set[str]:
    # Prefect's closing "Finished in state Failed('... exception LabelFileError: ...')" names the class only.
    names, todo = set(), [UserError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo += cls.__subclasses__()
    return names


@app.command()
@answers_user_errors
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
    force: bool = typer.Option(
        False, "--force", help="Allow a non-empty OUT the engine did not write (its files there may be replaced)"
    ),
) -> None:
    """Run the build-coarse flow (Prefect; local mode unless PREFECT_API_URL points at a server)."""
    apply_prefect_defaults()
    preflight_or_exit(config)
    from flows.build_coarse import build_coarse  # Prefect import is slow: keep --help fast

    params = {"corpus": str(corpus), "out_dir": str(out), "config_path": str(config) if config else None}
    if "force" in inspect.signature(build_coarse.fn).parameters:
        params["force"] = force
    elif force:
        refuse("--force: this build-coarse flow has no `force` parameter")

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
            with quiet_about_user_errors():
                summary = build_coarse(**params)
        finally:
            run_progress.remove_listener(listener)
    console.print_json(json.dumps(summary, ensure_ascii=False))
    console.print(stage_table(summary.get("stages", {})))
    if nothing := nothing_annotated(summary, out):
        errors.print(nothing, style="red", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(NOTHING_ANNOTATED)


def nothing_annotated(summary: dict, out: Path) -> str | None:
    """The line to end on when the corpus had clips and not one row came out complete (every clip failed)."""
    splits, clips = summary.get("splits") or {}, summary.get("clips") or 0
    if clips == 0 or any(count for split, count in splits.items() if split != "failed"):
        return None
    return (
        f"no clip could be annotated: all {clips} are in the failed split with their reasons "
        f"({out / 'data'}/failed-*.parquet); fix the cause and build again"
    )


def preflight_or_exit(config: Path | None) -> None:
    """A configuration that cannot run (a bad key or value, a role, stage, prompt or rules file not found,
    a server not answering) is said before any work, in a line per problem, not as a failed flow run."""
    from engine.assembly import PreflightError, preflight
    from schemas.config import EngineConfig

    try:
        preflight(EngineConfig.from_file(config))
    except PreflightError as exc:
        if debugging():
            raise
        where = f"{config}: " if config else "the default (GPU) line-up: "
        lines = [where + problem for problem in exc.problems]
        if config is None and exc.unreachable:
            lines.append(
                f"no --config was given, so the GPU line-up's vLLM servers are expected; for the zero-download "
                f"line-up (no servers, no weights) run with --config {ZERO_DOWNLOAD_CONFIG}"
            )
        refuse("\n".join(lines))


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
@answers_user_errors
def push(
    out: Path = typer.Argument(..., exists=True, file_okay=False, help="A build-coarse output folder"),
    repo: str = typer.Option(..., "--repo", "-r", help="Dataset repo on the Hub, ORG/NAME"),
    public: bool = typer.Option(False, "--public", help="Create the repo public (default: private)"),
    endpoint: str | None = typer.Option(
        None, "--endpoint", help="Hub URL (default: HF_ENDPOINT, else huggingface.co)"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Stage what would be uploaded into OUT/.push and stop"),
    tier: list[str] = typer.Option(
        ["coarse"],
        "--tier",
        "-t",
        help="Tier to publish, each its own config of the dataset: coarse (the train split) or plus; repeat for both",
    ),
) -> None:
    """Push the gated rows (the train split) and the dataset card to the Hub; the failed split stays local.

    The token is read from the HF_TOKEN environment variable only.
    """
    from flows import publish

    try:
        if dry_run:
            staged = publish.stage(out, tiers=tier, repo_id=repo)
            console.print_json(
                json.dumps(
                    {
                        "staged": str(staged.folder),
                        "files": staged.files,
                        "rows": staged.rows,
                        "tiers": staged.tiers,
                        "held_back": staged.held_back,
                    }
                )
            )
            return
        publish.hub_token()  # before Prefect starts: a missing token is the commonest mistake
        apply_prefect_defaults()
        from flows.push_coarse import push_coarse  # Prefect import is slow: keep --help fast

        with quiet_about_user_errors():
            result = push_coarse(
                out_dir=str(out), repo_id=repo, private=not public, endpoint=endpoint, tiers=list(tier)
            )
    except publish.PushError as exc:
        if debugging():
            raise
        refuse(exc)
    console.print_json(json.dumps(result, ensure_ascii=False))


@app.command()
@answers_user_errors
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
        help="TOML or YAML with a \\[synonyms] role: group each clip's labels with that LLM (cached)",
    ),
) -> None:
    """Score labels with the EMER metric (and the emotion-wheel metric with --wheel); write the report.

    Synonym groups: --groups if given, else per clip from the \\[synonyms] role of --config, else the engine's lexicon.
    """
    apply_prefect_defaults()
    check_evaluate_config(config)
    from flows.evaluate import evaluate as evaluate_flow  # Prefect import is slow: keep --help fast

    try:
        with quiet_about_user_errors():
            summary = evaluate_flow(
                predictions=str(predictions),
                gold=str(gold),
                out_dir=str(out),
                groups=str(groups) if groups else None,
                wheel=str(wheel) if wheel else None,
                config_path=str(config) if config else None,
            )
    except ValueError as exc:  # a malformed input file: say which and why, no traceback
        if debugging():
            raise
        refuse(exc)
    console.print_json(json.dumps(summary, ensure_ascii=False))


def check_evaluate_config(config: Path | None) -> None:
    """The evaluate configuration's mistakes, in the engine configuration's words, before the flow starts."""
    from pydantic import ValidationError

    from schemas.config import config_problems
    from schemas.metrics import EvaluateConfig

    try:
        EvaluateConfig.from_file(config)
    except ValidationError as exc:
        refuse("\n".join(config_problems(exc, EvaluateConfig, config)))


@app.command()
@answers_user_errors
def export(
    out: Path = typer.Argument(..., exists=True, file_okay=False, help="A build-coarse output folder"),
    fmt: str = typer.Option(
        ..., "--format", "-f", help="affectgpt | mercaption | llamafactory | atomic (whose loader reads it)"
    ),
    to: Path = typer.Option(..., "--to", help="Folder to write into: empty, or one an earlier export wrote"),
    tier: str = typer.Option("coarse", "--tier", "-t", help="coarse (the train split) or plus (its stricter subset)"),
    media: str = typer.Option(
        "link", "--media", help="link (symbolic links to the corpus and media cache), copy, or none"
    ),
    convert: bool = typer.Option(
        False,
        "--avi",
        "--convert",
        help="Re-mux clips (ffmpeg) into the container the reader's file names say (affectgpt .avi, mercaption .mp4)",
    ),
    config: Path | None = typer.Option(
        None, "--config", "-c", exists=True, dir_okay=False, help="The build's engine config (state_dir, media, tiers)"
    ),
) -> None:
    """Write the rows fit to publish (a tier of the train split) as a trainer's own data loader reads them.

    Runs the Prefect flow export-training (flows/export_training.py); export-manifest.json says what was written.
    """
    apply_prefect_defaults()
    from schemas.config import EngineConfig

    EngineConfig.from_file(config)  # a bad key or value is said here, in the configuration's words
    from flows.export_training import export_training  # Prefect import is slow: keep --help fast

    with quiet_about_user_errors():
        manifest = export_training(
            out_dir=str(out),
            fmt=fmt,
            to=str(to),
            tier=tier,
            media=media,
            convert=convert,
            config_path=str(config) if config else None,
        )
    shown = ("format", "tier", "rows", "samples", "files", "media_files", "reader", "notes")
    summary = {k: manifest[k] for k in shown}
    summary |= {"media_problems": len(manifest["media_problems"]), "skipped": len(manifest["skipped"])}
    summary["manifest"] = str(to / "export-manifest.json")
    console.print_json(json.dumps(summary, ensure_ascii=False))


@app.command(context_settings={"allow_extra_args": True})
@answers_user_errors
def compare(
    ctx: typer.Context,
    corpus: Path = typer.Argument(
        ..., exists=True, file_okay=False, help="Corpus folder (as for build); only its gold-labelled clips are built"
    ),
    gold: Path = typer.Option(
        ..., "--gold", "-g", exists=True, dir_okay=False, help="Gold labels CSV (name, openset)"
    ),
    lineups: list[Path] = typer.Option(
        ..., "--lineups", "-l", exists=True, dir_okay=False, help="Line-up configurations: --lineups A.toml B.toml ..."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: leaderboard, builds, shared checkpoint"),
    groups: Path | None = typer.Option(None, "--groups", exists=True, help="Synonym groups, as for evaluate"),
    wheel: Path | None = typer.Option(None, "--wheel", exists=True, help="Emotion-wheel resources, as for evaluate"),
    eval_config: Path | None = typer.Option(
        None, "--eval-config", exists=True, dir_okay=False, help="The evaluation's \\[synonyms] role, as for evaluate"
    ),
    force: bool = typer.Option(False, "--force", help="Allow a non-empty OUT the engine did not write"),
) -> None:
    """Build each line-up over the gold clips (one shared checkpoint), score each, and rank them with their cost.

    Runs the Prefect flow compare (flows/compare.py); OUT/leaderboard.md says which line-up scores best and at
    what cost per clip.
    """
    # click gives an option one value per flag: the files after the first (`--lineups A.toml B.toml`) arrive
    # as extra arguments.
    extra = [Path(arg) for arg in ctx.args]
    for path in extra:
        if path.suffix.lower() not in (".toml", ".yaml", ".yml") or not path.is_file():
            refuse(f"{path}: not a line-up configuration file (.toml or .yaml); give line-ups after --lineups")
    apply_prefect_defaults()
    check_evaluate_config(eval_config)
    from flows.compare import compare as compare_flow  # Prefect import is slow: keep --help fast
    from flows.compare import lineup_names

    lineup_names([str(p) for p in [*lineups, *extra]])  # two line-ups of one name: said before the flow starts

    try:
        with quiet_about_user_errors():
            summary = compare_flow(
                corpus=str(corpus),
                gold=str(gold),
                lineups=[str(p) for p in [*lineups, *extra]],
                out_dir=str(out),
                groups=str(groups) if groups else None,
                wheel=str(wheel) if wheel else None,
                eval_config=str(eval_config) if eval_config else None,
                force=force,
            )
    except ValueError as exc:  # a malformed gold or groups file: say which and why, no traceback
        if debugging():
            raise
        refuse(exc)
    console.print_json(json.dumps(summary, ensure_ascii=False))
    console.print(summary["verdict"], markup=False, highlight=False, soft_wrap=True)


@app.command("make-sample")
@answers_user_errors
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
@answers_user_errors
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
        if debugging():
            raise
        refuse(exc)
    console.print_json(json.dumps(result.summary(), ensure_ascii=False))


@review_app.command("pull")
@answers_user_errors
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
        if debugging():
            raise
        refuse(exc)
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
