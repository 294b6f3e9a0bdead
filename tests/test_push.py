"""`push`: the gated rows and the card go to the Hub, privately; the failed split and the token do not.

There is no Hub here. A small HTTP server on 127.0.0.1 plays the endpoints huggingface_hub 2.4 calls
for `create_repo` + `dataset_info` + `upload_folder`, read from its source:

- POST /api/repos/create                          (JSON: name, organization, type, visibility)
- GET  /api/datasets/{org}/{name}                 (dataset_info: the repo's `private` flag)
- POST /api/validate-yaml                         (the card's YAML, checked before anything is hashed)
- GET  /api/datasets/{org}/{name}/tree/{rev}      (list_repo_files, for `delete_patterns`)
- POST /api/datasets/{org}/{name}/preupload/{rev} (upload mode per file: this fake says "regular")
- POST /api/datasets/{org}/{name}/commit/{rev}    (NDJSON: a header line, then one line per file,
                                                   regular files inline as base64, or deletions)

Because the fake answers "regular" for every file, nothing goes through LFS/Xet storage (the real Hub
sends Parquet there; that transfer is huggingface_hub's own and is not exercised here). The server
records every request with its headers and applies commits to an in-memory repo, so the tests check
what a Hub would end up holding. Test data: Parquet shards written directly from `CoarseRow`s and a
card from the export stage's own `dataset_card`; no vLLM, no build flow.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import huggingface_hub.constants
import pyarrow.parquet as pq
import pytest
import yaml
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogWorker
from typer.testing import CliRunner

from flows import publish
from flows.cli import app
from flows.push_coarse import push_coarse  # Prefect sets up its logging at import: here, not under a test's capsys
from schemas.arrow import to_table
from schemas.config import TiersConfig
from schemas.gates import GateVerdict
from schemas.row import CoarseRow, ModelCall, StageError
from stages import export
from stages.tiers import tier_summary

TOKEN = f"hf_test{uuid.uuid4().hex}"  # unique: any occurrence of it anywhere is a leak
REPO = "emer-lab/mer-coarse"
LINEUP = {
    "audio_clue": {"models": ["tiny-audio"], "prompt": "audio_clue@3", "media": "input_audio"},
    "visual_clue": {"models": ["tiny-text"], "prompt": "visual_clue@2", "media": "none"},
    "disambiguation": {"models": ["tiny-text"], "prompt": "disambiguation@1", "media": "none"},
    "translation": {"models": ["tiny-text"], "prompt": "translation@1", "media": "none"},
    "labels": {"models": ["tiny-text"], "prompt": "labels@4", "media": "none"},
}
TRAIN = ["sample_00000001", "sample_00000002", "samplenew_00004251"]
FAILED = ["rejected_00000012", "errored_00000013"]
PLOTS = ["plots/durations.png", "plots/labels.png", "plots/tiers.png"]  # the published card's plots
# The build's plus tier: descriptions of at least 8 words (only samplenew_00004251's is that long).
PLUS = TiersConfig.model_validate({"plus": {"min_score": {"length": 8}, "max_score": {}}})


# ------------------------------------------------------------------------------------ fake Hub


@dataclass
class Request:
    method: str
    path: str
    query: dict
    headers: dict  # lower-case names
    body: bytes


@dataclass
class Repo:
    private: bool
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[dict] = field(default_factory=list)  # {"header": ..., "ops": [...]}
    sha: str = "0" * 40


class FakeHub:
    def __init__(self, token: str) -> None:
        self.token, self.requests, self.repos = token, [], {}
        self.lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                hub.handle(self)

            def do_POST(self) -> None:
                hub.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- plumbing

    @staticmethod
    def _body(h: BaseHTTPRequestHandler) -> bytes:
        if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while (size := int(h.rfile.readline().strip(), 16)) > 0:
                data += h.rfile.read(size)
                h.rfile.readline()
            h.rfile.readline()
            return data
        return h.rfile.read(int(h.headers.get("Content-Length") or 0))

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, payload, error_code: str | None = None) -> None:
        body = json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        if error_code:
            h.send_header("X-Error-Code", error_code)
        h.end_headers()
        h.wfile.write(body)

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        url = urlsplit(h.path)
        req = Request(
            h.command,
            unquote(url.path),
            parse_qs(url.query),
            {k.lower(): v for k, v in h.headers.items()},
            self._body(h),
        )
        with self.lock:
            self.requests.append(req)
            status, payload, code = self.route(req)
        self._send(h, status, payload, code)

    # -- the Hub

    def route(self, req: Request):
        if req.path == "/api/agent-harnesses":  # huggingface_hub's user-agent registry: not the Hub API we play
            return 404, {"error": "not here"}, None
        if req.headers.get("authorization") != f"Bearer {self.token}":
            return 401, {"error": "Invalid credentials in Authorization header"}, None
        if req.method == "POST" and req.path == "/api/repos/create":
            body = json.loads(req.body)
            repo_id = f"{body['organization']}/{body['name']}"
            if body.get("type") != "dataset":
                return 400, {"error": "this fake hosts datasets only"}, None
            if repo_id in self.repos:
                return (
                    409,
                    {"error": "You already created this dataset repo", "url": f"{self.url}/datasets/{repo_id}"},
                    None,
                )
            self.repos[repo_id] = Repo(private=body.get("visibility") == "private")
            return 200, {"url": f"{self.url}/datasets/{repo_id}", "name": repo_id}, None
        if req.method == "POST" and req.path == "/api/validate-yaml":
            content = json.loads(req.body)["content"]
            match = re.match(r"---\n(.*?)\n---\n", content, flags=re.S)
            try:
                yaml.safe_load(match.group(1)) if match else None
            except yaml.YAMLError as exc:
                return 400, {"errors": [{"message": str(exc)}]}, None
            return 200, {"errors": [], "warnings": []}, None
        m = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)(?:/(preupload|commit|tree)/([^/]+)(/.*)?)?", req.path)
        if not m:
            return 404, {"error": f"no route {req.method} {req.path}"}, None
        repo_id, action, _revision, _sub = m.groups()
        repo = self.repos.get(repo_id)
        if repo is None:
            return 404, {"error": "Repository not found"}, "RepoNotFound"
        if req.method == "GET" and action is None:
            return (
                200,
                {
                    "id": repo_id,
                    "private": repo.private,
                    "sha": repo.sha,
                    "siblings": [{"rfilename": p} for p in sorted(repo.files)],
                },
                None,
            )
        if req.method == "GET" and action == "tree":
            return (
                200,
                [
                    {"type": "file", "path": p, "oid": hashlib.sha1(c).hexdigest(), "size": len(c)}
                    for p, c in sorted(repo.files.items())
                ],
                None,
            )
        if req.method == "POST" and action == "preupload":
            files = json.loads(req.body)["files"]
            return (
                200,
                {
                    "files": [
                        {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None} for f in files
                    ]
                },
                None,
            )
        if req.method == "POST" and action == "commit":
            assert req.headers.get("content-type") == "application/x-ndjson"
            lines = [json.loads(line) for line in req.body.splitlines() if line.strip()]
            header, ops = lines[0], lines[1:]
            assert header["key"] == "header"
            for op in ops:
                if op["key"] == "file":
                    repo.files[op["value"]["path"]] = base64.b64decode(op["value"]["content"])
                elif op["key"] == "deletedFile":
                    repo.files.pop(op["value"]["path"], None)
                else:
                    return 400, {"error": f"this fake takes regular files and deletions only, not {op['key']}"}, None
            repo.commits.append({"header": header["value"], "ops": ops})
            repo.sha = hashlib.sha1(req.body).hexdigest()
            return (
                200,
                {
                    "success": True,
                    "commitOid": repo.sha,
                    "commitUrl": f"{self.url}/datasets/{repo_id}/commit/{repo.sha}",
                    "pullRequestUrl": None,
                },
                None,
            )
        return 404, {"error": f"no route {req.method} {req.path}"}, None

    # -- what the tests read

    def calls(self, method: str, pattern: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and re.fullmatch(pattern, r.path)]


@pytest.fixture
def hub(monkeypatch):
    server = FakeHub(TOKEN)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    # Every request huggingface_hub makes stays on 127.0.0.1 (its user-agent registry fetch included),
    # and a CI that exports HF_HUB_OFFLINE=1 does not block the fake.
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", server.url)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    yield server
    server.close()


# ------------------------------------------------------------------------------------ a built OUT


def row(name: str, complete: bool) -> CoarseRow:
    call = ModelCall(
        stage="labels",
        prompt_id="labels",
        prompt_version="4",
        model="tiny-text",
        server="http://127.0.0.1:8000/v1",
        sampling='{"temperature":0}',
        config_hash="c0ffee",
    )
    if complete:
        description = f"{name}: the speaker sounds happy." + (" She laughs at the end." * name.startswith("samplenew"))
        words = len(description.split())
        return CoarseRow(
            name=name,
            sha256="ab" * 32,
            duration=2.5,
            clip_status="ok",
            subtitle_english="I passed the exam!",
            description_en=description,
            gates=[GateVerdict(gate="length", passed=True, score=words, threshold=15, reason=f"{words} words")],
            description_zh="说话人听起来很开心。",
            labels=["happy", "relieved"],
            complete=True,
            accepted=True,
            provenance=[call],
        )
    return CoarseRow(
        name=name,
        clip_status="invalid",
        clip_error="not a video",
        complete=False,
        errors=[StageError(stage="ingest", message="not a video")],
    )


def build_out(out: Path, train_shards: int = 1, *, card_extra: str = "") -> Path:
    """What build-coarse leaves in OUT, written directly: shards, card, build.json, and local-only parts."""
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    for stale in data.glob("*.parquet"):
        stale.unlink()
    parts = {"train": [], "failed": []}
    per = -(-len(TRAIN) // train_shards)
    for i in range(train_shards):
        path = data / f"train-{i:05d}-of-{train_shards:05d}.parquet"
        pq.write_table(to_table([row(n, True) for n in TRAIN[i * per : (i + 1) * per]], CoarseRow), path)
        parts["train"].append(path)
    path = data / "failed-00000-of-00001.parquet"
    pq.write_table(to_table([row(n, False) for n in FAILED], CoarseRow), path)
    parts["failed"].append(path)
    export.seal_shards(data)  # as the export seals what it wrote, last
    summary = export.summarise(parts) | {"tiers": tier_summary(parts["train"], PLUS)}
    (out / "README.md").write_text(
        export.dataset_card(summary, LINEUP, "/corpora/mer2025", "f1ngerpr1nt") + card_extra, encoding="utf-8"
    )
    (out / "build.json").write_text(
        json.dumps(summary | {"model_calls": 42, "clips": 5, "metrics": {"emer_accuracy": 0.61}})
    )
    for local in ("manifest.parquet", "hf/dataset_dict.json", ".state/checkpoint.sqlite"):
        (out / local).parent.mkdir(parents=True, exist_ok=True)
        (out / local).write_bytes(b"local only")
    return out


def names_in(parquet: bytes) -> list[str]:
    return pq.read_table(io.BytesIO(parquet)).column("name").to_pylist()


def assert_no_token(*texts) -> None:
    for text in texts:
        assert TOKEN not in (text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text))


# ------------------------------------------------------------------------------------ tests


def test_push_uploads_gated_rows_and_card_to_a_private_repo(hub, tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="huggingface_hub")
    out = build_out(tmp_path / "out")

    result = publish.push(out, REPO, endpoint=hub.url)

    # The repo: created as a private dataset, then checked to be private before anything was sent.
    [create] = hub.calls("POST", "/api/repos/create")
    assert json.loads(create.body) == {
        "name": "mer-coarse",
        "organization": "emer-lab",
        "visibility": "private",
        "type": "dataset",
    }
    assert hub.repos[REPO].private and result["private"] is True
    order = [r.path for r in hub.requests if r.path != "/api/agent-harnesses"]
    assert (
        order.index("/api/repos/create")
        < order.index(f"/api/datasets/{REPO}")
        < order.index(f"/api/datasets/{REPO}/commit/main")
    )

    # One commit, with the train shard and the card only: no failed split, nothing else from OUT.
    [commit] = hub.repos[REPO].commits
    committed = {op["value"]["path"] for op in commit["ops"]}
    assert committed == {"README.md", "data/train-00000-of-00001.parquet", *PLOTS} == set(hub.repos[REPO].files)
    assert result["files"] == sorted(committed) and result["rows"] == 3 and result["held_back"] == {"failed": 2}
    assert not any("failed" in path for path in committed)
    shard = hub.repos[REPO].files["data/train-00000-of-00001.parquet"]
    assert shard == (out / "data" / "train-00000-of-00001.parquet").read_bytes()
    assert names_in(shard) == TRAIN
    assert all(pq.read_table(io.BytesIO(shard)).column("complete").to_pylist())
    for r in hub.requests:  # no request carries a failed row or the failed split's path
        assert b"data/failed" not in r.body and not any(n.encode() in r.body for n in FAILED)

    # The card: YAML lists the train split only; line-up, prompt versions, gate, metrics and licence kept.
    card = hub.repos[REPO].files["README.md"].decode()
    assert card == (out / ".push" / "README.md").read_text()
    meta = yaml.safe_load(re.match(r"---\n(.*?)\n---\n", card, flags=re.S).group(1))
    assert meta["configs"] == [
        {"config_name": "coarse", "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}
    ]
    assert meta["license"] == "other" and meta["license_name"] == "mer-eula"
    for role, v in LINEUP.items():
        assert f"| {role} | {v['models'][0]} | {v['prompt']} | {v['media']} |" in card
    assert "| coarse | train | 3 |" in card and "| failed |" not in card
    assert "3 of 5 rows passed (60.0%)" in card and "`failed` (2 rows)" in card
    assert "| emer_accuracy | 0.61 |" in card
    assert "MER EULA (academic use only" in card
    [validated] = hub.calls("POST", "/api/validate-yaml")
    assert json.loads(validated.body)["content"] == card

    # The token: in the Authorization header of every Hub API call, and nowhere else.
    api_calls = [r for r in hub.requests if r.path != "/api/agent-harnesses"]
    assert len(api_calls) >= 5 and all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in api_calls)
    for r in hub.requests:
        assert_no_token(r.body, r.path, r.query, {k: v for k, v in r.headers.items() if k != "authorization"})
    staged = sorted(p for p in (out / ".push").rglob("*") if p.is_file())
    assert [p.relative_to(out / ".push").as_posix() for p in staged] == sorted(committed)
    captured = capsys.readouterr()
    assert_no_token(
        caplog.text,
        captured.out,
        captured.err,
        json.dumps(result),
        card,
        *(p.read_bytes() for p in staged),
        *hub.repos[REPO].files.values(),
        json.dumps(commit["header"]),
    )
    assert "pushed 3 gated rows" in caplog.text  # the logs were captured (and checked) at all


def test_a_later_push_replaces_old_shards_and_keeps_the_repo(hub, tmp_path):
    out = build_out(tmp_path / "out", train_shards=2)
    publish.push(out, REPO, endpoint=hub.url)
    assert set(hub.repos[REPO].files) == {
        "README.md",
        "data/train-00000-of-00002.parquet",
        "data/train-00001-of-00002.parquet",
        *PLOTS,
    }

    build_out(out, train_shards=1)  # the next build re-cuts the shards
    publish.push(out, REPO, endpoint=hub.url)
    assert len(hub.calls("POST", "/api/repos/create")) == 2  # exist_ok: the 409 is fine
    second = hub.repos[REPO].commits[-1]["ops"]
    assert {op["value"]["path"] for op in second if op["key"] == "deletedFile"} == {
        "data/train-00000-of-00002.parquet",
        "data/train-00001-of-00002.parquet",
    }
    assert set(hub.repos[REPO].files) == {"README.md", "data/train-00000-of-00001.parquet", *PLOTS}
    assert names_in(hub.repos[REPO].files["data/train-00000-of-00001.parquet"]) == TRAIN


def test_each_tier_is_its_own_config_and_a_later_push_holds_the_tiers_it_names(hub, tmp_path):
    out = build_out(tmp_path / "out")
    result = publish.push(out, REPO, endpoint=hub.url, tiers=("coarse", "plus"))
    files = hub.repos[REPO].files
    assert set(files) == {
        "README.md",
        "data/train-00000-of-00001.parquet",
        "plus/train-00000-of-00001.parquet",
        *PLOTS,
    }
    assert names_in(files["plus/train-00000-of-00001.parquet"]) == ["samplenew_00004251"]  # the build's thresholds
    assert result["tiers"] == {"coarse": 3, "plus": 1}
    meta = yaml.safe_load(re.match(r"---\n(.*?)\n---\n", files["README.md"].decode(), flags=re.S).group(1))
    assert meta["configs"] == [
        {"config_name": "coarse", "default": True, "data_files": [{"split": "train", "path": "data/train-*.parquet"}]},
        {"config_name": "plus", "data_files": [{"split": "train", "path": "plus/train-*.parquet"}]},
    ]

    publish.push(out, REPO, endpoint=hub.url)  # the coarse tier alone: the repo no longer holds plus
    assert set(hub.repos[REPO].files) == {"README.md", "data/train-00000-of-00001.parquet", *PLOTS}
    card = hub.repos[REPO].files["README.md"].decode()
    assert "plus/train" not in card.split("\n---\n")[0]


def test_refuses_an_existing_public_repo_unless_public_is_asked(hub, tmp_path):
    out = build_out(tmp_path / "out")
    hub.repos[REPO] = Repo(private=False)
    with pytest.raises(publish.PushError, match="already exists and is public"):
        publish.push(out, REPO, endpoint=hub.url)
    assert not hub.calls("POST", r".*/(preupload|commit)/main") and not hub.repos[REPO].files

    result = publish.push(out, REPO, private=False, endpoint=hub.url)
    assert result["private"] is False and set(hub.repos[REPO].files) == {
        "README.md",
        "data/train-00000-of-00001.parquet",
        *PLOTS,
    }
    create = hub.calls("POST", "/api/repos/create")[-1]
    assert json.loads(create.body)["visibility"] == "public"


def test_no_token_fails_before_anything_is_staged_or_sent(hub, tmp_path, monkeypatch):
    out = build_out(tmp_path / "out")
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(publish.PushError, match="HF_TOKEN is not set"):
        publish.push(out, REPO, endpoint=hub.url)
    result = CliRunner().invoke(app, ["push", str(out), "--repo", REPO, "--endpoint", hub.url])
    assert result.exit_code == 2 and "HF_TOKEN is not set" in result.output
    assert hub.requests == [] and not (out / ".push").exists()


def test_cli_takes_no_token_and_dry_run_stages_without_sending(hub, tmp_path):
    out = build_out(tmp_path / "out")
    help_text = CliRunner().invoke(app, ["push", "--help"], terminal_width=200).output
    assert "--repo" in help_text and "--public" in help_text and "--token" not in help_text
    assert (
        CliRunner().invoke(app, ["push", str(out), "--repo", REPO, "--token", TOKEN]).exit_code == 2
    )  # no such option

    result = CliRunner().invoke(app, ["push", str(out), "--repo", REPO, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["files"] == ["README.md", "data/train-00000-of-00001.parquet", *PLOTS]
    result = CliRunner().invoke(app, ["push", str(out), "--repo", REPO, "--dry-run", "--tier", "plus"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["files"] == ["README.md", *PLOTS, "plus/train-00000-of-00001.parquet"]
    result = CliRunner().invoke(app, ["push", str(out), "--repo", REPO, "--dry-run", "--tier", "gold"])
    assert result.exit_code == 2 and "choose --tier from coarse, plus" in result.output
    assert hub.requests == []


def test_refuses_a_train_shard_with_rows_that_did_not_pass_the_gate(hub, tmp_path):
    out = build_out(tmp_path / "out")
    pq.write_table(
        to_table([row("sample_00000001", True), row("sneaked_in", False)], CoarseRow),
        out / "data" / "train-00000-of-00001.parquet",
    )
    export.seal_shards(out / "data")
    with pytest.raises(publish.PushError, match="did not pass the gate"):
        publish.push(out, REPO, endpoint=hub.url)
    assert hub.requests == []


def test_refuses_to_upload_files_that_contain_the_token(hub, tmp_path):
    out = build_out(tmp_path / "out", card_extra=f"\nSomeone pasted {TOKEN} here.\n")
    with pytest.raises(publish.PushError, match="README.md contains the HF_TOKEN token") as err:
        publish.push(out, REPO, endpoint=hub.url)
    assert TOKEN not in str(err.value)
    assert hub.requests == []


def test_push_coarse_flow(hub, tmp_path, caplog, capsys, monkeypatch):
    caplog.set_level(logging.DEBUG, logger="huggingface_hub")
    out = build_out(tmp_path / "out")
    monkeypatch.setenv("HF_ENDPOINT", hub.url)  # the endpoint through the environment this time, not a parameter
    state = push_coarse(out_dir=str(out), repo_id=REPO, return_state=True)
    result = state.result()
    assert result["rows"] == 3 and result["private"] is True
    assert set(hub.repos[REPO].files) == {"README.md", "data/train-00000-of-00001.parquet", *PLOTS}
    assert all(
        r.headers["authorization"] == f"Bearer {TOKEN}" for r in hub.requests if r.path != "/api/agent-harnesses"
    )

    APILogWorker.drain_all(timeout=30)
    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    assert "token" not in json.dumps(run.parameters).lower()
    assert any("pushed" in log.message for log in logs)
    [artifact] = [a for a in artifacts if a.key == "push-coarse"]
    assert (
        REPO in artifact.data
        and "data/train-00000-of-00001.parquet" in artifact.data
        and "failed-" not in artifact.data
    )
    captured = capsys.readouterr()
    assert_no_token(
        json.dumps(run.parameters),
        *(log.message for log in logs),
        *(a.data for a in artifacts),
        caplog.text,
        captured.out,
        captured.err,
        json.dumps(result),
    )


def test_cli_push_runs_the_flow(hub, tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="huggingface_hub")
    out = build_out(tmp_path / "out")
    result = CliRunner().invoke(app, ["push", str(out), "--repo", REPO, "--endpoint", hub.url])
    APILogWorker.drain_all(timeout=30)  # send the run's logs while the local Prefect server is still up
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["files"] == ["README.md", "data/train-00000-of-00001.parquet", *PLOTS]
    assert hub.repos[REPO].private and set(hub.repos[REPO].files) == {
        "README.md",
        "data/train-00000-of-00001.parquet",
        *PLOTS,
    }
    assert_no_token(result.output, caplog.text)
