"""The import backend: a role answered from a file of existing outputs keyed by clip name.

Fixture files are written here, at run time, the way the authors write theirs (np.savez of a dict under
`name2reason`; parallel arrays `filenames` and `fileitems` with unquoted list cells), and as CSV and JSONL.
A build whose clues, description and labels come from such files runs through the real engine (media prep,
measurements, checkpoint); only the translation is asked, of a scripted OpenAI-compatible server.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from backends.import_files import ImportFileError, model_name, read_import
from data import synth_clips as synth
from engine.assembly import Engine, LineupError, check_lineup, lineup
from runtime.checkpoint import Checkpoint
from schemas.config import ConfigError, EngineConfig, MediaConfig, RoleConfig
from schemas.manifest import Subtitles
from stages.ingest import probe_clip
from tests.fakes import RoleServer

CLIP = "sample_00000001"  # the good clip's name (conftest.good_clip)
REASON = (
    "The speaker's voice rises at the end of the sentence and the pace quickens, which suggests excitement; "
    "overall he sounds happy and relieved."
)
VISUAL = "He smiles broadly and his eyebrows lift; he looks happy."
DESCRIPTION = (
    "In the video, he smiles broadly. In the audio, his voice rises. In the text, he says he finally passed "
    "the exam. Therefore, he feels happy and relieved."
)


def reason_npz(path: Path, name2reason: dict[str, str]) -> Path:
    np.savez_compressed(path, name2reason=name2reason)  # one pickled dict, as the authors save theirs
    return path


def openset_npz(path: Path, items: dict[str, str], dtype=None) -> Path:
    np.savez(path, filenames=np.array(list(items), dtype=dtype), fileitems=np.array(list(items.values()), dtype=dtype))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def published(tmp_path) -> dict[str, Path]:
    """One MLLM's published outputs in the authors' layout, plus a CSV and a JSONL of other roles' outputs."""
    files = {
        "reason": reason_npz(tmp_path / "output-reason-salmonn-eng.npz", {CLIP: REASON, "other": "x"}),
        "states": openset_npz(tmp_path / "output-reason-salmonn-eng-openset.npz", {CLIP: "[Happy, relieved]"}),
        "labels": openset_npz(tmp_path / "qwen25-openset.npz", {CLIP: "[happy, relieved]", "other": "[sad]"}),
        "visual": tmp_path / "chatunivi.jsonl",
        "description": tmp_path / "descriptions.csv",
    }
    files["visual"].write_text(
        json.dumps({"name": CLIP, "reason": VISUAL}) + "\n" + '{"name": "other", "reason": "y"}\n'
    )
    files["description"].write_text(
        'name,english,subtitle_analysis\n"other","z",""\n' + f'{CLIP},"{DESCRIPTION}","""finally passed"" is relief"\n'
    )
    return files


# --- the readers ------------------------------------------------------------------------------------


def test_the_authors_npz_layouts_read_as_they_wrote_them(tmp_path):
    reasons = read_import(
        reason_npz(tmp_path / "output-reason-chatunivi-eng.npz", {"a": "He frowns.", "b": ""}), "text"
    )
    assert dict(reasons.entries) == {"a": "He frowns."} and "b" in reasons.problems  # an empty text is b's problem
    assert reasons.model == "chatunivi" and reasons.format == "npz"
    # Unquoted cells, as the authors' openset files hold them, read by their string_to_list rule.
    cells = {"a": "[confusion, helplessness]", "b": "[]", "c": "[[nested]]"}
    for dtype in (None, object):  # numpy strings, and an object array (unpickled through the allow-list)
        labels = read_import(openset_npz(tmp_path / f"m-{dtype}-openset.npz", cells, dtype), "labels")
        assert dict(labels.entries) == {"a": ["confusion", "helplessness"], "b": []}
        assert "brackets" in labels.problems["c"]
    # Items saved as lists (an object array of lists) read as the lists.
    lists = tmp_path / "lists-openset.npz"
    items = np.empty(2, dtype=object)
    items[0], items[1] = ["worried"], ["calm", "content"]
    np.savez(lists, filenames=np.array(["a", "b"]), fileitems=items)
    assert dict(read_import(lists, "labels").entries) == {"a": ["worried"], "b": ["calm", "content"]}
    assert model_name(Path("output-reason-salmonn-eng-openset.npz")) == model_name(Path("salmonn-openset.npz"))


