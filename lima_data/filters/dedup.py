"""Dedup across all sources: exact (normalised text), near-duplicate responses (MinHash LSH) and similar prompts
(rapidfuzz), as one global stage between the filter chains and selection (DESIGN.md section 2).

Like a filter it has a name (``dedup``), records a measured value for every candidate (the size of its cluster,
1 when unique) and drops with a reason: ``duplicate_id`` (the same id as another candidate: one wikiHow page,
Reddit post or question read from two inputs), ``exact_duplicate`` (same normalised prompt or response as another
candidate), ``near_duplicate`` (response MinHash Jaccard >= ``near.threshold``), ``similar_prompt`` (short prompts
with a rapidfuzz ``token_sort_ratio`` >= ``prompt.threshold``: cross-posted questions, repeated wikiHow titles,
reposted WritingPrompts). A candidate's reason is the strongest link it has (id, exact, near, then similar).

Duplicates are linked into clusters (union-find); each cluster keeps one member, the first by (multi-turn dialogues
first, then score descending, ``None`` last, then id): deterministic whatever the read order. Scores of different
sources are not comparable (Stack Exchange votes vs Reddit votes); across sources the id decides when both scores
are missing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..candidate import Candidate
from ..files import dumps
from ..pipeline import FilterStats, RejectSink, run_stage
from ..text import normalise, words_of_normalised

REASONS = ("duplicate_id", "exact_duplicate", "near_duplicate", "similar_prompt")
_STRENGTH = {"duplicate_id": -1, "exact_duplicate": 0, "near_duplicate": 1, "similar_prompt": 2}

DEFAULTS: dict[str, Any] = {
    "exact": True,
    "near": {"enabled": True, "threshold": 0.8, "num_perm": 128, "shingle": 5},
    "prompt": {"enabled": True, "threshold": 90.0, "max_chars": 300, "lsh_threshold": 0.5, "char_ngram": 4},
}


def shingles(text: str, size: int) -> set[bytes]:
    """Word ``size``-grams of normalised text (the whole text as one shingle when it is shorter)."""
    return _shingles_of_normalised(normalise(text), size)


def _shingles_of_normalised(norm: str, size: int) -> set[bytes]:
    """:func:`shingles` of text already :func:`~lima_data.text.normalise`-d."""
    words = words_of_normalised(norm)
    if len(words) <= size:
        return {" ".join(words).encode()} if words else set()
    grams = set(map(" ".join, zip(*(words[k:] for k in range(size)))))  # each distinct one encoded once
    return set(map(str.encode, grams))


def char_ngrams(text: str, size: int) -> set[bytes]:
    norm = normalise(text)
    if len(norm) <= size:
        return {norm.encode()} if norm else set()
    return {norm[i:i + size].encode() for i in range(len(norm) - size + 1)}


def keeper_order(candidate: Candidate) -> tuple:
    """Best first: a candidate on the keep list, then a multi-turn dialogue (more than one assistant turn in
    ``meta["messages"]``: it holds its single-turn twin, the same question and answer, whole, and dialogues are
    few), then score descending (``None`` last), then id."""
    messages = candidate.meta.get("messages") or ()
    dialogue = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "assistant") > 1
    return (candidate.values.get("manual") != "keep", not dialogue, candidate.score is None,
            -(candidate.score or 0), candidate.id)


def _minhashes(sets, num_perm: int, seed: int):
    """MinHash signature of each set (empty sets hash as one empty shingle); see :mod:`.minhash` (datasketch's
    sketches without importing datasketch and scipy). A signature is a minimum per permutation, so the order in
    which a set's shingles are hashed does not matter (no sorting)."""
    from .minhash import signature

    for s in sets:
        yield signature(s or (b"",), num_perm, seed)


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@dataclass
class DedupResult:
    """Per candidate id: ``(value, reason)`` (for an id shared by several candidates, the kept one's); per
    candidate in input order: ``ordered``; and the clusters of more than one member, each
    ``{"keeper", "size", "members": [{"id", "source", "reason"}]}``."""

    decisions: dict[str, tuple[int, str | None]]
    clusters: list[dict[str, Any]]
    ordered: list[tuple[int, str | None]] = field(default_factory=list)
    _positions: dict[int, int] = field(default_factory=dict, repr=False)

    def decision(self, candidate: Candidate) -> tuple[int, str | None]:
        """``(value, reason)`` of this very candidate object (of those passed to :meth:`Dedup.run`): two
        candidates with one id get their own decisions, exactly one of them kept.

        Raises:
            KeyError: the candidate was not part of the run.
        """
        return self.ordered[self._positions[id(candidate)]]


