"""The build-coarse flow: corpus -> manifest -> clues, description, translation, labels -> dataset.

Tasks run over batches of clips (a Prefect server struggles with one task run per clip per stage);
inside a batch, clips run concurrently on the model gateway. Every stage's answer is checkpointed per
clip, so a re-run skips finished work and a killed run resumes with nothing lost or duplicated.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import pyarrow.parquet as pq
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from annotators.signals.acoustics import corpus_norms
from engine import second_lineup
from engine.assembly import (
    close_engines,
    config_fingerprint,
    engine_for,
    lineup,
    local_servers,
    preflight,
    reads_corpus_norms,
    stage_classes,
)
from engine.canaries import enforce, run_canaries
from engine.pipeline import StorageFailure
from flows.progress import Progress, stage_table_artifact
from review.decisions import load_decisions
from runtime.checkpoint import Checkpoint
from runtime.outdir import OutputFolder
from schemas.config import EngineConfig, MediaConfig, stable_hash
from schemas.manifest import ClipRecord, ClipStatus, Subtitles
from schemas.review import ReviewDecision
from schemas.signals import AudioSignals, CorpusNorms
from schemas.stats import RunStats
from stages import export as out
from stages.ingest import discover, duplicate_name_records, missing_clip_records, probe_clip
from stages.tiers import tier_summary


def batched(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


@task(name="probe-batch", cache_policy=NO_CACHE, retries=1)
def probe_batch(
    paths: list[Path],
    subtitles: dict[str, Subtitles],
    audio_dir: Path | None,
    media: MediaConfig,
    checkpoint: Checkpoint,
) -> list[ClipRecord]:
    records = []
    for path in paths:
        subs = subtitles.get(path.stem, Subtitles())
        try:
            records.append(_probe_cached(path, subs, audio_dir, media, checkpoint))
        except OSError as exc:  # vanished or unreadable since discovery: that clip, not the batch
            records.append(
                ClipRecord(
                    name=path.stem,
                    path=str(path),
                    subtitles=subs,
                    status=ClipStatus.invalid,
                    error=f"cannot read {path.name}: {exc.strerror or exc}",
                )
            )
    return records


PROBE_VERSION = 2  # what a probe records (2: every audio stream measured, the chosen one recorded)


def probe_cache_key(path: Path, audio: Path | None, media: MediaConfig) -> str:
    """Probing hashes and decodes audio: it is skipped for files unchanged since the last run. Size and mtime
    alone survive a same-size replacement with its mtime put back (`touch -r`); the inode and the ctime
    (which no user call can set) do not."""
    stats = [
        (str(p.resolve()), s.st_size, s.st_mtime_ns, s.st_ino, s.st_ctime_ns)
        for p in (path, audio)
        if p is not None
        for s in [p.stat()]
    ]
    return stable_hash([PROBE_VERSION, stats, media.audio_max_seconds, media.silence_threshold_db])


def _probe_cached(
    path: Path, subs: Subtitles, audio_dir: Path | None, media: MediaConfig, checkpoint: Checkpoint
) -> ClipRecord:
    audio = audio_dir / f"{path.stem}.wav" if audio_dir and (audio_dir / f"{path.stem}.wav").is_file() else None
    try:
        key = probe_cache_key(path, audio, media)
    except (OSError, RuntimeError):  # a dangling link or a link loop: probe_clip says which; nothing to cache
        return probe_clip(path, subs, audio, media.audio_max_seconds, media.silence_threshold_db)
    cached = checkpoint.get("probe", key, key)
    if cached is None:
        record = probe_clip(path, subs, audio, media.audio_max_seconds, media.silence_threshold_db)
        checkpoint.put("probe", key, key, record.model_dump(mode="json"), ok=True)
        return record
    return ClipRecord.model_validate(cached).model_copy(update={"subtitles": subs})


def _worth_retrying(task, task_run, state) -> bool:
    """A batch is retried after a transient failure, never after the disk filled (StorageFailure: the
    run stops with one line; the next run, after space is freed, redoes it)."""
    try:
        state.result()
    except StorageFailure:
        return False
    except Exception:
        return True
    return True


@task(
    name="annotate-batch",
    cache_policy=NO_CACHE,
    retries=1,
    retry_delay_seconds=10,
    retry_condition_fn=_worth_retrying,
)
def annotate_batch(
    index: int,
    records: list[ClipRecord],
    config: EngineConfig,
    state_dir: Path,
    parts_dir: Path,
    norms: CorpusNorms | None = None,
) -> tuple[list[ClipRecord], RunStats]:
    """Annotate a batch in whatever process runs it; returns its manifest records (updated where
    decoding found a clip broken) and what each stage cost. Parameters are plain data, so a
    distributed runner can ship the task to another machine's worker."""
    rows, stats = engine_for(config, state_dir).annotate(records, norms)
    out.write_batch_parts(rows, parts_dir, index)
    records = [
        rec
        if row.clip_status == rec.status.value
        else rec.model_copy(update={"status": ClipStatus(row.clip_status), "error": row.clip_error})
        for rec, row in zip(records, rows)
    ]
    return records, stats


