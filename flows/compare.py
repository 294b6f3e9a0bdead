"""The compare flow: line-ups built over the gold clips of a corpus, scored, and ranked with their cost.

How the method chose its models (AffectGPT's Table 1 scores MLLMs on the human-checked clips): every line-up
is built by the build-coarse flow over the clips the gold file labels, all with one state folder
(`DIR/.state`), so a stage two line-ups have in common (same stage, model, prompt, sampling and inputs: the
checkpoint key) is asked once; each build is scored by the evaluate flow (EMER, and the emotion wheels when
given) on the labels of its complete rows, whether or not a quality gate held them back (the gates judge data,
not the line-up); and the leaderboard (metrics/leaderboard.py) ranks them with what each cost per clip.

`DIR` receives `leaderboard.md`, `leaderboard.json`, `leaderboard.png`, `gold.csv` (the gold rows of clips in
the corpus), `gold-corpus/` (links to those clips and their subtitle rows: what every line-up is built over),
`lineups/<stem>/` (`config.yaml` as run, `build/` the build output, `predictions.parquet`, `evaluation/`) and
`.state/` (the shared checkpoint and media cache; keep it: a re-run asks nothing it already asked).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from engine.assembly import lineup
from engine.pipeline import StorageFailure
from flows.build_coarse import build_coarse
from flows.evaluate import check_inputs
from flows.evaluate import evaluate as evaluate_flow
from metrics import leaderboard as board_files
from metrics.openset import LabelFileError, OpensetTable, read_openset_table, write_openset_csv
from runtime.outdir import OutputFolder
from schemas.compare import Leaderboard, LineupCost, LineupResult, StageCost
from schemas.config import EngineConfig, read_config_file, stable_hash
from schemas.errors import UserError
from schemas.metrics import EmerSummary, EvaluateReport
from stages.ingest import clean_cell, decode_table, discover

SUBSET, LINEUPS, STATE, GOLD = "gold-corpus", "lineups", ".state", "gold.csv"
TIMINGS = "compare-timings.json"  # in the shared state: seconds per answer, by stage and backend identity
SCORED_SPLITS = ("train", "review", "rejected")  # complete rows: every stage answered
ERROR_CHARS = 300


class CompareError(UserError, ValueError):
    """The comparison cannot start as asked (line-up names, the corpus, the gold file): one line saying what to do."""


def lineup_names(paths: list[str]) -> dict[str, Path]:
    """Line-ups by file stem (their names in the table); two files with one stem cannot be told apart."""
    named: dict[str, Path] = {}
    for path in map(Path, paths):
        if path.stem in named:
            raise CompareError(
                f"line-ups {named[path.stem]} and {path} are both named {path.stem!r} (the file stem names a "
                "line-up in the table): rename one"
            )
        named[path.stem] = path
    if not named:
        raise CompareError("no line-up to compare: give one or more configuration files with --lineups")
    return named


def one_line(exc: BaseException) -> str:
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
    return text if len(text) <= ERROR_CHARS else text[:ERROR_CHARS] + "..."


@task(name="gold-subset", cache_policy=NO_CACHE)
def gold_subset(corpus: str, gold: str, folder: OutputFolder) -> tuple[Path, Path, dict[str, list[str]], list[str]]:
    """The corpus cut down to the clips the gold file labels: links to those clips (and their audio), their
    subtitle rows as written; the gold rows of those clips. Returns the subset's root, the gold CSV written,
    the gold labels and the gold clips not in the corpus."""
    logger = get_run_logger()
    table = read_openset_table(gold)
    check_inputs(OpensetTable(), table, corpus, gold)  # a gold file with nothing to score stops here
    for name, why in table.errors.items():
        logger.warning("gold %s (%s): not scored", name, why)
    labelled = {name: labels for name, labels in table.labels.items() if labels}
    found = discover(Path(corpus))
    clips = {path.stem: path for path in found.clips}
    missing = sorted(set(labelled) - set(clips))
    keep = {name: labelled[name] for name in sorted(labelled) if name in clips}
    if not keep:
        example = next(iter(labelled))
        raise LabelFileError(
            f"{gold}: none of its {len(labelled)} labelled clips is in {corpus} (e.g. {example!r}): the gold `name` "
            "column must name the corpus's clips (their file names without the extension)"
        )
    folder.claim(SUBSET, GOLD)
    folder.remove(SUBSET)  # rebuilt each run from the corpus as it is now
    root = folder.path / SUBSET
    (root / "video").mkdir(parents=True)
    for name in keep:
        (root / "video" / f"{name}{clips[name].suffix}").symlink_to(clips[name].absolute())
        if found.audio_dir and (wav := found.audio_dir / f"{name}.wav").is_file():
            (root / "audio").mkdir(exist_ok=True)
            (root / "audio" / wav.name).symlink_to(wav.absolute())
    if found.subtitle_table is not None:
        _subtitle_rows(found.subtitle_table, set(keep), root / found.subtitle_table.name)
    gold_csv = write_openset_csv(folder.path / GOLD, keep)
    logger.info("%d gold clips in the corpus, %d not in it", len(keep), len(missing))
    return root, gold_csv, keep, missing


def _subtitle_rows(table: Path, names: set[str], out: Path) -> None:
    """The subtitle table's rows for `names`, cells as written (ingest reads and cleans them as it reads the
    corpus's own table); UTF-8 whatever the table's encoding."""
    text, _ = decode_table(table)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = {c.strip().lower(): c for c in reader.fieldnames or []}
    name_column = columns.get("name")
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=reader.fieldnames or ["name"])
        writer.writeheader()
        for row in reader:
            name, _ = clean_cell(Path((row.get(name_column) or "").strip()).stem) if name_column else (None, [])
            if name in names:
                writer.writerow(row)


def derived_config(path: Path, state_dir: Path, out: Path) -> EngineConfig:
    """The line-up's configuration as written, with the comparison's shared state folder: checked as the
    user's own file (its errors name that file), then written to `out` (what the build reads)."""
    EngineConfig.from_file(path)
    data = read_config_file(path)
    data["state_dir"] = str(state_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        f"# {path} as `emer-coarse compare` ran it: the shared state folder set\n"
        + yaml.safe_dump(data, sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )
    return EngineConfig.from_file(out)


def role_signature(config: EngineConfig) -> dict[str, str]:
    """Role -> what its answers depend on (the endpoints' URLs aside: replicas of one model agree)."""
    return {
        role: stable_hash(
            cfg.model_dump(mode="json", exclude={"endpoints"}) | {"models": [e.model for e in cfg.endpoints]}
        )
        for role, cfg in config.roles.items()
    }


def build_rows(build: Path) -> dict[str, list[dict]]:
    """Split -> the build's rows (resolved once: data/ is a link a later build swaps)."""
    data = (build / "data").resolve()
    out: dict[str, list[dict]] = {}
    for shard in sorted(data.glob("*.parquet")):
        split = shard.name.split("-", 1)[0]
        out.setdefault(split, []).extend(pq.read_table(shard).to_pylist())
    return out


def write_predictions(build: Path, path: Path) -> int:
    """Every complete row of the build (train, review, rejected), every column, as one Parquet file for the
    evaluate flow; returns the rows written."""
    data = (build / "data").resolve()
    shards = [s for split in SCORED_SPLITS for s in sorted(data.glob(f"{split}-*.parquet"))]
    tables = [pq.read_table(s) for s in shards]
    if not tables:
        return 0
    table = pa.concat_tables(tables, promote_options="default")
    pq.write_table(table, path)
    return table.num_rows


def stage_costs(rows: list[dict]) -> dict[tuple[str, str], StageCost]:
    """(stage, backend identity) -> what its answers took, from the rows' provenance: every call is recorded
    there whether it was made in this run or read back from the checkpoint."""
    costs: dict[tuple[str, str], StageCost] = {}
    for row in rows:
        answered = set()
        for call in row.get("provenance") or []:
            key = (call["stage"], call["config_hash"])
            cost = costs.setdefault(key, StageCost())
            if key not in answered:
                answered.add(key)
                cost.answers += 1
            attempts = call.get("attempts") or 0
            cost.requests += 1 if attempts else 0
            cost.attempts += attempts
            cost.prompt_tokens += call.get("prompt_tokens") or 0
            cost.completion_tokens += call.get("completion_tokens") or 0
    return costs


def record_timings(
    timings: dict[str, float], stages: dict[str, dict], costs: dict[tuple[str, str], StageCost]
) -> None:
    """Seconds per answer of each stage a build answered now, under the backend identity it answered with."""
    for stage, entry in stages.items():
        identities = {identity for name, identity in costs if name == stage}
        if entry.get("runs") and len(identities) == 1:
            timings[f"{stage}|{identities.pop()}"] = entry["seconds"] / entry["runs"]


def lineup_cost(
    clips: int, costs: dict[tuple[str, str], StageCost], timings: dict[str, float], asked_now: int
) -> LineupCost:
    stages: dict[str, StageCost] = {}
    seconds, complete = 0.0, True
    for (stage, identity), cost in sorted(costs.items()):
        per_answer = timings.get(f"{stage}|{identity}")
        if per_answer is None:
            complete = False
        else:
            cost = cost.model_copy(update={"seconds": round(per_answer * cost.answers, 3)})
            seconds += per_answer * cost.answers
        stages[stage] = cost if stage not in stages else _sum(stages[stage], cost)
    total = StageCost()
    for cost in stages.values():
        total = _sum(total, cost)
    n = max(1, clips)
    return LineupCost(
        clips=clips,
        requests=total.requests / n,
        attempts=total.attempts / n,
        prompt_tokens=total.prompt_tokens / n,
        completion_tokens=total.completion_tokens / n,
        tokens=(total.prompt_tokens + total.completion_tokens) / n,
        seconds=seconds / n if costs else None,
        seconds_complete=complete,
        asked_now=asked_now,
        stages=stages,
    )


def _sum(a: StageCost, b: StageCost) -> StageCost:
    counts = {f: getattr(a, f) + getattr(b, f) for f in ("answers", "requests", "attempts")}
    counts |= {f: getattr(a, f) + getattr(b, f) for f in ("prompt_tokens", "completion_tokens")}
    seconds = None if a.seconds is None and b.seconds is None else (a.seconds or 0.0) + (b.seconds or 0.0)
    return StageCost(**counts, seconds=seconds)


def no_clip_completed(rows: dict[str, list[dict]]) -> str:
    """Why a line-up has no complete row: its commonest error over the clips."""
    failed = rows.get("failed", [])
    reasons = Counter(
        e["message"] if e["message"].startswith(f"{e['stage']}:") else f"{e['stage']}: {e['message']}"
        for row in failed
        for e in (row.get("errors") or [])[:1]
    ) or Counter(row.get("clip_error") or "no reason recorded" for row in failed)
    reason, count = reasons.most_common(1)[0] if reasons else ("no clip was built", 0)
    return one_line(f"no clip completed ({count} of {len(failed)} failed with: {reason})")


def readings(report: EvaluateReport) -> dict[str, EmerSummary]:
    """The report's EMER results by reading: `labels` (the labels stage's), and one per language whose
    description the evaluation read labels from (`en`, `zh`: AffectGPT reports both languages)."""
    found = {board_files.PRIMARY: report.emer}
    for score in getattr(report, "languages", None) or []:
        found[str(score.language)] = score.emer
    return found


def _load_timings(path: Path) -> dict[str, float]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: float(v) for k, v in data.items() if isinstance(v, (int, float))} if isinstance(data, dict) else {}


