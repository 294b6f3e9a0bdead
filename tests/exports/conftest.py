"""A small build made by the engine itself (the zero-download signal line-up on small frames): two talking
heads reach `train` (one shipped as .mp4, one as .avi, as MER2023 clips are), speech over a test pattern with
no face waits in `review` and must never be exported."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from data import synth_clips as synth
from flows.build_coarse import build_coarse
from schemas.config import EngineConfig
from tests.conftest import ROOT

ROLES = ("audio_clue", "visual_clue", "disambiguation", "translation", "labels")
SIGNALS = "batch_size = 16\ntask_workers = 2\ndecode_workers = 2\n"
SIGNALS += "[media]\nframes_per_second = 1.0\nmax_frames = 4\nframe_max_side = 160\n"
SIGNALS += "".join(f'[roles.{role}]\nbackend = "signals"\n' for role in ROLES)
TRAIN = {"sample_00000001", "samplenew_00004251"}


@pytest.fixture(scope="session")
def signals_config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("export-cfg") / "signals.toml"
    path.write_text(SIGNALS)
    return path


@pytest.fixture(scope="session")
def built(tmp_path_factory, signals_config) -> Path:
    root = tmp_path_factory.mktemp("export-corpus")
    video = root / "video"
    video.mkdir()
    synth.face_clip(video / "sample_00000001.mp4", "I finally passed the exam, I am so happy.")
    synth.face_clip(video / "samplenew_00004251.avi", "What is this? I never expected it.")
    synth.talking_clip(video / "sample_00000007.mp4", "Can anybody hear me? Hello?", size="160x90")
    synth.write_subtitles(
        root / "subtitle_chieng.csv",
        [
            ("sample_00000001", "我终于通过考试了，太开心了。", "I finally passed the exam, I am so happy."),
            ("samplenew_00004251", "", "What is this? I never expected it."),  # no Chinese: an empty cell
            ("sample_00000007", "", "Can anybody hear me? Hello?"),
        ],
    )
    out = tmp_path_factory.mktemp("export-build") / "out"
    build_coarse(str(root), str(out), str(signals_config))
    return out


@pytest.fixture(scope="session")
def config(signals_config) -> EngineConfig:
    return EngineConfig.from_file(signals_config)


def split_rows(out: Path, split: str) -> dict[str, dict]:
    return {
        r["name"]: r for f in sorted((out / "data").glob(f"{split}-*.parquet")) for r in pq.read_table(f).to_pylist()
    }


@pytest.fixture(scope="session")
def train(built) -> dict[str, dict]:
    rows = split_rows(built, "train")
    assert set(rows) == TRAIN, "the fixture's build changed: the tests below expect these two rows in train"
    return rows


@pytest.fixture(scope="session")
def llamafactory_python() -> Path:
    """$EMER_LLAMAFACTORY_PYTHON, else the project's .venv-llamafactory (made by scripts/setup)."""
    python = Path(os.environ.get("EMER_LLAMAFACTORY_PYTHON") or ROOT / ".venv-llamafactory" / "bin" / "python")
    if not python.exists():
        pytest.fail(f"LLaMA-Factory's environment not found at {python}: run scripts/setup (it makes it)")
    return python
