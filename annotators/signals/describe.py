"""A template description and its translation: the two-step reading done with rules.

What was measured, in words (the voice against the corpus, the face's actions and expression classes,
the subtitle's sentiment), then the emotional states the rules of templates.toml name from those facts,
then the subtitle read in their light: feelings the subtitle names lead, measured states that share
their valence support them, and measured states alone speak when the subtitle names none.
"""

from __future__ import annotations

import re

from annotators.signals.clues import (
    action_phrase,
    active_actions,
    expression_ranking,
    face_visible,
    neutral_expression,
    smiles,
    speaks,
    state_rules,
    strong_expression,
    voice_reading,
)
from annotators.signals.sentiment import contrary_cues, is_english, sentiment
from annotators.signals.vocabulary import join_en, join_zh, lexicon, templates
from schemas.signals import AcousticReading, ClipSignals, VisualSignals

_OPPOSITE = {"positive": "negative", "negative": "positive"}


def facts(signals: ClipSignals, reading: AcousticReading | None, words: str | None) -> set[str]:
    """The facts the state rules read (templates.toml [[rule]]) from the measurements and the words' valence."""
    t = templates().thresholds
    out = set()
    v = signals.visual
    if face_visible(v):
        strong = strong_expression(v, t["expression_probability"])
        if strong:
            out.add(f"expression:{strong[0]}")
        elif neutral_expression(v, t["expression_probability"]):
            out.add("neutral_face")
        if smiles(v):
            out.add("smile")
        acting = {u.au for u in active_actions(v)}
        out |= {fact for code, fact in (("AU4", "brows_lowered"), ("AU1_2", "brows_raised")) if code in acting}
    if speaks(signals.audio) and reading is not None and reading.level in ("high", "low", "mid"):
        out.add(f"voice:{reading.level}")
    if words:
        out.add(f"words:{words}")
    return out


def measured_states(found: set[str], words: str | None, named: list[str] = ()) -> list[str]:
    """The states the rules name from the facts; states of the valence opposite to the words' are dropped.
    A fallback rule fires only when nothing is named yet, by the rules or by the subtitle (`named`)."""
    states: list[str] = []
    for rule in state_rules():
        if rule.get("fallback") and (states or named):
            continue
        if all(fact in found for fact in rule["when"]):
            states += [s for s in rule["states"] if s not in states]
    lex = lexicon()
    valences = {lex.valence(s) for s in states}
    if words and {"positive", "negative"} <= valences:
        states = [s for s in states if lex.valence(s) != _OPPOSITE[words]]
    return states


def verdict(subtitle_states: list[str], states: list[str]) -> list[str]:
    lex = lexicon()
    if not subtitle_states:
        return states
    valences = {lex.valence(s) for s in subtitle_states}
    return subtitle_states + [s for s in states if s not in subtitle_states and lex.valence(s) in valences]


def _voice_sentence(signals: ClipSignals, reading: AcousticReading | None) -> str:
    s = templates().sentences
    if not speaks(signals.audio):
        return s["audio_none"]["en"]
    reading = voice_reading(signals.audio, reading)
    if reading.level not in ("high", "low", "mid"):
        return s["audio_brief"]["en"]
    # The glossary translates each listed phrase; lists are split at ", ", so a phrase holds none. At mid
    # level the cues that stand out are named as exceptions to "neither raised nor subdued", not as its reasons.
    evidence = [e.replace(", ", " and ") for e in reading.evidence]
    if not evidence:
        return s[f"audio_{reading.level}_plain"]["en"]
    return s[f"audio_{reading.level}"]["en"].format(audio_evidence=join_en(evidence))


def face_evidence(v: VisualSignals, signals: ClipSignals) -> list[str]:
    """What the face does, as glossary phrases."""
    t = templates().thresholds
    speech = speaks(signals.audio)  # speech opens the mouth: AU25/AU26 then say nothing of a feeling
    out = [action_phrase(u.au) for u in active_actions(v) if not (speech and u.au in ("AU25", "AU26"))]
    seconds = (v.frame_times[-1] - v.frame_times[0]) if len(v.frame_times) > 1 else 0.0
    if v.blinks and seconds > 0 and v.blinks / seconds >= t["blinks_per_s"]:
        out.append("frequent blinks (AU45)")
    speaker = signals.active_speaker
    if speaker and speaker.verdict == "speaks" and (speaker.score or 0.0) >= t["active_speaker_score"]:
        out.append("the mouth opens and closes with the speech")
    elif speaker and speaker.verdict == "still_face":
        out.append("the mouth stays still while the voice speaks")
    if v.head_yaw_deg is not None and abs(v.head_yaw_deg) >= t["head_turn_deg"]:
        out.append("the face is turned to the side")
    if v.head_movement_deg is not None and v.head_movement_deg >= t["head_movement_deg"]:
        out.append("the head moves a lot")
    if v.motion >= t["motion"]:
        out.append("much movement in the picture")
    return out


