"""What an export reads from a build: the `train` split of its sealed export (the rows fit to publish: every
gate passed, or a reviewer accepted them), a tier's rows of it, and where each clip's video and 16 kHz audio
lie (the manifest's clip path; the corpus's own `audio/{name}.wav`, else the engine's prepared wav in the
media cache, stages/media_prep.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from schemas.config import TIERS, EngineConfig, TiersConfig
from schemas.errors import UserError
from schemas.row import CoarseRow
from stages.export import incomplete_export
from stages.media_prep import MediaPrep
from stages.tiers import in_tier, recorded_tiers

PUBLISHED_SPLIT = "train"  # as flows/publish.py: held-back, rejected and failed rows are never exported
MANIFEST_COLUMNS = ["name", "path", "audio_path", "sha256", "audio_sha256", "audio_stream"]
_CARD_FINGERPRINT = re.compile(r"config fingerprint\s+([0-9a-f]{8,64})")


class ExportError(UserError):
    """The build cannot be exported as asked; the message says why and what to do."""


@dataclass
class Clip:
    """One row to export, with the media files it came from (None where there is none to be found)."""

    row: CoarseRow
    video: Path | None
    audio: Path | None
    problems: list[tuple[str, str]] = field(default_factory=list)  # (medium, why) for media not found


@dataclass
class Build:
    """A finished build-coarse output, read for export."""

    out_dir: Path
    data_dir: Path  # the sealed export OUT/data points at (.exports/<id>/data)
    shards: list[Path]
    build: dict
    config: EngineConfig
    tiers: TiersConfig
    records: dict[str, dict]

    @property
    def export_id(self) -> str:
        return self.data_dir.parent.name

    @property
    def config_fingerprint(self) -> str | None:
        """The build's line-up fingerprint: build.json's when it records one, else the card's line."""
        if fingerprint := self.build.get("config_fingerprint"):
            return str(fingerprint)
        card = self.out_dir / "README.md"
        found = _CARD_FINGERPRINT.search(card.read_text(encoding="utf-8")) if card.is_file() else None
        return found.group(1) if found else None

    def rows(self, tier: str) -> Iterator[CoarseRow]:
        """The tier's rows, shard by shard (never the whole split in memory)."""
        for shard in self.shards:
            for batch in pq.ParquetFile(shard).iter_batches(batch_size=256):
                for record in batch.to_pylist():
                    row = CoarseRow.model_validate(record)
                    if in_tier(row, tier, self.tiers):
                        yield row

    def clips(self, tier: str) -> Iterator[Clip]:
        for row in self.rows(tier):
            yield self.clip(row)

    def clip(self, row: CoarseRow) -> Clip:
        record = self.records.get(row.name) or {}
        clip = Clip(row=row, video=None, audio=None)
        video = Path(record["path"]) if record.get("path") else None
        if video is not None and video.is_file():
            clip.video = video
        else:
            clip.problems.append(("video", f"clip not found at {video}" if video else "no clip in the manifest"))
        clip.audio = self._audio(record)
        if clip.audio is None:
            why = "no audio track" if not record.get("sha256") else "no prepared 16 kHz audio in the media cache"
            clip.problems.append(("audio", why))
        return clip

    def _audio(self, record: dict) -> Path | None:
        shipped = Path(record["audio_path"]) if record.get("audio_path") else None
        if shipped is not None and shipped.is_file():  # MER's own audio/{name}.wav
            return shipped
        source_sha = record.get("audio_sha256") or record.get("sha256")
        if not source_sha:
            return None
        folder = self.state_dir / "media" / source_sha[:2] / source_sha
        # The name media prep gives the wav (stages/media_prep.py MediaPrep._audio): the settings' hash, and the
        # stream when ingest chose another than the first.
        audio_hash = MediaPrep(folder, self.config.media, pool=None).audio_hash
        stream = record.get("audio_stream") or 0
        wav = folder / (f"audio-{audio_hash}.wav" if stream == 0 else f"audio-{audio_hash}-a{stream}.wav")
        if wav.is_file():
            return wav
        # Built with other audio settings than the configuration given here: the one prepared wav there is.
        others = sorted(folder.glob("audio-*.wav")) if folder.is_dir() else []
        return others[0] if len(others) == 1 else None

    @property
    def state_dir(self) -> Path:
        return (self.config.state_dir or self.out_dir / ".state").resolve()


def read_build(out_dir: Path | str, config: EngineConfig | None = None, tiers: TiersConfig | None = None) -> Build:
    """The build at `out_dir`, refused unless its export is complete and has a train split. Tiers are chosen with
    `tiers` when given, else with the thresholds the build recorded, else with `config`'s."""
    out = Path(out_dir).resolve()
    if not (out / "data").is_dir() or not (out / "manifest.parquet").is_file():
        raise ExportError(f"{out} has no data/ and manifest.parquet: is it a finished build-coarse output?")
    data_dir = (out / "data").resolve()  # the export as it is now, whatever a later build swaps in
    if problem := incomplete_export(data_dir):
        raise ExportError(f"{out} holds no complete export ({problem}): run build-coarse again, then export")
    shards = sorted(data_dir.glob(f"{PUBLISHED_SPLIT}-*-of-*.parquet"))
    if not shards:
        raise ExportError(f"{out / 'data'} has no {PUBLISHED_SPLIT}-*.parquet shards: nothing is fit to export")
    build_json = out / "build.json"
    build = json.loads(build_json.read_text(encoding="utf-8")) if build_json.is_file() else {}
    config = config or EngineConfig.from_file(None)
    columns = [c for c in MANIFEST_COLUMNS if c in pq.read_schema(out / "manifest.parquet").names]
    records = {r["name"]: r for r in pq.read_table(out / "manifest.parquet", columns=columns).to_pylist()}
    # The thresholds the build counted its tiers with, so the export holds the rows the card counts.
    tiers = tiers or recorded_tiers(build) or config.tiers
    return Build(out, data_dir, shards, build, config, tiers, records)


def check_tier(tier: str) -> str:
    if tier not in TIERS:
        raise ExportError(f"--tier {tier}: no such tier; choose one of {', '.join(TIERS)}")
    return tier
