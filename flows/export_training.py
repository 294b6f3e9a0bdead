"""The export-training flow: a build-coarse output's rows fit to publish (a tier of the `train` split) in the
files a trainer's own loader reads (exports/). One task, so a deployment or a build's follow-up can run it and
the run view shows what was written (a markdown artifact: rows, files, media problems)."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from exports.run import export_training as run_export
from schemas.config import EngineConfig


@task(name="export-training-files", cache_policy=NO_CACHE)
def export_files(
    out_dir: str, fmt: str, to: str, tier: str, media: str, convert: bool, config_path: str | None
) -> dict:
    config = EngineConfig.from_file(Path(config_path) if config_path else None)
    manifest = run_export(out_dir, fmt, to, tier=tier, media=media, convert=convert, config=config)
    return manifest.model_dump(mode="json")


@flow(name="export-training", persist_result=False)
def export_training(
    out_dir: str,
    fmt: str,
    to: str,
    tier: str = "coarse",
    media: str = "link",
    convert: bool = False,
    config_path: str | None = None,
) -> dict:
    """Write the `tier` rows of `out_dir` into `to` as `fmt` (affectgpt, mercaption, llamafactory, atomic) reads."""
    logger = get_run_logger()
    manifest = export_files(out_dir, fmt, to, tier, media, convert, config_path)
    problems = manifest["media_problems"]
    logger.info(
        "%s export of %d %s rows (%d samples) in %s; %d media problems",
        fmt,
        manifest["rows"],
        tier,
        manifest["samples"],
        to,
        len(problems),
    )
    files = "\n".join(f"- `{name}`" for name in manifest["files"])
    lines = "\n".join(f"- `{p['name']}` {p['medium']}: {p['problem']}" for p in problems[:50]) or "none"
    create_markdown_artifact(
        key="export-training",
        markdown=(
            f"## {manifest['rows']} {tier} rows exported for {fmt}\n\n{manifest['samples']} samples, "
            f"{manifest['media_files']} media files ({media}).\n\n### Files\n\n{files}\n\n"
            f"### Media problems\n\n{lines}\n"
        ),
        description=f"{fmt} export of {out_dir}",
    )
    return manifest
