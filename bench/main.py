"""Every benchmark figure of issue 5 in one run: python -m bench.main [--clips 1000 --memory-clips 10000].

Each claim is a ratio of two things measured side by side in this run on this machine. Results go
to bench/results.json and bench/RESULTS.md (with date, machine and command).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from bench import baselines, corpus, media, paper, profile, report
from bench import measure as measures
from bench.fake_server import COMPLETION_TOKENS
from bench.prefect_server import PrefectServer
from bench.server_busy import BusySampler
from schemas.config import EngineConfig

ROOT = Path(__file__).resolve().parent.parent
GPU_CONFIG = ROOT / "data" / "configs" / "gpu-qwen.toml"
CPU_TINY_CONFIG = ROOT / "data" / "configs" / "cpu-tiny.toml"
MODELS = {
    "audio_clue": "bench-audio",
    "visual_clue": "bench-vision",
    "disambiguation": "bench-text",
    "translation": "bench-text",
    "labels": "bench-text",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeServer:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        log = (workdir / "fake-server.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.fake_server", "--port", str(self.port)], cwd=ROOT, stdout=log, stderr=log
        )
        for _ in range(200):
            try:
                httpx.get(f"{self.url}/health", timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the fake server did not start; see fake-server.log")

    def reset(self, latency_ms: float, record: Path | None = None) -> None:
        params = {"latency_ms": latency_ms} | ({"record": str(record)} if record else {})
        httpx.post(f"{self.url}/reset", params=params).raise_for_status()

    def stats(self) -> dict:
        return httpx.get(f"{self.url}/stats").json()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def dispatch_config(server_url: str, state_dir: Path) -> EngineConfig:
    """The shipped GPU line-up (caps, batch sizes, media settings), every endpoint on the fake server."""
    config = EngineConfig.from_file(GPU_CONFIG)
    for role, cfg in config.roles.items():
        cfg.endpoints = [
            ep.model_copy(update={"base_url": f"{server_url}/v1", "model": MODELS[role]}) for ep in cfg.endpoints
        ]
    return config.model_copy(update={"state_dir": state_dir, "decode_workers": 2})


def prepared_run(
    server: FakeServer, clips_dir: Path, state: Path, base: Path, config_path: Path
) -> tuple[EngineConfig, Path]:
    """A run's config on the fake server, written to `config_path`, with every clip's probe seeded in `state`."""
    cfg = dispatch_config(server.url, state)
    corpus.seed_probes(clips_dir, state, cfg, base)
    return cfg, write_config(cfg, config_path)


def write_config(config: EngineConfig, path: Path) -> Path:
    path.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_none=True)))
    return path


def run_flow(corpus_dir: Path, out: Path, config: Path, env: dict) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "bench.flow_run", str(corpus_dir), str(out), str(config)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"flow run failed:\n{done.stderr[-4000:]}")
    return json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])


def caps_of(config: EngineConfig) -> dict[str, int]:
    return {ep.model: ep.max_in_flight for cfg in config.roles.values() for ep in cfg.endpoints}


def main() -> None:  # noqa: C901 - the sections in order, one after another
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, default=ROOT / ".bench")
    parser.add_argument("--clips", type=int, default=1000)
    parser.add_argument("--memory-clips", type=int, default=10_000)
    parser.add_argument("--latencies-ms", default="50,500")
    parser.add_argument("--media-clips", type=int, default=100)
    parser.add_argument("--vllm-clips", type=int, default=64, help="0 skips the real-server run")
    parser.add_argument("--measure-clips", type=int, default=6, help="clips of each kind for the measurements' cost")
    parser.add_argument("--results", type=Path, default=ROOT / "bench")
    parser.add_argument(
        "--only",
        default="",
        help="re-run only these sections (startup, media, measure, vllm) into the existing results.json",
    )
    args = parser.parse_args()
    if args.only:
        return rerun_sections(args)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": "bench/run " + shlex.join(sys.argv[1:]),
    }
    base = corpus.base_clip(work)
    prefect = PrefectServer(work / "prefect-home", free_port())
    env, local_env = flow_envs(work, prefect)
    server = FakeServer(work)
    try:
        # Warm state: media decoded and signals measured once, shared by every dispatch run.
        warm = work / "warm-state"
        server.reset(0)
        warm_corpus = corpus.make_corpus(work / "corpus-warm", 1, base, prefix="warm")
        warm_cfg, warm_config = prepared_run(server, warm_corpus, warm, base, work / "warm.yaml")
        run_flow(warm_corpus, work / "out-warm", warm_config, env)
        print("warm state ready", flush=True)
        results["local_mode_startup_s"] = local_mode_startup(warm_corpus, work, env, local_env)
        save(results, args.results)

        results["media"] = media.measure(base, work / "media", args.media_clips, warm_cfg.media, workers=2)
        print("media", results["media"], flush=True)
        save(results, args.results)

        results["measure"] = measures.measure(work / "measure", args.measure_clips, warm_cfg.media, workers=2)
        print("measure", results["measure"], flush=True)
        save(results, args.results)

        clips_dir = corpus.make_corpus(work / f"corpus-{args.clips}", args.clips, base)
        results["dispatch"] = []
        for latency in [float(x) for x in args.latencies_ms.split(",")]:
            results["dispatch"].append(dispatch_at(latency, server, clips_dir, args.clips, warm, base, work, env))
            print("dispatch", results["dispatch"][-1], flush=True)
            save(results, args.results)

        first = results["dispatch"][0]
        # Resume: the same command again over the finished corpus.
        rerun = run_flow(clips_dir, Path(first["out"]), Path(first["config"]), env)
        results["resume"] = {
            "model_calls": rerun["summary"]["model_calls"],
            "first_s": first["flow"]["wall_s"],
            "rerun_s": rerun["wall_s"],
            "share": rerun["wall_s"] / first["flow"]["wall_s"],
        }
        print("resume", results["resume"], flush=True)
        save(results, args.results)

        big = corpus.make_corpus(work / f"corpus-{args.memory_clips}", args.memory_clips, base)
        results["memory"] = {
            "small": orchestration(first["flow"], args.clips),
            "large": memory_run(server, big, args.memory_clips, warm, base, work, env, first["latency_ms"]),
        }
        results["memory"]["rss_ratio"] = (
            results["memory"]["large"]["peak_rss_mb"] / results["memory"]["small"]["peak_rss_mb"]
        )
        print("memory", results["memory"], flush=True)
        save(results, args.results)

        recorded = Path(first["recorded"])
        gpu = EngineConfig.from_file(GPU_CONFIG).media
        per_clip = paper.tokens_per_clip(
            recorded,
            args.clips,
            COMPLETION_TOKENS,
            frames=min(gpu.max_frames, int(paper.REAL_CLIP["seconds"] * gpu.frames_per_second)),
            side=gpu.frame_max_side,
        )
        results["paper"] = {"per_clip": per_clip, "scenarios": paper_scenarios(recorded, args.clips, gpu)}
        results["profile"] = profiled_run(server, clips_dir, args.clips, warm, base, work, env, first["latency_ms"])
        save(results, args.results)
        if args.vllm_clips:
            results["vllm"] = real_server(args.vllm_clips, base, work, env)
            print("vllm", results["vllm"], flush=True)
    finally:
        server.stop()
        prefect.stop()
    results["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    save(results, args.results)
    print(f"wrote {args.results / 'RESULTS.md'}")


def flow_envs(work: Path, prefect: PrefectServer) -> tuple[dict, dict]:
    """Environments of the flow runs: reporting to the benchmark's Prefect server, and in local mode."""
    base = {**os.environ, "VLLM_API_KEY": "bench", "PYTHONPATH": str(ROOT)}
    base.pop("PREFECT_API_URL", None)
    return base | {"PREFECT_HOME": str(work / "prefect-home"), "PREFECT_API_URL": prefect.api}, base | {
        "PREFECT_HOME": str(work / "prefect-local")
    }


