"""Defaults for Prefect's local mode, applied unless the user set them.

The ephemeral API server gets 20 s to start by default; on a 2-core machine that is also starting
vLLM servers it can need more. No telemetry: these machines (and many clusters) have no internet.
"""

from __future__ import annotations

import os

DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}


def apply_prefect_defaults() -> None:
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
