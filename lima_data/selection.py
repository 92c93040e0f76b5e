"""Selection: fill the recipe's quotas from the kept candidates (LIMA section 2.1), seeded.

Each source's candidates carry a quota group in ``meta["group"]`` (Stack Exchange: ``stem`` / ``other``; Reddit:
the subreddit; wikiHow: ``wikihow``; ...). The recipe's ``[sources.<name>.selection]`` gives ``quotas`` per group
and a ``method``:

- ``tau`` (Stack Exchange): each pick first draws a site with probability proportional to ``n_site ** (1 / tau)``
  (``n_site`` = the site's kept candidates; LIMA: tau = 3), then takes that site's best candidate not yet taken.
  A site that runs out leaves the draw.
- ``category`` (wikiHow): each pick first draws a category uniformly among those with articles left, then an
  article uniformly within it (LIMA: "we first sample a category and then an article from it").
- ``top`` (Reddit): the best candidates of the group (LIMA picked among the most upvoted posts).
- ``random`` (Natural Instructions): a seeded uniform sample.
- ``split`` (authored): quotas are splits; :func:`assign_splits` first gives each row its split (rows that name
  one go there, the rest fill what is left, shuffled by the seed, in the quotas' order).

``band_shares`` (optional, e.g. ``{short = 0.11, long = 0.01}``): each band's share of a quota, the band being the
candidate's ``meta["length_band"]`` (set by the ``length`` filter's band bounds); candidates of no listed band fill
the rest; a band with too few candidates leaves its part to the others.

"Best" is the source's rank (:meth:`Source.rank_key`). When a group has fewer candidates than its quota, all are
taken and the shortfall is reported. The same candidates (in any order) and seed give the same selection.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .candidate import Candidate

METHODS = ("tau", "category", "top", "random", "split")


def default_rank_key(candidate: Candidate) -> tuple:
    """Best first: the response's score descending, then id."""
    return (-(candidate.score or 0), candidate.id)


@dataclass
class GroupSelection:
    """What one quota got: ``wanted``, ``available`` (kept candidates of the group), the ``selected``
    candidates in pick order, and per domain: candidates available, sampling probability (tau) and picks."""

    source: str
    group: str
    wanted: int
    split: str = "train"
    prompt_only: bool = False
    available: int = 0
    selected: list[Candidate] = field(default_factory=list)
    domains: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def shortfall(self) -> int:
        return max(0, self.wanted - len(self.selected))

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "group": self.group,
            "split": self.split,
            "wanted": self.wanted,
            "available": self.available,
            "selected": len(self.selected),
            "shortfall": self.shortfall,
            "domains": self.domains,
        }


def tau_sample(pools: dict[str, list[Candidate]], quota: int, tau: float, rng: random.Random) -> list[Candidate]:
    """Draw ``quota`` candidates across ``pools`` (site -> candidates, best first).

    Each draw picks a site with probability proportional to ``len(pool) ** (1 / tau)``, where ``len(pool)`` is the
    site's size at the start (LIMA's n_site), and takes its next candidate. Exhausted sites leave the draw. Sites
    are visited in sorted order so the result depends only on ``pools``, ``quota``, ``tau`` and the rng state.
    """
    sites = sorted(site for site, pool in pools.items() if pool)
    weights = {site: len(pools[site]) ** (1.0 / tau) for site in sites}
    taken = dict.fromkeys(sites, 0)
    picked: list[Candidate] = []
    while len(picked) < quota and sites:
        site = rng.choices(sites, weights=[weights[s] for s in sites])[0]
        picked.append(pools[site][taken[site]])
        taken[site] += 1
        if taken[site] == len(pools[site]):
            sites.remove(site)
    return picked


def category_sample(pools: dict[str, list[Candidate]], quota: int, rng: random.Random) -> list[Candidate]:
    """Draw ``quota`` candidates: a category uniformly among those with candidates left, then a candidate
    uniformly within it (``pools``: category -> candidates in a fixed order)."""
    remaining = {cat: list(pool) for cat, pool in sorted(pools.items()) if pool}
    picked: list[Candidate] = []
    while len(picked) < quota and remaining:
        category = rng.choice(sorted(remaining))
        pool = remaining[category]
        picked.append(pool.pop(rng.randrange(len(pool))))
        if not pool:
            del remaining[category]
    return picked


