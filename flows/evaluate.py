"""The evaluate flow: a built dataset (or a predictions CSV) against gold labels -> a report.

Tasks: `read-labels` (the dataset's `train` split or a `name, openset` CSV, and the gold CSV),
`group-synonyms` (a groups file, else per-clip groups from the configured LLM, cached, else the
engine's lexicon), `score-emer`, `score-wheel` (when wheel resources are given), `score-languages` (when the
predictions carry descriptions: the EMER metric on labels read from the English and from the Chinese
description, as AffectGPT reports both languages) and `write-report` (report.json, report.md, labels.png; the
paper-style table also becomes the run's artifact).

Both languages: the labels of each language are read from the build's `description_en` and `description_zh`
columns (or a predictions CSV's columns of those names) with the engine's lexicon (`labels_in(text, lang=...)`,
English base words whatever the text's language), so the two columns differ only by what each description
says, and no model is asked. The wheel metric stays English (its resources are English words).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from annotators.signals.vocabulary import lexicon
from metrics import report as reporting
from metrics.emer import emer_corpus
from metrics.openset import LabelFileError, OpensetTable, decode_table, read_openset_csv, read_openset_table
from metrics.synonyms import SynonymGroups, lexicon_groups, load_groups
from metrics.wheel import load_wheel_resources, wheel_corpus
from schemas.metrics import EvaluateConfig, EvaluateReport, LanguageClipScore, LanguageScore

PREDICTION_SPLIT = "train"  # the rows a build puts in the corpus
DESCRIPTIONS = {"en": "description_en", "zh": "description_zh"}  # language -> the build's column


def read_predictions(path: Path) -> dict[str, list[str]]:
    """`name -> labels` from a build output folder (its `train` shards), a Parquet file, or a CSV."""
    if path.is_dir() or path.suffix == ".parquet":
        return read_prediction_table(path).labels
    return read_openset_csv(path)


def read_prediction_table(path: Path) -> OpensetTable:
    """The predictions with the clips whose CSV cell could not be read (Parquet labels are lists already)."""
    if not (path.is_dir() or path.suffix == ".parquet"):
        return read_openset_table(path)
    tables = []
    for shard in _shards(path):
        try:
            tables.append(pq.read_table(shard, columns=["name", "labels"]))
        except (pa.ArrowException, OSError) as exc:
            raise LabelFileError(f"{shard}: not a readable label shard ({exc}); rebuild or give a CSV") from None
    rows = pa.concat_tables(tables).to_pylist() if tables else []
    return OpensetTable(labels={r["name"]: list(r["labels"] or []) for r in rows}, rows=len(rows))


def _shards(path: Path) -> list[Path]:
    if not path.is_dir():
        return [path]
    # Resolved once: data/ is a link a later build swaps; these shards stay one export's.
    data = (path / "data").resolve()
    shards = sorted(data.glob(f"{PREDICTION_SPLIT}-*.parquet"))
    if not shards and not data.is_dir():
        raise LabelFileError(f"{path}: not a build output (no data/{PREDICTION_SPLIT}-*.parquet)")
    return shards


def read_descriptions(path: Path) -> dict[str, dict[str, str]]:
    """language -> clip -> its description, from what `read_predictions` reads (a build output's `train` shards,
    a Parquet file, or a CSV's `description_en` / `description_zh` columns); languages no clip has are left out."""
    rows: list[dict] = []
    if path.is_dir() or path.suffix == ".parquet":
        for shard in _shards(path):
            try:
                have = [c for c in DESCRIPTIONS.values() if c in pq.read_schema(shard).names]
                rows += pq.read_table(shard, columns=["name", *have]).to_pylist()
            except (pa.ArrowException, OSError) as exc:
                raise LabelFileError(f"{shard}: not a readable label shard ({exc}); rebuild or give a CSV") from None
    else:
        try:
            rows = list(csv.DictReader(io.StringIO(decode_table(path), newline="")))
        except csv.Error as exc:
            raise LabelFileError(f"{path}: not a CSV table ({exc})") from None
    found = {}
    for language, column in DESCRIPTIONS.items():
        texts = {r["name"]: r[column] for r in rows if r.get("name") and (r.get(column) or "").strip()}
        if texts:
            found[language] = texts
    return found


def check_inputs(pred: OpensetTable, gold: OpensetTable, predictions: str, gold_path: str) -> list[str]:
    """Stop on inputs that cannot give a score (nothing to score, no clip in common); the clips whose
    cells could not be read, as lines for the report."""
    if not any(gold.labels.values()):
        if gold.rows == 0:
            why = "it has no clip rows (only a header?)"
        elif not gold.labels:
            why = f"not one of its {gold.rows} openset cells can be read: {next(iter(gold.errors.values()))}"
        else:
            why = f"every openset cell of its {gold.rows} clips is empty"
        raise LabelFileError(f"{gold_path}: nothing to score: {why}; a gold file has a `name, openset` row per clip")
    if pred.labels and not set(pred.labels) & set(gold.labels):
        raise LabelFileError(
            f"{predictions}: none of its {len(pred.labels)} clips is in {gold_path} (e.g. {next(iter(pred.labels))!r} "
            f"and {next(iter(gold.labels))!r}): the `name` columns must name the same clips"
        )
    return [f"gold {name} ({why}): not scored" for name, why in gold.errors.items()] + [
        f"prediction {name} ({why}): scored as a missing prediction" for name, why in pred.errors.items()
    ]


@dataclass
class Grouping:
    groups: SynonymGroups
    sources: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    requests: int = 0
    description: str = ""


@task(name="read-labels", cache_policy=NO_CACHE)
def read_labels(predictions: str, gold: str) -> tuple[dict[str, list[str]], dict[str, list[str]], list[str]]:
    """Predictions, gold and the lines about cells that could not be read; a user's mistake in either
    file (no clip to score, an unreadable file) raises LabelFileError."""
    pred, gold_table = read_prediction_table(Path(predictions)), read_openset_table(gold)
    return pred.labels, gold_table.labels, check_inputs(pred, gold_table, predictions, gold)


@task(name="group-synonyms", cache_policy=NO_CACHE)
def group_synonyms(
    gold: dict, pred: dict, groups_path: str | None, config: EvaluateConfig, state_dir: Path
) -> Grouping:
    if groups_path:
        groups = load_groups(groups_path)
        kind = "per clip" if groups.per_clip else "global"
        return Grouping(groups, description=f"{kind} groups from {groups_path}")
    lexicon = lexicon_groups()
    if config.synonyms is None:
        return Grouping(lexicon, description="the engine's lexicon (data/lexicon/emotion_groups.toml)")
    from annotators.prompts import load_prompt
    from metrics.synonym_llm import group_with_llm

    found = group_with_llm(gold, pred, config.synonyms, state_dir / "synonyms.sqlite")
    groups = SynonymGroups(global_groups=lexicon.global_groups, per_clip=found.per_clip, source=f"llm:{found.model}")
    # Clips the model was not asked about (their groups cannot change the score) or could not answer
    # fall back to the lexicon.
    sources = dict.fromkeys(gold, "lexicon") | found.sources
    prompt = load_prompt(config.synonyms.prompt)
    cached = sum(1 for s in found.sources.values() if s == "cache")
    description = (
        f"per clip from {found.model} (prompt {prompt.id}@{prompt.version}): {len(found.sources)} clips grouped "
        f"({cached} from the cache), {len(found.errors)} failed; other clips use the engine's lexicon"
    )
    errors = [f"{name}: {why}" for name, why in sorted(found.errors.items())]
    return Grouping(groups, sources, errors, found.requests, description)


@task(name="score-emer", cache_policy=NO_CACHE)
def score_emer(gold: dict, pred: dict, grouping: Grouping):
    return emer_corpus(gold, pred, grouping.groups, grouping.sources or None)


@task(name="score-wheel", cache_policy=NO_CACHE)
def score_wheel(gold: dict, pred: dict, wheel: str):
    return wheel_corpus(gold, pred, load_wheel_resources(wheel))


@task(name="read-descriptions", cache_policy=NO_CACHE)
def read_description_texts(predictions: str) -> dict[str, dict[str, str]]:
    return read_descriptions(Path(predictions))


def language_groups(grouping: Grouping) -> tuple[SynonymGroups, str]:
    """The groups the language columns are scored with: the main score's, unless they are per clip (made for the
    labels stage's label unions, not for the words the descriptions give): then the engine's lexicon."""
    if not grouping.groups.per_clip:
        return grouping.groups, grouping.description
    return (
        lexicon_groups(),
        "the engine's lexicon (data/lexicon/emotion_groups.toml): the main score's groups are per clip",
    )


@task(name="score-languages", cache_policy=NO_CACHE)
def score_languages(
    gold: dict, descriptions: dict[str, dict[str, str]], grouping: Grouping
) -> tuple[list[LanguageScore], dict[str, dict[str, LanguageClipScore]]]:
    """The EMER metric on labels read from each language's description (a gold clip without one scores as an
    empty prediction, as a missing prediction does), and the per-clip scores by clip and language."""
    lex = lexicon()
    groups, groups_description = language_groups(grouping)
    scores, per_clip = [], defaultdict(dict)
    for language, texts in descriptions.items():
        pred = {name: lex.labels_in(text, lang=language) for name, text in texts.items()}
        summary, clips = emer_corpus(gold, pred, groups)
        for clip in clips:
            per_clip[clip.name][language] = LanguageClipScore(
                pred=clip.pred,
                described=not clip.prediction_missing,
                accuracy_s=clip.accuracy_s,
                recall_s=clip.recall_s,
            )
        scores.append(
            LanguageScore(
                language=language,
                labels_from=f"the engine's lexicon {lex.version} on {DESCRIPTIONS[language]}",
                groups=groups_description,
                emer=summary,
                described=sum(name in texts for name in gold),
            )
        )
    return scores, dict(per_clip)


@task(name="write-report", cache_policy=NO_CACHE)
def write_report(report: EvaluateReport, out_dir: Path) -> EvaluateReport:
    return reporting.write_report(report, out_dir)


@flow(name="evaluate", persist_result=False)
def evaluate(
    predictions: str,
    gold: str,
    out_dir: str,
    groups: str | None = None,
    wheel: str | None = None,
    config_path: str | None = None,
) -> dict:
    """Score `predictions` (a build output folder or a `name, openset` CSV) against the `gold` CSV with
    the EMER metric (and the emotion-wheel metric when `wheel` names its resources); report into `out_dir`."""
    logger = get_run_logger()
    config = EvaluateConfig.from_file(Path(config_path) if config_path else None)
    out_path = Path(out_dir).resolve()
    state_dir = (config.state_dir or out_path / ".state").resolve()
    pred_labels, gold_labels, input_errors = read_labels(predictions, gold)
    logger.info("%d gold clips, %d predictions", len(gold_labels), len(pred_labels))
    for line in input_errors:
        logger.warning("%s", line)
    grouping = group_synonyms(gold_labels, pred_labels, groups, config, state_dir)
    emer, clips = score_emer(gold_labels, pred_labels, grouping)
    wheel_summary = None
    if wheel:
        wheel_summary, wheel_clips = score_wheel(gold_labels, pred_labels, wheel)
        clips = [c.model_copy(update={"wheel": wheel_clips.get(c.name, {})}) for c in clips]
    languages: list[LanguageScore] = []
    if descriptions := read_description_texts(predictions):
        languages, language_clips = score_languages(gold_labels, descriptions, grouping)
        clips = [c.model_copy(update={"by_language": language_clips.get(c.name, {})}) for c in clips]
        for score in languages:
            logger.info(
                "EMER Avg on labels read from %s: %s", DESCRIPTIONS[score.language], reporting.pct(score.emer.avg)
            )
    result = write_report(
        EvaluateReport(
            predictions=str(predictions),
            gold=str(gold),
            groups=grouping.description,
            model_calls=grouping.requests,
            grouping_errors=grouping.errors,
            input_errors=input_errors,
            missing_predictions=sum(c.prediction_missing for c in clips),
            extra_predictions=len(set(pred_labels) - set(gold_labels)),
            emer=emer,
            wheel=wheel_summary,
            languages=languages,
            clips=clips,
        ),
        out_path,
    )
    create_markdown_artifact(
        key="evaluate", description=f"Evaluation of {predictions}", markdown=reporting.paper_table(result)
    )
    logger.info(
        "EMER Avg %s (Accuracy_s %s, Recall_s %s); report: %s",
        reporting.pct(emer.avg),
        reporting.pct(emer.accuracy_s),
        reporting.pct(emer.recall_s),
        result.files["markdown"],
    )
    return {
        "emer": emer.model_dump(),
        "wheel": None if wheel_summary is None else wheel_summary.model_dump(exclude={"per_wheel"}),
        "languages": {score.language: score.emer.model_dump() for score in languages},
        "model_calls": result.model_calls,
        "input_errors": input_errors,
        "files": result.files,
    }
