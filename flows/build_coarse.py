"""The build-coarse flow: corpus -> manifest -> clues, description, translation, labels -> dataset.

Tasks run over batches of clips (a Prefect server struggles with one task run per clip per stage);
inside a batch, clips run concurrently on the model gateway. Every stage's answer is checkpointed per
clip, so a re-run skips finished work and a killed run resumes with nothing lost or duplicated.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from engine.assembly import (
    check_lineup,
    close_engines,
    config_fingerprint,
    engine_for,
    lineup,
    local_servers,
    stage_classes,
)
from flows.progress import Progress, stage_table_artifact
from review.decisions import load_decisions
from runtime.checkpoint import Checkpoint
from schemas.config import EngineConfig, MediaConfig, stable_hash
from schemas.manifest import ClipRecord, ClipStatus, Subtitles
from schemas.review import ReviewDecision
from schemas.stats import RunStats
from stages import export as out
from stages.ingest import discover, duplicate_name_records, missing_clip_records, probe_clip


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
                    error=f"cannot read: {exc}",
                )
            )
    return records


def probe_cache_key(path: Path, audio: Path | None, media: MediaConfig) -> str:
    """Probing hashes and decodes audio: it is skipped for files unchanged since the last run."""
    stats = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in (path, audio) if p is not None]
    return stable_hash([stats, media.audio_max_seconds, media.silence_threshold_db])


def _probe_cached(
    path: Path, subs: Subtitles, audio_dir: Path | None, media: MediaConfig, checkpoint: Checkpoint
) -> ClipRecord:
    audio = audio_dir / f"{path.stem}.wav" if audio_dir and (audio_dir / f"{path.stem}.wav").is_file() else None
    key = probe_cache_key(path, audio, media)
    cached = checkpoint.get("probe", key, key)
    if cached is None:
        record = probe_clip(path, subs, audio, media.audio_max_seconds, media.silence_threshold_db)
        checkpoint.put("probe", key, key, record.model_dump(mode="json"), ok=True)
        return record
    return ClipRecord.model_validate(cached).model_copy(update={"subtitles": subs})


@task(name="annotate-batch", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=10)
def annotate_batch(
    index: int, records: list[ClipRecord], config: EngineConfig, state_dir: Path, parts_dir: Path
) -> tuple[list[ClipRecord], RunStats]:
    """Annotate a batch in whatever process runs it; returns its manifest records (updated where
    decoding found a clip broken) and what each stage cost. Parameters are plain data, so a
    distributed runner can ship the task to another machine's worker."""
    rows, stats = engine_for(config, state_dir).annotate(records)
    out.write_batch_parts(rows, parts_dir, index)
    records = [
        rec
        if row.clip_status == rec.status.value
        else rec.model_copy(update={"status": ClipStatus(row.clip_status), "error": row.clip_error})
        for rec, row in zip(records, rows)
    ]
    return records, stats


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


EXPORT_VERSION = "1"  # bump when export's output changes for the same rows: the next run re-exports


def export_fingerprint(
    parts: list[Path], config: EngineConfig, corpus: str, decisions: dict[str, ReviewDecision]
) -> str:
    """Everything the export is a function of: the rows (batch parts are written deterministically
    from the same rows), the gates, the shard size, the line-up, the corpus and reviewers' decisions."""
    rows = hashlib.sha256()
    for part in parts:
        rows.update(part.read_bytes())
    return stable_hash(
        [
            EXPORT_VERSION,
            rows.hexdigest(),
            config.gates.model_dump(mode="json"),
            config.shard_rows,
            lineup(config),
            corpus,
            {name: d.model_dump(mode="json") for name, d in sorted(decisions.items())},
        ]
    )


def stage_order(config: EngineConfig, stats: RunStats) -> dict[str, dict]:
    """The run's per-stage statistics, stages in the pipeline's order."""
    return stats.table(["media_prep", *stage_classes(config)])