def select(source: str, kept: list[Candidate], selection: dict[str, Any], seed: int,
           rank_key: Callable[[Candidate], tuple] = default_rank_key) -> list[GroupSelection]:
    """Fill each quota of ``selection`` (a recipe's ``[sources.<source>.selection]``) from ``kept``.

    Returns one :class:`GroupSelection` per quota, in the recipe's order. Candidates whose group has no quota
    are not selected.
    """
    method = selection.get("method", "top")
    tau = float(selection.get("tau", 1.0))
    prompt_only = set(selection.get("prompt_only", []))
    by_group: dict[str, list[Candidate]] = defaultdict(list)
    for candidate in kept:
        by_group[candidate.meta.get("group", "")].append(candidate)

    results = []
    for group, wanted in selection["quotas"].items():
        split = _group_split(selection, group)
        result = GroupSelection(source, group, wanted, split, group in prompt_only)
        members = sorted(by_group.get(group, []), key=rank_key)
        result.available = len(members)
        rng = random.Random(f"{seed}:{source}:{group}")
        key = "category" if method == "category" else None
        pools: dict[str, list[Candidate]] = defaultdict(list)
        for candidate in members:
            pools[candidate.meta.get(key, "") if key else candidate.domain].append(candidate)
        # Kept by hand: always selected, first; the method fills what is left of the quota from the others.
        by_hand = sorted((c for c in members if c.values.get("manual") == "keep"), key=lambda c: c.id)
        rest = [c for c in members if c.values.get("manual") != "keep"]
        rest_pools = {name: [c for c in pool if c.values.get("manual") != "keep"] for name, pool in pools.items()}
        left = max(0, wanted - len(by_hand))

        def pick(candidates: list[Candidate], count: int) -> list[Candidate]:
            if count <= 0 or not candidates:
                return []
            if candidates is rest:
                sub_pools = rest_pools
            else:
                sub_pools = defaultdict(list)
                for c in candidates:
                    sub_pools[c.meta.get(key, "") if key else c.domain].append(c)
            if method == "tau":
                return tau_sample(sub_pools, count, tau, rng)
            if method == "category":
                return category_sample(sub_pools, count, rng)
            if method == "random":
                return rng.sample(candidates, min(count, len(candidates)))
            if method == "split":  # groups were assigned by assign_splits: take them in id order
                return sorted(candidates, key=lambda c: c.id)[:count]
            return candidates[:count]  # top

        band_shares = selection.get("band_shares") or {}
        if not band_shares:
            picked = pick(rest, left)
        else:  # each band's share of the quota, the core band the rest; a band that runs short leaves it to core
            picked = []
            for band, share in sorted(band_shares.items()):
                picked += pick([c for c in rest if c.meta.get("length_band") == band], round(left * share))
            core = [c for c in rest if c.meta.get("length_band", "core") not in band_shares]
            picked += pick(core, left - len(picked))
            if len(picked) < left:  # the core ran short: the bands' other candidates fill the quota
                taken = {id(c) for c in picked}
                picked += pick([c for c in rest if id(c) not in taken], left - len(picked))
        result.selected = by_hand + picked
        picks: dict[str, int] = defaultdict(int)
        for candidate in result.selected:
            picks[candidate.meta.get(key, "") if key else candidate.domain] += 1
        norm = sum(len(p) ** (1.0 / tau) for p in pools.values()) or 1.0
        for name, pool in sorted(pools.items()):
            result.domains[name] = {"available": len(pool), "selected": picks.get(name, 0)}
            if method == "tau":
                result.domains[name]["probability"] = round(len(pool) ** (1.0 / tau) / norm, 6)
        results.append(result)
    return results


def assign_splits(candidates: list[Candidate], selection: dict[str, Any], seed: int) -> None:
    """For the ``split`` method: set each candidate's ``meta["group"]`` to the split it goes to. Rows that name
    their split (``meta["split"]``) go there; the others, shuffled by the seed (from id order), fill what the
    quotas leave, in the quotas' order (LIMA's authored rows: train, then dev, then test). Rows beyond every
    quota get the group ``""`` and are not selected."""
    quotas = dict(selection["quotas"])
    undeclared = []
    for candidate in sorted(candidates, key=lambda c: c.id):
        declared = candidate.meta.get("split")
        if declared in quotas and quotas[declared] > 0:
            candidate.meta["group"] = declared
            quotas[declared] -= 1
        else:
            undeclared.append(candidate)
    random.Random(f"{seed}:split").shuffle(undeclared)
    for candidate in undeclared:
        split = next((s for s, left in quotas.items() if left > 0), "")
        candidate.meta["group"] = split
        if split:
            quotas[split] -= 1


def _group_split(selection: dict[str, Any], group: str) -> str:
    if selection.get("method") == "split":
        return group
    return selection.get("splits", {}).get(group, selection.get("split", "train"))


def phase_groups(selection: dict[str, Any], phase: str) -> set[str]:
    """Groups of a source's quotas that are selected in ``phase``: ``"test"`` (test split) or ``"train"``
    (train and dev). For the ``split`` method the groups are the splits themselves."""
    return {g for g in selection["quotas"] if (_group_split(selection, g) == "test") == (phase == "test")}


def phase_selection(selection: dict[str, Any], phase: str) -> dict[str, Any] | None:
    """The part of a selection table whose quotas are filled in ``phase`` (see :func:`phase_groups`), or None."""
    quotas = {g: n for g, n in selection["quotas"].items() if g in phase_groups(selection, phase)}
    return {**selection, "quotas": quotas} if quotas else None
