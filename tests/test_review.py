"""Human review in a real Label Studio: held-back rows go out as tasks, reviewers' decisions come back.

One Label Studio server (from .venv-review, or the binary in EMER_LABEL_STUDIO) runs for the session
on 127.0.0.1 with a database of its own: an initial user and legacy token from Label Studio's own
LABEL_STUDIO_USERNAME / LABEL_STUDIO_PASSWORD / LABEL_STUDIO_USER_TOKEN variables, local-files serving
on over a temporary document root that holds the corpus. The engine's key is a personal access token
made through the API, as an operator would copy one from Account & Settings.

Migrating a fresh Label Studio database takes one to two minutes on two cores; the migrated, empty
database is kept per Label Studio version under .cache/label-studio/ and copied for each session,
which then starts in seconds.

The reviewer works through Label Studio's web session like the UI does: logs in, submits annotations
with the CSRF token, changes a decision with the Update button's PATCH, skips a task. The annotation
bodies are those the 1.23.2 labeling UI sends for this interface (checked once in headless Chromium:
choosing accept, typing labels and a note, Submit).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import httpx
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from data import synth_clips as synth
from flows.cli import app
from review import config
from review.decisions import applicable, decisions_path, load_decisions, parse_labels, write_decisions
from review.label_studio import API_KEY_ENV, LabelStudio, ReviewError, connect
from review.queue import push
from review.tasks import gate_text
from schemas.arrow import arrow_schema, to_table
from schemas.gates import GateVerdict
from schemas.manifest import ClipRecord
from schemas.replies import ClueReply
from schemas.review import ReviewDecision
from schemas.row import ClueSet, CoarseRow
from tests.conftest import ROOT, free_port

USER, PASSWORD = "reviewer@example.com", "review-pass-1"
LEGACY_TOKEN = "legacy" + os.urandom(12).hex()
PROJECT = "EMER review (test)"


def label_studio_binary() -> Path:
    """$EMER_LABEL_STUDIO, else the project's .venv-review (made by scripts/setup)."""
    binary = Path(os.environ.get("EMER_LABEL_STUDIO") or ROOT / ".venv-review" / "bin" / "label-studio")
    if not binary.exists():
        pytest.fail(
            f"Label Studio not found at {binary}: run scripts/setup (it makes .venv-review) or set EMER_LABEL_STUDIO"
        )
    return binary


def _version(binary: Path) -> str | None:
    found = sorted(binary.resolve().parent.parent.glob("lib/python*/site-packages/label_studio-*.dist-info"))
    return found[-1].name.removesuffix(".dist-info").split("-")[1] if found else None


def _quiet_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO_", "EMER_"))}
    return env | {
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LABEL_STUDIO_LATEST_VERSION_CHECK": "false",  # no call to pypi.org
        "LABEL_STUDIO_COLLECT_ANALYTICS": "false",
    }


