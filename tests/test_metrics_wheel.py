"""The emotion-wheel metric, on a small release in the authors' formats (tests/fixtures/metrics/emotion_wheel.py).

Mapping (AffectGPT my_affectgpt/evaluation/wheel.py, func_backward_case3): label -> base words
(format.csv) -> the wheel words they are synonyms of (synonym.xlsx, runs merged) -> the first of those,
sorted, that the wheel holds -> its level-1 root or level-2 node; unknown labels are dropped.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from metrics.emer import emer_corpus
from metrics.openset import read_openset_csv
from metrics.synonyms import SynonymGroups
from metrics.wheel import (
    load_wheel_resources,
    read_format_csv,
    read_synonym_xlsx,
    read_wheel_folder,
    read_wheel_npz,
    read_wheel_xlsx,
    save_wheel_npz,
    wheel_cluster,
    wheel_corpus,
    wheel_words,
)
from tests.fixtures.metrics.emotion_wheel import _sheet, write_emotion_wheel

FIXTURES = Path(__file__).parent / "fixtures" / "metrics"


@pytest.fixture(scope="module")
def wheel_dir(tmp_path_factory) -> Path:
    return write_emotion_wheel(tmp_path_factory.mktemp("emotion_wheel"))


@pytest.fixture(scope="module")
def resources(wheel_dir):
    return read_wheel_folder(wheel_dir)


def test_blank_cells_inherit_the_value_above(tmp_path):
    path = tmp_path / "wheel9.xlsx"
    _sheet(
        path,
        ["level1", "level2", "level3"],
        [
            (" Happy ", "Joyful", "Delighted"),
            (None, None, "glad"),  # level1 and level2 from above
            (None, "amused", None),  # level3 blank too: it keeps the previous level3, as the authors' reader does
            ("sad", "lonely", "isolated"),
            (None, None, None),  # an empty row adds nothing
        ],
    )
    assert read_wheel_xlsx(path) == {
        "happy": {"joyful": ["delighted", "glad"], "amused": ["glad"]},
        "sad": {"lonely": ["isolated"]},
    }


def test_wheel_levels(wheel_dir):
    tree = read_wheel_xlsx(wheel_dir / "wheel1.xlsx")
    assert tree == {
        "joy": {"cheerful": ["delighted"], "content": ["satisfied"]},
        "sadness": {"grief": ["heartbroken"], "disappointment": ["dismayed"]},
        "anger": {"rage": ["furious"]},
    }
    level1 = wheel_cluster(tree, "level1")
    assert level1["delighted"] == level1["content"] == level1["joy"] == "joy" and level1["dismayed"] == "sadness"
    level2 = wheel_cluster(tree, "level2")
    assert level2["delighted"] == "cheerful" and level2["satisfied"] == "content"
    # A root maps to its first level-2 node in sorted order: "disappointment" < "grief".
    assert (level2["joy"], level2["sadness"], level2["anger"]) == ("cheerful", "disappointment", "rage")


def test_synonym_runs_merge_and_format_forms(wheel_dir):
    words = wheel_words([read_wheel_xlsx(wheel_dir / f"wheel{i}.xlsx") for i in (1, 2)])
    synonyms = read_synonym_xlsx(wheel_dir / "synonym.xlsx", words)
    # happiness is a synonym of joy and of happy (run 1) and of cheerful (run 2): the runs are merged.
    assert synonyms["happiness"] == ["cheerful", "happy", "joy"]
    assert synonyms["sorrowful"] == ["sad", "sorrowful"]  # a wheel word maps to itself, and run 2 adds sad
    assert synonyms["joy"] == ["joy"] and synonyms["livid"] == ["furious"]
    formats = read_format_csv(wheel_dir / "format.csv")
    assert formats["happier"] == ["happy"] and formats["happy"] == ["happy"] and formats["sadly"] == ["sad"]
    assert "bored" not in formats

    bad = wheel_dir.parent / "bad_synonym.xlsx"
    _sheet(bad, ["word_run1", "synonym_run1"], [("bliss", "['joy']")])
    with pytest.raises(ValueError, match="on no wheel"):  # the authors assert every word_runN is a wheel word
        read_synonym_xlsx(bad, words)


@pytest.mark.parametrize(
    "label, wheel, level, node",
    [
        # happiness -> [cheerful, happy, joy]: wheel1 holds cheerful first; wheel2 has no cheerful, takes happy.
        ("happiness", "wheel1", "level1", "joy"),
        ("happiness", "wheel1", "level2", "cheerful"),
        ("happiness", "wheel2", "level1", "happy"),
        ("happiness", "wheel2", "level2", "joyful"),  # root happy -> sorted([joyful, pleased])[0]
        ("Happier", "wheel2", "level1", "happy"),  # form -> base word happy; labels are lower-cased
        ("happier", "wheel1", "level1", None),  # happy is not on wheel1: dropped
        (
            "sorrowful",
            "wheel2",
            "level2",
            "sorrowful",
        ),  # -> [sad, sorrowful]: sad comes first -> root sad -> sorrowful
        ("sorrowful", "wheel1", "level1", None),
        ("livid", "wheel1", "level2", "rage"),  # -> furious, a level-3 word under anger/rage
        ("livid", "wheel2", "level2", "furious"),
        ("bored", "wheel1", "level1", None),  # in no table
    ],
)
def test_label_mapping(resources, label, wheel, level, node):
    assert resources.map_label(label.lower(), wheel, level) == node


def test_corpus_scores_by_hand(resources):
    gold = read_openset_csv(FIXTURES / "gold.csv")
    pred = read_openset_csv(FIXTURES / "pred.csv")
    summary, clips = wheel_corpus(gold, pred, resources)
    scores = {(s.wheel, s.level): s for s in summary.per_wheel}
    # wheel1 level1: c1 Y={joy} Ŷ={joy} (happier dropped) -> P=1 R=1; c2 Y={sadness} Ŷ={} (sorrowful dropped) -> 0, 0;
    #   c3 (mad), c4 (bored), c5 (sad), c6 (happy) map to nothing on wheel1: skipped; c8 empty gold: skipped.
    #   P = R = (1 + 0) / 2 = 0.5 -> F = 0.5
    w = scores["wheel1", "level1"]
    assert (w.precision, w.recall, w.f1, w.clips) == (0.5, 0.5, 0.5, 2)
    # wheel1 level2: c1 Y={cheerful} Ŷ={content} -> 0, 0; c2 Y={grief} Ŷ={} -> 0, 0. P = R = 0 -> F = 0 (not 0/0).
    w = scores["wheel1", "level2"]
    assert (w.precision, w.recall, w.f1, w.clips) == (0.0, 0.0, 0.0, 2)
    # wheel2 level1: c1 {happy}/{happy} 1,1; c2 {sad}/{sad} 1,1;
    #   c3 Y={angry} Ŷ={angry} (livid; wrath and bored dropped) 1,1;
    #   c5 Y={sad} Ŷ={} 0,0; c6 Y={happy}, no prediction 0,0; c4 skipped.  P = R = 3/5 -> F = 0.6
    w = scores["wheel2", "level1"]
    assert (w.precision, w.recall, w.clips) == (pytest.approx(0.6), pytest.approx(0.6), 5) and w.f1 == pytest.approx(
        0.6
    )
    # wheel2 level2: c1 Y={joyful} Ŷ={joyful, pleased} -> 1/2, 1; c2 {sorrowful}/{sorrowful} 1,1;
    #   c3 {furious}/{furious} 1,1; c5 0,0; c6 0,0.  P = 2.5/5 = 0.5, R = 3/5 = 0.6, F = 2*0.5*0.6/1.1 = 0.6/1.1
    w = scores["wheel2", "level2"]
    assert (w.precision, w.recall) == (pytest.approx(0.5), pytest.approx(0.6)) and w.f1 == pytest.approx(0.6 / 1.1)
    # The level's score is the mean over the wheels.
    assert summary.level1_f1 == pytest.approx((0.5 + 0.6) / 2)  # 0.55
    assert summary.level2_f1 == pytest.approx((0.0 + 0.6 / 1.1) / 2)  # 0.2727...
    assert (summary.level1_precision, summary.level2_recall) == (pytest.approx(0.55), pytest.approx(0.3))
    # Per clip: P and R averaged over the wheels that scored the clip.
    assert clips["c1"]["level1"].model_dump() == {"precision": 1.0, "recall": 1.0, "wheels": 2}
    assert clips["c1"]["level2"].model_dump() == {
        "precision": 0.25,
        "recall": 0.5,
        "wheels": 2,
    }  # (0 + 1/2)/2, (0 + 1)/2
    assert "c4" not in clips and "c8" not in clips


def test_the_npz_release_reads_the_same_as_the_spreadsheets(tmp_path, wheel_dir, resources):
    # The newer release: np.savez of the three dicts, as the authors ship wheel_mapping.npz.
    plain = tmp_path / "wheel_mapping.npz"
    np.savez(
        plain,
        format_mapping=resources.format_mapping,
        raw_mapping=resources.raw_mapping,
        wheel_map_whole=resources.wheel_maps,
    )
    from_npz = read_wheel_npz(plain)
    assert (from_npz.format_mapping, from_npz.raw_mapping, from_npz.wheel_maps) == (
        resources.format_mapping,
        resources.raw_mapping,
        resources.wheel_maps,
    )
    gold, pred = read_openset_csv(FIXTURES / "gold.csv"), read_openset_csv(FIXTURES / "pred.csv")
    a, b = wheel_corpus(gold, pred, resources)[0], wheel_corpus(gold, pred, from_npz)[0]
    assert a.model_dump(exclude={"source"}) == b.model_dump(exclude={"source"})
    # A folder holding the npz is read from the npz (the authors' evaluation default); a folder without one, from
    # the sheets.
    folder = tmp_path / "release"
    folder.mkdir()
    save_wheel_npz(resources, folder / "wheel_mapping.npz")
    assert load_wheel_resources(folder).source.endswith("wheel_mapping.npz")
    assert load_wheel_resources(wheel_dir).source == str(wheel_dir)
    assert load_wheel_resources(plain).wheels == ["wheel1", "wheel2"]


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_an_npz_that_would_run_code_is_refused(tmp_path):
    evil = tmp_path / "wheel_mapping.npz"
    np.savez(evil, format_mapping=np.array(_Payload(), dtype=object), raw_mapping={}, wheel_map_whole={})
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        read_wheel_npz(evil)
    incomplete = tmp_path / "incomplete.npz"
    np.savez(incomplete, format_mapping={})
    with pytest.raises(ValueError, match="raw_mapping"):
        read_wheel_npz(incomplete)


def test_both_metrics_treat_empty_cases_alike():
    """Empty gold: skipped by both; empty prediction: (0, 0) in both. Identity resources make the wheel
    metric see the same label sets as the EMER metric without groups."""
    from metrics.wheel import WheelResources

    words = ["happy", "sad"]
    identity = WheelResources(
        format_mapping={w: [w] for w in words},
        raw_mapping={w: [w] for w in words},
        wheel_maps={"wheel1": {"level1": {w: w for w in words}, "level2": {w: w for w in words}}},
        source="identity",
    )
    gold = {"no_gold": [], "no_pred": ["happy"], "half": ["happy", "sad"]}
    pred = {"no_gold": ["happy"], "no_pred": [], "half": ["happy"]}
    emer, clips = emer_corpus(gold, pred, SynonymGroups())
    wheel, wheel_clips = wheel_corpus(gold, pred, identity)
    assert [c.name for c in clips if not c.scored] == ["no_gold"] and set(wheel_clips) == {"no_pred", "half"}
    # no_pred: (0, 0); half: P = 1, R = 1/2 -> means P = 1/2, R = 1/4 in both metrics.
    assert (emer.accuracy_s, emer.recall_s) == (0.5, 0.25)
    level1 = wheel.per_wheel[0]
    assert (level1.precision, level1.recall) == (0.5, 0.25)
    assert level1.f1 == pytest.approx(2 * 0.5 * 0.25 / 0.75)