@task(
    name="measure-batch",
    cache_policy=NO_CACHE,
    retries=1,
    retry_delay_seconds=10,
    retry_condition_fn=_worth_retrying,
)
def measure_batch(
    records: list[ClipRecord], config: EngineConfig, state_dir: Path
) -> tuple[list[AudioSignals | None], RunStats]:
    """The corpus pass: a batch's media prep and measurements (checkpointed, so annotate-batch reuses them),
    for the corpus's acoustic norms."""
    return engine_for(config, state_dir).measure(records)


def measured_norms(records: list[ClipRecord], audios: list[AudioSignals | None]) -> CorpusNorms:
    """The corpus's acoustic norms, each content counted once (a duplicated clip must not weigh twice)."""
    return corpus_norms(dict(zip((r.sha256 for r in records), audios)).values())


def parts_norms(parts_dir: Path) -> CorpusNorms:
    """The corpus's acoustic norms from the annotated rows' measurements (one column read), each content once."""
    audios: dict[str | None, AudioSignals | None] = {}
    for part in sorted(parts_dir.glob("*.parquet")):
        table = pq.read_table(part, columns=["sha256", "signals"])
        for sha256, signals in zip(table.column("sha256").to_pylist(), table.column("signals").to_pylist()):
            audio = (signals or {}).get("audio")
            audios[sha256] = AudioSignals.model_validate(audio) if audio else None
    return corpus_norms(audios.values())


def batch_runner(config: EngineConfig) -> TaskRunner:
    """Threads in this process (the default), or a Dask cluster: an existing one at `dask_address`,
    else a local one of `dask_workers` processes. Model servers are shared either way."""
    if config.task_runner == "dask":
        import dask
        from prefect_dask import DaskTaskRunner

        # Workers decode media in child processes (runtime/isolation.py); daemonic workers may not
        # have children. An existing cluster needs the same setting on its workers.
        dask.config.set({"distributed.worker.daemon": False})

        if config.dask_address:
            return DaskTaskRunner(address=config.dask_address)
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": config.dask_workers,
                "threads_per_worker": config.task_workers,
                "processes": True,
            }
        )
    return ThreadPoolTaskRunner(max_workers=config.task_workers)


EXPORT_VERSION = "3"  # bump when export's output changes for the same rows: the next run re-exports (3: tiers, plots)


def export_fingerprint(
    parts: list[Path],
    config: EngineConfig,
    corpus: str,
    decisions: dict[str, ReviewDecision],
    norms: CorpusNorms | None = None,
) -> str:
    """Everything the export is a function of: the rows (batch parts are written deterministically
    from the same rows), the gates, the shard size, the line-up, the corpus, reviewers' decisions and the
    corpus's acoustic norms (the gates read them)."""
    rows = hashlib.sha256()
    for part in parts:
        rows.update(part.read_bytes())
    return stable_hash(
        [
            EXPORT_VERSION,
            rows.hexdigest(),
            config.gates.model_dump(mode="json"),
            config.tiers.model_dump(mode="json"),
            config.shard_rows,
            lineup(config),
            corpus,
            {name: d.model_dump(mode="json") for name, d in sorted(decisions.items())},
            *([norms.model_dump(mode="json")] if norms is not None else []),
        ]
    )


def stage_order(config: EngineConfig, stats: RunStats) -> dict[str, dict]:
    """The run's per-stage statistics, stages in the pipeline's order."""
    order = ["media_prep", *stage_classes(config)]
    if (other := second_lineup.second_config(config)) is not None:  # the second line-up's, after, under its name
        order += [second_lineup.prefix(second_lineup.lineup_name(config)) + name for name in stage_classes(other)]
    return stats.table(order)


