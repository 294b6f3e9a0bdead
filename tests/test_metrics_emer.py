"""The EMER / MER2024 open-vocabulary metric, against values worked out by hand.

Definitions (MERTools MER2024/main-ov.py): labels lower-cased; each word -> the first word of its
synonym group, unmapped words stay themselves; Accuracy_s = |Y∩Ŷ|/|Ŷ|, Recall_s = |Y∩Ŷ|/|Y|;
an empty prediction scores (0, 0); a clip with empty gold is skipped; Avg = mean of the two means.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from metrics.emer import EmptyGold, emer_corpus, emer_scores
from metrics.openset import format_openset, parse_openset, read_openset_csv, write_openset_csv
from metrics.synonyms import SynonymGroups, lexicon_groups, load_groups, parse_group_lists, synonym_map

FIXTURES = Path(__file__).parent / "fixtures" / "metrics"


# --- reading the authors' files -------------------------------------------------------------------


@pytest.mark.parametrize(
    "cell, labels",
    [
        ("['happy', 'sad']", ["happy", "sad"]),
        ('["Happy","sad"]', ["Happy", "sad"]),  # case is kept here; the metrics lower-case
        ("[happy, very anxious]", ["happy", "very anxious"]),  # unquoted: split on commas too
        ("['轻松', '愉快', '幽默']", ["轻松", "愉快", "幽默"]),  # the Chinese openset files
        ("['happy', , '']", ["happy"]),  # empty items dropped
        ("  ['calm']  ", ["calm"]),  # padding around the brackets
        ("[]", []),
        ("", []),
        (None, []),
        (float("nan"), []),  # what pandas hands over for an empty cell
    ],
)
def test_openset_cells_parse_as_the_authors_string_to_list(cell, labels):
    assert parse_openset(cell) == labels


def test_openset_csv_reads_names_and_lists_and_round_trips(tmp_path):
    gold = read_openset_csv(FIXTURES / "gold.csv")
    assert gold["c1"] == ["happiness", "delighted"] and gold["c2"] == ["Sadly", "heartbroken"] and gold["c8"] == []
    assert list(gold) == ["c1", "c2", "c3", "c4", "c5", "c6", "c8"]
    # A spreadsheet export: BOM, and no openset column at all (reads as empty, like func_read_key_from_csv).
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffname,other\nx,1\n".encode())
    assert read_openset_csv(bom) == {"x": []}
    assert format_openset(["happy", "sad"]) == "['happy', 'sad']"
    assert read_openset_csv(write_openset_csv(tmp_path / "out.csv", gold)) == gold
    bad = tmp_path / "bad.csv"
    bad.write_text("clip,openset\nx,[]\n")
    with pytest.raises(ValueError, match="name"):
        read_openset_csv(bad)


def test_group_lists_parse_as_the_authors_listlist_to_list():
    reply = (
        "[['Agree', 'agreement', 'Accept', 'acceptance'], ['Relaxed', 'relaxed'],['pleasant', 'positive', 'Happy']]"
    )
    assert parse_group_lists(reply) == [
        ["Agree", "agreement", "Accept", "acceptance"],
        ["Relaxed", "relaxed"],
        ["pleasant", "positive", "Happy"],
    ]
    # Every word -> the first word of its group, lower-cased like the labels it will meet.
    assert synonym_map(parse_group_lists(reply)) == {
        "agree": "agree",
        "agreement": "agree",
        "accept": "agree",
        "acceptance": "agree",
        "relaxed": "relaxed",
        "pleasant": "pleasant",
        "positive": "pleasant",
        "happy": "pleasant",
    }
    # A word in two groups ends in the later one (the authors fill one dict group by group).
    assert synonym_map([["calm", "relaxed"], ["relaxed", "at ease"]])["relaxed"] == "relaxed"


def test_groups_load_from_json_the_lexicon_toml_and_npy_folders(tmp_path):
    glob = load_groups(FIXTURES / "groups.json")
    assert glob.per_clip == {} and glob.mapping("any")["sorrowful"] == "sad"

    per_clip = tmp_path / "per_clip.json"
    per_clip.write_text(
        json.dumps({"a": [["joy", "happy"]], "b": "[['sad', 'down']]"})
    )  # a value may be the raw reply
    groups = load_groups(per_clip)
    assert groups.mapping("a") == {"joy": "joy", "happy": "joy"}
    assert groups.mapping("b") == {"sad": "sad", "down": "sad"}
    assert groups.mapping("c") == {}  # no groups of its own and no global ones: exact match

    # The engine's lexicon: [[group]] tables, head first in `words`.
    lexicon = load_groups(Path(__file__).resolve().parents[1] / "data" / "lexicon" / "emotion_groups.toml")
    assert lexicon.mapping()["joyful"] == "happy" and lexicon.mapping()["thrilled"] == "excited"
    assert lexicon_groups().global_groups == lexicon.global_groups

    # The authors' openset-synonym.zip: one {clip}.npy per clip holding the model's reply text.
    folder = tmp_path / "openset-synonym"
    folder.mkdir()
    np.save(folder / "sample_00000007.npy", "[['angry', 'Furious'], ['sad']]")
    npy = load_groups(folder)
    assert npy.mapping("sample_00000007") == {"angry": "angry", "furious": "angry", "sad": "sad"}

    bad = tmp_path / "bad.json"
    bad.write_text('{"a": [1, 2]}')
    with pytest.raises(ValueError, match="list of lists"):
        load_groups(bad)


# --- one clip ----------------------------------------------------------------------------------


def test_one_clip_scores_by_hand():
    groups = [["happy", "joyful", "cheerful"], ["sad", "down"]]
    # Y = {happy, sad} (Joyful -> happy), Ŷ = {happy, sad, angry} (cheerful -> happy, down -> sad):
    # |Y∩Ŷ| = 2 -> Accuracy_s = 2/3, Recall_s = 2/2.
    assert emer_scores(["Joyful", "sad"], ["cheerful", "down", "ANGRY"], groups) == pytest.approx((2 / 3, 1.0))
    # Unmapped words stay themselves: Y = {worried, happy}, Ŷ = {worried}: 1/1 and 1/2.
    assert emer_scores(["worried", "joyful"], ["worried"], groups) == (1.0, 0.5)
    # Without groups only exact matches count: Y = {joyful, sad}, Ŷ = {cheerful, sad}: 1/2 and 1/2.
    assert emer_scores(["joyful", "sad"], ["cheerful", "sad"], None) == (0.5, 0.5)
    # The same mapping given as a word -> head dict, or as SynonymGroups, scores the same.
    assert emer_scores(["Joyful", "sad"], ["cheerful", "down", "angry"], synonym_map(groups)) == pytest.approx(
        (2 / 3, 1.0)
    )
    assert emer_scores(
        ["Joyful", "sad"], ["cheerful", "down", "angry"], SynonymGroups(global_groups=groups)
    ) == pytest.approx((2 / 3, 1.0))
    # Grouping can shrink the gold set: Y = {happy} (joyful and cheerful are one), Ŷ = {happy}: 1/1, 1/1.
    assert emer_scores(["joyful", "cheerful"], ["happy"], groups) == (1.0, 1.0)


def test_empty_cases():
    groups = [["happy", "joyful"]]
    assert emer_scores(["happy"], [], groups) == (0.0, 0.0)  # empty prediction: 0 on both
    assert emer_scores(["happy"], ["  ", ""], groups) == (0.0, 0.0)  # blank labels are no labels
    with pytest.raises(EmptyGold):  # no gold, no recall: such clips are skipped, never scored
        emer_scores([], ["happy"], groups)
    with pytest.raises(ValueError):  # also when both are empty (skipping comes first, as in the wheel metric)
        emer_scores([], [], groups)


def test_cross_validation_use_with_the_lexicon_groups():
    """The gate calls the metric with `lexicon().synonym_lists()`: one annotator's labels against another's."""
    from annotators.signals.vocabulary import lexicon

    lists = lexicon().synonym_lists()
    # Y = {happy}; Ŷ = {happy (joyful), anxious}: 1/2 and 1/1.
    assert emer_scores(["happy"], ["joyful", "anxious"], lists) == (0.5, 1.0)
    assert emer_scores(["delighted", "cheerful"], ["glad"], lists) == (1.0, 1.0)  # all one group
    assert emer_scores(["happy"], ["sad"], lists) == (0.0, 0.0)


# --- a corpus --------------------------------------------------------------------------------------


def test_corpus_scores_by_hand():
    gold = read_openset_csv(FIXTURES / "gold.csv")
    pred = read_openset_csv(FIXTURES / "pred.csv")
    summary, clips = emer_corpus(gold, pred, load_groups(FIXTURES / "groups.json"))
    by_name = {c.name: c for c in clips}
    # Groups: happy={happiness, happier, glad}, sad={sadly, sorrowful, heartbroken}, angry={mad, livid, wrath}.
    # c1 Y={happy, delighted} Ŷ={happy, satisfied}       -> 1/2, 1/2
    # c2 Y={sad} (Sadly, heartbroken) Ŷ={sad}             -> 1,   1
    # c3 Y={angry} Ŷ={angry, bored} (livid, wrath, bored) -> 1/2, 1
    # c4 Y={bored} Ŷ={happy}                              -> 0,   0
    # c5 Ŷ empty                                          -> 0,   0
    # c6 no prediction row: an empty prediction           -> 0,   0
    # c8 Y empty: skipped.  c7 is not in the gold file: ignored.
    expected = {
        "c1": (0.5, 0.5),
        "c2": (1.0, 1.0),
        "c3": (0.5, 1.0),
        "c4": (0.0, 0.0),
        "c5": (0.0, 0.0),
        "c6": (0.0, 0.0),
    }
    assert {n: (c.accuracy_s, c.recall_s) for n, c in by_name.items() if c.scored} == expected
    assert not by_name["c8"].scored and by_name["c8"].accuracy_s is None
    assert by_name["c6"].prediction_missing and not by_name["c5"].prediction_missing
    assert "c7" not in by_name
    # Accuracy_s = (1/2 + 1 + 1/2 + 0 + 0 + 0) / 6 = 2/6; Recall_s = (1/2 + 1 + 1 + 0 + 0 + 0) / 6 = 2.5/6.
    assert summary.accuracy_s == pytest.approx(2 / 6)
    assert summary.recall_s == pytest.approx(2.5 / 6)
    assert summary.avg == pytest.approx((2 / 6 + 2.5 / 6) / 2)  # = 0.375
    assert (summary.clips, summary.skipped) == (6, 1)


def test_per_clip_groups_win_over_global_ones():
    gold = {"a": ["joy"], "b": ["joy"]}
    pred = {"a": ["bliss"], "b": ["bliss"]}
    # Clip a has its own groups (joy = bliss); clip b falls back to the global ones, which keep them apart.
    groups = SynonymGroups(global_groups=[["joy"], ["bliss"]], per_clip={"a": [["joy", "bliss"]]})
    summary, clips = emer_corpus(gold, pred, groups)
    assert [(c.accuracy_s, c.recall_s) for c in clips] == [(1.0, 1.0), (0.0, 0.0)]
    assert summary.avg == 0.5  # (1 + 0) / 2 on both


def test_no_scored_clip_gives_zero_not_an_error():
    summary, clips = emer_corpus({"a": []}, {"a": ["happy"]})
    assert (summary.avg, summary.clips, summary.skipped) == (0.0, 0, 1)
