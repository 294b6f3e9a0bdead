"""A template description and its translation: the two-step reading done with rules.

Clues first (what voice and face suggest), then the subtitle read in their light: feelings the
subtitle names win, clue states that share their valence support them, and clue states alone speak
when the subtitle names none.
"""

from __future__ import annotations

import re

from annotators.signals.clues import audio_evidence, face_visible, speaks, visual_evidence
from annotators.signals.vocabulary import join_en, join_zh, lexicon, templates
from schemas.row import ClueSet
from schemas.signals import ClipSignals


def _states(clues: ClueSet | None) -> list[str]:
    reply = clues and (clues.without_subtitle or clues.with_subtitle)
    lex = lexicon()
    heads = [lex.head_of.get(s.lower(), s.lower()) for s in (reply.emotional_states if reply else [])]
    return list(dict.fromkeys(h for h in heads if h != "neutral"))


def verdict(subtitle_states: list[str], clue_states: list[str]) -> list[str]:
    lex = lexicon()
    if not subtitle_states:
        return clue_states
    valences = {lex.valence(s) for s in subtitle_states}
    return subtitle_states + [s for s in clue_states if s not in subtitle_states and lex.valence(s) in valences]


def describe(
    subtitle: str | None, audio: ClueSet | None, visual: ClueSet | None, signals: ClipSignals | None
) -> tuple[str, str]:
    """(subtitle analysis, description) in English."""
    s = templates().sentences
    sig = signals or ClipSignals()
    parts = []
    audio_states, video_states = _states(audio), _states(visual)
    if speaks(sig.audio):
        slots = {"audio_states": join_en(audio_states), "audio_evidence": join_en(audio_evidence(sig.audio))}
        parts.append(s["audio_states" if audio_states else "audio_plain"]["en"].format(**slots))
    else:
        parts.append(s["audio_none"]["en"])
    if face_visible(sig.visual):
        slots = {"video_states": join_en(video_states), "video_evidence": join_en(visual_evidence(sig.visual))}
        parts.append(s["video_states" if video_states else "video_plain"]["en"].format(**slots))
    else:
        parts.append(s["video_none"]["en"])
    text_states = lexicon().labels_in(subtitle, cues=True) if subtitle else []
    quote = (subtitle or "").replace('"', "'").strip()
    if not quote:
        parts.append(s["text_none"]["en"])
        analysis = "There is no subtitle to analyse."
    elif text_states:
        parts.append(s["text_states"]["en"].format(subtitle=quote, text_states=join_en(text_states)))
        analysis = f"The subtitle's words point to {join_en(text_states)}."
    else:
        parts.append(s["text_plain"]["en"].format(subtitle=quote))
        analysis = "The subtitle names no feeling directly; the voice and the face carry the emotion."
    final = verdict(text_states, list(dict.fromkeys(audio_states + video_states)))
    parts.append(s["verdict_states"]["en"].format(verdict_states=join_en(final)) if final else s["verdict_none"]["en"])
    return analysis, " ".join(parts)


class NotATemplate(ValueError):
    """The text is not made of this annotator's sentences: it cannot translate free text."""


def _pattern(template: str) -> re.Pattern:
    out, pos = [], 0
    for m in re.finditer(r"\{(\w+)\}", template):
        out.append(re.escape(template[pos : m.start()]))
        out.append(f"(?P<{m.group(1)}>.+?)")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out))


def _render_slot(name: str, value: str) -> str:
    lex, glossary = lexicon(), templates().glossary
    if name.endswith("_states"):
        words = value.split(", ")
        zh = [lex.zh(w) for w in words]
        if None in zh:
            raise NotATemplate(f"emotion word not in the lexicon: {value!r}")
        return join_zh(zh)
    if name.endswith("_evidence"):
        words = value.split(", ")
        if any(w not in glossary for w in words):
            raise NotATemplate(f"phrase not in the glossary: {value!r}")
        return join_zh([glossary[w] for w in words])
    return value  # quotes and numbers are copied


def translate_to_zh(text: str) -> str:
    """Render a description made of template sentences in Chinese, sentence by sentence."""
    sentences = templates().sentences.values()
    compiled = [(_pattern(t["en"]), t["zh"]) for t in sentences]
    rest, out = text.strip(), []
    while rest:
        for pattern, zh in compiled:
            m = pattern.match(rest)
            # A lazy slot may stop early: the match must end where the next sentence starts.
            if m and (m.end() == len(rest) or rest[m.end()] == " "):
                out.append(zh.format(**{k: _render_slot(k, v) for k, v in m.groupdict().items()}))
                rest = rest[m.end() :].lstrip()
                break
        else:
            raise NotATemplate(f"no template sentence matches: {rest[:80]!r}")
    return "".join(out)