def migrated_data_dir(binary: Path, into: Path) -> Path:
    """A data folder with Label Studio's database migrated and empty: from the cache, made there once."""
    version = _version(binary)
    cache = ROOT / ".cache" / "label-studio"
    cached = cache / f"{version}-migrated"
    if version is not None and (cached / "label_studio.sqlite3").exists():
        return Path(shutil.copytree(cached, into))
    target = into
    if version is not None:
        cache.mkdir(parents=True, exist_ok=True)
        target = Path(tempfile.mkdtemp(prefix="migrating-", dir=cache))
    # `label-studio version` sets up the data folder and applies every migration, then exits.
    done = subprocess.run(
        [str(binary), "version"], env=_quiet_env(target), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    if version is None:
        return into
    try:
        target.rename(cached)
    except OSError:  # another session made it meanwhile
        shutil.rmtree(target, ignore_errors=True)
    return Path(shutil.copytree(cached, into))


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory):
    binary = label_studio_binary()
    base = tmp_path_factory.mktemp("label-studio")
    data_dir = migrated_data_dir(binary, base / "data")
    document_root = base / "media"
    document_root.mkdir()
    port = free_port()
    env = _quiet_env(data_dir) | {
        "LABEL_STUDIO_USERNAME": USER,
        "LABEL_STUDIO_PASSWORD": PASSWORD,
        "LABEL_STUDIO_USER_TOKEN": LEGACY_TOKEN,
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(document_root),
    }
    log_path = base / "label-studio.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [
                str(binary),
                "start",
                "--no-browser",
                "--internal-host",
                "127.0.0.1",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                "--enable-legacy-api-token",
            ],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"Label Studio exited ({proc.returncode}):\n{log_path.read_text(errors='replace')[-3000:]}"
                )
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"Label Studio did not answer /health in time:\n{log_path.read_text(errors='replace')[-3000:]}"
                )
            time.sleep(0.5)
        # A personal access token, as Account & Settings makes one (here through the API, with the legacy token).
        made = httpx.post(f"{url}/api/token/", headers={"Authorization": f"Token {LEGACY_TOKEN}"}, timeout=30)
        assert made.status_code == 201, made.text
        yield SimpleNamespace(url=url, pat=made.json()["token"], document_root=document_root, log=log_path)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def api_key(label_studio):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(API_KEY_ENV, label_studio.pat)
        mp.setenv("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT", str(label_studio.document_root))
        yield label_studio.pat


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _clue(text: str, states: list[str]) -> ClueReply:
    return ClueReply(clues=text, emotional_states=states)


def _row(name: str, sha256: str, labels: list[str], gates: list[GateVerdict], **texts) -> CoarseRow:
    return CoarseRow(
        name=name,
        sha256=sha256,
        duration=2.0,
        clip_status="ok",
        complete=True,
        labels=labels,
        gates=gates,
        subtitle_english=texts.get("en", "I finally passed the exam!"),
        subtitle_chinese=texts.get("zh", "我终于通过考试了！"),
        audio_clue=ClueSet(
            without_subtitle=_clue(f"{name}: rising pitch, fast speech", ["excited"]),
            with_subtitle=_clue(f"{name}: the voice sounds relieved", ["relieved", "happy"]),
        ),
        visual_clue=ClueSet(
            without_subtitle=_clue(f"{name}: no face is visible", []),
            with_subtitle=_clue(f"{name}: a moving test pattern", ["neutral"]),
        ),
        description_en=(
            f"In the video of {name} no face is visible; in the audio the voice rises; "
            "the text says the exam is passed."
        ),
        description_zh=f"{name}的视频中看不到人脸；音频中声音上扬；文本说考试通过了。",
    )


AV_FAIL = GateVerdict(gate="av_match", passed=False, score=0.0, threshold=0.3, reason="speech with no face on screen")
LENGTH_PASS = GateVerdict(
    gate="length", passed=True, score=31, threshold=15, reason="within the corpus's length range"
)
GROUNDING_FAIL = GateVerdict(
    gate="grounding", passed=False, score=1, threshold=0, reason='"smiling" but no face was found'
)


