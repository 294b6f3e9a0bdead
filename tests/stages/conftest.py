"""A clip as a stage sees it (tests/fakes.py: clip_context)."""

from __future__ import annotations

import pytest

from stages.contract import ClipContext
from tests.fakes import clip_context


@pytest.fixture
def clip(tmp_path) -> ClipContext:
    return clip_context(tmp_path)