class Dedup:
    """The dedup stage. ``settings``: the recipe's ``[dedup]`` table (see ``DEFAULTS``).

    Raises:
        RecipeError: unknown settings.
    """

    name = "dedup"
    reasons = REASONS

    def __init__(self, settings: dict[str, Any] | None = None):
        from ..errors import RecipeError

        settings = dict(settings or {})
        unknown = set(settings) - set(DEFAULTS) - {"enabled"}
        if unknown:
            raise RecipeError(f"[dedup]: unknown setting(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
        self.enabled = settings.pop("enabled", True)
        self.exact = settings.get("exact", DEFAULTS["exact"])
        self.near = {**DEFAULTS["near"], **settings.get("near", {})}
        self.prompt = {**DEFAULTS["prompt"], **settings.get("prompt", {})}
        for table, defaults in (("near", DEFAULTS["near"]), ("prompt", DEFAULTS["prompt"])):
            unknown = set(getattr(self, table)) - set(defaults)
            if unknown:
                raise RecipeError(f"[dedup.{table}]: unknown setting(s) {sorted(unknown)}")

    def run(self, candidates: list[Candidate]) -> DedupResult:
        """Link duplicates among ``candidates`` and decide, for each, keep or drop with a reason."""
        n = len(candidates)
        uf = _UnionFind(n)
        links: dict[int, str] = {}

        def link(a: int, b: int, kind: str) -> None:
            uf.union(a, b)
            for i in (a, b):
                if i not in links or _STRENGTH[kind] < _STRENGTH[links[i]]:
                    links[i] = kind

        first_of_id: dict[str, int] = {}
        for i, c in enumerate(candidates):  # always (even with dedup off): one id names one example
            if c.id in first_of_id:
                link(first_of_id[c.id], i, "duplicate_id")
            else:
                first_of_id[c.id] = i
        normalised_responses = None  # the exact pass's normalised responses, reused for the MinHash shingles
        if self.enabled and self.exact:
            for attr in ("prompt", "response"):
                first: dict[str, int] = {}
                keys = [normalise(getattr(c, attr)) for c in candidates]
                if attr == "response":
                    normalised_responses = keys
                for i, key in enumerate(keys):
                    if not key:
                        continue
                    if key in first:
                        link(first[key], i, "exact_duplicate")
                    else:
                        first[key] = i
        if self.enabled and self.near["enabled"]:
            self._minhash_pairs(candidates, link, normalised_responses)
        if self.enabled and self.prompt["enabled"]:
            self._prompt_pairs(candidates, link)

        members: dict[int, list[int]] = defaultdict(list)
        for i in range(n):
            members[uf.find(i)].append(i)
        decisions: dict[str, tuple[int, str | None]] = {}
        by_position: list[tuple[int, str | None]] = [(1, None)] * n
        clusters = []
        for group in members.values():
            ordered = sorted(group, key=lambda i: keeper_order(candidates[i]))
            keeper = ordered[0]
            decisions[candidates[keeper].id] = by_position[keeper] = (len(group), None)
            for i in ordered[1:]:
                by_position[i] = (len(group), links[i])
                decisions.setdefault(candidates[i].id, by_position[i])
            if len(group) > 1:
                clusters.append({
                    "keeper": candidates[keeper].id,
                    "size": len(group),
                    "members": [{"id": candidates[i].id, "source": candidates[i].source,
                                 "score": candidates[i].score, "prompt": candidates[i].prompt[:200],
                                 "reason": None if i == keeper else links[i]} for i in ordered],
                })
        clusters.sort(key=lambda c: c["keeper"])
        return DedupResult(decisions, clusters, by_position, {id(c): i for i, c in enumerate(candidates)})

    def _minhash_pairs(self, candidates: list[Candidate], link, normalised: list[str] | None = None) -> None:
        """Link near-duplicate responses; ``normalised``: each candidate's :func:`normalise`-d response when the
        caller has them (else they are computed here)."""
        import numpy as np

        from .minhash import LSHIndex as MinHashLSH

        size, num_perm, threshold = self.near["shingle"], self.near["num_perm"], self.near["threshold"]
        indexed = [i for i, c in enumerate(candidates) if c.response.strip()]
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        if normalised is None:
            normalised = [normalise(c.response) for c in candidates]
        # A response equal (normalised) to an earlier one has its signature, so it would find what that one found
        # and link to it at Jaccard 1: it is linked to it alone, without hashing or querying (same clusters and
        # reasons; a group of n copies costs n, not n**2 links).
        twins: dict[str, int] = {}
        unique = []
        for i in indexed:
            first = twins.setdefault(normalised[i], i) if threshold <= 1 else i
            if first != i:
                link(first, i, "near_duplicate")
            else:
                unique.append(i)
        indexed = unique
        signatures = np.empty((len(indexed), num_perm), dtype=np.uint32)  # row k: the k-th indexed candidate's
        sets = (_shingles_of_normalised(normalised[i], size) for i in indexed)
        for k, (i, minhash) in enumerate(zip(indexed, _minhashes(sets, num_perm, seed=1))):
            found = list(lsh.query(minhash))
            if found:  # LSH gives candidates; the estimated Jaccard (share of equal minima: minhash.jaccard) decides
                equal = np.count_nonzero(signatures[found] == minhash, axis=1).tolist()
                for row, same in zip(found, equal):
                    if same / num_perm >= threshold:
                        link(indexed[row], i, "near_duplicate")
            lsh.insert(k, minhash)
            signatures[k] = minhash

    def _prompt_pairs(self, candidates: list[Candidate], link) -> None:
        from rapidfuzz import fuzz

        from .minhash import LSHIndex as MinHashLSH

        p = self.prompt
        short = []
        twins: dict[str, int] = {}  # as in _minhash_pairs: a prompt equal to an earlier one is linked to it alone
        for i, c in enumerate(candidates):
            if 0 < len(c.prompt) <= p["max_chars"]:
                text = normalise(c.prompt)
                first = twins.setdefault(text, i) if p["threshold"] <= 100 else i
                if first != i:
                    link(first, i, "similar_prompt")
                else:
                    short.append((i, text))
        hashes = _minhashes((char_ngrams(text, p["char_ngram"]) for _, text in short), 64, seed=2)
        lsh = MinHashLSH(threshold=p["lsh_threshold"], num_perm=64)
        for k, ((i, text), minhash) in enumerate(zip(short, hashes)):
            for j in lsh.query(minhash):
                if fuzz.token_sort_ratio(text, short[j][1]) >= p["threshold"]:
                    link(short[j][0], i, "similar_prompt")
            lsh.insert(k, minhash)



@dataclass
class DedupStage:
    """What the build's dedup stage returns: per source the candidates it kept and its stats (one funnel row),
    and the clusters of more than one member (see :class:`DedupResult`)."""

    kept: dict[str, list[Candidate]]
    stats: dict[str, FilterStats]
    clusters: list[dict[str, Any]]

    def summary(self) -> dict[str, int]:
        """``{"clusters", "duplicates"}``: clusters of more than one member, and the candidates they dropped."""
        return {"clusters": len(self.clusters), "duplicates": sum(c["size"] - 1 for c in self.clusters)}


def dedup_stage(kept: dict[str, list[Candidate]], settings: dict[str, Any] | None, sink: RejectSink,
                report: Path) -> DedupStage:
    """The build's dedup stage: run :class:`Dedup` (``settings``: the recipe's ``[dedup]``) over every source's
    kept candidates at once (duplicates across sources count), drop the losers of each source with the filter
    bookkeeping (``sink`` gets their rejects; a hand keep overrides all but ``duplicate_id``), and write the
    clusters to ``report/dedup_clusters.jsonl``.

    Raises:
        RecipeError: unknown ``[dedup]`` settings.
    """
    dedup = Dedup(settings)
    result = dedup.run([c for candidates in kept.values() for c in candidates])
    stats: dict[str, dict[str, FilterStats]] = {source: {} for source in kept}
    out = {source: run_stage(dedup.name, candidates, result.decision, stats[source], sink,
                             frozenset({"duplicate_id"})) for source, candidates in kept.items()}
    with open(report / "dedup_clusters.jsonl", "w", encoding="utf-8") as fh:
        for cluster in result.clusters:
            fh.write(dumps(cluster) + "\n")
    return DedupStage(out, {source: st[dedup.name] for source, st in stats.items()}, result.clusters)
