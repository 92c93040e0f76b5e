"""Authored examples: the user's own JSON lines (LIMA section 2.2: 200 train + 50 dev examples written by the
authors (Group A) and 230 test prompts (Group B)).

Accepted row layouts (the first row's keys decide what a file is; each row is then read by its own keys):

- messages: ``{"messages": [{"role": "user" | "assistant" | "system", "content": str}, ...]}`` (Hugging Face /
  TRL chat layout);
- pairs: ``{"prompt": str, "response": str}`` (``response`` may be left out for a test prompt);
- GAIR (LIMA's release): ``{"conversations": [user, assistant, user, ...], "source": str}``.

Optional keys: ``id`` (else ``authored/<file stem>/<line>``), ``split`` (``train`` / ``dev`` / ``test``: the row
goes to that split; rows without one are assigned by the recipe's quotas), ``group``, ``source`` (kept in meta as
``origin``). Multi-turn conversations are kept whole (``meta["messages"]``); the candidate's prompt and response are
the first user turn and the last assistant turn.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..candidate import Candidate
from . import ReaderStats
from .base import Shard, Source, peek_json_keys

SOURCE = "authored"
ROLES = ("system", "user", "assistant")


def row_messages(row: dict[str, Any]) -> list[dict[str, str]]:
    """The conversation of a row in any accepted layout, as ``[{"role", "content"}, ...]``.

    Raises:
        ValueError: the row has none of the layouts, or a turn is malformed (the message says which).
    """
    if "messages" in row:
        messages = row["messages"]
        if not isinstance(messages, list) or not messages:
            raise ValueError("'messages' must be a non-empty list")
        out = []
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in ROLES or not isinstance(
                    message.get("content"), str):
                raise ValueError(f"messages[{i}] must be {{'role': one of {ROLES}, 'content': str}}")
            out.append({"role": message["role"], "content": message["content"]})
        return out
    if "conversations" in row:
        turns = row["conversations"]
        if not isinstance(turns, list) or not turns or not all(isinstance(t, str) for t in turns):
            raise ValueError("'conversations' must be a non-empty list of strings")
        return [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(turns)]
    if "prompt" in row:
        if not isinstance(row["prompt"], str) or not isinstance(row.get("response", ""), str):
            raise ValueError("'prompt' and 'response' must be strings")
        messages = [{"role": "user", "content": row["prompt"]}]
        if row.get("response"):
            messages.append({"role": "assistant", "content": row["response"]})
        return messages
    raise ValueError("a row needs 'messages', 'conversations' (GAIR layout) or 'prompt' (and 'response')")


class AuthoredSource(Source):
    """The user's own examples in JSON lines. Quotas are splits (selection method ``split``)."""

    name = SOURCE
    groups = None
    methods = ("split",)
    defaults = {}

    def claim(self, path: Path, explicit: bool) -> Shard | None:
        if path.suffix.lower() not in (".jsonl", ".ndjson", ".json"):
            return None
        keys = peek_json_keys(path)
        if keys & {"messages", "conversations"} or {"prompt", "response"} <= keys or (explicit and "prompt" in keys):
            return Shard(SOURCE, path, "authored_jsonl", path.stat().st_size)
        return None

    def read(self, shards, stats, progress) -> Iterator[Candidate]:
        seen: set[str] = set()
        for shard in shards:
            shard_stats = stats(shard)
            advance = progress(shard)
            with open(shard.path, "rb") as fh:  # bytes: a line that is not UTF-8 is one malformed row
                for line, row in self.json_objects(fh, shard_stats):
                    shard_stats.rows += 1
                    candidate = self._row(shard, shard_stats, line, row, seen)
                    if candidate is not None:
                        yield candidate
            if advance is not None:
                advance(shard.size)

    def _row(self, shard: Shard, stats: ReaderStats, line: int, row: dict[str, Any], seen: set[str]
             ) -> Candidate | None:
        try:
            messages = row_messages(row)
            if messages[0]["role"] == "system":
                system, turns = messages[0]["content"], messages[1:]
            else:
                system, turns = None, messages
            if not turns or turns[0]["role"] != "user":
                raise ValueError("the conversation must start with a user turn")
        except ValueError as exc:
            self.malformed(stats, line, str(exc))
            return None
        candidate_id = str(row.get("id") or f"{SOURCE}/{shard.path.stem}/{line}")
        if not candidate_id.startswith(f"{SOURCE}/"):
            candidate_id = f"{SOURCE}/{candidate_id}"
        if candidate_id in seen:
            self.malformed(stats, line, f"duplicate id {candidate_id!r}")
            return None
        seen.add(candidate_id)
        split = row.get("split")
        if split is not None and split not in ("train", "dev", "test"):
            self.malformed(stats, line, f"split must be train, dev or test, not {split!r}")
            return None
        assistant = [m["content"] for m in turns if m["role"] == "assistant"]
        stats.count("rows")
        meta: dict[str, Any] = {"group": row.get("group") or split or "", "line": line,
                                "turns": len(turns), "file": shard.path.name}
        if split:
            meta["split"] = split
        if row.get("source") is not None:
            meta["origin"] = row["source"]
        if len(turns) > 2 or system is not None:
            meta["messages"] = messages
        return Candidate(id=candidate_id, source=SOURCE, domain=str(row.get("source") or SOURCE),
                         prompt=turns[0]["content"], response=assistant[-1] if assistant else "", meta=meta)