# Test hook (tests/faults/test_outputs.py): seconds to wait between writing a new export and swapping it
# in, so that a test can kill the build at the moment an export written in place would be half-written.
PAUSE_BEFORE_SWAP_ENV = "EMER_TEST_PAUSE_BEFORE_SWAP_S"


@task(name="export", cache_policy=NO_CACHE)
def export(
    parts_dir: Path,
    out_dir: Path,
    state_dir: Path,
    config: EngineConfig,
    corpus: str,
    decisions: dict[str, ReviewDecision],
    stats: RunStats,
    norms: CorpusNorms | None = None,
) -> dict:
    """Gate the rows and write the export beside the current one, then swap it in whole (stages/export.py)."""
    folder = OutputFolder.existing(out_dir)
    batch_parts = sorted(parts_dir.glob("rows-batch-*.parquet"))
    fingerprint = export_fingerprint(batch_parts, config, corpus, decisions, norms)
    marker, previous = out_dir / ".export-fingerprint", out_dir / "build.json"
    # A re-run that changed nothing (no new clip, answer, gate setting or decision) keeps the last
    # export: re-gating and re-writing every shard was most of a re-run's time (bench/RESULTS.md).
    if (
        marker.is_file()
        and marker.read_text() == fingerprint
        and previous.is_file()
        and (out_dir / "data" / out.SEAL).is_file()
        and (out_dir / "hf" / "dataset_dict.json").is_file()
    ):
        kept = json.loads(previous.read_text())
        run_only = ("model_calls", "seconds", "clips", "stages")
        return {k: v for k, v in kept.items() if k not in run_only} | {"export": "unchanged since the last run"}
    folder.claim(".export-fingerprint", out.EXPORTS, *out.SWAPPED, "README.md")
    marker.unlink(missing_ok=True)
    parts, bounds = out.gate_parts(
        batch_parts, parts_dir / "gated", config.gates, decisions, corpus_root=Path(corpus).resolve(), norms=norms
    )
    staged = out.new_export_dir(out_dir)
    try:
        shards = {
            split: out.write_shards(files, staged / "data", split, config.shard_rows) for split, files in parts.items()
        }
        summary = out.summarise(parts) | {
            "length_bounds": f"[{bounds.low}, {bounds.high}] words, {bounds.source}",
            "review_decisions": len(decisions),
            "tiers": tier_summary(parts["train"], config.tiers),  # chosen from the stored gate scores
        }
        if norms is not None:
            summary["corpus_norms"] = {"source": norms.source, "clips": norms.clips}
        # The Arrow cache is per export: builds of other outputs may share the state dir.
        hf_cache = staged / ".hf-cache"
        dataset = out.build_dataset_dict(shards, hf_cache)
        # At least one shard per split: `datasets` writes an empty split as zero shards and cannot load it back.
        dataset.save_to_disk(str(staged / "hf"), num_shards={name: max(1, len(shards[name])) for name in dataset})
        shutil.rmtree(hf_cache, ignore_errors=True)  # a full Arrow copy of the dataset; hf/ holds it now
        stages = stage_order(config, stats)
        out.write_card(
            staged, summary, lineup(config), corpus, config_fingerprint(config), stages, parts, out_dir.name
        )  # README.md and the plots/ it embeds
        out.seal_shards(staged / "data")  # last: only a complete export is ever swapped in or pushed
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)  # the previous export stays; a full disk gets its space back
        raise
    if pause := os.environ.get(PAUSE_BEFORE_SWAP_ENV):
        time.sleep(float(pause))
    out.swap_in(staged, folder)
    folder.write_text(".export-fingerprint", fingerprint)  # after the swap: an export cut short is redone
    return summary


@flow(name="build-coarse", persist_result=False)
def build_coarse(corpus: str, out_dir: str, config_path: str | None = None, force: bool = False) -> dict:
    """Build the coarse dataset for `corpus` into `out_dir`. A non-empty `out_dir` the engine did not
    write is refused unless `force`; even then, only what the engine wrote there is ever replaced."""
    logger = get_run_logger()
    started = time.monotonic()
    config = EngineConfig.from_file(Path(config_path) if config_path else None)
    preflight(config)  # a line-up that cannot run (a stage, prompt, rules file, server) is said now, not later
    folder = OutputFolder.open(Path(out_dir), force=force)  # before anything is written there
    with folder.exclusive(f"build-coarse of {Path(corpus).resolve()}"):
        return _build(corpus, folder, config, logger, started)