@task(name="lineup-cost", cache_policy=NO_CACHE)
def measure_lineup(result: LineupResult, build: Path, summary: dict, timings: dict[str, float]) -> LineupResult:
    rows = build_rows(build)
    everything = [row for split in rows.values() for row in split]
    costs = stage_costs(everything)
    record_timings(timings, summary.get("stages") or {}, costs)
    complete = sum(len(rows.get(split, [])) for split in SCORED_SPLITS)
    canaries = (summary.get("canaries") or {}).get("results") or []
    update = {
        "canaries": dict(Counter(str(c.get("status")) for c in canaries)),
        "clips": len(everything),
        "complete": complete,
        "train": len(rows.get("train", [])),
        "failed": len(rows.get("failed", [])),
        "cost": lineup_cost(len(everything), costs, timings, int(summary.get("model_calls") or 0)),
    }
    if not complete:
        update["error"] = no_clip_completed(rows)
    return result.model_copy(update=update)


def run_lineup(
    name: str,
    path: Path,
    subset: Path,
    gold_csv: Path,
    folder: OutputFolder,
    timings: dict[str, float],
    groups: str | None,
    wheel: str | None,
    eval_config: str | None,
    logger: logging.Logger | logging.LoggerAdapter,
) -> tuple[LineupResult, EngineConfig | None]:
    """Build, measure and score one line-up; whatever stops it is its row's error, not the comparison's end
    (a full disk stops the comparison: every line-up after it would meet it too)."""
    base = folder.path / LINEUPS / name
    result = LineupResult(name=name, config=str(path))
    try:
        config = derived_config(path, folder.path / STATE, base / "config.yaml")
        result.models = {role: list(entry["models"]) for role, entry in lineup(config).items()}
    except (UserError, ValueError, OSError) as exc:
        logger.warning("line-up %s: %s", name, one_line(exc))
        return result.model_copy(update={"error": one_line(exc)}), None
    result.files = {"config": str(base / "config.yaml"), "build": str(base / "build")}
    try:
        summary = build_coarse(corpus=str(subset), out_dir=str(base / "build"), config_path=str(base / "config.yaml"))
    except StorageFailure:
        raise
    except Exception as exc:  # a line-up that cannot run is a row of the table, said in its own words
        logger.warning("line-up %s did not build: %s", name, one_line(exc))
        return result.model_copy(update={"error": one_line(exc)}), config
    result = measure_lineup(result, base / "build", summary, timings)
    if result.error:
        logger.warning("line-up %s: %s", name, result.error)
        return result, config
    predictions = base / "predictions.parquet"
    write_predictions(base / "build", predictions)
    try:
        evaluate_flow(
            predictions=str(predictions),
            gold=str(gold_csv),
            out_dir=str(base / "evaluation"),
            groups=groups,
            wheel=wheel,
            config_path=eval_config,
        )
        report = EvaluateReport.model_validate_json((base / "evaluation" / "report.json").read_text(encoding="utf-8"))
    except (UserError, ValueError, OSError) as exc:  # e.g. unreadable wheel resources: said, with the build kept
        logger.warning("line-up %s could not be evaluated: %s", name, one_line(exc))
        return result.model_copy(update={"error": f"not evaluated: {one_line(exc)}"}), config
    files = result.files | {"predictions": str(predictions), "evaluation": str(base / "evaluation")}
    return result.model_copy(update={"emer": readings(report), "wheel": report.wheel, "files": files}), config