@pytest.fixture(scope="module")
def build_out(label_studio):
    """A build's output folder: manifest, a review split of three held-back rows and a train split of one."""
    video = label_studio.document_root / "corpus" / "video"
    video.mkdir(parents=True)
    clips = {
        "sample_00000001": synth.talking_clip(
            video / "sample_00000001.mp4", "I finally passed the exam!", seconds=2.0
        ),
        "sample_00000002": synth.silent_clip(video / "sample_00000002.mp4"),
        "sample_00000003": synth.silent_clip(video / "sample_00000003.mp4", seconds=1.5),
        "sample_00000004": synth.silent_clip(video / "sample_00000004.mp4", seconds=1.0),
    }
    sha = {name: _sha256(path) for name, path in clips.items()}
    out = label_studio.document_root.parent / "out"
    (out / "data").mkdir(parents=True)
    records = [
        ClipRecord(name=n, path=str(p), sha256=sha[n], bytes=p.stat().st_size, duration=2.0, fps=25.0, has_audio=True)
        for n, p in clips.items()
    ]
    pq.write_table(to_table(records, ClipRecord), out / "manifest.parquet")
    review = [
        _row("sample_00000001", sha["sample_00000001"], ["happy", "excited"], [AV_FAIL, LENGTH_PASS]),
        _row("sample_00000002", sha["sample_00000002"], ["angry"], [AV_FAIL, GROUNDING_FAIL, LENGTH_PASS]),
        _row("sample_00000003", sha["sample_00000003"], ["sad"], [GROUNDING_FAIL], en="", zh="没关系。"),
    ]
    passed = _row("sample_00000004", sha["sample_00000004"], ["calm"], [LENGTH_PASS]).model_copy(
        update={"accepted": True}
    )
    pq.write_table(to_table(review, CoarseRow), out / "data" / "review-00000-of-00001.parquet")
    pq.write_table(to_table([passed], CoarseRow), out / "data" / "train-00000-of-00001.parquet")
    return SimpleNamespace(out=out, clips=clips, sha=sha, rows={r.name: r for r in review})


def _legacy(label_studio) -> httpx.Client:
    return httpx.Client(base_url=label_studio.url, headers={"Authorization": f"Token {LEGACY_TOKEN}"}, timeout=60)


def _project_tasks(label_studio, title: str) -> tuple[dict, list[dict]]:
    with _legacy(label_studio) as http:
        project = next(
            p for p in http.get("/api/projects", params={"title": title}).json()["results"] if p["title"] == title
        )
        tasks = http.get("/api/tasks", params={"project": project["id"], "fields": "all", "page_size": 1000}).json()[
            "tasks"
        ]
    return project, tasks


@pytest.fixture(scope="module")
def pushed(api_key, build_out, label_studio):
    with connect(label_studio.url) as client:
        result = push(build_out.out, client, project=PROJECT)
    project, tasks = _project_tasks(label_studio, PROJECT)
    return SimpleNamespace(result=result, project=project, tasks={t["data"]["name"]: t for t in tasks})


class Reviewer:
    """Label Studio's web UI, as far as a reviewer's clicks reach the server: a logged-in session with CSRF."""

    def __init__(self, url: str, project_id: int) -> None:
        self.http = httpx.Client(base_url=url, timeout=60)
        self.project_id = project_id
        self.http.get("/user/login/")
        login = self.http.post(
            "/user/login/",
            data={"email": USER, "password": PASSWORD, "csrfmiddlewaretoken": self.http.cookies["csrftoken"]},
            headers={"Referer": f"{url}/user/login/"},
        )
        assert login.status_code == 302, login.text[:500]
        self.headers = {"X-CSRFToken": self.http.cookies["csrftoken"], "Referer": f"{url}/projects/{project_id}/data"}

    @staticmethod
    def result(decision: str, labels: str | None = None, note: str | None = None) -> list[dict]:
        items = [
            {
                "id": "d1",
                "from_name": config.DECISION,
                "to_name": "video",
                "type": "choices",
                "origin": "manual",
                "value": {"choices": [decision]},
            }
        ]
        if labels is not None:
            items.append(
                {
                    "id": "l1",
                    "from_name": config.LABELS,
                    "to_name": "video",
                    "type": "textarea",
                    "origin": "manual",
                    "value": {"text": [labels]},
                }
            )
        if note is not None:
            items.append(
                {
                    "id": "n1",
                    "from_name": config.NOTE,
                    "to_name": "video",
                    "type": "textarea",
                    "origin": "manual",
                    "value": {"text": [note]},
                }
            )
        return items

    def submit(self, task_id: int, result: list[dict], *, skip: bool = False) -> dict:
        body = {
            "result": result,
            "was_cancelled": skip,
            "ground_truth": False,
            "lead_time": 12.5,
            "draft_id": 0,
            "parent_prediction": None,
            "parent_annotation": None,
            "project": str(self.project_id),
        }
        done = self.http.post(
            f"/api/tasks/{task_id}/annotations/", params={"project": self.project_id}, json=body, headers=self.headers
        )
        assert done.status_code == 201, done.text[:500]
        return done.json()

    def update(self, annotation_id: int, result: list[dict]) -> None:
        done = self.http.patch(
            f"/api/annotations/{annotation_id}/",
            params={"project": self.project_id},
            json={"result": result, "lead_time": 20.0},
            headers=self.headers,
        )
        assert done.status_code == 200, done.text[:500]


