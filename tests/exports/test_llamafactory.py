"""The LLaMA-Factory and atomic (SignificantOther-style) exports, loaded by LLaMA-Factory itself in its own
environment (tests/exports/llamafactory_reader.py says exactly which of its functions run: dataset_info
parsing, loading and the ShareGPT aligner, the Qwen2.5-Omni plugin's placeholder check and video decoding)."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

from exports.run import export_training
from exports.tasks import load_tasks

READER = Path(__file__).with_name("llamafactory_reader.py")


def load_with_llamafactory(python: Path, folder: Path, dataset: str) -> dict:
    env = os.environ | {"HF_HOME": tempfile.mkdtemp(prefix="hf-home-"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [str(python), str(READER), str(folder), dataset], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_llamafactory_loads_every_sample_with_its_media(built, train, config, tmp_path, llamafactory_python):
    to = tmp_path / "llamafactory"
    manifest = export_training(built, "llamafactory", to, config=config)
    loaded = load_with_llamafactory(llamafactory_python, to, manifest.reader["dataset"])
    assert loaded["formatting"] == "sharegpt" and loaded["load_from"] == "file"
    assert loaded["columns"] == {"messages": "messages", "videos": "videos", "audios": "audios"}
    samples = loaded["samples"]
    assert len(samples) == manifest.samples == len(train)
    for sample in samples:
        (video,), (audio,) = sample["videos"], sample["audios"]
        # Resolved against media_dir (the export folder): the files themselves, not "Use original path".
        assert video.startswith(str(to)) and os.path.isfile(video) and os.path.isfile(audio)
        assert sample["frames"][0] >= 2 and sample["prompt"][0]["content"].startswith("<video><audio>")
        name = Path(video).stem
        assert sample["response"] == [{"role": "assistant", "content": train[name]["description_en"]}]


def test_atomic_tasks_and_the_chain_of_thought_load_per_clip(built, train, config, tmp_path, llamafactory_python):
    to = tmp_path / "atomic"
    manifest = export_training(built, "atomic", to, config=config)
    loaded = load_with_llamafactory(llamafactory_python, to, manifest.reader["dataset"])
    samples = loaded["samples"]
    assert len(samples) == manifest.samples
    tasks = load_tasks()
    for name, row in train.items():
        mine = [s for s in samples if any(Path(p).stem == name for p in s["videos"] + s["audios"])]
        answers = {s["response"][0]["content"] for s in mine}
        visual = row["visual_clue"]["without_subtitle"]["clues"]
        assert visual in answers and ", ".join(row["labels"]) in answers
        if row["audio_clue"]:
            assert row["audio_clue"]["without_subtitle"]["clues"] in answers
        units = ((row["signals"] or {}).get("visual") or {}).get("action_units")
        au_question = next(t.question for t in tasks.atomic if t.id == "action_units")
        assert any(au_question in s["prompt"][0]["content"] for s in mine) == bool(units)
        # The chain of thought: clues, then the reasoning, then the labels, in that order.
        (cot,) = [s for s in mine if s["response"][0]["content"].startswith("Visual clues:")]
        text = cot["response"][0]["content"]
        assert text.index(visual) < text.index(row["description_en"]) < text.rindex(", ".join(row["labels"]))
    # The subtitle task carries no media; LLaMA-Factory loads it as a text sample.
    text_only = [s for s in samples if not s["videos"] and not s["audios"]]
    assert len(text_only) == len(train)
    for sample in samples:
        assert all(os.path.isfile(p) for p in sample["videos"] + sample["audios"])


def test_with_media_none_the_samples_point_at_the_corpus(built, config, tmp_path, llamafactory_python):
    to = tmp_path / "llamafactory-none"
    manifest = export_training(built, "llamafactory", to, media="none", config=config)
    assert manifest.media_files == 0 and not (to / "video").exists()
    loaded = load_with_llamafactory(llamafactory_python, to, manifest.reader["dataset"])
    for sample in loaded["samples"]:
        (video,) = sample["videos"]
        assert Path(video).parent.name == "video" and not video.startswith(str(to)) and os.path.isfile(video)
