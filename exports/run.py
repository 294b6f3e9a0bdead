"""One training export: the chosen tier's rows of a build, in the chosen consumer's format, media placed,
and the manifest written last (exports/manifest.py)."""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path

from exports import FORMATS, MEDIA_MODES, affectgpt, atomic, llamafactory, mercaption
from exports.manifest import MANIFEST, ExportManifest, MediaProblem, SourceBuild, read_manifest, write_manifest
from exports.media import Placer
from exports.source import ExportError, check_tier, read_build
from schemas.config import EngineConfig, TiersConfig
from stages.tiers import tier_counts

log = logging.getLogger(__name__)
# The formats whose reader hard-codes a container in the clip's file name.
CONVERTS = {"affectgpt": affectgpt.EXPECTED, "mercaption": mercaption.EXPECTED}


def _prepare(to: Path) -> None:
    """`to` empty, or a previous export's: the files its manifest lists are removed; anything else is refused."""
    if to.exists() and not to.is_dir():
        raise ExportError(f"--to {to} is a file: give a folder (empty, or one an earlier export wrote)")
    to.mkdir(parents=True, exist_ok=True)
    if not any(to.iterdir()):
        return
    previous = read_manifest(to)
    if previous is None:
        raise ExportError(f"--to {to} is not empty and holds no {MANIFEST}: choose an empty folder")
    for name in previous.files:
        (to / name).unlink(missing_ok=True)
    for folder in ("video", "audio"):
        if (to / folder).is_dir():
            shutil.rmtree(to / folder)
    (to / MANIFEST).unlink()


def export_training(
    out_dir: Path | str,
    fmt: str,
    to: Path | str,
    *,
    tier: str = "coarse",
    media: str = "link",
    convert: bool = False,
    config: EngineConfig | None = None,
    tiers: TiersConfig | None = None,
) -> ExportManifest:
    """Write the `tier` rows of the build at `out_dir` into `to` as `fmt` reads them; return the manifest."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt}: no such format; choose one of {', '.join(FORMATS)}")
    if media not in MEDIA_MODES:
        raise ExportError(f"--media {media}: choose one of {', '.join(MEDIA_MODES)}")
    check_tier(tier)
    if convert and fmt not in CONVERTS:
        raise ExportError(f"--avi/--convert: {fmt}'s reader opens any container; leave it out")
    if convert and media == "none":
        raise ExportError("--avi/--convert re-muxes the clips into the export folder: use --media link or copy")
    build = read_build(out_dir, config, tiers)
    target = Path(to).resolve()
    if target == build.out_dir or target.is_relative_to(build.out_dir) or build.out_dir.is_relative_to(target):
        raise ExportError(f"--to {target} is inside the build (or holds it): choose a folder of its own")
    _prepare(target)
    placer = Placer(target, media, convert)
    clips = build.clips(tier)
    if fmt == "affectgpt":
        written = affectgpt.write(clips, target, placer, tier)
    elif fmt == "mercaption":
        written = mercaption.write(clips, target, placer)
    elif fmt == "llamafactory":
        written = llamafactory.write(clips, target, placer, tier)
    else:
        written = atomic.write(clips, target, placer, tier)
    manifest = ExportManifest(
        format=fmt,
        tier=tier,
        rows=written.rows,
        samples=written.samples,
        source=SourceBuild(
            out_dir=str(build.out_dir),
            export_id=build.export_id,
            splits=build.build.get("splits") or {},
            tier_counts=tier_counts(build.build["tiers"]) if build.build.get("tiers") else {},
        ),
        config_fingerprint=build.config_fingerprint,
        media=media,
        converted_to=CONVERTS[fmt] if convert else None,
        files=sorted(set(written.files)),
        media_files=placer.placed,
        reader=written.reader,
        notes=written.notes
        + (
            [
                "media are symbolic links into the corpus and the build's media cache (OUT/.state/media): "
                "--media copy makes the folder self-contained"
            ]
            if media == "link" and placer.placed
            else []
        ),
        skipped=written.skipped,
        media_problems=[MediaProblem(name=n, medium=m, problem=p) for n, m, p in placer.problems],
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    write_manifest(target, manifest)
    log.info(
        "exported %d %s rows (%d samples) of %s as %s into %s; %d media problems, %d rows skipped",
        manifest.rows,
        tier,
        manifest.samples,
        build.out_dir,
        fmt,
        target,
        len(manifest.media_problems),
        len(manifest.skipped),
    )
    return manifest
