"""Per-clip synonym groups from our LLM endpoint, as the authors made theirs with GPT-3.5.

For every clip, the union of its (lower-cased) gold and predicted labels is sent with the authors'
grouping prompt (annotators/prompts/synonym_groups.toml, after MERTools `get_openset_synonym`); the
reply is a list of lists (schemas.metrics.SynonymGroupsReply). Requests go through the engine's one
client layer (annotators/client.py). Answers are cached in a Checkpoint (SQLite) keyed by everything
that determines them (model, prompt id/version/text, sampling, reply schema) and the sorted label
union, so a second evaluation of the same labels asks nothing, and clips with the same union share one
answer. As in the build, server and network failures are not cached (the next run retries them); a
reply that stays invalid after the re-asks is cached as a failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from annotators.client import RoleClient, role_config_hash
from annotators.prompts import load_prompt
from metrics.emer import normalise
from runtime.checkpoint import Checkpoint
from runtime.gateway import Gateway
from schemas.config import RoleConfig, stable_hash
from schemas.metrics import SynonymGroupsReply

ROLE = "synonyms"
STAGE = "synonym_groups"


@dataclass
class LlmGrouping:
    per_clip: dict[str, list[list[str]]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # clip -> "llm" (asked now) or "cache"
    errors: dict[str, str] = field(default_factory=dict)  # clip -> why it has no groups
    requests: int = 0  # requests sent to the server in this run, re-asks included
    model: str = ""


def label_union(gold: list[str], pred: list[str]) -> list[str]:
    return sorted(set(normalise(gold)) | set(normalise(pred)))


def needs_grouping(gold: list[str], pred: list[str]) -> bool:
    """Whether groups can change the clip's score: not when either side is empty (skipped, or (0, 0)),
    nor when both sides hold the same words (the mapped sets are then equal whatever the groups)."""
    g, p = set(normalise(gold)), set(normalise(pred))
    return bool(g) and bool(p) and g != p


def group_with_llm(
    gold: Mapping[str, list[str]], pred: Mapping[str, list[str]], role: RoleConfig, cache_path: Path
) -> LlmGrouping:
    """Groups for every clip whose score they can change; clips that need none are left out."""
    prompt = load_prompt(role.prompt)
    client = RoleClient(ROLE, role, prompt, role_config_hash(ROLE, role, prompt, SynonymGroupsReply))
    unions = {
        name: label_union(labels, pred.get(name) or [])
        for name, labels in gold.items()
        if needs_grouping(labels, pred.get(name) or [])
    }
    result = LlmGrouping(model=",".join(sorted({ep.model for ep in role.endpoints})))
    checkpoint = Checkpoint(cache_path)
    gateway = Gateway()
    try:
        answers = gateway.run(_ask_all(client, unions, checkpoint, result))
    finally:
        gateway.close()
        checkpoint.close()
    for name, (groups, source, error) in answers.items():
        if groups is not None:
            result.per_clip[name], result.sources[name] = groups, source
        else:
            result.errors[name] = error or "no answer"
    return result


async def _ask_all(
    client: RoleClient, unions: dict[str, list[str]], checkpoint: Checkpoint, result: LlmGrouping
) -> dict:
    # One request per distinct union: clips with the same labels share the answer (and the cache row).
    distinct = {stable_hash(words): words for words in unions.values()}
    try:
        replies = dict(
            zip(
                distinct,
                await asyncio.gather(
                    *(_ask_one(client, key, words, checkpoint, result) for key, words in distinct.items())
                ),
            )
        )
    finally:
        await client.aclose()
    return {name: replies[stable_hash(words)] for name, words in unions.items()}


async def _ask_one(client: RoleClient, key: str, words: list[str], checkpoint: Checkpoint, result: LlmGrouping):
    cached = checkpoint.get(STAGE, client.config_hash, key)
    if cached is not None:
        return cached.get("groups"), "cache", cached.get("error")
    # The authors' input is the Python repr of the list: "['angry', 'happy']".
    answer = await client.ask(client.prompt.messages("default", text=str(words)), SynonymGroupsReply)
    result.requests += answer.call.attempts
    if answer.ok:
        groups = [list(g) for g in answer.value.groups]
        checkpoint.put(
            STAGE, client.config_hash, key, {"groups": groups, "words": words, "model": answer.call.model}, ok=True
        )
        return groups, "llm", None
    if not answer.transient:
        checkpoint.put(
            STAGE, client.config_hash, key, {"groups": None, "words": words, "error": answer.error}, ok=False
        )
    return None, "llm", answer.error
