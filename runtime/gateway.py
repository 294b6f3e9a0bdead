"""The one event loop every model request runs on.

Prefect runs batch tasks in worker threads; if each thread had its own loop and clients, the
per-endpoint in-flight caps would multiply by the number of threads. Routing all requests through
one loop in a background thread keeps one connection pool and one cap per endpoint.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class Gateway:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="model-gateway", daemon=True)
        self._thread.start()

    def run(self, coro: Awaitable[T]) -> T:
        """Run a coroutine on the gateway loop and wait for it from any thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def cancel_pending(self) -> None:
        """Cancel whatever still runs on the loop (a failed run's other clips) and wait for it."""
        tasks = [t for t in asyncio.all_tasks(self.loop) if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()