def test_csv_and_jsonl_files_with_a_chosen_column(tmp_path):
    table = tmp_path / "gpt4o.csv"
    table.write_text('name,reason,openset\na,"He sighs.","[\'sad\', \'tired\']"\nb,"",[x\n')
    text = read_import(table, "text", column="reason")
    assert dict(text.entries) == {"a": "He sighs."} and "b" in text.problems and text.model == "gpt4o"
    labels = read_import(table, "labels")  # the `openset` column by default, cells as the authors' label CSVs
    assert dict(labels.entries) == {"a": ["sad", "tired"]} and "line 3" in labels.problems["b"]
    lines = tmp_path / "out.jsonl"
    lines.write_text('{"name": "a", "labels": ["angry"]}\n\n{"name": "b", "labels": "[calm]"}\n')
    assert dict(read_import(lines, "labels", column="labels").entries) == {"a": ["angry"], "b": ["calm"]}


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))  # unpickled, this would create the marker file


def lineup_with(tmp_path, role: str, **import_cfg) -> EngineConfig:
    roles = {r: {"backend": "signals"} for r in ("audio_clue", "visual_clue", "disambiguation", "translation")}
    roles["labels"] = {"backend": "signals"}
    roles[role] = {"backend": "import", **import_cfg}
    return EngineConfig(roles={name: RoleConfig(**cfg) for name, cfg in roles.items()})


def test_an_npz_holding_a_class_outside_the_allow_list_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "output-reason-evil-eng.npz"
    np.savez(evil, name2reason=np.array(_Payload(marker), dtype=object))
    with pytest.raises(LineupError) as refused:
        check_lineup(lineup_with(tmp_path, "audio_clue", file=str(evil)))
    assert not marker.exists()
    [line] = str(refused.value).splitlines()
    assert line.startswith("roles.audio_clue.file: ") and str(evil) in line and "refusing" in line


@pytest.mark.parametrize(
    "write, role, wrong",
    [
        (lambda p: p.with_suffix(".npz").write_bytes(b"not a zip"), "labels", "not an npz archive"),
        (lambda p: np.savez(p.with_suffix(".npz"), names=np.array(["a"])), "labels", "its arrays: names"),
        (
            lambda p: np.savez(p.with_suffix(".npz"), filenames=np.array(["a", "b"]), fileitems=np.array(["[x]"])),
            "labels",
            "not parallel lists",
        ),
        (lambda p: openset_npz(p.with_suffix(".npz"), {"a": "[x]"}), "audio_clue", "holds label lists"),
        (lambda p: reason_npz(p.with_suffix(".npz"), {"a": "x"}), "labels", "holds descriptions"),
        (
            lambda p: p.with_suffix(".jsonl").write_text('{"name": "a", "description": "x"}\n{oops\n'),
            "visual_clue",
            "line 2: not JSON",
        ),
        (
            lambda p: p.with_suffix(".jsonl").write_text('{"name": "a", "text": "x"}\n'),
            "visual_clue",
            "no `description` field",
        ),
        (lambda p: p.with_suffix(".csv").write_text("clip,description\na,x\n"), "disambiguation", "no `name` column"),
        (lambda p: p.with_suffix(".csv").write_text("name,description\n"), "disambiguation", "holds no clip"),
    ],
)
def test_a_malformed_file_is_one_line_at_start_up_naming_it(tmp_path, write, role, wrong):
    write(tmp_path / "outputs")
    [path] = tmp_path.glob("outputs.*")
    with pytest.raises(LineupError) as refused:
        check_lineup(lineup_with(tmp_path, role, file=str(path)))
    [line] = str(refused.value).splitlines()
    assert line.startswith(f"roles.{role}.file: ") and str(path) in line and wrong in line


