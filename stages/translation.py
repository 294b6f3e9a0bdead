"""Translation both ways: the description into Chinese, a Chinese-only subtitle into English.

Two stages, one role: both are answered by the `translation` role's backend."""

from __future__ import annotations

from schemas.replies import TranslationReply
from schemas.row import CoarseRow
from stages.contract import Question, Stage, StageInputs


class DescriptionInputs(StageInputs):
    description_en: str
    # The corpus's own Chinese subtitle: the Chinese description quotes it as said, rather than the
    # English subtitle translated back.
    subtitle_chinese: str | None = None


class ChineseSubtitleInputs(StageInputs):
    subtitle_chinese: str


class TranslationStage(Stage[DescriptionInputs]):
    """The English description into Simplified Chinese, quoting the corpus's Chinese subtitle where it has one."""

    name = "translation"
    inputs = DescriptionInputs
    reply = TranslationReply
    writes = ("description_zh",)
    prompt = "translation"

    def questions(self, inputs: DescriptionInputs) -> list[Question]:
        subtitle = (inputs.subtitle_chinese or "").strip()
        if subtitle:
            return [
                Question("en_to_zh", "en_to_zh_with_subtitle", {"text": inputs.description_en, "subtitle": subtitle})
            ]
        return [Question("en_to_zh", "en_to_zh", {"text": inputs.description_en})]

    def write(self, row: CoarseRow, value: dict) -> None:
        row.description_zh = value["translation"]


class SubtitleTranslationStage(Stage[ChineseSubtitleInputs]):
    """A Chinese-only subtitle into English, so every model reads the words."""

    name = "subtitle_translation"
    role = "translation"
    inputs = ChineseSubtitleInputs
    reply = TranslationReply
    writes = ("subtitle_english_translated",)
    prompt = "translation"

    def questions(self, inputs: ChineseSubtitleInputs) -> list[Question]:
        return [Question("zh_to_en", "zh_to_en", {"text": inputs.subtitle_chinese})]

    def write(self, row: CoarseRow, value: dict) -> None:
        row.subtitle_english_translated = value["translation"]