def shared_eval_config(eval_config: str | None, folder: OutputFolder) -> str | None:
    """The evaluation's configuration with its synonym cache in the shared state: line-ups that answer
    alike are grouped once."""
    if not eval_config:
        return None
    data = read_config_file(Path(eval_config))
    data["state_dir"] = str(folder.path / STATE)
    folder.claim(LINEUPS)
    out = folder.path / LINEUPS / "evaluate.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return str(out)


def differences(configs: dict[str, EngineConfig]) -> dict[str, dict[str, list[str]]]:
    """Line-up -> other line-up -> the roles configured otherwise (and `media`, when the media sampling is)."""
    signatures = {
        name: role_signature(config) | {"media": stable_hash(config.media.model_dump(mode="json"))}
        for name, config in configs.items()
    }
    return {
        name: {
            other: sorted(role for role in set(mine) | set(theirs) if mine.get(role) != theirs.get(role))
            for other, theirs in signatures.items()
            if other != name
        }
        for name, mine in signatures.items()
    }


@task(name="write-leaderboard", cache_policy=NO_CACHE)
def write_leaderboard(board: Leaderboard, folder: OutputFolder) -> Leaderboard:
    folder.claim(board_files.JSON_NAME, board_files.MARKDOWN_NAME, board_files.PLOT_NAME)
    return board_files.write(board, folder.path)


