"""The measurements of issue 13 (faces, landmarks, action units, expressions, optical flow; VAD, Praat, eGeMAPS;
the active speaker) against media prep of the same clip, per clip.

Both sides run in the engine's isolated decoder pool, `workers` processes wide, as a build runs them: the baseline
is MediaPrep.prepare (frames and 16 kHz WAV, each repetition its own cache key, so every one decodes: bench/media.py's
engine side); the measurement is backends/measure.py's three calls on that prepared media, measure_audio on the WAV,
measure_video on the clip (decoded densely), active_speaker on both. Two kinds of clip, from data/photo_clips.py: a
talking face and speech over a photo with no face. The workers are warm before either clock starts; the one-off cost
of a process's first measurement (imports, the dlib and ONNX models, openSMILE's configuration) is timed apart, in
the worker, as its first call minus its warm calls.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from annotators.signals.active_speaker import active_speaker
from annotators.signals.faces import measure_video
from annotators.signals.prosody import measure_audio
from bench.media import warm_decoders
from data.photo_clips import photo_clip
from runtime.isolation import IsolatedPool
from schemas.config import MediaConfig
from schemas.manifest import Subtitles
from stages.ingest import probe_clip
from stages.media_prep import MediaPrep

CLIP_S = 4.0
TEXTS = ["I cannot believe it, this is wonderful news."]
KINDS: dict[str, dict] = {"talking_face": {"face": "grace_hopper"}, "no_face": {"face": None}}
MEASURES = {"measure_audio": measure_audio, "measure_video": measure_video, "active_speaker": active_speaker}


def timed(name: str, *args: Any) -> tuple[int, float, Any]:
    """Runs in a worker: one measure, timed there (the parent's clock would add the pool's queueing)."""
    started = time.perf_counter()
    value = MEASURES[name](*args)
    return os.getpid(), time.perf_counter() - started, value


def chain(video: str, wav: str) -> tuple[int, float, str]:
    """Runs in a worker: all three measures of one clip, timed there; a process's first one carries its load."""
    started = time.perf_counter()
    audio = measure_audio(wav)
    speaker = active_speaker(audio, measure_video(video), wav)
    return os.getpid(), time.perf_counter() - started, speaker.verdict


async def measured(pool: IsolatedPool, video: str, wav: str, spent: dict[str, float]) -> str:
    """One clip, as backends/measure.py measures it: three calls into the pool, one after another."""
    _, audio_s, audio = await pool.run(timed, "measure_audio", wav)
    _, video_s, visual = await pool.run(timed, "measure_video", video)
    _, speaker_s, speaker = await pool.run(timed, "active_speaker", audio, visual, wav)
    for name, seconds in zip(MEASURES, (audio_s, video_s, speaker_s)):
        spent[name] += seconds
    return speaker.verdict


def measure(workdir: Path, n: int, media: MediaConfig, workers: int, rounds: int = 2) -> dict:
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    load_before = os.getloadavg()
    clips = {
        kind: photo_clip(workdir / f"{kind}.mp4", texts=TEXTS, seconds=CLIP_S, **args) for kind, args in KINDS.items()
    }
    records = {
        kind: probe_clip(clip, Subtitles(), None, media.audio_max_seconds, media.silence_threshold_db)
        for kind, clip in clips.items()
    }
    pool = IsolatedPool(workers)
    prep = MediaPrep(workdir / "cache", media, pool)

    async def run() -> dict:
        await asyncio.gather(*(pool.run(warm_decoders) for _ in range(workers * 4)))
        warm_wav = (await prep.prepare(records["talking_face"].model_copy(update={"sha256": "f" * 64}), True)).wav
        # First calls: `workers` at once, so each process gets one; then warm ones until each has had two more.
        calls: dict[int, list[float]] = defaultdict(list)
        for _ in range(3):
            for pid, seconds, _ in await asyncio.gather(
                *(pool.run(chain, str(clips["talking_face"]), warm_wav) for _ in range(workers))
            ):
                calls[pid].append(seconds)
        kinds: dict[str, dict] = {kind: {"prep": [], "measure": [], "spent": [], "verdicts": set()} for kind in KINDS}
        for r in range(rounds):  # alternated, best of each: a shared machine's noise hits both sides alike
            for k, kind in enumerate(KINDS):
                keyed = [
                    records[kind].model_copy(update={"sha256": f"{(r * 10 + k) * 10_000 + i:064x}"}) for i in range(n)
                ]
                started = time.perf_counter()
                prepared = await asyncio.gather(*(prep.prepare(rec, with_audio=True) for rec in keyed))
                kinds[kind]["prep"].append(time.perf_counter() - started)
                spent: dict[str, float] = defaultdict(float)
                started = time.perf_counter()
                verdicts = await asyncio.gather(*(measured(pool, str(clips[kind]), m.wav, spent) for m in prepared))
                kinds[kind]["measure"].append(time.perf_counter() - started)
                kinds[kind]["spent"].append(spent)
                kinds[kind]["verdicts"].update(verdicts)
        return {"calls": calls, "kinds": kinds}

    try:
        raw = asyncio.run(run())
    finally:
        pool.close()
    out: dict[str, Any] = {}
    for kind, got in raw["kinds"].items():
        prep_s, measure_s = min(got["prep"]), min(got["measure"])
        best = got["spent"][got["measure"].index(measure_s)]
        out[kind] = {
            "media_prep_s_per_clip": prep_s / n,
            "measure_s_per_clip": measure_s / n,
            "measure_over_media_prep": measure_s / prep_s,
            "worker_s_per_clip": {name: best[name] / n for name in MEASURES},
            "active_speaker": sorted(got["verdicts"]),
        }
    processes = [
        {"first_call_s": seconds[0], "warm_call_s": min(seconds[1:]), "load_s": seconds[0] - min(seconds[1:])}
        for seconds in raw["calls"].values()
        if len(seconds) > 1
    ]
    return {
        "clips": n,
        "rounds": rounds,
        "workers": workers,
        "clip_s": CLIP_S,
        "kinds": out,
        "processes": processes,
        "load_average": {"before": load_before[0], "after": os.getloadavg()[0]},
    }
