"""Selection: fill the recipe's quotas from the kept candidates (LIMA section 2.1), seeded.

Stack Exchange: candidates are grouped by ``meta["group"]`` (``stem`` / ``other``). Within a group, each pick
first draws a site with probability proportional to ``n_site ** (1 / tau)`` (``n_site`` = the site's kept
candidates; LIMA: tau = 3, which flattens the pull of the big sites), then takes that site's highest-ranked
question not yet taken. A site that runs out leaves the draw and the others are renormalised. When a group has
fewer candidates than its quota, all are taken and the shortfall is reported.

Rank within a site: question score, then top answer score, both descending, then question id ascending
(LIMA: "the questions with the highest score").
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from .candidate import Candidate


def rank_key(candidate: Candidate) -> tuple:
    """Sort key, best first: question score desc, answer score desc, then id (numeric part) asc."""
    question_id = candidate.meta.get("question_id", 0)
    return (-(candidate.meta.get("question_score") or 0), -(candidate.score or 0), question_id, candidate.id)


@dataclass
class GroupSelection:
    """What one quota got: ``wanted``, ``available`` (kept candidates), the ``selected`` candidates in pick
    order, and per site: candidates available, sampling probability and picks."""

    source: str
    group: str
    wanted: int
    available: int = 0
    selected: list[Candidate] = field(default_factory=list)
    sites: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def shortfall(self) -> int:
        return max(0, self.wanted - len(self.selected))

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "group": self.group,
            "wanted": self.wanted,
            "available": self.available,
            "selected": len(self.selected),
            "shortfall": self.shortfall,
            "sites": self.sites,
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


def select(source: str, kept: list[Candidate], selection: dict[str, Any], seed: int) -> list[GroupSelection]:
    """Fill each quota of ``selection`` (a recipe's ``[sources.<source>.selection]``) from ``kept``.

    Returns one :class:`GroupSelection` per quota, in the recipe's order. Candidates without a quota group are
    not selected. Deterministic: same candidates (in any order) and seed give the same selection.
    """
    tau = float(selection.get("tau", 1.0))
    by_group: dict[str, dict[str, list[Candidate]]] = defaultdict(lambda: defaultdict(list))
    for candidate in kept:
        by_group[candidate.meta.get("group", "")][candidate.domain].append(candidate)
    results = []
    for group, wanted in selection["quotas"].items():
        pools = {site: sorted(pool, key=rank_key) for site, pool in by_group.get(group, {}).items()}
        rng = random.Random(f"{seed}:{source}:{group}")
        result = GroupSelection(source, group, wanted, available=sum(map(len, pools.values())))
        result.selected = tau_sample(pools, wanted, tau, rng)
        norm = sum(len(p) ** (1.0 / tau) for p in pools.values()) or 1.0
        picks: dict[str, int] = defaultdict(int)
        for candidate in result.selected:
            picks[candidate.domain] += 1
        result.sites = {
            site: {
                "available": len(pool),
                "probability": round(len(pool) ** (1.0 / tau) / norm, 6),
                "selected": picks.get(site, 0),
            }
            for site, pool in sorted(pools.items())
        }
        results.append(result)
    return results