@pytest.fixture(scope="module")
def reviewed(pushed, label_studio):
    """Row 1: rejected at first, then changed to accepted with corrected labels (Update).
    Row 2: accepted by a first annotation, rejected by a later one. Row 3: skipped only: not reviewed."""
    reviewer = Reviewer(label_studio.url, pushed.project["id"])
    first = reviewer.submit(pushed.tasks["sample_00000001"]["id"], Reviewer.result("reject"))
    reviewer.submit(pushed.tasks["sample_00000002"]["id"], Reviewer.result("accept"))
    time.sleep(1.1)  # later annotations are later by the clock, not only by id
    reviewer.update(
        first["id"],
        Reviewer.result(
            "accept", labels="Happy，relieved; happy\n", note="The face is off screen but the voice is clear."
        ),
    )
    reviewer.submit(
        pushed.tasks["sample_00000002"]["id"],
        Reviewer.result("reject", labels="", note="Not the same person speaking."),
    )
    reviewer.submit(pushed.tasks["sample_00000003"]["id"], [], skip=True)
    return reviewer


@pytest.fixture(scope="module")
def pulled(reviewed, build_out, label_studio, api_key):
    done = CliRunner().invoke(
        app, ["review", "pull", str(build_out.out), "--url", label_studio.url, "--project", PROJECT]
    )
    assert done.exit_code == 0, done.output
    return SimpleNamespace(output=done.output, table=pq.read_table(decisions_path(build_out.out)))


# --- push -----------------------------------------------------------------------------------------


def test_push_queues_every_held_back_row_and_no_other(pushed, build_out):
    assert sorted(pushed.tasks) == sorted(build_out.rows)  # the train split's row is not queued
    assert sorted(pushed.result.queued) == sorted(build_out.rows)
    assert pushed.result.already_queued == [] and pushed.result.skipped == {}
    for name, task in pushed.tasks.items():
        assert task["data"]["sha256"] == build_out.sha[name]


def test_a_task_shows_the_clip_clues_description_labels_and_failed_gates(pushed, build_out):
    data = pushed.tasks["sample_00000002"]["data"]
    row = build_out.rows["sample_00000002"]
    assert data["video"] == data["audio"] == "/data/local-files/?d=corpus/video/sample_00000002.mp4"
    for clue in (row.audio_clue.without_subtitle, row.audio_clue.with_subtitle):
        assert clue.clues in data["audio_clues"]
    assert "relieved, happy" in data["audio_clues"]
    for clue in (row.visual_clue.without_subtitle, row.visual_clue.with_subtitle):
        assert clue.clues in data["visual_clues"]
    assert data["description_en"] == row.description_en and data["description_zh"] == row.description_zh
    assert data["labels"] == "angry"
    assert "I finally passed the exam!" in data["subtitle"] and "我终于通过考试了！" in data["subtitle"]
    # Every failed gate with its numbers and reason; a passed gate is not a reason to review.
    assert data["gates"].splitlines() == [
        "av_match: speech with no face on screen (score 0, threshold 0.3)",
        'grounding: "smiling" but no face was found (score 1, threshold 0)',
    ]
    assert data["audio_clues_header"] == "Audio clues (without and with the subtitle)"
    assert (
        data["audio_clues"].startswith("Without the subtitle: ") and "\n\nWith the subtitle: " in data["audio_clues"]
    )
    assert pushed.tasks["sample_00000003"]["data"]["subtitle"] == "ZH: 没关系。"


