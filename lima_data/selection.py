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
from typing import TYPE_CHECKING, Any

from .candidate import Candidate

if TYPE_CHECKING:  # selection needs only candidates at run time (sources/base.py imports it for the rank key)
    from .pipeline import FilterStats, RejectSink
    from .recipe import DevFillSpec, SelectionSpec, SourceSpec

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
    filled: int = 0  # rows the dev fill took from the pool in this group's place (see fill_dev_from_pool)

    @property
    def shortfall(self) -> int:
        return max(0, self.wanted - len(self.selected) - self.filled)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "group": self.group,
            "split": self.split,
            "wanted": self.wanted,
            "available": self.available,
            "selected": len(self.selected),
            "shortfall": self.shortfall,
            **({"filled_from_pool": self.filled} if self.filled else {}),
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


def select(source: str, kept: list[Candidate], selection: SelectionSpec, seed: int,
           rank_key: Callable[[Candidate], tuple] = default_rank_key) -> list[GroupSelection]:
    """Fill each quota of ``selection`` (a recipe's ``[sources.<source>.selection]``) from ``kept``.

    Returns one :class:`GroupSelection` per quota, in the recipe's order. Candidates whose group has no quota
    are not selected.
    """
    method = selection.method or "top"
    tau = float(selection.tau)
    prompt_only = set(selection.prompt_only)
    by_group: dict[str, list[Candidate]] = defaultdict(list)
    for candidate in kept:
        by_group[candidate.meta.get("group", "")].append(candidate)

    results = []
    for group, wanted in selection.quotas.items():
        split = selection.split_of(group)
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

        band_shares = selection.band_shares
        if not band_shares:
            picked = pick(rest, left)
        else:  # each band's share of the quota, the core band the rest; a band that runs short leaves it to core
            picked = []
            for band, share in sorted(band_shares.items()):
                wanted = min(round(left * share), left - len(picked))  # rounded shares never exceed the quota
                picked += pick([c for c in rest if c.meta.get("length_band") == band], wanted)
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


def assign_splits(candidates: list[Candidate], selection: SelectionSpec, seed: int) -> int:
    """For the ``split`` method: set each candidate's ``meta["group"]`` to the split it goes to. Rows that name
    their split (``meta["split"]``) go there; the others, shuffled by the seed (from id order), fill what the
    quotas leave, in the quotas' order (LIMA's authored rows: train, then dev, then test). Rows beyond every
    quota get the group ``""`` and are not selected; so does a row that names a split whose quota is full: a row
    its author meant for dev or test never lands in train.

    Returns the number of rows that named a split and found it full."""
    from .recipe import SPLITS  # at call time: selection imports only candidate when it is loaded

    quotas = dict(selection.quotas)
    undeclared = []
    overflow = 0
    for candidate in sorted(candidates, key=lambda c: c.id):
        declared = candidate.meta.get("split")
        if declared in SPLITS:
            if quotas.get(declared, 0) > 0:
                candidate.meta["group"] = declared
                quotas[declared] -= 1
            else:
                candidate.meta["group"] = ""
                overflow += 1
        else:
            undeclared.append(candidate)
    random.Random(f"{seed}:split").shuffle(undeclared)
    for candidate in undeclared:
        split = next((s for s, left in quotas.items() if left > 0), "")
        candidate.meta["group"] = split
        if split:
            quotas[split] -= 1
    return overflow


def phase_groups(selection: SelectionSpec, phase: str) -> set[str]:
    """Groups of a source's quotas that are selected in ``phase``: ``"test"`` (test split) or ``"train"``
    (train and dev). For the ``split`` method the groups are the splits themselves."""
    return {g for g in selection.quotas if (selection.split_of(g) == "test") == (phase == "test")}


def phase_selection(selection: SelectionSpec, phase: str) -> SelectionSpec | None:
    """The part of a selection table whose quotas are filled in ``phase`` (see :func:`phase_groups`), or None."""
    quotas = {g: n for g, n in selection.quotas.items() if g in phase_groups(selection, phase)}
    return selection.model_copy(update={"quotas": quotas}) if quotas else None


# --- the build's selection stages: split assignment, test selection, decontamination, train/dev selection ---------


@dataclass
class Selection:
    """What the selection stages return: per source its quota groups (in pick order, the dev fill last) and the
    ids of every selected candidate; ``dev_fill`` is :func:`fill_dev_from_pool`'s record (``{}`` when off)."""

    groups: dict[str, list[GroupSelection]]
    chosen: set[str] = field(default_factory=set)
    dev_fill: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, list[dict[str, Any]]]:
        """Per source, each group's :meth:`GroupSelection.to_dict` (manifest.json ``selection``)."""
        return {source: [g.to_dict() for g in groups] for source, groups in self.groups.items()}

    def shortfalls(self) -> list[dict[str, Any]]:
        """The groups that got fewer rows than their quota (manifest.json ``shortfalls``)."""
        return [g.to_dict() for groups in self.groups.values() for g in groups if g.shortfall]


def assign_split_groups(kept: dict[str, list[Candidate]], specs: dict[str, SourceSpec], seed: int,
                        warn: Callable[[str], None] = lambda message: None) -> None:
    """The split assignment stage: for each source selected by the ``split`` method, give every kept candidate
    its split as its group (:func:`assign_splits`); rows whose named split was full are warned about."""
    for source, candidates in kept.items():
        if specs[source].selection.method == "split":
            overflow = assign_splits(candidates, specs[source].selection, seed)
            if overflow:
                warn(f"{source}: {overflow} row(s) name a split whose quota is full (or zero); they are left out, "
                     "never moved to another split")


