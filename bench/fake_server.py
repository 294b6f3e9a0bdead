"""An OpenAI-compatible chat endpoint with injected latency and fixed-length, schema-valid replies.

It stands in for a GPU server whose time per request is known, so that what the benchmark measures
is the engine's dispatch, not a model. Replies are instances of the engine's own reply models
(schemas/replies.py), validated at start-up, so the engine accepts every one of them. Every request
body can be recorded (JSON lines), and /stats reports when the first request arrived and the last
reply left: the window in which the server was in use.

Run: python -m bench.fake_server --port 8100 --latency-ms 50 [--record FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from schemas.replies import ClueReply, DescriptionReply, LabelsReply, Reply, TranslationReply

_CJK = re.compile(r"[\u4e00-\u9fff]")

# Fixed lengths near the real ones (#SERIAL# becomes the request's 8-digit serial number): EMER-Fine English
# descriptions average ~220 words.
_SENTENCE = "The speaker's voice rises and tightens while the eyebrows lift and the mouth opens wide."
REPLIES: dict[str, Reply] = {
    "ClueReply": ClueReply(clues=" ".join([_SENTENCE] * 4), emotional_states=["surprised", "excited", "tense"]),
    "DescriptionReply": DescriptionReply(
        subtitle_analysis=" ".join([_SENTENCE] * 3), description=" ".join([_SENTENCE] * 14)
    ),
    "TranslationReply": TranslationReply(
        translation="第#SERIAL#号。" + "说话人的声音升高并变得紧张，眉毛上扬，嘴巴张大。" * 8
    ),
    "TranslationReply/en": TranslationReply(translation=_SENTENCE),
    "LabelsReply": LabelsReply(labels=["surprised", "excited", "tense"]),
}
# Token counts a real tokenizer would give these replies (~4 characters per English token, ~1 per
# Chinese character): reported as usage, as vLLM would.
COMPLETION_TOKENS = {
    key: len(reply.model_dump_json()) // (1 if key == "TranslationReply" else 4) for key, reply in REPLIES.items()
}


def reply_key(body: dict) -> str:
    name = body["response_format"]["json_schema"]["name"]
    if name == "TranslationReply":
        # Which way: Chinese in the request means it asks for English (a subtitle), else Chinese.
        last = body["messages"][-1]["content"]
        text = last if isinstance(last, str) else " ".join(p.get("text", "") for p in last if isinstance(p, dict))
        return "TranslationReply/en" if _CJK.search(text) else "TranslationReply"
    return name


class State:
    def __init__(self, latency_s: float, record: str | None) -> None:
        self.latency_s = latency_s
        self.requests = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.first_request: float | None = None
        self.last_reply: float | None = None
        self.busy_s, self._busy_since = 0.0, 0.0  # time with at least one request in flight
        self.record = open(record, "a", encoding="utf-8") if record else None  # noqa: SIM115


def make_app(state: State) -> Starlette:
    # Each reply carries the request's serial number (fixed width, so lengths stay fixed): a real
    # model's answers differ from clip to clip, and identical answers would let the engine's
    # checkpoint (keyed by inputs) answer later stages without asking.
    prepared = {
        key: reply.model_dump_json().replace(_SENTENCE, _SENTENCE + " #SERIAL#") for key, reply in REPLIES.items()
    }

    async def chat(request: Request) -> Response:
        raw = await request.body()
        now = time.monotonic()
        state.first_request = state.first_request or now
        state.requests += 1
        serial = state.requests  # taken on arrival: replies of concurrent requests must differ
        if state.in_flight == 0:
            state._busy_since = now
        state.in_flight += 1
        state.peak_in_flight = max(state.peak_in_flight, state.in_flight)
        try:
            body = json.loads(raw)
            if state.record:
                state.record.write(raw.decode() + "\n")
            key = reply_key(body)
            await asyncio.sleep(state.latency_s)
            prompt_tokens = len(raw) // 4  # order of magnitude only; bench/paper.py counts tokens properly
            payload = {
                "id": f"bench-{serial}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "bench"),
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": prepared[key].replace("#SERIAL#", f"{serial:08d}"),
                        },
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": COMPLETION_TOKENS[key],
                    "total_tokens": prompt_tokens + COMPLETION_TOKENS[key],
                },
            }
            return JSONResponse(payload)
        finally:
            state.in_flight -= 1
            state.last_reply = time.monotonic()
            if state.in_flight == 0:
                state.busy_s += state.last_reply - state._busy_since

    async def stats(request: Request) -> Response:
        if state.record:
            state.record.flush()
        window = (state.last_reply - state.first_request) if state.first_request and state.last_reply else 0.0
        return JSONResponse(
            {
                "requests": state.requests,
                "window_s": window,
                "busy_s": state.busy_s,
                "peak_in_flight": state.peak_in_flight,
            }
        )

    async def reset(request: Request) -> Response:
        state.requests = state.peak_in_flight = 0
        state.first_request = state.last_reply = None
        state.busy_s = 0.0
        state.latency_s = float(request.query_params.get("latency_ms", state.latency_s * 1000)) / 1000
        if state.record:
            state.record.close()
            path = request.query_params.get("record")
            state.record = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115
        elif path := request.query_params.get("record"):
            state.record = open(path, "a", encoding="utf-8")  # noqa: SIM115
        return JSONResponse({"ok": True})

    async def models(request: Request) -> Response:
        # It answers any model name; it lists those the benchmark's line-up asks (the build's preflight
        # checks that each endpoint serves its role's model).
        names = ("bench", "bench-audio", "bench-vision", "bench-text")
        return JSONResponse({"object": "list", "data": [{"id": n, "object": "model"} for n in names]})

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/models", models),
            Route("/stats", stats),
            Route("/reset", reset, methods=["POST"]),
            Route("/health", lambda r: Response("ok")),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--record")
    args = parser.parse_args()
    app = make_app(State(args.latency_ms / 1000, args.record))
    # uvloop + httptools (the `bench` extra): the same fast HTTP stack vLLM's server runs on.
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        loop="auto",
        http="auto",
        backlog=4096,
        timeout_keep_alive=60,
    )


if __name__ == "__main__":
    main()
