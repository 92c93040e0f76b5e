"""Judge generations with an LLM behind an OpenAI-compatible endpoint (LIMA sections 4-5).

Reads the JSON lines that ``lima-data generate`` writes (``{"id", "prompt", "generation"}``, one per prompt;
several rows with one id are several samples of that prompt) and asks a judge model, through the
``/chat/completions`` route of any OpenAI-compatible server (vLLM, llama.cpp's server, a hosted API), for:

- **likert** (one system): the helpfulness of each response on LIMA's 1-6 scale (section 5: "grade the helpfulness
  of a response on a 1-6 likert scale"; the prompt below is ours, after the paper's Appendix D). Summary: the mean
  rating with a two-sided 95% bootstrap confidence interval (resampling prompts, all of a prompt's samples
  together), as the paper reports "the average score alongside a p = 0.95 two-sided confidence interval".
- **pairwise** (two systems): which of two responses to the same prompt is better, or neither (section 4's human
  and GPT-4 comparisons). Each pair is asked twice with the responses' positions swapped; a system wins only when
  it is preferred in both orders, anything else is a tie (so a judge's position bias cannot produce a win).
  Summary: win / tie / loss counts and rates of system A against B, each with a 95% Wilson score interval, and
  A's "win or tie" rate (the paper's "equivalent or preferred").

Results are one JSON line per judgment (with the judge's raw replies) plus a summary JSON. The judge is asked at
temperature 0. This module needs only ``httpx``; it imports nothing from ``train/`` or ``filters/``.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError, LimaDataError

LIKERT_SYSTEM = "You are a careful, impartial evaluator of AI assistant responses."
LIKERT_PROMPT = """Rate how helpful the response below is to the user's question, on a scale of 1 to 6:

1 = not helpful at all: off-topic, wrong, or refuses without reason
2 = slightly helpful: mostly wrong or missing the point
3 = somewhat helpful: partly answers, with notable errors or gaps
4 = helpful: answers the question, with minor problems
5 = very helpful: a correct, complete, well-written answer
6 = excellent: as good as an expert's best answer

[Question]
{prompt}
[End of question]

[Response]
{response}
[End of response]

Give a one-sentence reason, then end with a line of the form "Rating: N" where N is 1 to 6."""

PAIRWISE_SYSTEM = LIKERT_SYSTEM
PAIRWISE_PROMPT = """Compare the two responses below to the user's question. Which one is more helpful: more
correct, complete, clear and appropriate? Ignore their order and their length as such.

[Question]
{prompt}
[End of question]

[Response A]
{first}
[End of response A]

[Response B]
{second}
[End of response B]

Give a one-sentence reason, then end with a line of the form "Preference: A", "Preference: B" or
"Preference: tie"."""

_RATING = re.compile(r"rating\s*[:=]?\s*\**\s*([1-6])\b", re.I)
_PREFERENCE = re.compile(r"preference\s*[:=]?\s*\**\s*(response\s+)?(a|b|tie)\b", re.I)


def parse_rating(text: str) -> int | None:
    """The last ``Rating: N`` (N in 1-6) in a judge's reply, or ``None``."""
    found = _RATING.findall(text or "")
    return int(found[-1]) if found else None


def parse_preference(text: str) -> str | None:
    """The last ``Preference: A | B | tie`` in a judge's reply as ``"A"``, ``"B"`` or ``"tie"``, or ``None``."""
    found = _PREFERENCE.findall(text or "")
    if not found:
        return None
    value = found[-1][1].lower()
    return "tie" if value == "tie" else value.upper()