def _face_sentences(signals: ClipSignals) -> list[str]:
    s, v = templates().sentences, signals.visual
    if not face_visible(v):
        return [s["video_none"]["en"]]
    evidence = face_evidence(v, signals)
    share = f"{v.face_ratio:.0%}"
    out = [
        s["video_face"]["en"].format(face_share=share, video_evidence=join_en(evidence))
        if evidence
        else s["video_face_plain"]["en"].format(face_share=share)
    ]
    ranking = [head for head, _ in expression_ranking(v)[:3]]
    if ranking:
        out.append(s["video_expression"]["en"].format(expression_states=join_en(ranking)))
    return out


def describe(
    subtitle: str | None, signals: ClipSignals | None, reading: AcousticReading | None = None
) -> tuple[str, str]:
    """(subtitle analysis, description) in English. `reading`: the voice against the corpus norms (else
    against the reference values)."""
    s, t = templates().sentences, templates().thresholds
    sig = signals or ClipSignals()
    if speaks(sig.audio):
        reading = voice_reading(sig.audio, reading)
    parts = [_voice_sentence(sig, reading), *_face_sentences(sig)]
    quote = (subtitle or "").replace('"', "'").strip()
    read = sentiment(quote) if quote else None
    words = read.valence(t["words_sentiment"]) if read else None
    if read and contrary_cues(read, words):
        words = None  # VADER and the words' cues point to opposite valences: the tone is ambiguous
    # A Chinese-only subtitle (the signals line-up cannot translate one) is read by the Chinese lexicon.
    english = is_english(quote)
    text_states = lexicon().labels_in(quote, cues=english, lang="en" if english else "zh") if quote else []
    if not quote:
        parts.append(s["text_none"]["en"])
        analysis = "There is no subtitle to analyse."
    elif text_states:
        parts.append(s["text_states"]["en"].format(subtitle=quote, text_states=join_en(text_states)))
        analysis = f"The subtitle's words point to {join_en(text_states)}."
    elif words:
        parts.append(s["text_tone"]["en"].format(subtitle=quote, text_evidence=f"clearly {words}"))
        analysis = (
            f"The subtitle names no feeling, but its words sound clearly {words} ({read.basis}, {read.compound:+.2f})."
        )
    else:
        parts.append(s["text_plain"]["en"].format(subtitle=quote))
        analysis = "The subtitle names no feeling directly; the voice and the face carry the emotion."
    final = verdict(text_states, measured_states(facts(sig, reading, words), words, text_states))
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


def translate_to_zh(text: str, subtitle_zh: str | None = None) -> str:
    """Render a description made of template sentences in Chinese, sentence by sentence.

    The quoted subtitle is the corpus's Chinese subtitle when there is one (`subtitle_zh`), as said,
    not the English one it was translated into; without it the English quote is kept as is."""
    sentences = templates().sentences.values()
    compiled = [(_pattern(t["en"]), t["zh"]) for t in sentences]
    quote_zh = (subtitle_zh or "").replace('"', "'").strip()
    rest, out = text.strip(), []
    while rest:
        for pattern, zh in compiled:
            m = pattern.match(rest)
            # A lazy slot may stop early: the match must end where the next sentence starts.
            if m and (m.end() == len(rest) or rest[m.end()] == " "):
                slots = {
                    k: quote_zh if k == "subtitle" and quote_zh else _render_slot(k, v)
                    for k, v in m.groupdict().items()
                }
                out.append(zh.format(**slots))
                rest = rest[m.end() :].lstrip()
                break
        else:
            raise NotATemplate(f"no template sentence matches: {rest[:80]!r}")
    return "".join(out)
