"""One async client layer on the `openai` package, shared by every model role.

Transport retries (5xx, timeouts, connection errors, with exponential backoff) are the `openai`
client's own; this layer adds what it lacks: least-loaded dispatch over a role's endpoints, a cap on
requests in flight per endpoint, structured outputs validated against the reply model, and a couple
of re-asks when a reply is cut off or invalid. A failure is returned as a value, never raised, so a
bad item cannot poison its batch.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from typing import Generic, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import openai
from openai.types.chat import ChatCompletion
from pydantic import ValidationError

from annotators.prompts import Prompt
from schemas.config import Endpoint, RoleConfig, stable_hash
from schemas.replies import Reply
from schemas.row import ModelCall

R = TypeVar("R", bound=Reply)


@dataclass
class Answer(Generic[R]):
    """What a role got back for one request: a validated reply, or an error and the raw text."""

    value: R | None
    call: ModelCall
    error: str | None = None
    raw: str | None = None
    # A server or network failure: worth asking again on the next run, so never checkpointed.
    transient: bool = False

    @property
    def ok(self) -> bool:
        return self.value is not None


@dataclass
class _Slot:
    endpoint: Endpoint
    client: openai.AsyncOpenAI
    limit: asyncio.Semaphore
    in_flight: int = 0
    # What the server says it is (vLLM: GET /version), asked once, on the slot's first request.
    version: str | None = None
    version_known: bool = False
    version_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def load(self) -> float:
        return self.in_flight / self.endpoint.max_in_flight


def parse_reply(text: str | None, reply_model: type[R]) -> R:
    """Validate a structured-output reply.

    `strict=False` admits raw control characters inside JSON strings: models (random ones always,
    real ones sometimes) emit literal newlines and tabs there, and the content is still what we asked.
    """
    if not text:
        raise ValueError("empty reply")
    return reply_model.model_validate(json.loads(text, strict=False))


class EndpointPool:
    """One connection pool and one in-flight cap per server endpoint, shared by every role on it.

    Several roles usually share one server (disambiguation, translation and labels on the text
    model): separate caps per role would let the server see their sum.
    """

    def __init__(self) -> None:
        self._slots: dict[tuple[str, str], _Slot] = {}

    def slot(self, endpoint: Endpoint) -> _Slot:
        key = (endpoint.base_url, endpoint.model)
        if key not in self._slots:
            self._slots[key] = _Slot(
                endpoint=endpoint,
                client=openai.AsyncOpenAI(
                    base_url=endpoint.base_url,
                    api_key=_api_key(endpoint),
                    timeout=endpoint.timeout_s,
                    # aiohttp under the SDK (its `aiohttp` extra): httpx's connection pool scans every
                    # connection on each request, which at a hundred requests in flight was a large
                    # share of the engine's CPU (bench/RESULTS.md).
                    http_client=openai.DefaultAioHttpClient(timeout=endpoint.timeout_s),
                ),
                limit=asyncio.Semaphore(endpoint.max_in_flight),
            )
        return self._slots[key]

    async def aclose(self) -> None:
        await asyncio.gather(*(s.client.close() for s in self._slots.values()))


def version_url(base_url: str) -> str:
    """Where a vLLM server reports its version: /version beside the OpenAI routes (/v1), not under them."""
    parts = urlsplit(base_url)
    root = parts.path.rstrip("/").removesuffix("/v1")
    return urlunsplit((parts.scheme, parts.netloc, f"{root}/version", "", ""))


async def server_version(slot: _Slot) -> str | None:
    """The slot's server version, asked once (every slot on one server asks it once too): None when
    the server does not say (a hosted API, another server, an old vLLM). Never fails a request; an
    unreachable server is asked again with the next request, since that one fails anyway."""
    if slot.version_known:
        return slot.version
    async with slot.version_lock:
        if not slot.version_known:
            try:
                # The SDK's client (its connection pool, key and timeout); an absolute URL is sent as is.
                response = await slot.client.get(
                    version_url(slot.endpoint.base_url),
                    cast_to=httpx.Response,
                    options={"max_retries": 0, "timeout": min(10.0, slot.endpoint.timeout_s)},
                )
                reported = response.json().get("version")
                slot.version = reported if isinstance(reported, str) else None
                slot.version_known = True
            except openai.APIStatusError:  # it answered, without a version (404 and the like)
                slot.version_known = True
            except (openai.APIConnectionError, openai.APITimeoutError):
                pass
            except (ValueError, AttributeError):  # an answer that is not a JSON object
                slot.version_known = True
    return slot.version


def _api_key(endpoint: Endpoint) -> str:
    if endpoint.api_key_env is None:
        return "EMPTY"  # vLLM ignores the key unless started with --api-key; the openai client needs one
    key = os.environ.get(endpoint.api_key_env)
    if not key:
        raise ValueError(
            f"environment variable {endpoint.api_key_env} (the API key for {endpoint.base_url}) is not set"
        )
    return key


# The request itself is wrong: asking again, now or on the next run, cannot help. Every other status
# (401/403/404: a configuration error; 408/409/429/5xx: load) is worth retrying on a later run.
PERMANENT_STATUS = {400, 413, 422}


@dataclass(frozen=True)
class _Failure:
    """An attempt that got no response: what went wrong, and whether asking again can help."""

    error: str
    # Worth asking again on a later run (see Answer.transient).
    transient: bool
    # Asking again in this call cannot help: the loop stops.
    final: bool = False


def _status_failure(exc: openai.APIStatusError) -> _Failure:
    """A 4xx, or a 5xx after the client's own retries: a 4xx ends the call, a 5xx is asked again."""
    # Authentication errors are not echoed: hosted APIs put key hints in them.
    detail = "authentication failed" if exc.status_code in (401, 403) else _short(exc.message)
    return _Failure(
        f"server answered {exc.status_code}: {detail}",
        transient=exc.status_code not in PERMANENT_STATUS,
        final=exc.status_code < 500,
    )