def save(results: dict, folder: Path) -> None:
    """After every section: a later section that fails loses nothing measured before it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=1))
    if "finished" in results:
        (folder / "RESULTS.md").write_text(report.markdown(results))


def local_mode_startup(warm_corpus: Path, work: Path, env: dict, local_env: dict) -> float:
    """Prefect's local mode (no API server) starts an ephemeral one inside each flow run: a fixed
    cost per run, measured as the same finished 1-clip run with and without a server."""
    served = run_flow(warm_corpus, work / "out-warm", work / "warm.yaml", env)["wall_s"]
    local = run_flow(warm_corpus, work / "out-warm", work / "warm.yaml", local_env)["wall_s"]
    return local - served


def rerun_sections(args: argparse.Namespace) -> None:
    """Re-measure some sections into an existing results.json (each records its own command)."""
    work = args.work.resolve()
    results = json.loads((args.results / "results.json").read_text())
    sections = args.only.split(",")
    # Only the flow runs need the Prefect server; started for a section that has none, it would load the machine.
    prefect = PrefectServer(work / "prefect-home", free_port()) if {"startup", "vllm"} & set(sections) else None
    env, local_env = flow_envs(work, prefect) if prefect else ({}, {})
    command = "bench/run " + shlex.join(sys.argv[1:])
    try:
        for section in sections:
            if section == "startup":
                results["local_mode_startup_s"] = local_mode_startup(work / "corpus-warm", work, env, local_env)
            elif section == "media":
                media_cfg = EngineConfig.from_file(GPU_CONFIG).media
                results["media"] = media.measure(
                    corpus.base_clip(work), work / "media", args.media_clips, media_cfg, workers=2
                )
            elif section == "measure":
                media_cfg = EngineConfig.from_file(GPU_CONFIG).media
                results["measure"] = measures.measure(work / "measure", args.measure_clips, media_cfg, workers=2)
            elif section == "vllm":
                results["vllm"] = real_server(args.vllm_clips, corpus.base_clip(work), work, env)
            else:
                raise SystemExit(f"unknown section {section!r}")
            results.setdefault("rerun_sections", {})[section] = {
                "command": command,
                "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            }
    finally:
        if prefect:
            prefect.stop()
    results.setdefault("finished", dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    save(results, args.results)


def dispatch_at(
    latency: float, server: FakeServer, clips_dir: Path, n: int, warm: Path, base: Path, work: Path, env: dict
) -> dict:
    tag = f"{n}-{latency:g}ms"
    cfg, config_path = prepared_run(
        server, clips_dir, corpus.fresh_state(warm, work / f"state-{tag}"), base, work / f"dispatch-{tag}.yaml"
    )
    recorded = work / f"requests-{tag}.jsonl"
    recorded.unlink(missing_ok=True)
    server.reset(latency, recorded)
    flow = run_flow(clips_dir, work / f"out-{tag}", config_path, env)
    flow_server = server.stats()

    requests = baselines.load_requests(recorded)
    caps = caps_of(cfg)
    server.reset(latency)
    cpu = time.process_time()
    ceiling_client_s = asyncio.run(baselines.ceiling(f"{server.url}/v1", requests, caps))
    ceiling_cpu_s = time.process_time() - cpu
    ceiling_server = server.stats()

    per_clip = len(requests) / n
    seq_clips = min(n, max(2, round(12 / (per_clip * latency / 1000 + 0.001))))  # about 12 s of it
    server.reset(latency)
    seq_s = asyncio.run(baselines.sequential(f"{server.url}/v1", requests[: round(seq_clips * per_clip)]))
    flow_rate = n / flow_server["window_s"]
    ceiling_rate = n / ceiling_server["window_s"]
    seq_rate = seq_clips / seq_s
    return {
        "latency_ms": latency,
        "clips": n,
        "requests": len(requests),
        "requests_per_clip": per_clip,
        "caps": caps,
        "flow": flow,
        "flow_server": flow_server,
        "ceiling_server": ceiling_server,
        "ceiling_client_s": ceiling_client_s,
        "ceiling_cpu_ms_per_clip": 1000 * ceiling_cpu_s / n,
        "sequential": {"clips": seq_clips, "seconds": seq_s},
        "clips_per_s": {
            "flow_dispatch": flow_rate,
            "flow_end_to_end": n / flow["wall_s"],
            "ceiling": ceiling_rate,
            "sequential": seq_rate,
        },
        "of_ceiling": flow_rate / ceiling_rate,
        "end_to_end_of_ceiling": (n / flow["wall_s"]) / ceiling_rate,
        "over_sequential": flow_rate / seq_rate,
        "model_calls": flow["summary"]["model_calls"],
        "out": str(work / f"out-{tag}"),
        "config": str(config_path),
        "recorded": str(recorded),
    }


def orchestration(flow: dict, n: int) -> dict:
    return {
        "clips": n,
        "cpu_ms_per_clip": 1000 * flow["cpu_s"] / n,
        "peak_rss_mb": flow["peak_rss_mb"],
        "wall_s": flow["wall_s"],
        "rss_after_imports_mb": flow["rss_after_imports_mb"],
    }


def memory_run(
    server: FakeServer, clips_dir: Path, n: int, warm: Path, base: Path, work: Path, env: dict, latency: float
) -> dict:
    _, config_path = prepared_run(
        server, clips_dir, corpus.fresh_state(warm, work / f"state-{n}"), base, work / f"dispatch-{n}.yaml"
    )
    server.reset(latency)
    flow = run_flow(clips_dir, work / f"out-{n}", config_path, env)
    return orchestration(flow, n) | {"model_calls": flow["summary"]["model_calls"], "server": server.stats()}


def profiled_run(
    server: FakeServer, clips_dir: Path, n: int, warm: Path, base: Path, work: Path, env: dict, latency: float
) -> dict:
    """The first dispatch run again under py-spy: where the flow process's CPU goes."""
    _, config_path = prepared_run(
        server, clips_dir, corpus.fresh_state(warm, work / "state-profile"), base, work / "profile.yaml"
    )
    server.reset(latency)
    raw = work / "profile.txt"
    done = profile.record(
        [sys.executable, "-m", "bench.flow_run", str(clips_dir), str(work / "out-profile"), str(config_path)],
        raw,
        env,
        ROOT,
    )
    if done.returncode != 0 or not raw.is_file():
        return {"error": (done.stderr or "")[-1000:]}
    return {"components": profile.components(raw), "client_layer": profile.top_functions(raw)}


