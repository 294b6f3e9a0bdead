"""Issue 16, items 2, 3, 4 and 6: what the engine writes into OUT, and what push publishes.

Checked against what a user's tools see: the files a build left in OUT, read back by pyarrow, `datasets`
and push's dry run; a build process killed with SIGKILL at the moment it swaps a new export in (the
export's documented test hook EMER_TEST_PAUSE_BEFORE_SWAP_S holds it there; without the hook the kill
lands while the shards are written); the errors the flow raises and the CLI's exit status and output;
the rows of the staged Hub shards; and the cards as a CommonMark renderer with GFM tables
(markdown-it-py) parses them, the way a dataset page shows them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from datasets import load_dataset, load_from_disk
from markdown_it import MarkdownIt
from typer.testing import CliRunner

from data import synth_clips as synth
from flows import publish
from flows.build_coarse import build_coarse
from flows.cli import app
from schemas.errors import UserError
from tests.conftest import ROOT
from tests.fakes import RoleServer, completion, role_of
from tests.markdown_tables import table_rows

SPLITS = ("train", "review", "rejected", "failed")
SMALL_MEDIA = "\n[media]\nframes_per_second = 1.0\nmax_frames = 4\nframe_max_side = 160\n"
ROLES = ("audio_clue", "visual_clue", "disambiguation", "translation", "labels")
# The zero-download line-up (data/configs/cpu-signals.toml) on fewer, smaller frames.
SIGNALS = "batch_size = 16\ntask_workers = 2\ndecode_workers = 2\n" + SMALL_MEDIA
SIGNALS += "".join(f'[roles.{role}]\nbackend = "signals"\n' for role in ROLES)
PAUSE_ENV = "EMER_TEST_PAUSE_BEFORE_SWAP_S"  # flows/build_coarse.py's test hook


def rows(out: Path, split: str) -> list[dict]:
    files = sorted((out / "data").glob(f"{split}-*.parquet"))
    return sorted((r for f in files for r in pq.read_table(f).to_pylist()), key=lambda r: r["name"])


def dataset(out: Path) -> dict[str, list[dict]]:
    return {split: rows(out, split) for split in SPLITS}


def export_files(out: Path) -> dict[str, bytes]:
    """What a reader of OUT finds: the shards, the card (and what the engine keeps beside them)."""
    files = {f"data/{p.name}": p.read_bytes() for p in sorted((out / "data").glob("*.parquet"))}
    return files | {"README.md": (out / "README.md").read_bytes()}


def listing(folder: Path) -> dict[str, bytes | None]:
    return {
        p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))
    }


def config_file(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    video = root / "video"
    video.mkdir()
    synth.face_clip(video / "calm_0001.mp4", "I finally passed the exam.")  # a face: the gates pass it
    synth.talking_clip(video / "upset_0002.mp4", "Why do you always do this to me?", size="160x90")
    synth.talking_clip(video / "upset_0004.mp4", "Get out of here, I never want to see you again.", size="160x90")
    synth.empty_file(video / "broken_0003.mp4")
    synth.write_subtitles(
        root / "subtitle_chieng.csv",
        [
            ("calm_0001", "我终于通过考试了。", "I finally passed the exam."),
            ("upset_0002", "你为什么总是这样对我？", "Why do you always do this to me?"),
            ("upset_0004", "", "Get out of here, I never want to see you again."),
        ],
    )
    return root


@pytest.fixture(scope="module")
def signals(tmp_path_factory) -> Path:
    return config_file(tmp_path_factory.mktemp("cfg") / "signals.toml", SIGNALS)


@pytest.fixture(scope="module")
def resharded(signals) -> Path:
    """The same line-up with one row per shard: a re-export with other shard names than the first (the two
    speakers over a test pattern, no face, are both in `review`)."""
    return config_file(signals.with_name("resharded.toml"), "shard_rows = 1\n" + signals.read_text())


@pytest.fixture(scope="module")
def built(corpus, signals, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("built") / "out"
    build_coarse(str(corpus), str(out), str(signals))
    return out


def subprocess_env(**extra: str) -> dict[str, str]:
    # A Prefect home of its own: its temporary server does not share the test session's database.
    return os.environ | {"PREFECT_HOME": tempfile.mkdtemp(prefix="prefect-home-")} | extra


def start_build(corpus: Path, out: Path, config: Path, **env: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "flows.cli", "build", str(corpus), "--out", str(out), "--config", str(config)]
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=subprocess_env(**env),
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


class Rebuild:
    """A second build of an existing OUT with other shard names, in a process of its own, caught once
    its first new shard exists (in OUT/data for an export written in place, beside it otherwise)."""

    def __init__(self, corpus: Path, out: Path, config: Path) -> None:
        self.out, self.before = out, export_files(out)
        self.proc = start_build(corpus, out, config, **{PAUSE_ENV: "300"})
        deadline = time.monotonic() + 120
        while not any(out.rglob("review-*-of-00002.parquet")):
            assert self.proc.poll() is None and time.monotonic() < deadline, "the rebuild wrote no new shard"
            time.sleep(0.02)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


@pytest.fixture(scope="module")
def rebuild(built, corpus, resharded, tmp_path_factory):
    out = tmp_path_factory.mktemp("rebuild") / "out"
    shutil.copytree(built, out, symlinks=True)  # with its state: the rebuild answers from the checkpoint
    running = Rebuild(corpus, out, resharded)
    yield running
    running.kill()


# ------------------------------------------------------------------ 4: one build per output at a time


def test_a_second_build_on_the_same_output_is_refused_at_once_naming_the_first(rebuild, corpus, signals):
    assert rebuild.proc.poll() is None, "the first build should still be running"
    started = time.monotonic()
    with pytest.raises(UserError, match=r"being built by another build") as refused:
        build_coarse(str(corpus), str(rebuild.out), str(signals))
    message = str(refused.value)
    assert f"pid {rebuild.proc.pid} on {os.uname().nodename}, started 20" in message and "\n" not in message
    assert time.monotonic() - started < 30  # refused before any work, not after waiting for it
    assert rebuild.proc.poll() is None


# ------------------------------------------------------------------ 2: the export is replaced whole


def test_a_build_killed_while_it_replaces_the_export_leaves_the_previous_one_whole_and_readable(rebuild, tmp_path):
    rebuild.kill()
    out = rebuild.out
    assert export_files(out) == rebuild.before  # byte for byte: no new shard, no missing one, the same card
    for shard in (out / "data").glob("*.parquet"):
        pq.read_table(shard)  # every footer reads
    hf = load_from_disk(str(out / "hf"))
    assert {s: hf[s].num_rows for s in SPLITS} == {s: len(r) for s, r in dataset(out).items()}
    by_card = load_dataset(str(out), split="train", cache_dir=str(tmp_path / "hf-cache"))  # by the card's `configs`
    assert sorted(by_card["name"]) == [r["name"] for r in rows(out, "train")] != []

    dry = CliRunner().invoke(app, ["push", str(out), "--repo", "lab/coarse", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    staged = json.loads(dry.output)
    assert staged["files"] == [
        "README.md",
        *(n for n in rebuild.before if n.startswith("data/train-")),
        *(f"plots/{name}.png" for name in ("durations", "labels", "tiers")),  # the published card's plots
    ]
    assert staged["rows"] == len(rows(out, "train"))


def test_the_build_after_a_killed_one_completes_the_new_export_and_leaves_nothing_of_the_old(
    rebuild, built, corpus, resharded
):
    rebuild.kill()
    out = rebuild.out
    summary = build_coarse(str(corpus), str(out), str(resharded))
    assert dataset(out) == dataset(built) and summary["splits"] == {s: len(r) for s, r in dataset(built).items()}
    names = sorted(p.name for p in (out / "data").glob("*.parquet"))
    assert [n for n in names if n.startswith("review")] == [
        f"review-{i:05d}-of-{len(rows(built, 'review')):05d}.parquet" for i in range(len(rows(built, "review")))
    ]
    # Of what the killed build had written, no shard is left but those in use.
    current = (out / "data").resolve()
    work = (out / ".parts", out / ".state", out / ".push")  # its work, its state and what push staged
    shards = [p for p in out.rglob("*-of-*.parquet") if not any(p.is_relative_to(w) for w in work)]
    assert shards and all(p.resolve().parent == current for p in shards), shards


def test_push_refuses_an_export_that_is_not_complete(built, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(built, out, symlinks=True)
    [train] = sorted((out / "data").glob("train-*.parquet"))
    whole = train.read_bytes()
    train.write_bytes(whole[: len(whole) // 2])  # a shard without its footer, as a killed writer leaves it
    with pytest.raises(publish.PushError, match=r"no complete export .*not a complete Parquet file") as refused:
        publish.stage(out)
    assert "\n" not in str(refused.value) and not (out / ".push").exists()

    train.write_bytes(whole)
    (out / "data" / ".export.json").unlink()  # shards of an export whose writer never finished it
    with pytest.raises(publish.PushError, match=r"no complete export .*was not completed"):
        publish.stage(out)


# ------------------------------------------------------------------ 4: outputs sharing one state directory


@pytest.mark.cli_build  # a whole CLI build in its own process
def test_two_builds_of_different_outputs_sharing_one_state_dir_at_once_give_the_datasets_of_one_at_a_time(
    built, corpus, signals, tmp_path
):
    shared = config_file(tmp_path / "shared.toml", f'state_dir = "{tmp_path / "state"}"\n' + signals.read_text())
    other = start_build(corpus, tmp_path / "a", shared)
    build_coarse(str(corpus), str(tmp_path / "b"), str(shared))
    output, _ = other.communicate(timeout=300)
    assert other.returncode == 0, output[-3000:]
    assert dataset(tmp_path / "a") == dataset(tmp_path / "b") == dataset(built)


# ------------------------------------------------------------------ 3: only what the engine wrote


def someone_elses(folder: Path) -> Path:
    (folder / "hf").mkdir(parents=True)
    (folder / "hf" / "weights.bin").write_bytes(b"someone's model")
    (folder / "README.md").write_text("# My project\n")
    (folder / "notes.txt").write_text("keep me\n")
    return folder


def test_a_non_empty_folder_the_engine_did_not_write_is_refused_before_any_work(corpus, signals, tmp_path):
    folder = someone_elses(tmp_path / "project")
    before = listing(folder)
    with pytest.raises(UserError, match=r"not written by emer-coarse.*--force") as refused:
        build_coarse(str(corpus), str(folder), str(signals))
    assert "\n" not in str(refused.value) and str(folder) in str(refused.value)
    assert listing(folder) == before  # nothing deleted, overwritten or added


def test_the_corpus_itself_given_as_the_output_is_refused_by_the_cli_in_one_line(corpus, signals):
    before = listing(corpus)
    result = CliRunner().invoke(app, ["build", str(corpus), "--out", str(corpus), "--config", str(signals)])
    assert result.exit_code == 2, result.output
    assert "not written by emer-coarse" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) <= 2
    assert listing(corpus) == before


def test_forced_the_engine_builds_beside_foreign_files_and_never_replaces_them(corpus, signals, tmp_path):
    folder = someone_elses(tmp_path / "project")
    with pytest.raises(UserError, match=r"README\.md, hf are not emer-coarse's"):  # even forced: they are not its
        build_coarse(str(corpus), str(folder), str(signals), force=True)

    shutil.rmtree(folder / "hf")
    (folder / "README.md").unlink()
    (folder / "results").mkdir()
    (folder / "results" / "table.csv").write_text("a,b\n")
    theirs = listing(folder)
    build_coarse(str(corpus), str(folder), str(signals), force=True)
    build_coarse(str(corpus), str(folder), str(signals))  # its own folder now: no force needed
    assert {k: v for k, v in listing(folder).items() if k in theirs} == theirs
    assert rows(folder, "train") or rows(folder, "review")


# ------------------------------------------------------------------ 6: a safe card, published rows only

HOSTILE_LABELS = ["<script>alert(1)</script>", "[x](http://evil.example)", "</s>", "`rm -rf`"]
HOSTILE_MODEL = "tiny<b>|[m](http://model.example)<i>x</i>`sh`"
HOSTILE_CORPUS = "corpus-<img src=x onerror=alert(3)>`c`|[c](c.example)"
SUBTITLE = "I\x00 finally \x1b[1mpassed\x1b[0m the exam\x07!\x08 \u202eok"  # as a subtitle file may carry it
DESCRIPTION = "In the video the speaker\x07 smiles; in the audio \x1b[32mthe voice\x1b[0m is calm\u202e; glad\x00."
DESCRIPTION_CLEAN = "In the video the speaker smiles; in the audio the voice is calm; glad."
SERVER_PATH = "/srv/models/tiny/weights.bin"


def is_control(ch: str) -> bool:
    return (ord(ch) < 32 and ch not in "\t\n") or 0x7F <= ord(ch) <= 0x9F or 0x202A <= ord(ch) <= 0x202E


def texts(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in texts(v)]
    return []


class HostileServer(RoleServer):
    """Answers per clip, told apart by its subtitle: `HOSTILE` gets labels that are markup, `ERRORING` a
    server error that names a path on the server, and every description carries control characters."""

    def answer(self, body: dict) -> tuple[int, dict]:
        role, asked = role_of(body), json.dumps(body["messages"], ensure_ascii=False)
        marker = next((m for m in ("HOSTILE", "ERRORING") if m in asked), "")
        if role == "disambiguation":
            return completion(json.dumps({"subtitle_analysis": "glad", "description": f"{marker} {DESCRIPTION}"}))
        if role == "labels" and marker == "ERRORING":
            return 400, {"error": {"message": f"cannot open {SERVER_PATH}", "type": "BadRequestError"}}
        if role == "labels":
            return completion(json.dumps({"labels": HOSTILE_LABELS if marker else ["happy"]}))
        return super().answer(body)


def hostile_config(path: Path, url: str) -> Path:
    lines = ["batch_size = 4", "task_workers = 2", SMALL_MEDIA]
    lines += [f"[gates.{gate}]\nenabled = false" for gate in ("length", "av_match", "cross_validation", "grounding")]
    media = {"audio_clue": "input_audio", "visual_clue": "frames"}
    for role in ROLES:
        lines += [
            f"[roles.{role}]",
            f'prompt = "{role}"',
            f'media = "{media.get(role, "none")}"',
            "max_retries = 0",
            "max_reasks = 0",
            f"endpoints = [{{ base_url = {json.dumps(url)}, model = {json.dumps(HOSTILE_MODEL)} }}]",
        ]
    return config_file(path, "\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A build whose subtitles and model answers carry markup, links, control characters and paths,
    from a corpus whose folder name is markup; then push's dry run."""
    root = tmp_path_factory.mktemp("hostile") / HOSTILE_CORPUS
    (root / "video").mkdir(parents=True)
    for name in ("calm_0001", "hostile_0002", "erroring_0003"):
        synth.talking_clip(root / "video" / f"{name}.mp4", "I finally passed the exam.", size="160x90")
    synth.write_subtitles(
        root / "subtitle_chieng.csv",
        [
            ("calm_0001", "我终于通过考试了。", SUBTITLE),
            ("hostile_0002", "我终于通过考试了。", "HOSTILE I finally passed the exam."),
            ("erroring_0003", "我终于通过考试了。", "ERRORING I finally passed the exam."),
        ],
    )
    server = HostileServer()
    out = root.parent / "out"
    try:
        summary = build_coarse(
            str(root), str(out), str(hostile_config(root.parent / "hostile.toml", server.server.url))
        )
    finally:
        server.close()
    staged = publish.stage(out)
    return root, out, summary, staged