@task(name="export", cache_policy=NO_CACHE)
def export(
    parts_dir: Path,
    out_dir: Path,
    state_dir: Path,
    config: EngineConfig,
    corpus: str,
    decisions: dict[str, ReviewDecision],
    stats: RunStats,
) -> dict:
    batch_parts = sorted(parts_dir.glob("rows-batch-*.parquet"))
    fingerprint = export_fingerprint(batch_parts, config, corpus, decisions)
    marker, previous = out_dir / ".export-fingerprint", out_dir / "build.json"
    # A re-run that changed nothing (no new clip, answer, gate setting or decision) keeps the last
    # export: re-gating and re-writing every shard was most of a re-run's time (bench/RESULTS.md).
    if (
        marker.is_file()
        and marker.read_text() == fingerprint
        and previous.is_file()
        and (out_dir / "hf" / "dataset_dict.json").is_file()
    ):
        kept = json.loads(previous.read_text())
        run_only = ("model_calls", "seconds", "clips", "stages")
        return {k: v for k, v in kept.items() if k not in run_only} | {"export": "unchanged since the last run"}
    marker.unlink(missing_ok=True)
    parts, bounds = out.gate_parts(batch_parts, parts_dir / "gated", config.gates, decisions)
    data_dir = out_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    shards = {split: out.write_shards(files, data_dir, split, config.shard_rows) for split, files in parts.items()}
    summary = out.summarise(parts) | {
        "length_bounds": f"[{bounds.low}, {bounds.high}] words, {bounds.source}",
        "review_decisions": len(decisions),
    }
    hf_dir = out_dir / "hf"
    if hf_dir.exists():
        shutil.rmtree(hf_dir)
    hf_cache = state_dir / "hf-cache"
    dataset = out.build_dataset_dict(shards, hf_cache)
    # At least one shard per split: `datasets` writes an empty split as zero shards and cannot load it back.
    dataset.save_to_disk(str(hf_dir), num_shards={name: max(1, len(shards[name])) for name in dataset})
    shutil.rmtree(hf_cache, ignore_errors=True)  # a full Arrow copy of the dataset; hf/ holds it now
    card = out.dataset_card(summary, lineup(config), corpus, config_fingerprint(config), stage_order(config, stats))
    (out_dir / "README.md").write_text(card, encoding="utf-8")
    marker.write_text(fingerprint)  # last: an export cut short is redone next time
    return summary


@flow(name="build-coarse", persist_result=False)
def build_coarse(corpus: str, out_dir: str, config_path: str | None = None) -> dict:
    """Build the coarse dataset for `corpus` into `out_dir`."""
    logger = get_run_logger()
    started = time.monotonic()
    config = EngineConfig.from_file(Path(config_path) if config_path else None)
    check_lineup(config)  # a line-up the stages cannot run is said now, not after probing
    out_path = Path(out_dir).resolve()
    state_dir = (config.state_dir or out_path / ".state").resolve()
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
        shutil.rmtree(parts_dir, ignore_errors=True)  # batches are re-cut each run; rows come from the checkpoint
        progress = Progress(len(records))
        stats = RunStats()
        with local_servers(config, state_dir), batch_runner(config) as runner:
            futures = [
                runner.submit(
                    annotate_batch,
                    {"index": i, "records": batch, "config": config, "state_dir": state_dir, "parts_dir": parts_dir},
                )
                for i, batch in enumerate(batched(records, config.batch_size))
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
        out.write_manifest(records, out_path / "manifest.parquet")
        # Reviewers' decisions about the content as it is now (a clip that changed is reviewed again).
        decisions = load_decisions(out_path, {r.name: r.sha256 for r in records})
        summary = export(parts_dir, out_path, state_dir, config, str(corpus), decisions, stats)
    finally:
        checkpoint.close()
    summary |= {
        "model_calls": stats.model_calls,
        "seconds": round(time.monotonic() - started, 2),
        "clips": len(records),
    }
    summary["stages"] = stage_order(config, stats)
    stage_table_artifact(summary["stages"])
    (out_path / "build.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    logger.info("built %s: %s", out_path, summary["splits"])
    return summary