def read_generations(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a ``lima-data generate`` output: ``[{"id", "prompt", "generation", ...}]`` in file order.

    Raises:
        InputError: the file is missing, a line is not a JSON object, or lacks ``prompt`` or ``generation``
            (the message names the file and line).
    """
    rows = []
    try:
        with open(path, encoding="utf-8") as fh:
            for line_no, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                try:
                    row = json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise InputError(path, f"bad JSON: {exc.msg}", line_no) from None
                if not isinstance(row, dict) or not isinstance(row.get("prompt"), str) \
                        or not isinstance(row.get("generation"), str):
                    raise InputError(path, "expected {\"id\", \"prompt\": str, \"generation\": str} "
                                           "(lima-data generate output)", line_no)
                row.setdefault("id", f"line-{line_no}")
                rows.append(row)
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror}") from None
    if not rows:
        raise InputError(path, "no generations in this file")
    return rows


@dataclass
class Endpoint:
    """An OpenAI-compatible chat completions endpoint.

    Attributes:
        base_url: e.g. ``http://127.0.0.1:8000/v1`` (vLLM) or ``https://api.openai.com/v1``; ``/chat/completions``
            is appended.
        model: the judge model's name at that endpoint.
        api_key: sent as ``Authorization: Bearer <key>`` when set.
        timeout: seconds per request; retries: further attempts on a connection error, a timeout, 429 or 5xx
            (with exponential backoff from 1 s).
        max_tokens: the judge's reply budget (tokens).
    """

    base_url: str
    model: str
    api_key: str | None = None
    timeout: float = 120.0
    retries: int = 3
    max_tokens: int = 512

    def __post_init__(self):
        import httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self._client = httpx.Client(base_url=self.base_url.rstrip("/"), headers=headers, timeout=self.timeout)

    def close(self) -> None:
        self._client.close()

    def chat(self, system: str, user: str) -> str:
        """The judge's reply to one system + user message pair, at temperature 0.

        Raises:
            LimaDataError: the endpoint cannot be reached or keeps failing, refuses the request (4xx; the message
                has the server's answer), or answers without a message.
        """
        import httpx

        body = {"model": self.model, "temperature": 0, "max_tokens": self.max_tokens,
                "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}]}
        where = f"{self.base_url.rstrip('/')}/chat/completions"
        for attempt in range(self.retries + 1):
            try:
                response = self._client.post("/chat/completions", json=body)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    try:
                        return response.json()["choices"][0]["message"]["content"] or ""
                    except (ValueError, KeyError, IndexError, TypeError):
                        raise LimaDataError(f"{where}: the answer is not a chat completion: "
                                            f"{response.text[:200]!r}") from None
                problem = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code < 500 and response.status_code != 429:
                    raise LimaDataError(f"{where}: {problem}")
            if attempt < self.retries:
                time.sleep(2 ** attempt)
        raise LimaDataError(f"{where}: failed after {self.retries + 1} attempts: {problem}")


def _map(function: Callable, items: list, workers: int, progress: Callable[[], None] | None) -> list:
    def run(item):
        result = function(item)
        if progress is not None:
            progress()
        return result

    if workers <= 1:
        return [run(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run, items))


def judge_likert(endpoint: Endpoint, rows: list[dict[str, Any]], *, workers: int = 4,
                 progress: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """Rate every row's generation on the 1-6 helpfulness scale.

    Returns one judgment per row, in row order: ``{"id", "prompt", "generation", "rating": int | None,
    "judge": raw reply}`` (``rating`` is ``None`` when the reply holds no ``Rating: N``).
    """
    def one(row):
        reply = endpoint.chat(LIKERT_SYSTEM, LIKERT_PROMPT.format(prompt=row["prompt"], response=row["generation"]))
        return {"id": row["id"], "prompt": row["prompt"], "generation": row["generation"],
                "rating": parse_rating(reply), "judge": reply}

    return _map(one, rows, workers, progress)


def pair_rows(rows_a: list[dict[str, Any]], rows_b: list[dict[str, Any]]) -> list[tuple[dict, dict]]:
    """Pairs of rows of two systems for the same prompt: matched by id, the k-th sample of an id with the k-th
    of the other (in file order of ``rows_a``). Rows without a partner are left out.

    Raises:
        LimaDataError: no id is shared, or a shared id has different prompts in the two files.
    """
    by_id: dict[Any, list[dict]] = defaultdict(list)
    for row in rows_b:
        by_id[row["id"]].append(row)
    pairs, used = [], defaultdict(int)
    for row in rows_a:
        others = by_id.get(row["id"], [])
        k = used[row["id"]]
        if k < len(others):
            if others[k]["prompt"] != row["prompt"]:
                raise LimaDataError(f"id {row['id']!r} has different prompts in the two generation files")
            pairs.append((row, others[k]))
            used[row["id"]] += 1
    if not pairs:
        raise LimaDataError("the two generation files share no id")
    return pairs


def combine(first: str | None, second: str | None) -> str:
    """The outcome for system A from the two verdicts: ``first`` with A shown as "Response A", ``second`` with A
    shown as "Response B". A wins only when preferred in both orders, loses only when B is; otherwise a tie.
    Returns ``"win"``, ``"tie"`` or ``"loss"``."""
    if first == "A" and second == "B":
        return "win"
    if first == "B" and second == "A":
        return "loss"
    return "tie"


def judge_pairwise(endpoint: Endpoint, pairs: list[tuple[dict, dict]], *, workers: int = 4,
                   progress: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """Compare each pair of generations in both positions.

    Returns one judgment per pair: ``{"id", "prompt", "a", "b", "verdict_ab", "verdict_ba", "outcome":
    "win" | "tie" | "loss" (for system A), "judge_ab", "judge_ba"}``; ``verdict_ab`` is the judge's pick with A
    shown first, ``verdict_ba`` with B shown first (``"A"``/``"B"`` are the positions, ``None`` unparsable).
    """
    tasks = [(i, order) for i in range(len(pairs)) for order in ("ab", "ba")]

    def one(task):
        i, order = task
        a, b = pairs[i]
        first, second = (a, b) if order == "ab" else (b, a)
        return endpoint.chat(PAIRWISE_SYSTEM, PAIRWISE_PROMPT.format(
            prompt=a["prompt"], first=first["generation"], second=second["generation"]))

    replies = _map(one, tasks, workers, progress)
    out = []
    for i, (a, b) in enumerate(pairs):
        judge_ab, judge_ba = replies[2 * i], replies[2 * i + 1]
        verdict_ab, verdict_ba = parse_preference(judge_ab), parse_preference(judge_ba)
        out.append({"id": a["id"], "prompt": a["prompt"], "a": a["generation"], "b": b["generation"],
                    "verdict_ab": verdict_ab, "verdict_ba": verdict_ba, "outcome": combine(verdict_ab, verdict_ba),
                    "judge_ab": judge_ab, "judge_ba": judge_ba})
    return out


def wilson(successes: int, total: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% by default) as ``(low, high)``; ``(0, 1)`` when
    ``total`` is 0."""
    if total == 0:
        return 0.0, 1.0
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_mean(groups: list[list[float]], *, resamples: int = 10000, seed: int = 0,
                   level: float = 0.95) -> tuple[float, float, float]:
    """Mean of all values and a two-sided percentile bootstrap interval, resampling ``groups`` (a prompt's
    samples stay together). Returns ``(mean, low, high)``; NaNs when there are no values."""
    values = [v for g in groups for v in g]
    if not values:
        return math.nan, math.nan, math.nan
    rng = random.Random(seed)
    sums = [(sum(g), len(g)) for g in groups if g]
    means = []
    for _ in range(resamples):
        total = count = 0
        for _ in range(len(sums)):
            s, n = sums[rng.randrange(len(sums))]
            total += s
            count += n
        means.append(total / count)
    means.sort()
    tail = (1 - level) / 2
    low = means[int(math.floor(tail * (resamples - 1)))]
    high = means[int(math.ceil((1 - tail) * (resamples - 1)))]
    return sum(values) / len(values), low, high


def summarize_likert(judgments: list[dict[str, Any]], *, seed: int = 0) -> dict[str, Any]:
    """``{"mode": "likert", "judged", "unparsed", "mean", "ci95": [low, high], "counts": {"1".."6": n}}``."""
    groups: dict[Any, list[float]] = defaultdict(list)
    for j in judgments:
        if j["rating"] is not None:
            groups[j["id"]].append(float(j["rating"]))
    mean, low, high = bootstrap_mean(list(groups.values()), seed=seed)
    counts = {str(k): sum(j["rating"] == k for j in judgments) for k in range(1, 7)}
    return {"mode": "likert", "judged": len(judgments), "unparsed": sum(j["rating"] is None for j in judgments),
            "mean": round(mean, 4), "ci95": [round(low, 4), round(high, 4)], "counts": counts}


def summarize_pairwise(judgments: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"mode": "pairwise", "pairs", "unparsed", "win"/"tie"/"loss": {"count", "rate", "ci95"},
    "win_or_tie": {...}, "position_consistent"}`` for system A; rates and Wilson intervals over all pairs."""
    n = len(judgments)
    out: dict[str, Any] = {"mode": "pairwise", "pairs": n,
                           "unparsed": sum(j["verdict_ab"] is None or j["verdict_ba"] is None for j in judgments)}
    counts = {k: sum(j["outcome"] == k for j in judgments) for k in ("win", "tie", "loss")}
    counts["win_or_tie"] = counts["win"] + counts["tie"]
    for key, count in counts.items():
        low, high = wilson(count, n)
        out[key] = {"count": count, "rate": round(count / n, 4) if n else None, "ci95": [round(low, 4), round(high, 4)]}
    swapped = {"A": "B", "B": "A", "tie": "tie"}
    out["position_consistent"] = sum(j["verdict_ab"] is not None and swapped[j["verdict_ab"]] == j["verdict_ba"]
                                     for j in judgments)
    return out


def write_results(folder: str | Path, judgments: Iterable[dict[str, Any]], summary: dict[str, Any]) -> Path:
    """Write ``judgments.jsonl`` and ``summary.json`` into ``folder`` (created), each atomically (temp file, then
    rename). Returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("judgments.jsonl", "".join(json.dumps(j, ensure_ascii=False) + "\n" for j in judgments)),
                       ("summary.json", json.dumps(summary, indent=2, ensure_ascii=False) + "\n")):
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, folder / name)
    return folder
