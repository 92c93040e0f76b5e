"""The row stream of a dump XML file (Posts.xml, Comments.xml): open a file, a byte range of one, or an archive
member; yield its row lines, parsed or read for their numbers; check the root element, cut rows and a missing end;
classify each Posts.xml row.

:class:`RowStream` is the base of :class:`~lima_data.sources.stackexchange.reader.StackExchangeReader`, whose
passes (whole file, byte range) are built on :meth:`RowStream._rows`, and of
:class:`~lima_data.sources.stackexchange.dialogue_reader.DialogueReader`, whose three passes are too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from lxml import etree

from ...candidate import Candidate
from ...errors import InputError
from .. import ReaderStats
from . import sevenzip
from .rows import _PARSER, ANSWER, QUESTION, _candidate, _light_question, _numbers, _question
from .sites import SiteDump

_CHUNK = 1 << 20

#: What a ``pick`` of :meth:`RowStream._rows` returns for a row to be parsed.
PARSE = object()


class RowStream:
    """Rows of one :class:`~lima_data.sources.stackexchange.sites.SiteDump`, checked and classified; the
    settings are :class:`~lima_data.sources.stackexchange.reader.StackExchangeReader`'s."""

    def __init__(self, *, min_answer_score: int | None = None, strict: bool = False,
                 max_decompressed_bytes: int | None = None):
        self.min_answer_score = min_answer_score
        self.strict = strict
        self.max_decompressed_bytes = max_decompressed_bytes
        self._spooled: dict[SiteDump, str] = {}  # archive member -> its decompressed copy while read

    # -- byte streams -----------------------------------------------------------------------------------------

    def _open(self, dump: SiteDump):
        if dump.member and self._spooled.get(dump) is not None:
            return open(self._spooled[dump], "rb", buffering=_CHUNK)
        if dump.member:
            limit = self.max_decompressed_bytes or (dump.size + (1 << 20))
            return sevenzip.open_member(dump.path, dump.member, limit)
        try:
            fh = open(dump.path, "rb", buffering=_CHUNK)
        except OSError as exc:
            raise InputError(dump.path, f"cannot open: {exc.strerror}") from None
        if dump.start:
            fh.seek(dump.start)
        return fh

    def _rows(self, dump: SiteDump, stats: ReaderStats | None, progress: Callable[[int], None] | None,
              pick: Callable[[bytes], Any] | None = None, first_line: int = 1, cursor: dict[str, int] | None = None,
              root: str = "posts") -> Iterator[tuple[int, int, Any]]:
        """Yield ``(line_number, byte_offset, row)`` for every well-formed ``<row>`` of a dump XML file whose root
        element is ``<root>`` (``posts``: a whole Posts.xml, or a byte range of one whose first line is
        ``first_line``; ``comments``: a whole Comments.xml). ``row`` is the row's attributes.

        ``pick``: called with each row line's bytes; ``None`` skips the row without parsing it, :data:`PARSE`
        parses it as if there were no ``pick``, and any other result is yielded as it is, instead of the
        attributes (rows the caller only needs to count, rank or parse later; see :meth:`_numbers_or_parse`).
        ``cursor``: receives ``{"lines": lines read}`` when the shard is done.
        Every row line counts in ``stats.rows``; malformed rows and a missing closing tag are recorded in
        ``stats`` (or raised when strict). The header (``<root>``) is checked in the shard holding the file's
        start, ``</root>`` in the one holding its end.

        Raises:
            InputError: the file cannot be read, is not XML, or its root element is not ``<root>``; any malformed
                row or a missing closing tag when strict.
        """
        label = dump.label
        name = f"{root.capitalize()}.xml"
        tag = root.encode()
        first = dump.start == 0
        last = dump.end is None or (dump.end >= dump.path.stat().st_size and dump.end > dump.start)
        stream = self._open(dump)
        closed = False
        opened = not first
        line_no = first_line - 1
        offset, end = dump.start, dump.end
        try:
            with stream:
                for line in stream:
                    here = offset
                    if end is not None and here >= end:
                        break
                    offset += len(line)
                    line_no += 1
                    if progress is not None:
                        progress(len(line))
                    text = line.strip()
                    if line_no == 1 and first:
                        text = text.removeprefix(b"\xef\xbb\xbf")
                        if not text.startswith(b"<"):
                            raise InputError(label, f"not an XML file (expected a Stack Exchange {name})", line_no)
                    if not text:
                        continue
                    if text.startswith(b"<row"):
                        if not opened:
                            raise InputError(label, f"a <row> before the <{root}> root element", line_no)
                        if stats is not None:
                            stats.rows += 1
                        if pick is not None:
                            found = pick(text)
                            if found is None:
                                continue
                            if found is not PARSE:
                                yield line_no, here, found
                                continue
                        attributes = self._parse_row(text, line_no, label, stats)
                        if attributes is not None:
                            yield line_no, here, attributes
                    elif text.startswith((b"<?xml", b"<!DOCTYPE", b"<!--")):
                        opened = opened or b"<" + tag in text  # a root on the declaration's line
                        continue
                    elif text.startswith(b"<" + tag):
                        opened = True
                    elif text.startswith(b"</" + tag + b">"):
                        closed = True
                    elif not opened:
                        found = re.match(rb"<\s*([\w:.-]+)", text)
                        other = found.group(1).decode(errors="replace") if found else text[:20].decode(errors="replace")
                        raise InputError(label, f"not a {name}: the root element is <{other}>, not <{root}>", line_no)
                    elif stats is not None:
                        self._malformed(stats, label, line_no, "not a <row> element")
        except InputError:
            raise
        except (OSError, EOFError, ValueError) as exc:
            raise InputError(label, f"read failed after line {line_no}: {exc}") from None
        if cursor is not None:
            cursor["lines"] = line_no - first_line + 1
        if not first:
            pass
        elif line_no == 0:
            raise InputError(label, "the file is empty")
        elif not opened:
            raise InputError(label, f"not a {name}: no <{root}> root element")
        if last and not closed and stats is not None:
            stats.truncated = True
            message = f"the file ends at line {line_no} without </{root}> (truncated?)"
            if self.strict:
                raise InputError(label, message, line_no)
            stats.error(line_no, message, row=False)

    @staticmethod
    def _numbers_or_parse(numbers: Callable[[bytes], dict[bytes, Any] | None], only: bytes | None = None
                          ) -> Callable[[bytes], Any]:
        """A ``pick`` for :meth:`_rows`: a complete row line (ending ``/>``) for which ``numbers`` returns a dict
        (e.g. :func:`_numbers`) yields that dict, unparsed; every other row is parsed (a cut one is reported by
        the parse). ``only``: row lines without these bytes are skipped unparsed."""

        def pick(text: bytes) -> Any:
            if only is not None and only not in text:
                return None
            if not text.endswith(b"/>"):
                return PARSE
            found = numbers(text)
            return PARSE if found is None else found

        return pick

    def _malformed(self, stats: ReaderStats, label: str, line_no: int, message: str) -> None:
        if self.strict:
            raise InputError(label, message, line_no)
        stats.error(line_no, message)

    def _parse_row(self, text: bytes, line_no: int, label: str, stats: ReaderStats | None) -> dict[str, str] | None:
        """The attributes of one row line, or ``None`` (recorded in ``stats`` as malformed) when it is cut off or
        bad XML. The row is not counted in ``stats.rows`` (:meth:`_rows` counts it)."""
        if not text.endswith(b"/>"):
            if stats is not None:
                self._malformed(stats, label, line_no, "row is cut off (no closing '/>')")
            return None
        try:
            element = etree.fromstring(text, _PARSER)
        except etree.XMLSyntaxError as exc:
            if stats is not None:
                self._malformed(stats, label, line_no, f"bad XML: {exc.msg}")
            return None
        return dict(element.attrib)

    def _check_answer(self, numbers: dict[bytes, int], stats: ReaderStats, label: str, line_no: int) -> None:
        """Count an answer row that is not parsed (its numbers only), or record it as malformed."""
        if b"ParentId" not in numbers or b"Id" not in numbers:
            self._malformed(stats, label, line_no, "answer row without a usable Id or ParentId")
        elif b"Body" not in numbers:
            self._malformed(stats, label, line_no, "row without required attribute Body")
        else:
            stats.count("answers")

    def _skip(self, top: dict[int, tuple], wanted: set[int]) -> Callable[[bytes], dict[bytes, Any] | None]:
        """The ``numbers`` of pass 2 (see :meth:`_numbers_or_parse`): answer rows whose id is not in ``wanted`` are read for
        their numbers only, and, with ``min_answer_score`` set, questions whose top answer (``top[id][0]``, the
        score) cannot pass it are read light (:func:`_light_question`); every other row is parsed."""
        hold = self.min_answer_score

        def skip(line: bytes) -> dict[bytes, Any] | None:
            if b'PostTypeId="2"' in line:
                numbers = _numbers(line)  # (the text may also be in a question's body: the number decides)
                if numbers.get(b"PostTypeId") == ANSWER and numbers.get(b"Id") not in wanted:
                    return numbers
            elif hold is not None and b'PostTypeId="1"' in line:
                numbers = _numbers(line)
                if numbers.get(b"PostTypeId") == QUESTION and b"Id" in numbers:
                    best = top.get(numbers[b"Id"])
                    if best is None or best[0] < hold:
                        return _light_question(line, numbers)
            return None

        return skip

    def _unparsed(self, numbers: dict[bytes, Any], dump: SiteDump, stats: ReaderStats, line_no: int,
                  top: dict[int, tuple]) -> Candidate | None:
        """Handle a row read without an XML parse: an answer is counted and checked; a light question (see
        :func:`_light_question`) becomes a Candidate for ``answer_score`` to drop, or is recorded as malformed."""
        if numbers[b"PostTypeId"] == ANSWER:
            self._check_answer(numbers, stats, dump.label, line_no)
            return None
        if b"Error" in numbers:
            self._malformed(stats, dump.label, line_no, numbers[b"Error"])
            return None
        stats.count("questions")
        question = {"id": numbers[b"Id"], "site": dump.domain, "title": numbers[b"Title"],
                    "score": numbers.get(b"Score", 0), "accepted_answer_id": numbers.get(b"AcceptedAnswerId")}
        best = top.get(question["id"])
        return _candidate(question, best[:2] if best is not None else None, None)

    def _posts(self, dump: SiteDump, stats: ReaderStats, progress: Callable[[int], None] | None,
               top: dict[int, tuple], wanted: set[int], first_line: int = 1
               ) -> Iterator[Candidate | tuple[int, int, dict[str, Any] | None, dict[str, str]]]:
        """The rows of pass 2: a Candidate for each light question (see :meth:`_skip` and :meth:`_unparsed`), and
        ``(post type, post id, question fields or None, attributes)`` for each parsed, well-formed row (see
        :meth:`_post`); answers not in ``wanted`` are counted and checked, unparsed, and not yielded."""
        for line_no, _, row in self._rows(dump, stats, progress, self._numbers_or_parse(self._skip(top, wanted)),
                                          first_line=first_line):
            if b"PostTypeId" in row:  # read without a parse
                candidate = self._unparsed(row, dump, stats, line_no, top)
                if candidate is not None:
                    yield candidate
                continue
            post = self._post(row, dump, stats, line_no)
            if post is not None:
                yield (*post, row)

    def _post(self, row: dict[str, str], dump: SiteDump, stats: ReaderStats, line_no: int
              ) -> tuple[int, int, dict[str, Any] | None] | None:
        """``(post type, post id, question fields or None)`` of a parsed row, or ``None`` (recorded as
        malformed) when a required attribute is missing or a number is bad."""
        try:
            post_type, post_id = int(row["PostTypeId"]), int(row["Id"])
            if post_type == QUESTION:
                return post_type, post_id, _question(row, dump.domain)
            if post_type == ANSWER:
                int(row["ParentId"]), int(row.get("Score", 0))
                if "Body" not in row:
                    raise KeyError("Body")
            return post_type, post_id, None
        except KeyError as exc:
            self._malformed(stats, dump.label, line_no, f"row without required attribute {exc.args[0]}")
        except ValueError as exc:
            self._malformed(stats, dump.label, line_no, f"bad number in row: {exc}")
        return None
