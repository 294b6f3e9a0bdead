"""The dataset card and the folders it describes, as a researcher meets them: `datasets.load_dataset` on the
build's output folder and on push's staged folder (with an empty split, and with every split holding rows),
the plots (real PNG files that PIL opens, linked from the card), and what the card says first: how to load
it, the columns, one example row, how to cite the method, the review outcome; no JSON dump, no local path.

Built for real as the demo builds it: the bundled sample corpus (data/sample) with the zero-download line-up
(data/configs/cpu-signals.toml); which clip lands in which split is the gates' business (tests/test_gates.py),
so the tests read it from the build. The cards are parsed with markdown-it-py (CommonMark with GFM tables),
the way a dataset page renders them.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from datasets import load_dataset
from markdown_it import MarkdownIt
from PIL import Image

from flows import publish
from flows.build_coarse import build_coarse
from review.decisions import write_decisions
from schemas.review import ReviewDecision
from schemas.row import CoarseRow
from stages.tiers import in_tier, recorded_tiers
from tests.conftest import ROOT
from tests.markdown_tables import table_rows

SPLITS = ("train", "review", "rejected", "failed")
SAMPLE = ROOT / "data" / "sample"
DEMO = ROOT / "data" / "configs" / "cpu-signals.toml"
# The signal annotators state no emotions in their clues, so cross_validation has no score to be strict about.


def rows(folder: Path, split: str, data: str = "data") -> list[dict]:
    files = sorted((folder / data).glob(f"{split}-*.parquet"))
    return sorted((r for f in files for r in pq.read_table(f).to_pylist()), key=lambda r: r["name"])


def card_of(folder: Path) -> tuple[dict, str, list]:
    text = (folder / "README.md").read_text(encoding="utf-8")
    meta = yaml.safe_load(re.match(r"---\n(.*?)\n---\n", text, flags=re.S).group(1))
    return meta, text, MarkdownIt("commonmark").enable("table").parse(text)


def section(text: str, heading: str) -> str:
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    assert match, f"no section {heading!r}"
    return match.group(1)


def loaded(folder: Path, cache: Path, config: str | None = None) -> dict[str, list[str]]:
    """Split -> row names, as `datasets.load_dataset` reads the folder by its card."""
    ds = load_dataset(str(folder), config, cache_dir=str(cache))
    return {split: sorted(ds[split]["name"]) for split in ds}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("card")
    config = root / "signals.toml"
    config.write_text(DEMO.read_text(encoding="utf-8"))  # its plus tier lets in rows cross-validation cannot score
    out = root / "out"
    summary = build_coarse(str(SAMPLE), str(out), str(config))
    assert summary["splits"]["train"] and summary["splits"]["review"] >= 2 and summary["splits"]["failed"]
    return SAMPLE, out, summary, config


@pytest.fixture(scope="module")
def reviewed(built, tmp_path_factory):
    """The same build after a reviewer rejected one held-back row and, later, accepted all the others."""
    corpus, out, _, config = built
    first, *others = rows(out, "review")
    folder = tmp_path_factory.mktemp("reviewed") / "out"
    shutil.copytree(out, folder, symlinks=True)
    reject = ReviewDecision(name=first["name"], sha256=first["sha256"], accepted=False)
    write_decisions([reject], folder)
    every_split = build_coarse(str(corpus), str(folder), str(config))
    filled = tmp_path_factory.mktemp("filled") / "out"
    shutil.copytree(folder, filled, symlinks=True)
    accepts = [ReviewDecision(name=r["name"], sha256=r["sha256"], accepted=True) for r in others]
    write_decisions([reject, *accepts], folder)
    no_review = build_coarse(str(corpus), str(folder), str(config))
    return (filled, every_split), (folder, no_review, first["name"], len(others))


def test_load_dataset_reads_the_output_folder_by_its_card_with_an_empty_split(built, tmp_path):
    _, out, summary, _ = built
    assert summary["splits"]["rejected"] == 0  # no reviewer has decided anything yet
    meta, _, _ = card_of(out)
    [config] = meta["configs"]
    assert [f["split"] for f in config["data_files"]] == ["train", "review", "failed"]  # only splits with rows
    assert loaded(out, tmp_path) == {s: [r["name"] for r in rows(out, s)] for s in ("train", "review", "failed")}


def test_load_dataset_reads_every_split_and_the_card_counts_the_reviewers_decisions(reviewed, tmp_path):
    (filled, every_split), (no_review, summary, rejected, accepted) = reviewed
    assert all(every_split["splits"][s] for s in SPLITS)
    assert loaded(filled, tmp_path / "a") == {s: [r["name"] for r in rows(filled, s)] for s in SPLITS}
    _, text, _ = card_of(filled)
    assert "accepted 0 rows" in section(text, "Review") and "rejected 1 (in `rejected`)" in section(text, "Review")

    assert summary["splits"]["review"] == 0  # now the review split is the empty one
    assert set(loaded(no_review, tmp_path / "b")) == {"train", "rejected", "failed"}
    assert [r["name"] for r in rows(no_review, "rejected")] == [rejected]
    _, text, _ = card_of(no_review)
    said = " ".join(section(text, "Review").split())
    assert f"accepted {accepted} row" in said and "rejected 1 (in `rejected`)" in said and "0 wait for review" in said


def test_the_staged_push_folder_loads_one_config_per_tier(built, tmp_path):
    _, out, summary, _ = built
    staged = publish.stage(out, tiers=("coarse", "plus"), repo_id="lab/mer-coarse")
    meta, text, _ = card_of(staged.folder)
    assert [c["config_name"] for c in meta["configs"]] == ["coarse", "plus"] and meta["configs"][0]["default"]
    train = [r["name"] for r in rows(out, "train")]
    assert loaded(staged.folder, tmp_path / "a") == {"train": train}  # the default config: coarse
    plus = [r["name"] for r in rows(out, "train") if in_tier(CoarseRow.model_validate(r), "plus", recorded_tiers(out))]
    assert plus and loaded(staged.folder, tmp_path / "b", "plus") == {"train": plus}
    assert (
        staged.tiers
        == {"coarse": len(train), "plus": len(plus)}
        == {t: summary["tiers"][t]["rows"] for t in ("coarse", "plus")}
    )
    load = section(text, "How to load")
    assert 'load_dataset("lab/mer-coarse")' in load and 'load_dataset("lab/mer-coarse", "plus")' in load

    only_coarse = publish.stage(out, tmp_path / "coarse")  # the default: the coarse tier alone
    assert [c["config_name"] for c in card_of(only_coarse.folder)[0]["configs"]] == ["coarse"]
    assert loaded(only_coarse.folder, tmp_path / "c") == {"train": train}


def linked_images(tokens) -> list[str]:
    return [c.attrs["src"] for t in tokens if t.type == "inline" for c in t.children if c.type == "image"]


def test_the_plots_are_real_pngs_beside_the_card_and_the_card_shows_them(built, tmp_path):
    _, out, _, _ = built
    staged = publish.stage(out, tmp_path / "staged")
    for folder, expected in ((out, 4), (staged.folder, 3)):  # the published card has no held-back gate reasons
        _, _, tokens = card_of(folder)
        images = linked_images(tokens)
        assert len(images) == expected and all(src.startswith("plots/") for src in images)
        assert sorted(p.name for p in (folder / "plots").iterdir()) == sorted(Path(s).name for s in images)
        for src in images:
            with Image.open(folder / src) as image:
                image.verify()
                assert image.format == "PNG" and image.size[0] >= 400 and image.size[1] >= 150
    assert all(f"plots/{p.name}" in staged.files for p in (staged.folder / "plots").iterdir())


def test_the_card_says_first_how_to_load_it_its_columns_an_example_and_how_to_cite(built):
    corpus, out, summary, _ = built
    _, text, tokens = card_of(out)
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    assert headings[0] == "How to load" and headings.index("Example") < headings.index("Model line-up")
    load = section(text, "How to load")
    assert f'load_dataset("path/to/{out.name}")' in load and f'load_from_disk("path/to/{out.name}/hf")' in load

    columns = {
        r[0]: r[1] for r in table_rows(MarkdownIt("commonmark").enable("table").parse(section(text, "Columns")))
    }
    assert list(columns)[1:] == list(CoarseRow.model_fields)  # after the header row: every column, in order
    assert all(columns[name] == field.description for name, field in CoarseRow.model_fields.items())

    [first] = rows(out, "train")[:1]
    example = dict(r for r in table_rows(MarkdownIt("commonmark").enable("table").parse(section(text, "Example"))))
    assert example["name"] == first["name"] and example["labels"] == ", ".join(first["labels"])
    assert example["description_en"] == " ".join(first["description_en"].split())
    assert example["description_zh"] == first["description_zh"]
    for clue in ("audio_clue", "visual_clue"):  # the clue asked with the subtitle, where the method asked it so
        asked = first[clue]["with_subtitle"] or first[clue]["without_subtitle"]
        assert asked["clues"] in example[clue]

    cite = section(text, "Citation")
    for title in (
        "AffectGPT: Dataset and Framework for Explainable Multimodal Emotion Recognition",
        "Explainable Multimodal Emotion Recognition",
        "AffectGPT: A New Dataset, Model, and Benchmark for Emotion Understanding with Multimodal Large",
    ):
        assert title in cite
    assert "arXiv:2407.07653" in cite and "arXiv:2306.15401" in cite and "ICML" in cite


def test_the_card_has_no_json_dump_no_local_path_and_counts_rows_and_errors_apart(built):
    corpus, out, summary, _ = built
    _, text, tokens = card_of(out)
    assert not [t for t in tokens if t.type == "fence" and t.info != "python" and t.info != "bibtex"]
    assert '"top_labels"' not in text and '"splits"' not in text
    assert str(corpus) not in text and str(out) not in text and "/tmp" not in text
    clips = len(list((corpus / "video").iterdir()))
    assert f"the corpus {corpus.name} ({clips} clips, and 1 subtitle row without a clip)" in " ".join(text.split())

    every = [r for s in SPLITS for r in rows(out, s)]
    with_errors = [r for r in every if r["errors"]]
    errors = " ".join(section(text, "Errors, by stage").split())
    assert (
        f"{len(with_errors)} rows carry an error or a skip note ({sum(len(r['errors']) for r in every)} in all"
        in errors
    )
    per_stage = table_rows(MarkdownIt("commonmark").enable("table").parse(section(text, "Errors, by stage")))[1:]
    for stage, n_rows, n_errors in per_stage:
        assert int(n_rows) == sum(any(e["stage"] == stage for e in r["errors"]) for r in every)
        assert int(n_errors) == sum(e["stage"] == stage for r in every for e in r["errors"])
    tiers = {r[0]: r[1] for r in table_rows(MarkdownIt("commonmark").enable("table").parse(section(text, "Tiers")))}
    assert tiers["coarse"] == str(summary["splits"]["train"]) and int(tiers["plus"]) <= int(tiers["coarse"])
