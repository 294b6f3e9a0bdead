"""The connection to a Label Studio server: its URL, and the API key from LABEL_STUDIO_API_KEY only.

Plain httpx against Label Studio's documented REST API, not the official `label-studio-sdk`: SDK 2.1
pins opencv-python-headless<4.13 (which in turn needs numpy<2.3, a downgrade of the engine's numpy)
and brings nltk, black, Faker and a code generator into the engine's environment, for the seven
endpoints used here. Label Studio itself runs from its own environment (.venv-review).

Two kinds of key work, as in Label Studio 1.23: a personal access token (a JWT refresh token, what
Account & Settings hands out by default) is exchanged at /api/token/refresh/ for a short-lived access
token sent as `Bearer`; a legacy token is sent as `Token`. The key is never logged, never put in an
exception message and never written anywhere; `repr` does not show it.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import httpx

API_KEY_ENV = "LABEL_STUDIO_API_KEY"
URL_ENV = "LABEL_STUDIO_URL"
DEFAULT_URL = "http://localhost:8080"
PAGE_SIZE = 100

log = logging.getLogger(__name__)


class ReviewError(RuntimeError):
    """Label Studio cannot do what was asked; the message says why (it never carries the API key)."""


def api_key() -> str:
    """The API key, from the environment only."""
    key = os.environ.get(API_KEY_ENV, "").strip()
    if not key:
        raise ReviewError(
            f"{API_KEY_ENV} is not set: copy a personal access token (or legacy token) from Label Studio's "
            f"Account & Settings and export it (the key is read from {API_KEY_ENV} only, never from the command line)"
        )
    return key


def _jwt_type(token: str) -> str | None:
    """`refresh` or `access` for a Label Studio JWT, None for anything else (a legacy token)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    return payload.get("token_type") if isinstance(payload, dict) else None


class LabelStudio:
    """A session with one Label Studio server. Use `connect(url)`; close it (or use `with`)."""

    def __init__(self, url: str, key: str, *, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self._key = key
        self._kind = _jwt_type(key)
        self._http = httpx.Client(base_url=self.url, timeout=timeout, follow_redirects=False)
        self._authorize()

    def __repr__(self) -> str:
        return f"LabelStudio({self.url!r})"

    def __enter__(self) -> LabelStudio:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def _authorize(self) -> None:
        if self._kind != "refresh":
            self._http.headers["Authorization"] = f"{'Bearer' if self._kind else 'Token'} {self._key}"
            return
        self._http.headers.pop("Authorization", None)  # an expired access token would fail the exchange itself
        try:
            response = self._http.post("/api/token/refresh/", json={"refresh": self._key})
        except httpx.HTTPError as exc:
            raise ReviewError(f"cannot reach Label Studio at {self.url}: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise ReviewError(
                f"Label Studio at {self.url} refused the personal access token in {API_KEY_ENV} "
                f"(HTTP {response.status_code}): is it revoked, or from another server?"
            )
        self._http.headers["Authorization"] = f"Bearer {response.json()['access']}"

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One API call; its JSON answer (None for an empty body). An expired access token is renewed once."""
        for attempt in (0, 1):
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.HTTPError as exc:
                raise ReviewError(
                    f"cannot reach Label Studio at {self.url}: {type(exc).__name__}: {self._scrub(str(exc))}"
                ) from None
            if response.status_code == 401 and self._kind == "refresh" and attempt == 0:
                self._authorize()
                continue
            break
        if response.status_code == 401:
            raise ReviewError(f"Label Studio at {self.url} refused the API key in {API_KEY_ENV} (HTTP 401)")
        if response.status_code >= 400:
            raise ReviewError(f"{method} {path}: HTTP {response.status_code}: {self._scrub(response.text[:1000])}")
        return response.json() if response.content else None

    # --- the endpoints the review loop uses ---------------------------------------------------

    def version(self) -> str:
        return self.request("GET", "/api/version")["release"]

    def project_id(self, title: str) -> int | None:
        page = 1
        while True:
            answer = self.request(
                "GET", "/api/projects", params={"title": title, "page": page, "page_size": PAGE_SIZE}
            )
            for project in answer["results"]:
                if project["title"] == title:
                    return project["id"]
            if not answer.get("next"):
                return None
            page += 1

    def ensure_project(self, title: str, label_config: str, description: str = "") -> int:
        """The project with this title, created if missing; its labeling interface brought up to date."""
        project_id = self.project_id(title)
        if project_id is None:
            project_id = self.request(
                "POST",
                "/api/projects",
                json={"title": title, "label_config": label_config, "description": description},
            )["id"]
            log.info("created Label Studio project %r (id %d)", title, project_id)
            return project_id
        current = self.request("GET", f"/api/projects/{project_id}")
        if current.get("label_config") != label_config:
            self.request("PATCH", f"/api/projects/{project_id}", json={"label_config": label_config})
            log.info("updated the labeling interface of project %r (id %d)", title, project_id)
        return project_id

    def local_storages(self, project_id: int) -> list[dict]:
        return self.request("GET", "/api/storages/localfiles", params={"project": project_id})

    def add_local_storage(self, project_id: int, path: str, title: str, description: str) -> dict:
        # regex_filter matches no file name: a "Sync" pressed in the UI imports nothing; the storage only
        # grants the project's users access to the files under `path` through /data/local-files/.
        return self.request(
            "POST",
            "/api/storages/localfiles",
            json={
                "project": project_id,
                "path": path,
                "title": title,
                "description": description,
                "use_blob_urls": True,
                "regex_filter": "^$",
            },
        )

    def tasks(self, project_id: int) -> Iterator[dict]:
        """Every task of the project with its data and annotations (the Data Manager's task list, all fields)."""
        page, seen = 1, 0
        while True:
            try:
                answer = self.request(
                    "GET",
                    "/api/tasks",
                    params={"project": project_id, "fields": "all", "page": page, "page_size": PAGE_SIZE},
                )
            except ReviewError as exc:
                if "HTTP 404" in str(exc):  # past the last page
                    return
                raise
            batch = answer.get("tasks", [])
            yield from batch
            seen += len(batch)
            if not batch or seen >= answer.get("total", 0):
                return
            page += 1

    def import_tasks(self, project_id: int, tasks: list[dict]) -> int:
        if not tasks:
            return 0
        return self.request("POST", f"/api/projects/{project_id}/import", json=tasks)["task_count"]

    def user_emails(self) -> dict[int, str]:
        """User id -> e-mail, for naming reviewers; empty when the key may not list users."""
        try:
            return {
                u["id"]: u.get("email") or u.get("username") or str(u["id"]) for u in self.request("GET", "/api/users")
            }
        except ReviewError as exc:
            log.warning("cannot list Label Studio users (%s); reviewers are named by id", exc)
            return {}


def connect(url: str | None = None, *, timeout: float = 60.0) -> LabelStudio:
    """A session with the server at `url` (default LABEL_STUDIO_URL, else localhost:8080), keyed from
    LABEL_STUDIO_API_KEY."""
    return LabelStudio(url or os.environ.get(URL_ENV) or DEFAULT_URL, api_key(), timeout=timeout)
