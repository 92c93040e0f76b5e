"""Curation by hand (LIMA's authors picked examples by hand): keep and drop lists of candidate ids.

``lima-data build --keep FILE --drop FILE``: a file holds one id a line (blank lines and ``#`` comments ignored)
or JSON lines with an ``id``. A dropped id is rejected before any filter (reason ``dropped_by_hand``). A kept id
passes every filter, dedup and decontamination (their values and would-be reasons are still recorded, in
``meta["kept_by_hand_over"]``) and is selected before the method fills the rest of its quota. Both lists, with
the ids that matched no candidate, are recorded in manifest.json.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..candidate import Candidate
from ..errors import InputError
from ..text import utf8_lines
from .base import Filter


def read_ids(path: str | Path) -> list[str]:
    """The ids listed in a keep / drop file, in file order, without repeats.

    Raises:
        InputError: the file is missing or not a regular file, is binary or not UTF-8, or a JSON line has no
            ``id`` (file and line named).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "id list not found" if not path.exists() else "not a regular file; name a text file "
                                                                              "of ids")
    ids: dict[str, None] = {}
    for line, raw in utf8_lines(path):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        if text.startswith("{"):
            try:
                text = json.loads(text)["id"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise InputError(path, "a JSON line needs an \"id\"", line) from None
        ids[str(text)] = None
    return list(ids)


class Manual(Filter):
    """Keep / drop lists by id. Value: ``"keep"``, ``"drop"`` or ``None``. Reason: ``dropped_by_hand``."""

    name = "manual"
    reasons = ("dropped_by_hand",)
    defaults = {"keep": [], "drop": []}

    def __init__(self, seed: int = 0, **settings):
        super().__init__(seed, **settings)
        self._keep, self._drop = set(self.keep), set(self.drop)
        self.matched: set[str] = set()  # listed ids seen among the candidates
        both = self._keep & self._drop
        if both:
            raise InputError("--keep/--drop", f"ids in both lists: {sorted(both)[:5]}")

    def measure(self, candidate: Candidate) -> str | None:
        if candidate.id in self._drop:
            self.matched.add(candidate.id)
            return "drop"
        if candidate.id in self._keep:
            self.matched.add(candidate.id)
            return "keep"
        return None

    def decide(self, value: str | None) -> str | None:
        return "dropped_by_hand" if value == "drop" else None
