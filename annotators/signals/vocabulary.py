"""The signal annotators' words: the engine's emotion lexicon and the bilingual sentence templates.

The lexicon labeller (`Lexicon.labels_in`) is written by hand over data (data/lexicon/*.toml): a lemmatiser
(spaCy, NLTK's WordNet) gives inflections, not the derivations the emotion wheel's format table maps
("dissatisfaction" -> "dissatisfied"), needs a model download, and has no Chinese; the word lists are small
enough that a dictionary lookup of word sequences (characters in Chinese) is all the matching needed."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

LEXICON_PATH = Path(__file__).resolve().parents[2] / "data" / "lexicon" / "emotion_groups.toml"
ZH_LEXICON_PATH = LEXICON_PATH.with_name("emotion_zh.toml")
TEMPLATES_PATH = Path(__file__).with_name("templates.toml")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")  # lower-cased text; hyphens separate words
# Sentences end at . ! ? (a semicolon joins clauses of one sentence: "it is sarcastic; it shows contempt").
_EN_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_ZH_SENTENCE = re.compile(r"(?<=[。！？!?])|\n+")
# Quoted speech is what someone said (a clue), not the describer's reading of them: it is left out.
# Single quotes are not, since an apostrophe looks the same.
_QUOTED = re.compile(r'"[^"]*"|“[^”]*”|「[^」]*」|『[^』]*』')
_CLAUSE_PUNCTUATION = re.compile(r"[,;:()\[\]—–]")
# Rule-based inflection, only for words the data do not list: derived forms (-ly, -ness, -ier, -iest) of a
# base word, and plurals of a listed noun form. A base word of three letters takes no rule ("madly",
# "sadly" rarely say the person is mad or sad), and no rule strips a bare -er or -est ("number" is no
# form of "numb"): such comparatives are listed where they matter.
_FROM_BASE = (("iness", "y"), ("ness", ""), ("ily", "y"), ("bly", "ble"), ("ly", ""), ("iest", "y"), ("ier", "y"))
_FROM_FORM = (("ies", "y"), ("s", ""))
# Words that join two emotion words under one negation ("not angry or sad").
_COORDINATORS = frozenset({"or", "nor", "and"})
_ZH_COORDINATORS = frozenset("和或与及、")


def _tokens(phrase: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(phrase.lower()))


@dataclass(frozen=True)
class Group:
    head: str
    zh: str
    valence: str
    words: tuple[str, ...]  # base words, the group's head first
    cues: tuple[str, ...] = ()
    forms: tuple[tuple[str, str], ...] = ()  # (form, its base word)

    @property
    def bases(self) -> tuple[str, ...]:
        """Every label this group can give: its words, and the base words its forms stand for."""
        return tuple(dict.fromkeys([*self.words, *(base for _, base in self.forms)]))


@dataclass(frozen=True)
class Reading:
    """How a description is read in one language: which sentences conclude, what negates a word."""

    openers: tuple[str, ...]  # a concluding sentence starts with one of these
    markers: tuple[str, ...]  # ... or holds one of these
    negators: tuple[str, ...]
    window: int  # how far back a negator reaches (words in English, characters in Chinese)
    unnegating: tuple[str, ...]  # English: words after a negator that undo it; Chinese: compounds that are no negation
    breaks: tuple[str, ...]  # English: words that end a clause; Chinese: the clause marks


@dataclass(frozen=True)
class Mention:
    label: str
    start: int  # offset in the text read
    negated: bool


@dataclass(frozen=True)
class Lexicon:
    version: str
    groups: tuple[Group, ...]
    reading: Reading | None = None
    zh_words: tuple[tuple[str, str], ...] = ()  # (Chinese word, English base word)
    zh_reading: Reading | None = None
    zh_clause_words: tuple[str, ...] = ()  # words that start a new clause ("而是", "但是")

    @cached_property
    def head_of(self) -> dict[str, str]:
        """Every word, form and base word -> its group's head."""
        return {w: g.head for g in self.groups for w in (*g.words, *(x for pair in g.forms for x in pair))}

    def group(self, word: str) -> Group | None:
        head = self.head_of.get(word.lower().strip())
        return next((g for g in self.groups if g.head == head), None)

    def valence(self, word: str) -> str | None:
        g = self.group(word)
        return g.valence if g else None

    def zh(self, word: str) -> str | None:
        g = self.group(word)
        return g.zh if g else None

    def synonym_lists(self) -> list[list[str]]:
        """The groups as the EMER metric takes them: lists whose first word names the group (forms of one
        word included, so "frustration" and "frustrated" fall in one group)."""
        return [
            list(dict.fromkeys([*g.bases, *(form for form, _ in g.forms if len(_tokens(form)) == 1)]))
            for g in self.groups
        ]

    @cached_property
    def cue_head_of(self) -> dict[str, str]:
        return {c: g.head for g in self.groups for c in g.cues}

    @cached_property
    def _table(self) -> dict[tuple[str, ...], str]:
        """Word sequences -> the label they give: base words as themselves, forms as their base word."""
        table = {_tokens(w): w for g in self.groups for w in g.words}
        table.update({_tokens(form): base for g in self.groups for form, base in g.forms})
        return table

    @cached_property
    def _cue_table(self) -> dict[tuple[str, ...], str]:
        return {**self._table, **{_tokens(c): head for c, head in self.cue_head_of.items()}}

    @cached_property
    def _bases(self) -> frozenset[str]:
        return frozenset(w for g in self.groups for w in g.words)

    def _inflected(self, token: str) -> str | None:
        """The label of a word the data do not list, by the safe rules above; None when none applies."""
        table = self._table
        for suffix, ending in _FROM_BASE:
            if token.endswith(suffix):
                stem = token[: -len(suffix)] + ending
                if len(stem) >= 4 and stem in self._bases:
                    return table[(stem,)]
        for suffix, ending in _FROM_FORM:
            if token.endswith(suffix) and not token.endswith("ss"):
                stem = token[: -len(suffix)] + ending
                if len(stem) >= 4 and (stem,) in table and stem not in self._bases:
                    return table[(stem,)]
        return None

    def base_of(self, word: str) -> str | None:
        """The label a word or phrase gives (its base word), or None when it names no emotion here."""
        tokens = _tokens(word)
        if tokens in self._table:
            return self._table[tokens]
        return self._inflected(tokens[0]) if len(tokens) == 1 else None

    @cached_property
    def _longest(self) -> int:
        return max(len(k) for k in self._cue_table)

    def _mentions_en(self, text: str, table: dict[tuple[str, ...], str]) -> list[Mention]:
        rules = self.reading
        lower = text.lower()
        words = list(_WORD.finditer(lower))
        tokens = [m.group() for m in words]
        out: list[Mention] = []
        i, after_last = 0, 0  # after_last: the word after the previous mention
        while i < len(words):
            # Word n-grams looked up in a dict, longest first, left to right: what one regex alternation of
            # every entry did, at a fraction of the cost (the gates read every description).
            for n in range(min(self._longest, len(words) - i), 0, -1):
                label = table.get(tuple(tokens[i : i + n]))
                if label is None and n == 1:
                    label = self._inflected(tokens[i])
                if label is not None:
                    between = tokens[after_last:i]
                    if out and between and all(t in _COORDINATORS for t in between):
                        negated = out[-1].negated  # "not angry or sad": one negation for both
                    else:
                        negated = bool(rules) and self._negated_en(lower, words, tokens, i, after_last)
                    out.append(Mention(label, words[i].start(), negated))
                    i += n
                    after_last = i
                    break
            else:
                i += 1
        return out

    def _negated_en(self, lower: str, words: list, tokens: list[str], i: int, floor: int) -> bool:
        """Whether a negator within `window` words before word i, in the same clause and after the previous
        emotion word (whose negation it was: "no doubt she is frustrated"), negates it."""
        rules = self.reading
        first = i
        while first > floor and i - first < rules.window:
            between = lower[words[first - 1].end() : words[first].start()]
            if _CLAUSE_PUNCTUATION.search(between) or tokens[first - 1] in rules.breaks:
                break
            first -= 1
        for j in range(first, i):
            if tokens[j].endswith("n't"):
                negators: tuple[tuple[str, ...], ...] = ((tokens[j],),)
            else:
                negators = self._negators.get(tokens[j], ())
            for negator in negators:
                end = j + len(negator)
                if end <= i and tuple(tokens[j:end]) == negator:
                    if end < i and tokens[end] in rules.unnegating:
                        continue
                    return True
        return False

    @cached_property
    def _negators(self) -> dict[str, tuple[tuple[str, ...], ...]]:
        """The negators as word sequences, by their first word."""
        by_first: dict[str, list[tuple[str, ...]]] = {}
        for negator in self.reading.negators if self.reading else ():
            by_first.setdefault(_tokens(negator)[0], []).append(_tokens(negator))
        return {first: tuple(seqs) for first, seqs in by_first.items()}

    @cached_property
    def _openers(self) -> tuple[tuple[str, ...], ...]:
        return tuple(_tokens(o) for o in self.reading.openers) if self.reading else ()

    @cached_property
    def _markers(self) -> tuple[frozenset[tuple[str, ...]], tuple[int, ...]]:
        markers = frozenset(_tokens(m) for m in self.reading.markers) if self.reading else frozenset()
        return markers, tuple(sorted({len(m) for m in markers}))

    def _concludes_en(self, sentence: str) -> bool:
        tokens = _tokens(sentence)
        if any(tokens[: len(o)] == o for o in self._openers):
            return True
        markers, lengths = self._markers
        return any(tuple(tokens[i : i + n]) in markers for n in lengths for i in range(len(tokens)))

    # --- Chinese ------------------------------------------------------------------------------------

    @cached_property
    def _zh_table(self) -> dict[str, str]:
        return dict(self.zh_words)

    @cached_property
    def _zh_longest(self) -> int:
        return max((len(w) for w in self._zh_table), default=0)

    def _mentions_zh(self, text: str) -> list[Mention]:
        # Forward maximum matching over characters (Chinese has no spaces between words): the longest
        # lexicon word at each place; the word list is small, so a segmenter would add nothing.
        table, out, i, last_end = self._zh_table, [], 0, 0
        while i < len(text):
            for n in range(min(self._zh_longest, len(text) - i), 0, -1):
                label = table.get(text[i : i + n])
                if label is not None:
                    between = text[last_end:i]
                    if out and between and all(c in _ZH_COORDINATORS for c in between):
                        negated = out[-1].negated  # "没有生气和难过": one negation for both
                    else:
                        negated = self._negated_zh(text, i, last_end)
                    out.append(Mention(label, i, negated))
                    i += n
                    last_end = i
                    break
            else:
                i += 1
        return out

    def _negated_zh(self, text: str, i: int, floor: int) -> bool:
        """Whether a negator in the few characters before i, in the same clause, negates the word there. A
        negator inside the previous emotion word ("不满和疑惑") is that word's own."""
        rules = self.zh_reading
        if rules is None:
            return False
        start = i
        while start > floor and i - start < 2 * rules.window and text[start - 1] not in rules.breaks:
            start -= 1
        before = text[start:i]
        for word in self.zh_clause_words:  # "不是生气，而是难过": the negation stays with the first
            cut = before.rfind(word)
            if cut >= 0:
                before = before[cut + len(word) :]
        covered = [False] * len(before)
        for compound in rules.unnegating:
            pos = before.find(compound)
            while pos >= 0:
                covered[pos : pos + len(compound)] = [True] * len(compound)
                pos = before.find(compound, pos + 1)
        reach = len(before) - rules.window
        for negator in rules.negators:
            pos = before.find(negator)
            while pos >= 0:
                if pos >= reach and not any(covered[pos : pos + len(negator)]):
                    return True
                pos = before.find(negator, pos + 1)
        return False

    def _concludes_zh(self, sentence: str) -> bool:
        rules = self.zh_reading
        s = sentence.strip()
        return bool(rules) and (s.startswith(rules.openers) or any(m in s for m in rules.markers))

    # --- reading a text -----------------------------------------------------------------------------

    def labels_in(self, text: str, cues: bool = False, lang: str = "en") -> list[str]:
        """Emotions a text asserts, as base words (English, whatever the text's language) in order of first mention.

        A description is read as a reader would: labels come from every sentence that concludes or infers
        ("Therefore, ...", "Overall, ...", "we can infer", "this suggests", "she seems ...", "may be
        feeling ..."), and from the whole text when none of those names an emotion. Words under a nearby
        negation ("not angry", "并不生气") and quoted speech are skipped; noun and inflected forms give their
        base word ("dissatisfaction" -> "dissatisfied"). `lang` is "en" or "zh" (a Chinese description).
        With `cues` (reading a subtitle, English), the whole text is read, quotes included, and phrases that
        point to an emotion without naming it count too."""
        if lang not in ("en", "zh"):
            raise ValueError(f"lang is 'en' or 'zh', not {lang!r}")
        text = (text or "").replace("’", "'")
        if cues:
            found = [m for m in self._mentions_en(text, self._cue_table) if not m.negated]
            return list(dict.fromkeys(m.label for m in found))
        text = _QUOTED.sub(_unquote, text)
        split, mentions, concludes = (
            (_ZH_SENTENCE, self._mentions_zh, self._concludes_zh)
            if lang == "zh"
            else (_EN_SENTENCE, lambda s: self._mentions_en(s, self._table), self._concludes_en)
        )
        read = [(concludes(s), [m.label for m in mentions(s) if not m.negated]) for s in split.split(text) if s]
        concluded = [label for ends, labels in read if ends for label in labels]
        chosen = concluded or [label for _, labels in read for label in labels]
        return list(dict.fromkeys(chosen))