def select_phase(phase: str, kept: dict[str, list[Candidate]], specs: dict[str, SourceSpec], seed: int,
                 rank_keys: dict[str, Callable[[Candidate], Any]], selection: Selection | None = None) -> Selection:
    """The test selection stage (``phase="test"``) or the train/dev one (``"train"``): fill each source's quotas
    of that phase (:func:`phase_selection`) from its kept candidates not chosen yet, adding to ``selection``
    (a new one when ``None``) and returning it."""
    selection = selection or Selection({source: [] for source in kept})
    for source, candidates in kept.items():
        part = phase_selection(specs[source].selection, phase)
        if part is None:
            continue
        pool = [c for c in candidates if c.id not in selection.chosen]
        groups = select(source, pool, part, seed, rank_keys[source])
        selection.groups[source].extend(groups)
        selection.chosen |= {c.id for g in groups for c in g.selected}
    return selection


@dataclass
class DecontaminationStage:
    """What the decontamination stage returns: per source the candidates it kept and its stats (a funnel row)."""

    kept: dict[str, list[Candidate]]
    stats: dict[str, FilterStats]


def decontaminate_train(decontaminate, kept: dict[str, list[Candidate]], specs: dict[str, SourceSpec],
                        selection: Selection, sink: RejectSink) -> DecontaminationStage:
    """The decontamination stage, between test and train selection: add the selected test prompts to the
    references of ``decontaminate`` (a :class:`~lima_data.filters.decontaminate.Decontaminate` holding the
    benchmarks), then drop every candidate of a train-phase group, not chosen yet, that shares an n-gram with them
    (LIMA: test prompts never overlap train). Candidates of other groups pass untouched."""
    from .pipeline import run_stage

    decontaminate.add_references(c.prompt for groups in selection.groups.values() for g in groups
                                 if g.split == "test" for c in g.selected)
    out: dict[str, list[Candidate]] = {}
    stats: dict[str, FilterStats] = {}
    for source, candidates in kept.items():
        train_groups = phase_groups(specs[source].selection, "train")
        st: dict[str, FilterStats] = {}
        out[source] = run_stage(
            decontaminate.name, candidates,
            lambda c: decontaminate(c) if c.id not in selection.chosen and c.meta.get("group", "") in
            train_groups else (None, None), st, sink)
        stats[source] = st[decontaminate.name]
    return DecontaminationStage(out, stats)


def recipe_dev_quota(specs: dict[str, SourceSpec]) -> int:
    """Rows the recipe wants in dev: the sum of its quotas whose split is ``dev`` (every source of the recipe,
    built or not; ``specs``: the recipe's sources). LIMA: 50 authored."""
    return sum(count for spec in specs.values() for group, count in spec.selection.quotas.items()
               if spec.selection.split_of(group) == "dev")


def fill_dev_from_pool(specs: dict[str, SourceSpec], settings: DevFillSpec, seed: int,
                       kept: dict[str, list[Candidate]], selection: Selection,
                       warn: Callable[[str], None]) -> Selection:
    """The dev fill stage: fill what the dev quota lacks from the curated pool, when the recipe's
    ``[dev_fill] from_pool`` (``settings``) is on.

    The pool is every candidate that passed its source's filters, dedup and decontamination, belongs to a group
    whose split is train and has a response, and was not selected (so never a train or test row). The rows taken
    are a seeded shuffle of the pool (sorted by id first, so the result depends only on the candidates and seed);
    each gets ``meta["dev_from_pool"] = True`` and the source gets a ``dev_from_pool`` group in the selection.
    Changes ``selection`` in place and returns it, with ``dev_fill`` set to ``{"wanted", "authored", "filled",
    "by_source"}`` (recorded in manifest.json as ``dev_fill``), left ``{}`` when the option is off or dev is full.
    """
    want = recipe_dev_quota(specs)
    have = sum(len(g.selected) for gs in selection.groups.values() for g in gs if g.split == "dev")
    if not settings.from_pool or have >= want:
        return selection
    pool = []
    for source, candidates in kept.items():
        table = specs[source].selection
        train_groups = {g for g in table.quotas if table.split_of(g) == "train"} - set(table.prompt_only)
        pool += [c for c in candidates if c.id not in selection.chosen and c.response
                 and c.meta.get("group", "") in train_groups]
    pool.sort(key=lambda c: c.id)
    random.Random(f"{seed}:dev_fill").shuffle(pool)
    taken = pool[: want - have]
    by_source: dict[str, list[Candidate]] = {}
    for candidate in taken:
        candidate.meta["dev_from_pool"] = True
        by_source.setdefault(candidate.source, []).append(candidate)
        selection.chosen.add(candidate.id)
    for source, picked in by_source.items():
        selection.groups[source].append(GroupSelection(source=source, group="dev_from_pool", wanted=len(picked),
                                                       split="dev", available=len(picked), selected=picked))
    left = len(taken)  # the dev groups the fill stood in for are short by that much less
    for group in (g for gs in selection.groups.values() for g in gs if g.split == "dev" and g.shortfall):
        group.filled = min(left, group.shortfall)
        left -= group.filled
    counts = {s: len(c) for s, c in sorted(by_source.items())}
    if taken:
        warn(f"dev: {have} of {want} rows from authored data; filled {len(taken)} from the curated pool (never "
             f"train or test rows: {', '.join(f'{s} {n}' for s, n in counts.items())}); set [dev_fill] "
             "from_pool = false in the recipe to keep dev to authored rows")
    else:
        warn(f"dev: {have} of {want} rows from authored data, and the curated pool is empty (the train quotas took "
             "every candidate that passed), so dev stays short")
    selection.dev_fill = {"wanted": want, "authored": have, "filled": len(taken), "by_source": counts}
    return selection
