"""Authored examples: the user's own JSON lines (LIMA section 2.2: 200 train + 50 dev examples written by the
authors (Group A) and 230 test prompts (Group B)).

Accepted row layouts (the first row's keys decide what a file is; each row is then read by its own keys):

- messages: ``{"messages": [{"role": "user" | "assistant" | "system", "content": str}, ...]}`` (Hugging Face /
  TRL chat layout);
- pairs: ``{"prompt": str, "response": str}`` (``response`` may be left out for a test prompt);
- GAIR (LIMA's release, ``train.jsonl`` / ``test.jsonl`` of the GAIR/lima dataset):
  ``{"conversations": [user, assistant, user, ...], "source": str}``;
- ShareGPT (LLaMA-Factory's ``llamafactory/lima``): ``{"conversations": [{"from": "human" | "gpt" | "system",
  "value": str}, ...]}``;
- Alpaca (LLaMA-Factory's ``lima.json``, a JSON array rather than JSON lines): ``{"instruction", "input",
  "output", "history": [[user, assistant], ...]}`` (the user turn is the instruction, then the input).

LIMA's release as input (``source`` label of each row): ``authors`` and ``multi_turn`` rows (the authors' own
examples; ``authored_labels``) are read as authored rows, train and test alike. Rows with the other labels
(``stackexchange``, ``wikihow``, ``nlp``, ``writingprompts``, or any label not in ``authored_labels``) are
community picks that this tool rebuilds from dumps: they are not re-used as training rows but skipped and
counted by label (``skipped_<label>`` in the manifest's ``readers``); pass the same file as ``--reference``
(report) or ``--benchmark`` (decontamination) to use them there. A file without labels (LLaMA-Factory's
``lima.json``): multi-turn rows (a ``history``) are the authors' dialogues; single-turn rows cannot be told from
community picks and are skipped as ``skipped_unlabelled``. A row without an assistant turn and without a
``split`` is a test prompt (``split = "test"``).

Optional keys: ``id`` (else ``authored/<file stem>/<line>``), ``split`` (``train`` / ``dev`` / ``test``: the row
goes to that split; rows without one are assigned by the recipe's quotas), ``group``, ``source`` (kept in meta as
``origin``). Multi-turn conversations are kept whole (``meta["messages"]``); the candidate's prompt and response are
the first user turn and the last assistant turn.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..candidate import Candidate
from ..errors import InputError
from ..text import loads_json
from . import ReaderStats
from .base import Shard, Source, peek_json_keys

SOURCE = "authored"
ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "system": "system"}
#: LIMA's release labels (GAIR/lima ``source``): the authors' own rows, and the community picks rebuilt from dumps.
AUTHORED_LABELS = ("authors", "multi_turn")


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
        if isinstance(turns, list) and turns and all(isinstance(t, dict) for t in turns):  # ShareGPT
            out = []
            for i, turn in enumerate(turns):
                role = SHAREGPT_ROLES.get(str(turn.get("from", "")).lower())
                if role is None or not isinstance(turn.get("value"), str):
                    raise ValueError(f"conversations[{i}] must be {{'from': one of {sorted(SHAREGPT_ROLES)}, "
                                     "'value': str}")
                out.append({"role": role, "content": turn["value"]})
            return out
        if not isinstance(turns, list) or not turns or not all(isinstance(t, str) for t in turns):
            raise ValueError("'conversations' must be a non-empty list of strings (GAIR) or of "
                             "{'from', 'value'} objects (ShareGPT)")
        return [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(turns)]
    if "instruction" in row and "output" in row:  # Alpaca (LLaMA-Factory)
        history = row.get("history") or []
        if not isinstance(history, list) or not all(
                isinstance(h, list) and len(h) == 2 and all(isinstance(t, str) for t in h) for h in history):
            raise ValueError("'history' must be a list of [user, assistant] string pairs")
        if not all(isinstance(row.get(k) or "", str) for k in ("instruction", "input", "output")):
            raise ValueError("'instruction', 'input' and 'output' must be strings")
        messages = [{"role": role, "content": text} for pair in history
                    for role, text in zip(("user", "assistant"), pair)]
        user = "\n\n".join(t for t in (row["instruction"], row.get("input") or "") if t)
        messages.append({"role": "user", "content": user})
        if row["output"]:
            messages.append({"role": "assistant", "content": row["output"]})
        return messages
    if "prompt" in row:
        if not isinstance(row["prompt"], str) or not isinstance(row.get("response", ""), str):
            raise ValueError("'prompt' and 'response' must be strings")
        messages = [{"role": "user", "content": row["prompt"]}]
        if row.get("response"):
            messages.append({"role": "assistant", "content": row["response"]})
        return messages
    raise ValueError("a row needs 'messages', 'conversations' (GAIR / ShareGPT layout), 'instruction' and "
                     "'output' (Alpaca layout) or 'prompt' (and 'response')")


def _peek_array_keys(path: Path, limit: int = 1 << 20) -> set[str]:
    """Keys of the first object of a file holding one JSON array (``[{...}, ...]``), or an empty set."""
    with open(path, "rb") as fh:
        head = fh.read(limit).decode("utf-8", errors="replace").lstrip("\ufeff").lstrip()
    if not head.startswith("["):
        return set()
    try:
        first, _ = json.JSONDecoder().raw_decode(head[1:].lstrip())
    except (ValueError, RecursionError):  # JSONDecodeError; a 5,000-digit number; nesting too deep to read
        return set()
    return set(first) if isinstance(first, dict) else set()


def _is_chat(keys: set[str]) -> bool:
    return bool(keys & {"messages", "conversations"}) or {"prompt", "response"} <= keys or {
        "instruction", "output"} <= keys


class AuthoredSource(Source):
    """The user's own examples in JSON lines (or one JSON array: LLaMA-Factory's ``lima.json``), and the authors'
    rows of LIMA's release. Quotas are splits (selection method ``split``).

    Reader setting: ``authored_labels`` (LIMA release labels read as authored rows; default ``["authors",
    "multi_turn"]``). See the module docstring for what is skipped and how it is counted.
    """

    name = SOURCE
    groups = None
    methods = ("split",)
    defaults = {"authored_labels": list(AUTHORED_LABELS)}

    def claim(self, path: Path, explicit: bool) -> Shard | None:
        if path.suffix.lower() not in (".jsonl", ".ndjson", ".json"):
            return None
        keys = peek_json_keys(path)
        if _is_chat(keys) or (explicit and "prompt" in keys):
            return Shard(SOURCE, path, "authored_jsonl", path.stat().st_size)
        if path.suffix.lower() == ".json" and _is_chat(_peek_array_keys(path)):
            return Shard(SOURCE, path, "authored_json_array", path.stat().st_size)
        return None

    def read(self, shards, stats, progress) -> Iterator[Candidate]:
        seen: set[str] = set()
        for shard in shards:
            shard_stats = stats(shard)
            advance = progress(shard)
            for line, row in self._rows(shard, shard_stats):
                shard_stats.rows += 1
                if self._skipped(row, shard_stats):
                    continue
                candidate = self._row(shard, shard_stats, line, row, seen)
                if candidate is not None:
                    yield candidate
            if advance is not None:
                advance(shard.size)

    def _rows(self, shard: Shard, stats: ReaderStats) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(line or 1-based array index, row)``: JSON lines, or the items of one JSON array."""
        if shard.kind != "authored_json_array":
            with open(shard.path, "rb") as fh:  # bytes: a line that is not UTF-8 is one malformed row
                yield from self.json_objects(fh, stats)
            return
        try:
            with open(shard.path, encoding="utf-8-sig") as fh:
                items = loads_json(fh.read())  # JSON nested too deep to read is a JSONDecodeError too
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(shard.path, f"not a JSON array of rows: {exc}") from None
        if not isinstance(items, list):
            raise InputError(shard.path, "not a JSON array of rows")
        for index, item in enumerate(items, 1):
            if isinstance(item, dict):
                yield index, item
            else:
                self.malformed(stats, index, "not a JSON object (array item)")

    def _skipped(self, row: dict[str, Any], stats: ReaderStats) -> bool:
        """LIMA release rows that are not the authors' own: counted as ``skipped_<label>``, not read."""
        label = row.get("source")
        if "conversations" in row and isinstance(label, str) and label:
            if label in self.settings["authored_labels"]:
                return False
            stats.count(f"skipped_{label}")
            return True
        if "instruction" in row and "output" in row and "source" not in row and not row.get("history"):
            stats.count("skipped_unlabelled")  # LLaMA-Factory's lima.json: single-turn rows carry no label
            return True
        return False

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
        if split is None and not any(m["role"] == "assistant" for m in turns):
            split = "test"  # a prompt without a response can only be a test prompt
        if split is not None and split not in ("train", "dev", "test"):
            self.malformed(stats, line, f"split must be train, dev or test, not {split!r}")
            return None
        assistant = [m["content"] for m in turns if m["role"] == "assistant"]
        if assistant and not assistant[-1].strip() and split != "test":
            # the response would be empty: a train / dev row without an answer, which the manifest refuses
            # (found by fuzzing: the build stopped at its own train.jsonl; issue 15)
            self.malformed(stats, line, "the last assistant turn is empty")
            return None
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
