"""Source readers: each turns one dump shard into a stream of :class:`~lima_data.candidate.Candidate`.

See :mod:`lima_data.sources.stackexchange`. Every reader keeps a :class:`ReaderStats` per shard: rows read,
malformed rows with their positions, and whether the file ended early.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import InputError

#: At most this many malformed-row positions are kept per shard (all are counted).
MAX_ERRORS_KEPT = 100
#: What a file that holds no row at all is reported as (see :meth:`ReaderStats.empty`).
EMPTY_FILE = "the file is empty"


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

    def empty(self, strict: bool, detail: str = "") -> None:
        """Record that the shard holds no row at all: 0 bytes, only blank lines, an empty zstd frame or archive
        member, or only an XML declaration (``detail`` says which, e.g. ``"only an XML declaration"``).

        DESIGN.md section 5: one bad shard of a dump is counted and reported, not fatal, unless strict. So the
        file is skipped: the problem is kept in ``errors`` (``line`` None; not a malformed row) and the build
        warns naming the file (:func:`lima_data.executor.merge_results`) and goes on with the other files.

        Raises:
            InputError: ``strict``; the message names the file (``self.shard``) and says it is empty.
        """
        message = f"{EMPTY_FILE} ({detail})" if detail else EMPTY_FILE
        if strict:
            raise InputError(self.shard, message)
        self.error(None, f"{message}: skipped", row=False)

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
