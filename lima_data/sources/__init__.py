"""Source readers: each turns one dump shard into a stream of :class:`~lima_data.candidate.Candidate`.

See :mod:`lima_data.sources.stackexchange`. Every reader keeps a :class:`ReaderStats` per shard: rows read,
malformed rows with their positions, and whether the file ended early.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: At most this many malformed-row positions are kept per shard (all are counted).
MAX_ERRORS_KEPT = 100


@dataclass
class ReaderStats:
    """What a reader saw in one shard.

    Attributes:
        shard: the shard's path as given (for an archive, ``archive.7z!Posts.xml``).
        rows: ``<row>`` lines (or records) seen, well-formed or not.
        counts: well-formed rows by kind, e.g. ``{"questions": 1029, "answers": 2277, "other": 165}``.
        malformed: rows that could not be used (bad XML, a required attribute missing, ...).
        errors: the first ``MAX_ERRORS_KEPT`` problems as ``{"line": int, "error": str}``.
        truncated: the file ended before its closing tag (a cut download).
    """

    shard: str
    rows: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    malformed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False

    def count(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def error(self, line: int | None, message: str, *, row: bool = True) -> None:
        """Record a problem at ``line``; ``row=True`` counts it as a malformed row."""
        if row:
            self.malformed += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append({"line": line, "error": message})

    def merge(self, other: "ReaderStats") -> None:
        """Add ``other``'s counts (another byte range of the same file) to these."""
        self.rows += other.rows
        for kind, n in other.counts.items():
            self.counts[kind] = self.counts.get(kind, 0) + n
        self.malformed += other.malformed
        self.errors.extend(other.errors[: MAX_ERRORS_KEPT - len(self.errors)])
        self.truncated = self.truncated or other.truncated

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