def _transport_failure(exc: openai.APIConnectionError | openai.APITimeoutError) -> _Failure:
    """No answer from the server at all (refused, reset, timed out): transient, asked again."""
    # The transport's own words say what happened (the aiohttp transport reports a
    # refused connection as a connect timeout; its cause names the refusal).
    cause = f" ({exc.__cause__})" if exc.__cause__ else ""
    return _Failure(f"{type(exc).__name__}: {_short(str(exc) + cause)}", transient=True)


def _validate(raw: str | None, reply_model: type[R], prose: bool = False) -> tuple[R | None, str | None]:
    """The reply validated against `reply_model` (read from prose for a prose role), or why it is not usable."""
    try:
        if prose:
            if not raw or not raw.strip():
                raise ValueError("empty reply")
            return reply_model.from_prose(raw.strip()), None
        return parse_reply(raw, reply_model), None
    except (ValueError, ValidationError) as exc:
        return None, f"invalid reply: {_short(str(exc))}"


def _reask_history(messages: list[dict], raw: str | None, error: str) -> list[dict]:
    """The original messages, the unusable reply, and a request to answer again."""
    return [
        *messages,
        {"role": "assistant", "content": raw or ""},
        {"role": "user", "content": _REASK.format(error=error)},
    ]


@dataclass
class RoleClient:
    """Asks one role's model(s), through endpoint slots shared with the other roles."""

    role: str
    config: RoleConfig
    prompt: Prompt
    config_hash: str
    pool: EndpointPool = field(default_factory=EndpointPool)
    _slots: list[_Slot] = field(init=False)

    def __post_init__(self) -> None:
        self._slots = [self.pool.slot(ep) for ep in self.config.endpoints]

    def _pick(self) -> _Slot:
        return min(self._slots, key=lambda s: s.load)

    async def ask(self, messages: list[dict], reply_model: type[R]) -> Answer[R]:
        max_tokens = self.config.sampling.max_tokens
        history = list(messages)
        error = "no attempt made"
        raw = None
        slot = self._slots[0]
        finish = None
        usage = None
        attempts, transient = 0, False
        for attempt in range(1 + self.config.max_reasks):
            attempts = attempt + 1
            slot = self._pick()
            sent = await self._send(slot, self._body(slot, history, reply_model, max_tokens, attempt))
            if isinstance(sent, _Failure):
                error, raw, transient = sent.error, None, sent.transient
                if sent.final:
                    break  # a 4xx: asking again right now cannot help
                continue
            transient = False
            choice = sent.choices[0]
            raw, finish, usage = choice.message.content, choice.finish_reason, sent.usage
            if finish == "length":
                error = f"reply cut off at max_tokens={max_tokens}"
                max_tokens = 2 * self.config.sampling.max_tokens  # room to finish, bounded by the context window
                continue
            value, invalid = _validate(raw, reply_model, self.config.reply_format == "prose")
            if invalid is not None:
                error = invalid
                history = _reask_history(messages, raw, error)
                continue
            return Answer(value, self._call(slot, finish, attempts, usage))
        return Answer(None, self._call(slot, finish, attempts, usage), error=error, raw=raw, transient=transient)

    def _body(self, slot: _Slot, history: list[dict], reply_model: type[R], max_tokens: int, attempt: int) -> dict:
        """The request body of one attempt, without the sampling fields left unset."""
        sampling = self.config.sampling
        body = {
            "model": slot.endpoint.model,
            "messages": history,
            "response_format": reply_model.response_format() if self.config.reply_format == "json" else None,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": max_tokens,
            "stop": sampling.stop,
            # A fresh seed per re-ask: the same seed would repeat the same bad reply.
            "seed": None if sampling.seed is None else sampling.seed + attempt,
        }
        if sampling.beam_width:
            # vLLM's beam search (one engine request per beam and step; the best beam is choices[0]). It
            # takes max_tokens and temperature only: no seed, top_p or schema.
            body |= {"use_beam_search": True, "n": sampling.beam_width, "length_penalty": sampling.length_penalty}
            body |= {"seed": None, "top_p": None}
        return {k: v for k, v in body.items() if v is not None}

    async def _send(self, slot: _Slot, body: dict) -> ChatCompletion | _Failure:
        """One request through `slot`, within its in-flight cap: the response, or why there is none."""
        slot.in_flight += 1  # before any await: requests picked meanwhile see this one's load
        try:
            await server_version(slot)
            async with slot.limit:
                # The SDK's raw `post` (its documented way to send a body as is): `chat.completions.create`
                # first walks every message part through its TypedDict transform, which with base64
                # media in the parts cost more CPU than the rest of the request. Retries, timeouts,
                # errors and the typed response are the SDK's either way.
                return await slot.client.post(
                    "/chat/completions",
                    cast_to=ChatCompletion,
                    body=body,
                    options={"max_retries": self.config.max_retries},
                )
        except openai.APIStatusError as exc:  # 4xx, or 5xx after the client's own retries
            return _status_failure(exc)
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            return _transport_failure(exc)
        finally:
            slot.in_flight -= 1

    def _call(self, slot: _Slot, finish: str | None, attempts: int, usage) -> ModelCall:
        return ModelCall(
            stage=self.role,
            prompt_id=self.prompt.id,
            prompt_version=self.prompt.version,
            model=slot.endpoint.model,
            server=public_url(slot.endpoint.base_url),
            server_version=slot.version,
            sampling=json.dumps(self.config.sampling.model_dump(), sort_keys=True),
            config_hash=self.config_hash,
            finish_reason=finish,
            attempts=attempts,
            prompt_tokens=getattr(usage, "prompt_tokens", None),
            completion_tokens=getattr(usage, "completion_tokens", None),
        )

    async def aclose(self) -> None:
        await self.pool.aclose()


_REASK = "That reply was not usable ({error}). Answer again with only the JSON object the schema asks for."


def public_url(url: str) -> str:
    """A URL fit for provenance: credentials and query strings (where tokens hide) removed."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def role_config_hash(
    role: str, config: RoleConfig, prompt: Prompt, reply_model: type[Reply], extra: object = None
) -> str:
    """Everything that determines a role's answers; endpoints' URLs are left out (replicas agree)."""
    return stable_hash(
        {
            "role": role,
            "models": sorted({ep.model for ep in config.endpoints}),
            "prompt": [prompt.id, prompt.version, prompt.sha],
            "sampling": config.sampling.model_dump(),
            "media": config.media.value,
            "schema": reply_model.model_json_schema(),
            "extra": extra,
        }
    )