def test_the_configuration_names_the_key_of_each_mistake(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs.txt").write_text("name,description\n")
    config = tmp_path / "config.toml"

    def problems(role: str) -> list[str]:
        base = "\n".join(f'[roles.{r}]\nbackend = "signals"' for r in ("audio_clue", "visual_clue", "translation"))
        config.write_text(base + '\n[roles.disambiguation]\nbackend = "signals"\n' + role)
        with pytest.raises(ConfigError) as refused:
            EngineConfig.from_file(config)
        return [line.removeprefix(f"{config}: ") for line in refused.value.problems]

    assert problems('[roles.labels]\nbackend = "import"\nfile = "gone.npz"') == [
        "roles.labels.file: no such file gone.npz"
    ]
    assert problems('[roles.labels]\nbackend = "import"\nfile = "outputs.txt"') == [
        "roles.labels.format: cannot tell the format of outputs.txt from its name: set format to csv, jsonl or npz"
    ]
    assert problems('[roles.labels]\nbackend = "import"') == [
        'roles.labels: the import backend reads its answers from a file: set file = "PATH"'
    ]
    assert problems('[roles.labels]\nbackend = "signals"\nfile = "outputs.txt"\nformat = "csv"') == [
        'roles.labels: file: read by the import backend only; set backend = "import" or drop it'
    ]
    assert problems('[roles.labels]\nbackend = "import"\nfile = "outputs.txt"\nformat = "xml"')[0].startswith(
        "roles.labels.format: Input should be 'csv', 'jsonl' or 'npz'"
    )


def test_a_role_that_cannot_be_imported_is_said_before_any_work(tmp_path, published):
    with pytest.raises(LineupError, match="stage 'translation' .* cannot be imported"):
        check_lineup(lineup_with(tmp_path, "translation", file=str(published["description"]), column="english"))
    with pytest.raises(LineupError, match="roles.labels.states_file: only a clue role"):
        check_lineup(
            lineup_with(tmp_path, "labels", file=str(published["labels"]), states_file=str(published["states"]))
        )


# --- a build from imported files -----------------------------------------------------------------


@pytest.fixture
def models():
    m = RoleServer()
    yield m
    m.close()


@pytest.fixture(scope="module")
def records(good_clip, tmp_path_factory):
    # The second clip has content of its own: clips with the same content share their answers (the engine's rule
    # for duplicates), whatever their names.
    other = synth.talking_clip(tmp_path_factory.mktemp("clips") / "sample_absent.mp4", "Why is it always me?")
    subtitles = Subtitles(english="I am so happy, I finally passed the exam!")
    return [probe_clip(good_clip, subtitles, None, 30, -60), probe_clip(other, Subtitles(), None, 30, -60)]


MEDIA = MediaConfig(max_frames=2, frame_max_side=64)


def imported_lineup(published: dict[str, Path], url: str) -> EngineConfig:
    def imported(file: str, **kw) -> RoleConfig:
        return RoleConfig(backend="import", file=str(published[file]), **kw)

    return EngineConfig(
        roles={
            "audio_clue": imported("reason", states_file=str(published["states"])),
            "visual_clue": imported("visual", column="reason"),
            "disambiguation": imported("description", column="english"),
            "translation": RoleConfig(endpoints=[{"base_url": url, "model": "m"}], max_retries=0, max_reasks=0),
            "labels": imported("labels"),
        },
        media=MEDIA,
    )


@pytest.fixture(scope="module")
def measured(records, tmp_path_factory) -> Path:
    """A state folder holding the clips' prepared media and measurements (they do not depend on the files), so
    each build below costs only its imported answers and its translations."""
    state = tmp_path_factory.mktemp("measured")
    roles = {r: RoleConfig(backend="signals") for r in ("audio_clue", "visual_clue", "disambiguation", "translation")}
    config = EngineConfig(roles=roles | {"labels": RoleConfig(backend="signals")}, media=MEDIA)
    checkpoint = Checkpoint(state / "checkpoint.sqlite")
    try:
        with Engine(config, state, checkpoint) as engine:
            engine.measure(records)
    finally:
        checkpoint.close()
    return state


@pytest.fixture
def state(measured, tmp_path) -> Path:
    return Path(shutil.copytree(measured, tmp_path / "state"))


def build(config: EngineConfig, state: Path, records, models: RoleServer):
    checkpoint = Checkpoint(state / "checkpoint.sqlite")
    try:
        with Engine(config, state, checkpoint) as engine:
            rows, stats = engine.annotate(records)
    finally:
        checkpoint.close()
    return {row.name: row for row in rows}, stats, models.asked()


def test_a_build_takes_its_clues_description_and_labels_from_the_files(state, published, records, models):
    config = imported_lineup(published, models.server.url)
    rows, stats, asked = build(config, state, records, models)
    assert asked == ["translation"]  # one request for the one clip the files know; nothing else is asked
    row = rows[CLIP]
    assert row.complete and not row.errors
    assert row.audio_clue.without_subtitle.clues == REASON and row.audio_clue.with_subtitle is None
    assert row.audio_clue.without_subtitle.emotional_states == ["Happy", "relieved"]  # from the openset file
    assert row.visual_clue.without_subtitle.model_dump() == {"clues": VISUAL, "emotional_states": []}
    assert (row.description_en, row.subtitle_analysis) == (DESCRIPTION, '"finally passed" is relief')
    assert row.labels == ["happy", "relieved"] and row.description_zh == "视频中……"

    # Provenance names each file, its MLLM and its sha256; nothing was requested.
    calls = {(c.stage, c.server): c for c in row.provenance}
    for stage, key in [
        ("audio_clue", "reason"),
        ("audio_clue", "states"),
        ("visual_clue", "visual"),
        ("labels", "labels"),
    ]:
        call = calls[(stage, f"import:{published[key].name}")]
        assert call.server_version == f"sha256:{sha256(published[key])}" and call.attempts == 0
        assert call.prompt_version == sha256(published[key])[:16]
    assert calls[("audio_clue", "import:output-reason-salmonn-eng.npz")].model == "salmonn"
    assert calls[("visual_clue", "import:chatunivi.jsonl")].model == "chatunivi"
    assert lineup(config)["audio_clue"]["models"] == ["salmonn"]
    assert stats.stages["labels"].requests == 0 and stats.stages["translation"].requests == 1

    # A clip the files do not hold: a per-row error naming the file, not a crash.
    absent = rows["sample_absent"]
    assert not absent.complete
    messages = {e.stage: e.message for e in absent.errors}
    assert messages["audio_clue"] == "sample_absent not in output-reason-salmonn-eng.npz"
    assert messages["visual_clue"] == "sample_absent not in chatunivi.jsonl"
    assert messages["disambiguation"] == "skipped: no clue to disambiguate"


def test_a_changed_file_re_runs_exactly_the_stage_imported_from_it(state, published, records, models):
    config = imported_lineup(published, models.server.url)
    build(config, state, records[:1], models)
    _, stats, asked = build(config, state, records[:1], models)
    assert asked == [] and not any(s.runs for s in stats.stages.values())  # all from the checkpoint

    # Another clip's entry changes: the file's sha256 moves, so labels are imported again, and only they.
    openset_npz(published["labels"], {CLIP: "[happy, relieved]", "other": "[angry]"})
    rows, stats, asked = build(config, state, records[:1], models)
    assert asked == [] and {n for n, s in stats.stages.items() if s.runs} == {"labels"}
    assert rows[CLIP].labels == ["happy", "relieved"]
    assert {c.prompt_version for c in rows[CLIP].provenance if c.stage == "labels"} == {
        sha256(published["labels"])[:16]
    }

    # The clip's own description changes: the description is imported again, and the stages reading it re-run.
    published["description"].write_text(f'name,english\n{CLIP},"He is calm. Therefore, he feels content."\n')
    rows, stats, asked = build(config, state, records[:1], models)
    assert asked == ["translation"] and {n for n, s in stats.stages.items() if s.runs} == {
        "disambiguation",
        "translation",
        "labels",  # its input (the description) changed; its answer comes from the unchanged labels file
    }
    assert rows[CLIP].description_en == "He is calm. Therefore, he feels content."
    assert rows[CLIP].subtitle_analysis.startswith("not given apart")


def test_two_clips_of_the_same_content_keep_their_own_imported_answers(tmp_path, published):
    # Imported answers are looked up by name, so the name enters their checkpoint key (a served model's answer
    # depends on the content only, and clips of the same content share it).
    from backends.imported import ImportBackend
    from stages.contract import checkpoint_key
    from stages.labels import LabelsStage
    from tests.fakes import clip_context

    stage = LabelsStage()
    backend = ImportBackend("labels", RoleConfig(backend="import", file=str(published["labels"])), ["labels"])
    clip = clip_context(tmp_path)
    twin = dataclasses.replace(clip, record=clip.record.model_copy(update={"name": "sample_00000002"}))
    inputs = stage.inputs.model_validate({"description_en": DESCRIPTION})
    assert checkpoint_key(stage, backend, inputs, clip) != checkpoint_key(stage, backend, inputs, twin)


def test_an_npz_whose_members_pickle_bare_objects_is_one_clear_error_not_a_crash(tmp_path):
    """A member may pickle a plain list instead of an array (written by hand, not by np.save): it is read as numpy
    would hold it, and a layout it does not fit is the file's error."""
    import io
    import pickle
    import zipfile

    path = tmp_path / "hand-openset.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for key, value in (("filenames", [CLIP]), ("fileitems", ["[happy]"])):
            member = io.BytesIO()
            np.lib.format.write_array_header_1_0(member, {"descr": "|O", "fortran_order": False, "shape": ()})
            pickle.dump(value, member)
            archive.writestr(f"{key}.npy", member.getvalue())
    with pytest.raises(ImportFileError, match="not parallel lists"):
        read_import(path, "labels")