def _unquote(m: re.Match) -> str:
    """A quote's stand-in: a sentence end where the quote ended one and a new sentence follows
    ('...says: "Get out!" Therefore, ...'), else a space."""
    after = m.string[m.end() : m.end() + 2].lstrip()[:1]
    ends = m.group()[-2:-1] in ".!?。！？"
    return " . " if ends and after and (after.isupper() or not after.isascii()) and after not in "，、；：" else " "


def _reading(data: dict | None, chinese: bool = False) -> Reading | None:
    if not data:
        return None
    return Reading(
        openers=tuple(data.get("openers", ())),
        markers=tuple(data.get("markers", ())),
        negators=tuple(data.get("negators", ())),
        window=int(data.get("negation_window", 4)),
        unnegating=tuple(data.get("unnegating", ())),
        breaks=tuple(data.get("clause_marks", "")) if chinese else tuple(data.get("clause_breaks", ())),
    )


@cache
def lexicon(path: Path = LEXICON_PATH, zh_path: Path | None = ZH_LEXICON_PATH) -> Lexicon:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    groups = tuple(
        Group(
            g["head"],
            g["zh"],
            g["valence"],
            tuple(w.lower() for w in g["words"]),
            tuple(c.lower() for c in g.get("cues", [])),
            tuple((form.lower(), base.lower()) for form, base in g.get("forms", {}).items()),
        )
        for g in data["group"]
    )
    zh = tomllib.loads(zh_path.read_text(encoding="utf-8")) if zh_path and zh_path.is_file() else {}
    return Lexicon(
        version=data["version"] + (f"+zh-{zh['version']}" if zh else ""),
        groups=groups,
        reading=_reading(data.get("reading")),
        zh_words=tuple((w, base.lower()) for w, base in zh.get("words", {}).items()),
        zh_reading=_reading(zh.get("reading"), chinese=True),
        zh_clause_words=tuple(zh.get("reading", {}).get("clause_breaks", ())),
    )


@dataclass(frozen=True)
class Templates:
    version: str
    thresholds: dict[str, float]
    glossary: dict[str, str]
    sentences: dict[str, dict[str, str]]


@cache
def templates(path: Path = TEMPLATES_PATH) -> Templates:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return Templates(data["version"], data["thresholds"], data["glossary"], data["sentences"])


def join_en(words: list[str]) -> str:
    return ", ".join(words)


def join_zh(words: list[str]) -> str:
    return "、".join(words)
