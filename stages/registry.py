"""The stages by name: the method's, and any other a line-up names by import path."""

from __future__ import annotations

import importlib

from stages.clues import AudioClueStage, VisualClueStage
from stages.contract import Stage
from stages.disambiguation import DisambiguationStage
from stages.labels import LabelsStage
from stages.signals import MeasureSignalsStage
from stages.translation import SubtitleTranslationStage, TranslationStage

METHOD_STAGES: dict[str, type[Stage]] = {
    cls.name: cls
    for cls in (
        MeasureSignalsStage,
        SubtitleTranslationStage,
        AudioClueStage,
        VisualClueStage,
        DisambiguationStage,
        TranslationStage,
        LabelsStage,
    )
}
# The roles a line-up must configure: every method stage's but the measurement's (it always runs, built in).
METHOD_ROLES: tuple[str, ...] = tuple(dict.fromkeys(c.role for c in METHOD_STAGES.values() if c.role != "signals"))


class UnknownStage(ValueError):
    pass


def stage_class(ref: str) -> type[Stage]:
    """A method stage by name, or any stage by import path (`package.module:Class`)."""
    if ref in METHOD_STAGES:
        return METHOD_STAGES[ref]
    module, _, attr = ref.partition(":")
    if not attr:
        raise UnknownStage(
            f"no stage named {ref!r}: name one of {sorted(METHOD_STAGES)} or give 'package.module:Class'"
        )
    try:
        found = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise UnknownStage(f"cannot import stage {ref!r}: {exc}") from exc
    if not (isinstance(found, type) and issubclass(found, Stage)):
        raise UnknownStage(f"{ref!r} is not a stage (a subclass of stages.contract.Stage)")
    return found