@flow(name="compare", persist_result=False)
def compare(
    corpus: str,
    gold: str,
    lineups: list[str],
    out_dir: str,
    groups: str | None = None,
    wheel: str | None = None,
    eval_config: str | None = None,
    force: bool = False,
) -> dict:
    """Build every line-up in `lineups` over the clips of `corpus` that `gold` labels (one shared checkpoint),
    score each with the EMER metric (and the emotion wheels when `wheel` names their resources), and write the
    leaderboard into `out_dir`."""
    logger = get_run_logger()
    named = lineup_names(lineups)
    folder = OutputFolder.open(Path(out_dir), force=force)
    with folder.exclusive(f"compare of {Path(corpus).resolve()}"):
        folder.claim(STATE, LINEUPS)
        (folder.path / STATE).mkdir(parents=True, exist_ok=True)
        subset, gold_csv, gold_labels, missing = gold_subset(corpus, gold, folder)
        eval_path = shared_eval_config(eval_config, folder)
        timings_path = folder.path / STATE / TIMINGS
        timings = _load_timings(timings_path)
        results, configs = [], {}
        for name, path in named.items():
            logger.info("line-up %s (%s): building %d gold clips", name, path, len(gold_labels))
            result, config = run_lineup(
                name, path, subset, gold_csv, folder, timings, groups, wheel, eval_path, logger
            )
            results.append(result)
            if config is not None:
                configs[name] = config
            timings_path.write_text(json.dumps(timings, indent=1, sort_keys=True), encoding="utf-8")
        found = differences(configs)
        results = [r.model_copy(update={"differs_from": found.get(r.name, {})}) for r in results]
        ranked = board_files.rank(results)
        scored = [r for r in ranked if board_files.score(r) is not None]
        groups_said = ""
        if scored and (report := Path(scored[0].files["evaluation"]) / "report.json").is_file():
            groups_said = EvaluateReport.model_validate_json(report.read_text(encoding="utf-8")).groups
        board = write_leaderboard(
            Leaderboard(
                corpus=str(corpus),
                gold=str(gold),
                clips=len(gold_labels),
                gold_not_in_corpus=missing,
                ranked_by=board_files.RANKED_BY,
                best=scored[0].name if scored else None,
                verdict=board_files.verdict(ranked),
                groups=groups_said,
                lineups=ranked,
            ),
            folder,
        )
    create_markdown_artifact(
        key="compare", description=f"Line-ups on {corpus}", markdown=board_files.render_markdown(board, None)
    )
    logger.info("%s (leaderboard: %s)", board.verdict, board.files["markdown"])
    return {
        "best": board.best,
        "verdict": board.verdict,
        "clips": board.clips,
        "gold_not_in_corpus": len(missing),
        "lineups": [
            {
                "name": r.name,
                "emer_avg": board_files.score(r),
                "requests_per_clip": r.cost.requests if r.cost else None,
                "error": r.error,
            }
            for r in board.lineups
        ],
        "files": board.files,
    }
