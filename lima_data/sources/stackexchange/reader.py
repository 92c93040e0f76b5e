"""The Stack Exchange reader: one Candidate per question of a site's Posts.xml, joined to its top answer.

Joining answers to questions takes two streaming passes over ``Posts.xml``: the first reads only answer rows (their
numeric attributes, without an XML parse: for a row in the dump's usual form, straight from the stream's fast-path
match, see :mod:`.stream`) and keeps, per question, the top answer's ``(score, id)`` (ints only; ~100 bytes per
answered question); the second emits each question with its top answer's body. It parses only the rows whose text
is used: questions whose top answer can pass ``min_answer_score`` and those answers. The other answers are counted
and checked from their numbers; the other questions are read "light" (ids, score and title without an XML parse,
undefined entities refused as lxml would) since the ``answer_score`` filter drops them and their reject needs no
more. Only questions whose top answer can pass are held in memory until their answer row arrives. The top answer
is the highest-scored one; a tie goes to the earlier answer (lower id).

A byte range of a big file is read in the same two passes, split (see :mod:`.ranges`): pass 1 per range
(:meth:`StackExchangeReader.index_range`), then pass 2 per range (:meth:`StackExchangeReader.read_range`) with each
question's top answer over the whole file, fetched by byte offset. Rows come from :class:`.stream.RowStream`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ...candidate import Candidate
from .. import ReaderStats
from . import sevenzip
from .lines import head_of, rewrite_in_lines, rows_one_per_line
from .rows import ANSWER, QUESTION, _candidate, _numbers
from .sites import SiteDump
from .stream import _CHUNK, RowStream

#: An archive member up to this size (bytes) is decompressed once into a temporary file and read twice from it;
#: a bigger one (read outside a build, which splits it into byte ranges of an unpacked copy) is decoded twice.
SPOOL_BYTES = 1 << 30


class StackExchangeReader(RowStream):
    """Turns one :class:`SiteDump` into Candidates (see the module docstring for the two passes).

    Args:
        min_answer_score: questions without an answer or whose top answer scores below this are emitted light
            (ids, scores, title and url; no body, no answer), for the ``answer_score`` filter to drop: set it
            only with that filter (the source takes it from the chain). ``None`` reads every question in full
            and every top answer.
        strict: raise :class:`~lima_data.errors.InputError` on the first malformed row or truncated file
            instead of counting it.
        max_decompressed_bytes: bound on the bytes decompressed from an archive member; by default the size the
            archive declares for it plus 1 MiB.
    """

    # -- the two passes over a whole file ---------------------------------------------------------------------

    def top_answers(self, dump: SiteDump, progress: Callable[[int], None] | None = None) -> dict[int, tuple[int, int]]:
        """Pass 1: ``{question_id: (top_answer_score, top_answer_id)}`` over the answer rows."""
        top: dict[int, tuple[int, int]] = {}

        def rank(parent: int, answer_id: int, score: int) -> None:
            best = top.get(parent)
            if best is None or score > best[0] or (score == best[0] and answer_id < best[1]):
                top[parent] = (score, answer_id)

        def pick(line: bytes) -> None:  # a row line in any form: ranked, never yielded (a cut one: skipped, as
            if b'PostTypeId="2"' in line and line.endswith(b"/>"):  # its parse, unrecorded here, would)
                found = _numbers(line)
                if found.get(b"PostTypeId") == ANSWER and b"Body" in found:
                    if b"ParentId" in found and b"Id" in found:  # else counted as malformed in pass 2
                        rank(found[b"ParentId"], found[b"Id"], found.get(b"Score", 0))

        def plain(found, block: bytes, start: int, end: int) -> None:  # as ``pick``, from the match
            kind = found[2]
            if kind == b"2":
                if found[4] is not None:
                    rank(int(found[4]), int(found[1]), int(found[5]))
            elif kind != b"1":  # (a question is skipped either way)
                pick(block[start:end])

        for _ in self._rows(dump, None, progress, pick, plain=plain):
            pass  # (nothing is yielded)
        return top

    def read(self, dump: SiteDump, stats: ReaderStats, progress: Callable[[int], None] | None = None) -> Iterator[Candidate]:
        """Yield one Candidate per well-formed question of ``dump`` (a whole Posts.xml or archive member); fill
        ``stats`` as rows are read. For a byte range of a file, see :meth:`read_range`.

        Raises:
            InputError: the file or archive cannot be read at all (not XML, not 7z, truncated archive), or any
                malformed row when ``strict``.
        """
        if dump.member and dump.size <= SPOOL_BYTES:
            return self._read_spooled(dump, stats, progress)
        if not dump.member and not rows_one_per_line(head_of(dump.path)):
            return self._read_rewritten(dump, stats, progress, open(dump.path, "rb"))
        return self._read_two_passes(dump, stats, progress)

    def _read_two_passes(self, dump: SiteDump, stats: ReaderStats, progress) -> Iterator[Candidate]:
        top = self.top_answers(dump, progress)
        hold = self.min_answer_score
        top_ids = {answer_id for score, answer_id in top.values() if hold is None or score >= hold}
        pending: dict[int, dict[str, Any]] = {}  # top answer id -> question row waiting for it
        early: dict[int, dict[str, str]] = {}  # top answer rows seen before their question

        for post in self._posts(dump, stats, progress, top, top_ids):
            if isinstance(post, Candidate):  # a light question
                yield post
                continue
            post_type, post_id, question, row = post
            if post_type == QUESTION:
                stats.count("questions")
                best = top.get(post_id)
                if best is None:
                    yield _candidate(question, None, None)
                elif hold is not None and best[0] < hold:
                    yield _candidate(question, best, None)
                elif best[1] in early:
                    yield _candidate(question, best, early.pop(best[1]))
                else:
                    pending[best[1]] = {"question": question, "best": best}
            elif post_type == ANSWER:
                stats.count("answers")
                if post_id in pending:
                    waiting = pending.pop(post_id)
                    yield _candidate(waiting["question"], waiting["best"], row)
                elif post_id in top_ids:
                    early[post_id] = row
            else:
                stats.count("other")
        for waiting in pending.values():  # the top answer row never came (cut file): nothing to answer with
            yield _candidate(waiting["question"], waiting["best"], None)

    def _read_rewritten(self, dump: SiteDump, stats: ReaderStats, progress, stream) -> Iterator[Candidate]:
        """:meth:`read` of a file whose rows are not one per line (another tool wrote it): ``stream`` (the file,
        closed here) is rewritten one row per line into a temporary file (:func:`.lines.rewrite_in_lines`,
        deleted after), which is read as the dump."""
        fd, name = tempfile.mkstemp(prefix="lima-se-lines-", suffix=".xml")
        try:
            with stream, os.fdopen(fd, "wb") as out:
                rewrite_in_lines(stream, out, "posts", dump.label)
            self._spooled[dump] = name
            yield from self._read_two_passes(dump, stats, progress)
        finally:
            self._spooled.pop(dump, None)
            os.unlink(name)

    def _read_spooled(self, dump: SiteDump, stats: ReaderStats, progress) -> Iterator[Candidate]:
        """:meth:`read` of an archive member decompressed once into a temporary file (deleted after) instead of
        twice, once per pass: decoding (bzip2 in the dump's archives) is slower than parsing."""
        fd, name = tempfile.mkstemp(prefix="lima-se-member-", suffix=".xml")
        try:
            limit = self.max_decompressed_bytes or (dump.size + (1 << 20))
            with os.fdopen(fd, "wb") as out, sevenzip.open_member(dump.path, dump.member, limit) as stream:
                shutil.copyfileobj(stream, out, _CHUNK)
            if not rows_one_per_line(head_of(Path(name))):
                yield from self._read_rewritten(dump, stats, progress, open(name, "rb"))
                return
            self._spooled[dump] = name
            yield from self._read_two_passes(dump, stats, progress)
        finally:
            self._spooled.pop(dump, None)
            os.unlink(name)

    # -- byte ranges of a big file ----------------------------------------------------------------------------

    def index_range(self, dump: SiteDump) -> tuple[list[int], dict[int, tuple[int, int, int, int]], int]:
        """Pass 1 over one byte range: ``(question ids, {question id: (score, answer id, byte offset, line in
        range)} of the range's best answer per question, lines in the range)``. Reads numbers only (no XML
        parse); memory is bounded by the range."""
        questions: list[int] = []
        best: dict[int, tuple[int, int, int, int]] = {}
        cursor: dict[str, int] = {}

        def pick(line: bytes) -> int | tuple[int, int, int] | None:
            """A question's id, an answer's ``(parent, id, score)``, or None for any other row line (a cut one:
            skipped, as its parse, unrecorded here, would)."""
            if not line.endswith(b"/>"):
                return None
            numbers = _numbers(line)
            kind = numbers.get(b"PostTypeId")
            if kind == QUESTION and b"Id" in numbers:
                return numbers[b"Id"]
            if kind == ANSWER and b"Body" in numbers and b"ParentId" in numbers and b"Id" in numbers:
                return numbers[b"ParentId"], numbers[b"Id"], numbers.get(b"Score", 0)
            return None

        def plain(found, block: bytes, start: int, end: int) -> int | tuple[int, int, int] | None:  # as ``pick``,
            kind = found[2]  # but a question's id is kept here, not yielded
            if kind == b"1":
                questions.append(int(found[1]))
                return None
            if kind == b"2":
                return (int(found[4]), int(found[1]), int(found[5])) if found[4] is not None else None
            return pick(block[start:end])

        for line_no, offset, found in self._rows(dump, None, None, pick, cursor=cursor, plain=plain):
            if type(found) is int:
                questions.append(found)
                continue
            parent, answer_id, score = found
            held = best.get(parent)
            if held is None or score > held[0] or (score == held[0] and answer_id < held[1]):
                best[parent] = (score, answer_id, offset, line_no)
        return questions, best, cursor.get("lines", 0)

    def read_range(self, dump: SiteDump, stats: ReaderStats, top: dict[int, tuple[int, int, int, int]],
                   first_line: int, progress: Callable[[int], None] | None = None) -> Iterator[Candidate]:
        """Pass 2 over one byte range: one Candidate per question in it.

        ``top``: ``{question id: (score, answer id, byte offset, line)}`` of the top answer of each of the range's
        questions, over the whole file (:func:`join_index`); an answer that can pass ``min_answer_score`` is read
        at its offset, wherever it lies in the file. Answer rows of the range are counted and checked, not
        parsed. Lines are numbered from ``first_line`` (the file's line number of the range's first line).
        """
        hold = self.min_answer_score
        label = dump.label
        with open(dump.path, "rb") as answers:
            # every answer row unparsed (wanted: none): the ones needed are fetched by offset
            for post in self._posts(dump, stats, progress, top, set(), first_line):
                if isinstance(post, Candidate):  # a light question
                    yield post
                    continue
                post_type, post_id, question, _ = post
                if post_type != QUESTION:
                    stats.count("other")
                    continue
                stats.count("questions")
                found = top.get(post_id)
                if found is None:
                    yield _candidate(question, None, None)
                    continue
                best = found[:2]
                if hold is not None and best[0] < hold:
                    yield _candidate(question, best, None)
                    continue
                answers.seek(found[2])
                text = answers.readline().strip()
                row = self._parse_row(text, found[3], label, None, repairs=stats)  # (counted as in one pass)
                if row is None or "Body" not in row:
                    self._malformed(stats, label, found[3], "top answer row cannot be parsed")
                yield _candidate(question, best, row if row is not None and "Body" in row else None)

