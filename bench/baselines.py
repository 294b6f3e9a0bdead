"""The two yardsticks the engine's dispatch is measured against, both replaying the exact request
bodies the engine sent (recorded by bench/fake_server.py):

- ceiling: a bare asyncio script on aiohttp, every request launched at once behind the same
  per-model cap the engine uses (an endpoint's `max_in_flight`), no dependencies between requests,
  bodies pre-encoded: the most any client could get out of the server at that concurrency;
- sequential: the way the method's published code runs, one clip at a time and one request at a time.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp


def load_requests(path: Path) -> list[tuple[str, bytes]]:
    """(model, body) for every recorded request, in the order the server received them."""
    out = []
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                out.append((json.loads(line)["model"], line.rstrip(b"\n")))
    return out


async def _post(session: aiohttp.ClientSession, url: str, body: bytes) -> None:
    async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
        response.raise_for_status()
        await response.read()


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=600))


async def ceiling(base_url: str, requests: list[tuple[str, bytes]], max_in_flight: dict[str, int]) -> float:
    """Seconds to send all `requests` at up to `max_in_flight[model]` at once per model."""
    caps = {model: asyncio.Semaphore(cap) for model, cap in max_in_flight.items()}
    url = f"{base_url}/chat/completions"
    async with _session() as session:

        async def one(model: str, body: bytes) -> None:
            async with caps[model]:
                await _post(session, url, body)

        started = time.perf_counter()
        await asyncio.gather(*(one(m, b) for m, b in requests))
        return time.perf_counter() - started


async def sequential(base_url: str, requests: list[tuple[str, bytes]]) -> float:
    """Seconds to send `requests` one after another."""
    url = f"{base_url}/chat/completions"
    async with _session() as session:
        started = time.perf_counter()
        for _, body in requests:
            await _post(session, url, body)
        return time.perf_counter() - started
