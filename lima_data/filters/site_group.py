"""Which Stack Exchange group a site belongs to: STEM, Other, or excluded."""

from __future__ import annotations

from ..candidate import Candidate
from .base import Filter


def is_meta_site(domain: str) -> bool:
    """True for a per-site meta (``bicycles.meta.stackexchange.com``, ``meta.stackoverflow.com``) or
    ``meta.stackexchange.com``: site-policy talk, of little value as SFT data."""
    return domain.startswith("meta.") or ".meta." in domain


class SiteGroup(Filter):
    """Assign each Stack Exchange site to the recipe's ``stem`` or ``other`` group, or drop it.

    LIMA section 2.1 splits the exchanges into STEM (75) and Other (99) and excludes "a few niche" ones, but
    publishes no list. The lists lima-data uses are ours (``recipes/stackexchange_sites.toml``), merged into this
    filter's settings by the recipe loader. A site is matched by its domain (``beer.stackexchange.com``).

    Settings: ``stem``, ``other``, ``excluded`` (lists of domains); ``exclude_meta`` (drop meta sites);
    ``unlisted``: what to do with a site in no list: ``"other"`` (default: keep it, in Other), ``"stem"``, or
    ``"drop"``.

    Value: the group, ``"stem"`` / ``"other"`` / ``"excluded"`` / ``"meta"`` / ``"unlisted"``; a kept candidate
    gets ``meta["group"]``.
    Reasons: ``site_excluded``, ``meta_site``, ``site_unlisted``.
    """

    name = "site_group"
    reasons = ("site_excluded", "meta_site", "site_unlisted")
    defaults = {"stem": [], "other": [], "excluded": [], "exclude_meta": True, "unlisted": "other"}

    def __init__(self, seed: int = 0, **settings):
        super().__init__(seed, **settings)
        self._groups = {d.lower(): "stem" for d in self.stem}
        self._groups.update({d.lower(): "other" for d in self.other})
        self._groups.update({d.lower(): "excluded" for d in self.excluded})

    def listed(self, domain: str) -> bool:
        """True when ``domain`` is in one of the lists (or is a meta site that ``exclude_meta`` drops)."""
        domain = domain.lower()
        return domain in self._groups or (self.exclude_meta and is_meta_site(domain))

    def measure(self, candidate: Candidate) -> str:
        domain = candidate.domain.lower()
        group = self._groups.get(domain)
        if group is None:
            if self.exclude_meta and is_meta_site(domain):
                group = "meta"
            elif self.unlisted in ("stem", "other"):
                group = self.unlisted
                candidate.meta["group_assumed"] = True
            else:
                group = "unlisted"
        if group in ("stem", "other"):
            candidate.meta["group"] = group
        return group

    def decide(self, value: str) -> str | None:
        return {"excluded": "site_excluded", "meta": "meta_site", "unlisted": "site_unlisted"}.get(value)
