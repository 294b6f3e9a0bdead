"""bench/results.json -> bench/RESULTS.md: figures, targets met or missed, and how they were made."""

from __future__ import annotations

from pathlib import Path

NOTES = Path(__file__).with_name("NOTES.md")  # hand-written analysis, appended when present


def _mark(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _measure_section(ms: dict, command: str) -> list[str]:
    out = [
        "## 7. Measurements against media prep (issue 13)",
        "",
        (
            f"{ms['clips']} clips of each kind ({ms['clip_s']:g} s, data/photo_clips.py), {ms['workers']} warm worker "
            f"processes, best of {ms['rounds']} alternated rounds; command `{command}`, load average "
            f"{ms['load_average']['before']:.2f} before, {ms['load_average']['after']:.2f} after:"
        ),
        "",
        (
            "| clip | media prep s/clip | measurements s/clip | measurements / media prep "
            "| worker s/clip: audio, video, active speaker | active speaker |"
        ),
        "|---|---|---|---|---|---|",
    ]
    for kind, k in ms["kinds"].items():
        w = k["worker_s_per_clip"]
        out.append(
            f"| {kind.replace('_', ' ')} | {k['media_prep_s_per_clip']:.3f} | {k['measure_s_per_clip']:.3f} "
            f"| **{k['measure_over_media_prep']:.1f}x** | {w['measure_audio']:.3f}, {w['measure_video']:.3f}, "
            f"{w['active_speaker']:.3f} | {', '.join(k['active_speaker'])} |"
        )
    loads = ", ".join(
        f"{p['load_s']:.1f} s ({p['first_call_s']:.1f} - {p['warm_call_s']:.1f})" for p in ms["processes"]
    )
    out += [
        "",
        "Seconds per clip are wall time over the clips, both processes busy; worker seconds are each measure's own",
        "time inside a worker (they add up to about workers x the wall time).",
        f"One-off load per worker process (first call minus warm call, not in the figures above): {loads}.",
        "",
    ]
    return out


def markdown(r: dict) -> str:
    m = r["machine"]
    out = [
        "# Benchmark results",
        "",
        f"- Run: {r['started']} to {r['finished']} (UTC), commit `{m['commit']}`",
        (
            f"- Machine: {m['cpus']} CPUs ({m['cpu']}), {m['memory_gib']} GiB, Python {m['python']}, "
            f"load average at start {m['load_at_start']:.2f}"
        ),
        f"- Command: `{r['command']}`",
        "",
        *([f"> {r['note']}", ""] if r.get("note") else []),
        "Every figure is a ratio of two things measured side by side in this run. The model endpoint is",
        "bench/fake_server.py (OpenAI-compatible, fixed latency per request, fixed-length schema-valid",
        "replies); the flow is the real build-coarse flow, reporting to a Prefect API server, with the shipped GPU",
        "line-up's caps and batch sizes (data/configs/gpu-qwen.toml), every endpoint pointed at it.",
        "",
        "## 1. Engine dispatch against the ceiling and the sequential way",
        "",
        (
            "| latency | clips | requests/clip | flow clips/s (dispatch) | flow clips/s (end to end) "
            "| ceiling clips/s | sequential clips/s | of ceiling (target >= 95%) | over sequential (target >= 20x) |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for d in r["dispatch"]:
        c = d["clips_per_s"]
        out.append(
            f"| {d['latency_ms']:g} ms | {d['clips']} | {d['requests_per_clip']:.2f} | {c['flow_dispatch']:.1f} "
            f"| {c['flow_end_to_end']:.1f} | {c['ceiling']:.1f} | {c['sequential']:.2f} "
            f"| {100 * d['of_ceiling']:.1f}% ({_mark(d['of_ceiling'] >= 0.95)}); "
            f"end to end {100 * d['end_to_end_of_ceiling']:.1f}% "
            f"| {d['over_sequential']:.0f}x ({_mark(d['over_sequential'] >= 20)}) |"
        )
    out += [
        "",
        "Dispatch rate = clips / the server's working window (first request in to last reply out), the same",
        "instrument for the flow and the ceiling. End to end adds ingest, start-up and export (gates, Parquet,",
        "DatasetDict, card). Ceiling: the flow's recorded request bodies replayed by a bare asyncio/aiohttp",
        "script, all launched at once behind the same per-model caps. Sequential: the same bodies one at a",
        "time (the method's published code: one clip, one request at a time); its rate is per clip, measured",
        f"on the first clips ({', '.join(str(d['sequential']['clips']) for d in r['dispatch'])}).",
        (
            "Flow runs report to a Prefect API server, as deployments do; "
            f"Prefect's local mode (no server) adds a fixed {r['local_mode_startup_s']:.1f} s per run "
            "(its ephemeral API starting inside the run)."
        ),
        "Peak requests in flight at the server, flow vs ceiling: "
        + "; ".join(
            f"{d['latency_ms']:g} ms: {d['flow_server']['peak_in_flight']} vs {d['ceiling_server']['peak_in_flight']}"
            for d in r["dispatch"]
        )
        + f" (caps {r['dispatch'][0]['caps']}).",
        "",
        "## 2. Orchestration cost and memory",
        "",
        "| clips | CPU ms per clip (target <= 5) | peak RSS MiB | RSS after imports MiB | wall s |",
        "|---|---|---|---|---|",
    ]
    mem = r["memory"]
    for row in (mem["small"], mem["large"]):
        out.append(
            f"| {row['clips']} | {row['cpu_ms_per_clip']:.2f} ({_mark(row['cpu_ms_per_clip'] <= 5)}) "
            f"| {row['peak_rss_mb']:.0f} | {row['rss_after_imports_mb']:.0f} | {row['wall_s']:.1f} |"
        )
    out.append(f"| ceiling script (same requests) | {r['dispatch'][0]['ceiling_cpu_ms_per_clip']:.2f} | | | |")
    out += [
        "",
        (
            f"RSS at {mem['large']['clips']} / RSS at {mem['small']['clips']}: {mem['rss_ratio']:.2f} "
            f"(target <= 1.2: {_mark(mem['rss_ratio'] <= 1.2)})."
        ),
        "CPU is the flow process's own (process time during the flow call): orchestration, the client layer,",
        "checkpoint, gates and export; decoders, ffmpeg and the Prefect API server are other processes.",
        f"Both runs at {r['dispatch'][0]['latency_ms']:g} ms latency, probes and media cached (measured in 3).",
        "",
        "## 3. Media prep against bare decoders",
        "",
    ]
    md = r["media"]
    out += [
        (
            f"{md['clips']} clips, {md['frames_per_clip']} frames of {md['frame_size']} each plus 16 kHz WAV, "
            f"{md['workers']} processes:"
        ),
        (
            f"engine {md['engine_ms_per_clip']:.0f} ms per clip, "
            f"bare decord + ffmpeg {md['bare_ms_per_clip']:.0f} ms per clip:"
        ),
        f"**{md['engine_over_bare']:.2f}x** (target <= 1.5x: {_mark(md['engine_over_bare'] <= 1.5)}).",
        (
            "Ingest probe (sha256, ffprobe with packet count, ffmpeg peak level), per clip on one thread: "
            f"{md['probe_ms_per_clip']:.0f} ms."
        ),
        "",
        "## 4. Resume",
        "",
    ]
    rs = r["resume"]
    out += [
        (
            f"Re-running the finished {r['dispatch'][0]['clips']}-clip corpus: **{rs['model_calls']} model calls** "
            f"(target 0: {_mark(rs['model_calls'] == 0)}),"
        ),
        (
            f"{rs['rerun_s']:.1f} s against {rs['first_s']:.1f} s for the first run: **{100 * rs['share']:.1f}%** "
            f"(target < 5%: {_mark(rs['share'] < 0.05)})."
        ),
        "",
        "## 5. The real server (vLLM on the CPU, tiny random models)",
        "",
    ]
    if v := r.get("vllm"):
        out += [
            (
                f"{v['clips']} clips through the cpu-tiny line-up (two vLLM servers the flow starts itself): "
                f"{v['clips_per_s']:.2f} clips/s over the"
            ),
            (
                f"annotation window ({v['annotation_window_s']:.0f} s; the whole flow with server start-up took "
                f"{v['flow_wall_s']:.0f} s), {v['model_calls']} model calls."
            ),
            "",
            "| server | busy share of its window | mean requests running | share of samples with requests waiting |",
            "|---|---|---|---|",
        ]
        for name, b in v["servers"].items():
            out.append(
                f"| {name} | {100 * b['busy_share']:.0f}% | {b.get('mean_running', 0):.1f} "
                f"| {100 * b.get('share_with_queue', 0):.0f}% |"
            )
        out += [
            "",
            (
                "Sampled from each server's own /metrics gauges (vllm:num_requests_running / _waiting) every 0.1 s "
                "(the sample count is in results.json)."
            ),
        ]
    else:
        out.append("Not run (--vllm-clips 0).")
    if (prof := r.get("profile")) and "components" in prof:
        out += [
            "",
            "## Where the flow's CPU goes",
            "",
            (
                f"py-spy samples of the {r['dispatch'][0]['clips']}-clip, {r['dispatch'][0]['latency_ms']:g} ms "
                "dispatch run, self time by component:"
            ),
            "",
            "| component | share |",
            "|---|---|",
        ]
        out += [f"| {name} | {100 * share:.1f}% |" for name, share in prof["components"].items()]
        out += [
            "",
            "Inside the client layer (RoleClient.ask), inclusive:",
            "",
            "| function | share of the client layer |",
            "|---|---|",
        ]
        out += [f"| `{name}` | {100 * share:.0f}% |" for name, share in prof["client_layer"]]
    out += ["", "## 6. On paper: GPU-hours for 115,595 clips on one H100 per model", ""]
    p = r["paper"]
    out += [
        (
            "Tokens per clip per stage (text counted on the requests the engine sent; "
            "media at the models' published rates for a 5 s 672x378 clip):"
        ),
        "",
        "| stage | requests | prompt text tokens | media tokens | completion tokens |",
        "|---|---|---|---|---|",
    ]
    for stage, t in sorted(p["per_clip"].items()):
        out.append(f"| {stage} | {t['requests']:.2f} | {t['text']:.0f} | {t['media']:.0f} | {t['completion']:.0f} |")
    out += [
        "",
        (
            "| clip length | frames | prefix caching of media | prefill tokens/clip | decode tokens/clip "
            "| GPU-hours | decode share |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for s in p["scenarios"]:
        out.append(
            f"| {s['clip_s']:g} s | {s['frames']} | {'yes' if s['prefix_cached_media'] else 'no'} "
            f"| {s['prefill_tokens_per_clip']:.0f} | {s['decode_tokens_per_clip']:.0f} | {s['gpu_hours']:.1f} "
            f"| {100 * s['decode_share']:.0f}% |"
        )
    out += [
        "",
        "Decode at ~6,300 output tokens/s (one public vLLM benchmark, 8B text model, one H100, high concurrency);",
        "prefill at an assumed 60,000 tokens/s. GPU-hours add all stages as if one GPU served them in turn.",
        "",
    ]
    if ms := r.get("measure"):
        out += _measure_section(ms, r.get("rerun_sections", {}).get("measure", {}).get("command", r["command"]))
    if NOTES.is_file():
        out += [NOTES.read_text(encoding="utf-8").strip(), ""]
    return "\n".join(out)
