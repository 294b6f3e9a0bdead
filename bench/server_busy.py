"""How busy the engine keeps a real vLLM server: its own gauges, sampled while the flow runs.

vLLM's /metrics exports `vllm:num_requests_running` and `vllm:num_requests_waiting`. Sampled every
`interval` s, the share of samples with a request running is the share of time the server had work;
requests waiting while it runs mean the engine queued more than the server takes at once (saturated).
"""

from __future__ import annotations

import re
import threading
import time

import httpx

_GAUGE = re.compile(r"^(vllm:num_requests_(?:running|waiting))\{[^}]*\}\s+([0-9.eE+-]+)$", re.MULTILINE)


class BusySampler:
    def __init__(self, metrics_urls: dict[str, str], interval: float = 0.1) -> None:
        self.urls, self.interval = metrics_urls, interval
        self.samples: dict[str, list[tuple[float, float, float]]] = {
            name: [] for name in metrics_urls
        }  # (t, running, waiting)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> BusySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        with httpx.Client(timeout=2) as client:
            while not self._stop.is_set():
                for name, url in self.urls.items():
                    try:
                        text = client.get(url).text
                    except httpx.HTTPError:
                        continue  # not up yet, or gone
                    values = {m.group(1): float(m.group(2)) for m in _GAUGE.finditer(text)}
                    self.samples[name].append(
                        (
                            time.monotonic(),
                            values.get("vllm:num_requests_running", 0.0),
                            values.get("vllm:num_requests_waiting", 0.0),
                        )
                    )
                self._stop.wait(self.interval)

    def report(self) -> dict[str, dict]:
        """Per server, over its working window (first to last sample with a request running)."""
        out = {}
        for name, samples in self.samples.items():
            working = [i for i, s in enumerate(samples) if s[1] > 0]
            if not working:
                out[name] = {"busy_share": 0.0, "window_s": 0.0}
                continue
            window = samples[working[0] : working[-1] + 1]
            out[name] = {
                "window_s": window[-1][0] - window[0][0],
                "busy_share": sum(1 for s in window if s[1] > 0) / len(window),
                "mean_running": sum(s[1] for s in window) / len(window),
                "share_with_queue": sum(1 for s in window if s[2] > 0) / len(window),
                "samples": len(window),
            }
        return out