def test_the_task_list_shows_the_clip_name_first(pushed, label_studio):
    """The Data Manager's columns, as Label Studio's own API gives them to its task list: the data fields
    of the interface's object tags come first, and only those show in the list beside the labeling view."""
    with _legacy(label_studio) as http:
        columns = http.get("/api/dm/columns", params={"project": pushed.project["id"]}).json()["columns"]
    data_columns = [c for c in columns if c.get("parent") == "data"]
    assert data_columns[0]["id"] == "name" and data_columns[0]["title"] == "name"
    assert data_columns[0]["visibility_defaults"] == {"explore": True, "labeling": True}


def test_the_project_asks_for_a_decision_labels_and_a_note(pushed):
    xml = pushed.project["label_config"]
    assert '<Video name="video" value="$video"' in xml and '<Audio name="audio" value="$audio" sync="video"' in xml
    assert f'<Choices name="{config.DECISION}" toName="video" choice="single-radio" required="true"' in xml
    assert f'<TextArea name="{config.LABELS}"' in xml and f'<TextArea name="{config.NOTE}"' in xml
    for field in (
        "$name",
        "$audio_clues_header",
        "$visual_clues_header",
        "$gates",
        "$labels",
        "$audio_clues",
        "$visual_clues",
        "$description_en",
        "$description_zh",
        "$subtitle",
    ):
        assert f'value="{field}"' in xml


def test_label_studio_serves_the_clip_at_the_task_url(pushed, build_out, label_studio):
    task = pushed.tasks["sample_00000001"]
    with _legacy(label_studio) as http:
        whole = http.get(task["data"]["video"])
        assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
        assert whole.content == build_out.clips["sample_00000001"].read_bytes()
        seek = http.get(task["data"]["video"], headers={"Range": "bytes=100-199"})  # the player seeks
        assert seek.status_code == 206 and seek.content == whole.content[100:200]
    assert httpx.get(label_studio.url + task["data"]["video"]).status_code in (401, 403)  # not public


def test_pushing_again_queues_nothing_twice(pushed, build_out, label_studio, api_key):
    done = CliRunner().invoke(
        app, ["review", "push", str(build_out.out), "--url", label_studio.url, "--project", PROJECT]
    )
    assert done.exit_code == 0, done.output
    summary = json.loads(done.output)
    assert summary["queued"] == [] and summary["already_queued"] == 3 and summary["storages_added"] == []
    assert summary["refreshed"] == []  # the tasks already read as this engine writes them
    _, tasks = _project_tasks(label_studio, PROJECT)
    assert sorted(t["data"]["name"] for t in tasks) == sorted(build_out.rows)


def test_a_task_queued_by_an_older_version_is_brought_up_to_date(build_out, label_studio, api_key):
    title = "EMER review (older tasks)"
    with connect(label_studio.url) as client:
        push(build_out.out, client, project=title)
        _, tasks = _project_tasks(label_studio, title)
        [old] = [t for t in tasks if t["data"]["name"] == "sample_00000002"]
        # What an older push wrote: no clue headers, the gate line in its old form.
        stale = {k: v for k, v in old["data"].items() if not k.endswith("_header")}
        stale["gates"] = "av_match (score 0, threshold 0.3): speech with no face on screen"
        with _legacy(label_studio) as http:
            assert http.patch(f"/api/tasks/{old['id']}", json={"data": stale}).status_code == 200
        again = push(build_out.out, client, project=title)
    assert again.queued == [] and again.refreshed == ["sample_00000002"] and len(again.already_queued) == 3
    _, tasks = _project_tasks(label_studio, title)
    [now] = [t for t in tasks if t["data"]["name"] == "sample_00000002"]
    assert now["id"] == old["id"] and now["data"] == old["data"]  # the same task, its texts as pushed now