def _build(corpus: str, folder: OutputFolder, config: EngineConfig, logger, started: float) -> dict:
    out_path = folder.path
    state_dir = (config.state_dir or out_path / ".state").resolve()
    if state_dir == out_path / ".state":
        folder.claim(".state")
    state_dir.mkdir(parents=True, exist_ok=True)
    found = discover(Path(corpus))
    logger.info("corpus %s: %d clip files, %d subtitle rows", corpus, len(found.clips), len(found.subtitles))
    checkpoint = Checkpoint(state_dir / "checkpoint.sqlite")
    try:
        with ThreadPoolTaskRunner(max_workers=config.task_workers) as runner:
            futures = [
                # Only the batch's own subtitles: Prefect walks every task parameter.
                runner.submit(
                    probe_batch,
                    {
                        "paths": b,
                        "subtitles": {p.stem: found.subtitles[p.stem] for p in b if p.stem in found.subtitles},
                        "audio_dir": found.audio_dir,
                        "media": config.media,
                        "checkpoint": checkpoint,
                    },
                )
                for b in batched(found.clips, config.batch_size)
            ]
            records = (
                [r for f in futures for r in f.result()] + missing_clip_records(found) + duplicate_name_records(found)
            )
        records.sort(key=lambda r: r.name)
        parts_dir = out_path / ".parts"  # per output: runs for other outputs may share the state dir
        folder.claim(".parts", "manifest.parquet", "build.json")
        folder.remove(".parts")  # batches are re-cut each run; rows come from the checkpoint
        progress = Progress(len(records))
        stats = RunStats()
        with local_servers(config, state_dir), batch_runner(config) as runner:
            # Before any clip: does each role use its media (engine/canaries.py)? A failure warns, or stops the run.
            canaries = run_canaries(config, state_dir) if config.canaries.enabled else None
            if canaries is not None:
                for result, line in zip(canaries.results, canaries.lines()):
                    (logger.warning if result.status == "failed" else logger.info)(line)
                enforce(canaries, config)
            batches = batched(records, config.batch_size)
            norms = None
            if reads_corpus_norms(config):
                try:
                    # The corpus pass first, for answers that read each voice against the whole corpus: every
                    # clip measured (checkpointed; media prep is cached by content, so the main pass reuses both).
                    # Without such answers the servers are not kept waiting: the gates' norms come from the rows.
                    measured = [
                        runner.submit(measure_batch, {"records": b, "config": config, "state_dir": state_dir})
                        for b in batches
                    ]
                    audios = []
                    for future in measured:
                        batch_audios, batch_stats = future.result()
                        audios += batch_audios
                        stats.merge(batch_stats)
                    norms = measured_norms(records, audios)
                except BaseException:
                    close_engines()
                    raise
            futures = [
                runner.submit(
                    annotate_batch,
                    {
                        "index": i,
                        "records": batch,
                        "config": config,
                        "state_dir": state_dir,
                        "parts_dir": parts_dir,
                        "norms": norms,
                    },
                )
                for i, batch in enumerate(batches)
            ]
            records = []
            try:
                for future in futures:
                    batch_records, batch_stats = future.result()
                    records += batch_records
                    stats.merge(batch_stats)
                    progress.advance(len(batch_records))
            finally:
                close_engines()  # this process's engine (the threads runner's); workers close their own
        if norms is None:
            norms = parts_norms(parts_dir)
        logger.info("acoustic norms: %s", norms.source)
        out.write_manifest(records, out_path / "manifest.parquet")
        # Reviewers' decisions about the content as it is now (a clip that changed is reviewed again).
        decisions = load_decisions(out_path, {r.name: r.sha256 for r in records})
        summary = export(parts_dir, out_path, state_dir, config, str(corpus), decisions, stats, norms)
    finally:
        checkpoint.close()
    summary |= {
        "model_calls": stats.model_calls,
        "seconds": round(time.monotonic() - started, 2),
        "clips": len(records),
    }
    summary["stages"] = stage_order(config, stats)
    summary["config_fingerprint"] = config_fingerprint(config)
    summary.pop("canaries", None)  # an unchanged export keeps the last build.json: its canaries are not this run's
    if canaries is not None:
        summary["canaries"] = canaries.model_dump(mode="json")
    stage_table_artifact(summary["stages"])
    folder.write_text("build.json", json.dumps(summary, indent=1, ensure_ascii=False))
    logger.info("built %s: %s", out_path, summary["splits"])
    return summary
