"""One build-coarse flow run in a process of its own, measured from inside.

A fresh process per run: peak RSS is then this run's, and CPU time is the orchestration
process's alone (decoders, ffmpeg and the Prefect API server are other processes).
Prints one JSON object: wall and CPU seconds of the flow call, peak RSS, and the flow's summary.

Run: python -m bench.flow_run CORPUS OUT CONFIG
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from flows.prefect_defaults import apply_prefect_defaults


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM). Not ru_maxrss: Linux carries that across exec from the parent
    at fork, so a child of a big benchmark process would report the parent's size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main() -> None:
    corpus, out, config = sys.argv[1:4]
    apply_prefect_defaults()
    from flows.build_coarse import build_coarse

    rss_before = peak_rss_mb()
    cpu, wall = time.process_time(), time.perf_counter()
    summary = build_coarse(corpus=corpus, out_dir=out, config_path=config)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(
        json.dumps(
            {
                "wall_s": wall,
                "cpu_s": cpu,
                "peak_rss_mb": peak_rss_mb(),
                "rss_after_imports_mb": rss_before,
                "summary": summary,
            }
        )
    )


if __name__ == "__main__":
    main()