def parsed(card: str) -> list:
    return MarkdownIt("commonmark").enable("table").parse(card)


def inline_tokens(tokens) -> list:
    return [child for t in tokens if t.type == "inline" for child in t.children]


def assert_inert(card: str) -> list:
    """The card renders to text and its own tables: no HTML, link, image or code span from its values."""
    tokens = parsed(card)
    kinds = {t.type for t in tokens} | {c.type for c in inline_tokens(tokens)}
    assert not kinds & {"html_inline", "html_block", "link_open"}, kinds
    # The only images are the card's own plots, beside it.
    images = [c.attrs["src"] for c in inline_tokens(tokens) if c.type == "image"]
    assert all(re.fullmatch(r"plots/[a-z]+\.png", src) for src in images), images
    # The line-up table keeps its four cells, the model's name in one of them as it was configured.
    [(role, model, _, media)] = [r for r in table_rows(tokens) if r[:1] == ["disambiguation"] and len(r) == 4]
    assert (role, model, media) == ("disambiguation", HOSTILE_MODEL, "none")
    return tokens


def test_the_published_card_is_derived_from_published_rows_and_renders_no_markup(hostile):
    root, _, _, staged = hostile
    card = (staged.folder / "README.md").read_text()
    tokens = assert_inert(card)
    shown = "".join(c.content for c in inline_tokens(tokens))
    assert not any(label in shown or label in card for label in HOSTILE_LABELS)  # held-back rows' labels
    assert "alert(1)" not in card and "evil.example" not in card and "rm -rf" not in card
    assert HOSTILE_CORPUS in shown  # named as it is, as text
    assert str(root.parent) not in card and "/tmp/" not in card  # by its folder's name, no local path
    assert "happy (1)" in shown  # the published rows' labels