def test_a_clip_whose_content_changed_is_queued_again(build_out, label_studio, api_key, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(build_out.out, out)
    title = "EMER review (changed clip)"
    with connect(label_studio.url) as client:
        assert len(push(out, client, project=title).queued) == 3
        # Row 3's clip is replaced: the next build has a new hash for it, in the manifest and on the row.
        new_sha = "f" * 64
        manifest = [
            r | {"sha256": new_sha} if r["name"] == "sample_00000003" else r
            for r in pq.read_table(out / "manifest.parquet").to_pylist()
        ]
        pq.write_table(
            to_table([ClipRecord.model_validate(r) for r in manifest], ClipRecord), out / "manifest.parquet"
        )
        rows = [
            r.model_copy(update={"sha256": new_sha}) if r.name == "sample_00000003" else r
            for r in build_out.rows.values()
        ]
        pq.write_table(to_table(rows, CoarseRow), out / "data" / "review-00000-of-00001.parquet")
        again = push(out, client, project=title)
    assert again.queued == ["sample_00000003"] and len(again.already_queued) == 2
    _, tasks = _project_tasks(label_studio, title)
    assert sorted(
        (t["data"]["name"], t["data"]["sha256"]) for t in tasks if t["data"]["name"] == "sample_00000003"
    ) == sorted([("sample_00000003", build_out.sha["sample_00000003"]), ("sample_00000003", new_sha)])


# --- pull -----------------------------------------------------------------------------------------


def test_pull_imports_exactly_the_reviewed_rows(pulled, pushed, build_out):
    assert pulled.table.schema.equals(arrow_schema(ReviewDecision))
    got = {d["name"]: ReviewDecision.model_validate(d) for d in pulled.table.to_pylist()}
    assert sorted(got) == ["sample_00000001", "sample_00000002"]  # row 3 was skipped, never decided
    assert json.loads(pulled.output) == {
        "decisions": 2,
        "accepted": 1,
        "rejected": 1,
        "file": str(decisions_path(build_out.out)),
    }

    accepted = got["sample_00000001"]
    assert accepted.accepted is True
    assert accepted.labels == ["happy", "relieved"]  # corrected: split, trimmed, lower-cased, once each
    assert accepted.note == "The face is off screen but the voice is clear."
    assert accepted.sha256 == build_out.sha["sample_00000001"]
    assert accepted.task_id == pushed.tasks["sample_00000001"]["id"]
    assert accepted.reviewer == USER
    assert datetime.fromisoformat(accepted.reviewed_at).tzinfo is not None

    rejected = got["sample_00000002"]
    assert rejected.accepted is False and rejected.labels is None  # empty labels keep the model's
    assert rejected.note == "Not the same person speaking."


def test_the_latest_annotation_of_a_task_decides(pulled):
    got = {d["name"]: d for d in pulled.table.to_pylist()}
    assert got["sample_00000001"]["accepted"] is True  # first rejected, then updated to accepted
    assert got["sample_00000002"]["accepted"] is False  # a first annotation accepted, a later one rejected


def test_load_decisions_gives_them_by_name_while_the_clip_is_unchanged(pulled, build_out):
    decisions = load_decisions(build_out.out)
    assert sorted(decisions) == ["sample_00000001", "sample_00000002"]
    assert decisions["sample_00000001"].labels == ["happy", "relieved"]

    current = dict(build_out.sha)
    assert sorted(load_decisions(build_out.out, current)) == ["sample_00000001", "sample_00000002"]
    assert applicable(decisions, "sample_00000001", current["sample_00000001"]) == decisions["sample_00000001"]

    current["sample_00000001"] = "0" * 64  # the clip changed since the review
    assert sorted(load_decisions(build_out.out, current)) == ["sample_00000002"]
    assert applicable(decisions, "sample_00000001", current["sample_00000001"]) is None
    assert applicable(decisions, "sample_00000003", build_out.sha["sample_00000003"]) is None


def test_load_decisions_before_any_pull_is_empty(tmp_path):
    assert load_decisions(tmp_path) == {}


def test_the_newest_decision_of_a_clip_reviewed_twice_wins(tmp_path):
    old = ReviewDecision(name="a", sha256="1" * 64, accepted=False, reviewed_at="2026-01-01T10:00:00+00:00", task_id=1)
    new = ReviewDecision(name="a", sha256="2" * 64, accepted=True, reviewed_at="2026-02-01T10:00:00+01:00", task_id=7)
    write_decisions([new, old], tmp_path)
    assert load_decisions(tmp_path)["a"] == new
    assert load_decisions(tmp_path, {"a": "1" * 64})["a"] == old  # the content the build has now


# --- the key --------------------------------------------------------------------------------------


def test_the_api_key_is_never_logged_printed_or_written(build_out, label_studio, api_key, caplog, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(build_out.out, out)
    caplog.set_level(logging.DEBUG)
    runner = CliRunner()
    outputs = []
    for verb in ("push", "pull"):
        done = runner.invoke(
            app, ["review", verb, str(out), "--url", label_studio.url, "--project", "EMER review (key hygiene)"]
        )
        assert done.exit_code == 0, done.output
        outputs.append(done.output)
    assert json.loads(outputs[0])["queued"]  # it did talk to Label Studio
    signature = api_key.rsplit(".", 1)[-1]
    for text in [caplog.text, *outputs, repr(connect(label_studio.url))]:
        assert api_key not in text and signature not in text and "Bearer" not in text
    for path in out.rglob("*"):
        if path.is_file():
            assert api_key.encode() not in path.read_bytes() and signature.encode() not in path.read_bytes(), path


def test_without_a_key_or_with_a_refused_one_nothing_is_sent(build_out, label_studio, monkeypatch):
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    done = CliRunner().invoke(app, ["review", "push", str(build_out.out), "--url", label_studio.url])
    assert done.exit_code == 2 and API_KEY_ENV in done.output and "Traceback" not in done.output

    wrong = "not-a-token-" + os.urandom(8).hex()
    monkeypatch.setenv(API_KEY_ENV, wrong)
    done = CliRunner().invoke(app, ["review", "pull", str(build_out.out), "--url", label_studio.url])
    assert done.exit_code == 2 and "refused" in done.output and wrong not in done.output
    with pytest.raises(ReviewError, match="refused the personal access token"):
        LabelStudio(label_studio.url, label_studio.pat[:-4] + "AAAA")  # a token with a forged signature


def test_a_legacy_token_works_too(label_studio):
    with LabelStudio(label_studio.url, LEGACY_TOKEN) as client:
        assert client.version() == _version(label_studio_binary())
        assert USER in client.user_emails().values()  # an authenticated call (/api/version is public)


def test_an_expired_access_token_is_renewed_from_the_personal_access_token(label_studio):
    with LabelStudio(label_studio.url, label_studio.pat) as client:
        client._http.headers["Authorization"] = "Bearer expired"  # what an access token is after five minutes
        assert client.project_id("no such project") is None


# --- the texts a reviewer reads and writes --------------------------------------------------------


def test_reviewer_labels_are_split_trimmed_and_lower_cased():
    assert parse_labels("Happy, relieved") == ["happy", "relieved"]
    assert parse_labels("开心，放松、 surprised ;\nSURPRISED") == ["开心", "放松", "surprised"]
    assert parse_labels(" \n , ") is None


def test_only_failed_gates_are_reasons_to_review():
    assert gate_text([LENGTH_PASS]) == "—"
    assert (
        gate_text([GateVerdict(gate="validity", passed=False, reason="CJK in the English text")])
        == "validity: CJK in the English text"
    )