def paper_scenarios(recorded: Path, n: int, gpu) -> list[dict]:
    rows = []
    for seconds in (2.0, 5.0, 14.0):
        clip = {**paper.REAL_CLIP, "seconds": seconds}
        for fps in (1.0, 2.0):
            frames = min(gpu.max_frames, max(1, int(seconds * fps)))
            per_clip = paper.tokens_per_clip(recorded, n, COMPLETION_TOKENS, frames, gpu.frame_max_side, clip)
            for cached in (False, True):
                rows.append(
                    {"clip_s": seconds, "frames": frames, "prefix_cached_media": cached}
                    | paper.gpu_hours(per_clip, cached)
                )
    return rows


def real_server(n: int, base: Path, work: Path, env: dict) -> dict:
    """The cpu-tiny line-up (two vLLM CPU servers, tiny random models), started by the flow itself."""
    state = work / f"state-vllm-{n}"
    corpus.fresh_state(work / "warm-state", state)
    (work / "models").mkdir(exist_ok=True)
    (state / "models").symlink_to(work / "models", target_is_directory=True)  # built once per work dir
    config = EngineConfig.from_file(CPU_TINY_CONFIG)
    ports = {spec.name: free_port() for spec in config.servers}
    servers = [spec.model_copy(update={"port": ports[spec.name]}) for spec in config.servers]
    by_old_port = {f":{old.port}/": f":{new.port}/" for old, new in zip(config.servers, servers)}
    for cfg in config.roles.values():
        for ep in cfg.endpoints:
            for old, new in by_old_port.items():
                if old in ep.base_url:
                    ep.base_url = ep.base_url.replace(old, new)
    config = config.model_copy(update={"servers": servers, "state_dir": state})
    clips_dir = corpus.make_corpus(work / f"corpus-vllm-{n}", n, base)
    corpus.seed_probes(clips_dir, state, config, base)
    metrics = {spec.name: f"http://127.0.0.1:{spec.port}/metrics" for spec in servers}
    with BusySampler(metrics) as sampler:
        flow = run_flow(clips_dir, work / f"out-vllm-{n}", write_config(config, work / f"vllm-{n}.yaml"), env)
    busy = sampler.report()
    window = max(b["window_s"] for b in busy.values())
    return {
        "clips": n,
        "flow_wall_s": flow["wall_s"],
        "annotation_window_s": window,
        "clips_per_s": n / window if window else 0.0,
        "servers": busy,
        "model_calls": flow["summary"]["model_calls"],
        "splits": flow["summary"].get("splits"),
    }


def machine() -> dict:
    mem = next(
        (line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")),
        "0",
    )
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(int(mem) / 2**20, 1),
        "python": platform.python_version(),
        "commit": commit,
        "load_at_start": os.getloadavg()[0],
    }


if __name__ == "__main__":
    main()