def test_the_local_card_names_every_split_and_escapes_what_users_and_models_wrote(hostile):
    root, out, _, _ = hostile
    card = (out / "README.md").read_text()
    tokens = assert_inert(card)
    shown = "".join(c.content for c in inline_tokens(tokens))
    assert all(label in shown for label in HOSTILE_LABELS)  # the held-back row's labels, as text
    # Code blocks are the card's own (how to load it, how to cite): a value closes none of them.
    assert [t.info for t in tokens if t.type == "fence"] == ["python", "bibtex"]
    assert str(root) not in card and str(root.parent) not in card


def test_control_and_bidi_characters_are_removed_from_published_rows_and_the_change_recorded(hostile):
    _, _, _, staged = hostile
    [calm] = [r for p in sorted((staged.folder / "data").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert calm["name"] == "calm_0001"
    assert not [t for t in texts(calm) if any(is_control(ch) for ch in t)]
    assert not [t for t in texts(calm) if "/tmp/" in t]  # nor a local path
    assert calm["subtitle_english"] == "I finally passed the exam! ok"
    assert calm["description_en"].strip() == DESCRIPTION_CLEAN
    [validity] = [g for g in calm["gates"] if g["gate"] == "validity"]
    assert validity["passed"] and "removed control characters" in validity["reason"]
    assert "U+202E" in validity["reason"] and "description_en" in validity["reason"]


def test_failed_rows_carry_no_absolute_local_path(hostile):
    root, out, _, _ = hostile
    failed = {r["name"]: r for r in rows(out, "failed")}
    messages = [e["message"] for e in failed["erroring_0003"]["errors"]]
    assert any("weights.bin" in m for m in messages), messages
    for row in failed.values():
        for text in [row["clip_error"] or "", *(e["message"] for e in row["errors"])]:
            assert SERVER_PATH not in text and str(root) not in text and "/tmp/" not in text, text


def test_every_split_and_the_card_agree_on_where_each_hostile_clip_went(hostile):
    _, out, summary, staged = hostile
    assert [r["name"] for r in rows(out, "train")] == ["calm_0001"] and staged.rows == 1
    assert [r["name"] for r in rows(out, "review")] == ["hostile_0002"]
    assert [r["name"] for r in rows(out, "failed")] == ["erroring_0003"]
    assert summary["splits"] == {"train": 1, "review": 1, "rejected": 0, "failed": 1}
