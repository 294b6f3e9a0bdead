"""Issue 16.15: the local-mode defaults are in force when Prefect reads its settings, however the
engine is entered. Checked in fresh interpreters against the value Prefect itself reports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
READ = (
    "import {module}\n"
    "from prefect.settings import get_current_settings\n"
    "print(get_current_settings().server.ephemeral.startup_timeout_seconds)"
)


def effective_timeout(module: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_SERVER_EPHEMERAL")}
    done = subprocess.run(
        [sys.executable, "-c", READ.format(module=module)],
        cwd=ROOT,
        env=clean | env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("module", ["flows.cli", "flows.build_coarse", "flows.evaluate", "flows.push_coarse"])
def test_the_startup_timeout_default_is_the_one_in_force(module):
    assert effective_timeout(module) == "180"


def test_a_value_the_user_set_wins():
    assert effective_timeout("flows.cli", PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="45") == "45"
