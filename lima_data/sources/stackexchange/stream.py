"""The row stream of a dump XML file (Posts.xml, Comments.xml): open a file, a byte range of one, or an archive
member; yield its row lines, parsed or read for their numbers; check the root element, cut rows and a missing end;
classify each Posts.xml row.

The file is read in blocks of whole lines (about 1 MiB; progress is reported per block). A pass over Posts.xml may
give a fast path (``plain`` of :meth:`RowStream._rows`): a row line in the dump's usual form (two spaces, ``<row``,
the numeric attributes in the dump's order, then ``Body``; the line ends ``/>``) is matched by one precompiled
regular expression (:data:`_PLAIN_ROW`) that reads its numbers, instead of being stripped, classified and searched
line by line. Every other line (header, root, a row in another attribute order, a cut row, ...) takes the general,
order-agnostic path, so both give the same rows, counts and errors (tested in
``tests/test_stackexchange_reader.py``).

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
from .. import EMPTY_FILE, ReaderStats
from ..base import UTF16
from . import sevenzip
from .rows import (
    _PARSER,
    ANSWER,
    QUESTION,
    _light_candidate,
    _light_question,
    _light_title,
    _numbers,
    _plain_numbers,
    _question,
    _repair_chars,
)
from .sites import SiteDump

_CHUNK = 1 << 20

#: What a ``pick`` of :meth:`RowStream._rows` returns for a row to be parsed.
PARSE = object()

#: The start of a row line as the dump writes it: two spaces of indent, then the numeric attributes in the dump's
#: order (groups: Id, PostTypeId, AcceptedAnswerId, ParentId, Score), then ``Body``. Every attribute before the
#: body is here, so these are exactly the numbers :func:`~.rows._numbers` reads from the line; a line in another
#: form is read by the order-agnostic code. A number has at most 18 digits, as in :data:`.rows._NUMBER_ATTRIBUTE`
#: (a longer one does not match here).
_PLAIN_ROW = re.compile(rb'  <row Id="(\d{1,18})" PostTypeId="(\d{1,18})" (?:AcceptedAnswerId="(\d{1,18})" )?'
                        rb'(?:ParentId="(\d{1,18})" )?CreationDate="[^"]*" Score="(-?\d{1,18})" '
                        rb'(?:ViewCount="\d{1,18}" )?Body="')


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
        if self._spooled.get(dump) is not None:  # an archive member decoded, or a file rewritten in lines
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

    def _blocks(self, stream, start: int, end: int | None) -> Iterator[tuple[bytes, int, int]]:
        """``(block, size, byte offset of block[0])``: the stream's lines in blocks of about :data:`_CHUNK` bytes;
        ``block[:size]`` holds whole lines (the file's last line may lack its line end), up to the line holding
        byte ``end - 1`` when ``end`` is given (a range ends at a line start: the line starting at ``end`` is the
        next range's). The line a read cuts is completed and given as its own small block (no copy of the big
        one)."""
        offset = start
        while end is None or offset < end:
            block = stream.read(_CHUNK)
            if not block:
                return
            size = block.rfind(b"\n") + 1
            if size == 0:  # the block lies inside one long line
                block += stream.readline()
            if size in (0, len(block)):
                parts = [(block, len(block))]
            else:
                tail = block[size:] + stream.readline()
                parts = [(block, size), (tail, len(tail))]
            for part, size in parts:
                if end is not None and offset + size > end:
                    cut = part.find(b"\n", end - offset - 1, size) + 1
                    yield part, cut if cut > 0 else size, offset
                    return
                yield part, size, offset
                offset += size
                if end is not None and offset >= end:
                    return

    def _rows(self, dump: SiteDump, stats: ReaderStats | None, progress: Callable[[int], None] | None,
              pick: Callable[[bytes], Any] | None = None, first_line: int = 1, cursor: dict[str, int] | None = None,
              root: str = "posts", plain: Callable[[re.Match, bytes, int, int], Any] | None = None
              ) -> Iterator[tuple[int, int, Any]]:
        """Yield ``(line_number, byte_offset, row)`` for every well-formed ``<row>`` of a dump XML file whose root
        element is ``<root>`` (``posts``: a whole Posts.xml, or a byte range of one whose first line is
        ``first_line``; ``comments``: a whole Comments.xml). ``row`` is the row's attributes.

        ``pick``: called with each row line's bytes (stripped); ``None`` skips the row without parsing it,
        :data:`PARSE` parses it as if there were no ``pick``, and any other result is yielded as it is, instead
        of the attributes (rows the caller only needs to count, rank or parse later; see
        :meth:`_numbers_or_parse`). ``plain``: the same as ``pick``, faster, for a row line in the dump's usual
        form (:data:`_PLAIN_ROW`: its numbers in the dump's attribute order, then ``Body``; the line ends
        ``/>``): called with the match, the block and the bounds of the row's text in it (``block[start:end]``
        is what ``pick`` would get); it must answer as ``pick`` would (it may call ``pick`` for a row it does
        not handle). ``cursor``: receives ``{"lines": lines read}`` when the shard is done.
        Every row line counts in ``stats.rows``; malformed rows and a missing closing tag are recorded in
        ``stats`` (or raised when strict). The header (``<root>``) is checked in the shard holding the file's
        start, ``</root>`` in the one holding its end. The file is read in blocks of whole lines; ``progress``
        gets each block's size in bytes.

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
        match_plain = _PLAIN_ROW.match
        try:
            with stream:
                for block, size, base in self._blocks(stream, dump.start, dump.end):
                    if progress is not None:
                        progress(size)
                    pos = 0
                    while pos < size:
                        if plain is not None and opened:  # the fast path: a row line in the dump's usual form
                            found = match_plain(block, pos)
                            if found is not None:
                                stop = block.find(b"\n", found.end())
                                # the text ends "/>" right before the line end ("\n" or "\r\n")
                                text_end = stop - 1 if stop > 0 and block[stop - 1] == 13 else stop
                                if stop > 0 and block.startswith(b"/>", text_end - 2):
                                    here, pos = base + pos, stop + 1
                                    line_no += 1
                                    if stats is not None:
                                        stats.rows += 1
                                    found = plain(found, block, here - base + 2, text_end)
                                    if found is None:
                                        continue
                                    if found is PARSE:
                                        found = self._parse_row(block[here - base + 2:text_end], line_no, label,
                                                                stats)
                                        if found is None:
                                            continue
                                    yield line_no, here, found
                                    continue
                        stop = block.find(b"\n", pos)
                        here, line = base + pos, block[pos:stop + 1 if stop >= 0 else size]
                        pos += len(line)
                        line_no += 1
                        text = line.strip()
                        if line_no == 1 and first:
                            text = text.removeprefix(b"\xef\xbb\xbf")
                            if not text.startswith(b"<"):
                                utf16 = text.startswith((b"\xff\xfe", b"\xfe\xff"))
                                raise InputError(label, UTF16 if utf16 else
                                                 f"not an XML file (expected a Stack Exchange {name})", line_no)
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
                            other = (found.group(1).decode(errors="replace") if found
                                     else text[:20].decode(errors="replace"))
                            raise InputError(label, f"not a {name}: the root element is <{other}>, not <{root}>",
                                             line_no)
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
        elif line_no == 0 or not opened:  # nothing, or only an XML declaration (any other line raised above)
            self._empty(label, stats, "" if line_no == 0 else f"only an XML declaration, no <{root}> element")
            return
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

    def _empty(self, label: str, stats: ReaderStats | None, detail: str) -> None:
        """A whole file (or archive member) that holds no row: raise in strict mode, else record it in ``stats``
        (:meth:`ReaderStats.empty`: the file is skipped with a warning naming it; a pass without ``stats``
        skips it silently, the pass with them records it).

        Raises:
            InputError: ``strict``, naming the file.
        """
        if stats is not None:
            stats.empty(self.strict, detail)
        elif self.strict:
            raise InputError(label, EMPTY_FILE + (f" ({detail})" if detail else ""))

    def _malformed(self, stats: ReaderStats, label: str, line_no: int, message: str) -> None:
        if self.strict:
            raise InputError(label, message, line_no)
        stats.error(line_no, message)

    def _parse_row(self, text: bytes, line_no: int, label: str, stats: ReaderStats | None,
                   repairs: ReaderStats | None = None) -> dict[str, str] | None:
        """The attributes of one row line, or ``None`` (recorded in ``stats`` as malformed) when it is cut off or
        bad XML. The row is not counted in ``stats.rows`` (:meth:`_rows` counts it).

        A row libxml2 refuses is parsed again with every character XML 1.0 refuses (``&#1;``, ``&#xD800;``,
        ...) turned into U+FFFD (:func:`.rows._repair_chars`); when that parses, the row is read and counted
        as ``counts["repaired"]`` of ``stats`` (or of ``repairs``, for a caller that records malformed rows
        itself). Only a failed parse pays for the repair."""
        if not text.endswith(b"/>"):
            if stats is not None:
                self._malformed(stats, label, line_no, "row is cut off (no closing '/>')")
            return None
        try:
            element = etree.fromstring(text, _PARSER)
        except etree.XMLSyntaxError as exc:
            element = self._repaired_row(text)
            if element is None:
                if stats is not None:
                    self._malformed(stats, label, line_no, f"bad XML: {_xml_reason(exc.msg)}")
                return None
            counted = stats if stats is not None else repairs
            if counted is not None:
                counted.count("repaired")
        return dict(element.attrib)

    @staticmethod
    def _repaired_row(text: bytes):
        """The element of a row line that failed to parse, once its characters XML refuses are U+FFFD, or
        ``None`` when it holds none or still fails (another fault: the original reason is reported)."""
        repaired = _repair_chars(text)
        if repaired is None:
            return None
        try:
            return etree.fromstring(repaired, _PARSER)
        except etree.XMLSyntaxError:
            return None

    def _check_answer(self, numbers: dict[bytes, int], stats: ReaderStats, label: str, line_no: int) -> None:
        """Count an answer row that is not parsed (its numbers only), or record it as malformed."""
        if b"ParentId" not in numbers or b"Id" not in numbers:
            self._malformed(stats, label, line_no, "answer row without a usable Id or ParentId")
        elif b"Body" not in numbers:
            self._malformed(stats, label, line_no, "row without required attribute Body")
        else:
            stats.count("answers")

    def _skip(self, top: dict[int, tuple], wanted: set[int], dump: SiteDump, stats: ReaderStats
              ) -> tuple[Callable[[bytes], Any], Callable[..., Any]]:
        """The ``pick`` and ``plain`` of pass 2 (see :meth:`_rows`): answer rows whose id is not in ``wanted``
        are read for their numbers only, and, with ``min_answer_score`` set, questions whose top answer
        (``top[id][0]``, the score) cannot pass it are read light (:func:`_light_question`); every other row is
        parsed. ``plain`` counts a checked answer itself (yielding nothing) and makes a light question's
        Candidate itself; other unparsed rows are yielded as numbers for :meth:`_unparsed`."""
        hold = self.min_answer_score
        site = dump.domain

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

        pick = self._numbers_or_parse(skip)

        def plain(found: re.Match, block: bytes, start: int, end: int) -> Any:
            kind = found[2]
            if kind == b"2":
                if wanted and int(found[1]) in wanted:
                    return PARSE
                if found[4] is None:  # no ParentId: recorded as malformed, with its line, by :meth:`_unparsed`
                    return _plain_numbers(found)
                stats.count("answers")
                return None
            if kind == b"1":
                if hold is None:
                    return PARSE
                question_id = int(found[1])
                best = top.get(question_id)
                # a question's line holding 'PostTypeId="2"' elsewhere is parsed, as ``skip`` does
                if (best is not None and best[0] >= hold) or block.find(b'PostTypeId="2"', found.end(), end) >= 0:
                    return PARSE
                title, error = _light_title(block[start:end], True)
                if error is not None:
                    return {b"PostTypeId": QUESTION, b"Error": error}
                stats.count("questions")
                return _light_candidate(site, question_id, int(found[5]), title,
                                        int(found[3]) if found[3] is not None else None, best)
            return pick(block[start:end])

        return pick, plain

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
        best = top.get(numbers[b"Id"])
        return _light_candidate(dump.domain, numbers[b"Id"], numbers.get(b"Score", 0), numbers[b"Title"],
                                numbers.get(b"AcceptedAnswerId"), best)

    def _posts(self, dump: SiteDump, stats: ReaderStats, progress: Callable[[int], None] | None,
               top: dict[int, tuple], wanted: set[int], first_line: int = 1
               ) -> Iterator[Candidate | tuple[int, int, dict[str, Any] | None, dict[str, str]]]:
        """The rows of pass 2: a Candidate for each light question (see :meth:`_skip` and :meth:`_unparsed`), and
        ``(post type, post id, question fields or None, attributes)`` for each parsed, well-formed row (see
        :meth:`_post`); answers not in ``wanted`` are counted and checked, unparsed, and not yielded."""
        pick, plain = self._skip(top, wanted, dump, stats)
        for line_no, _, row in self._rows(dump, stats, progress, pick, first_line=first_line, plain=plain):
            if type(row) is Candidate:  # a light question, made by ``plain``
                yield row
                continue
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
                int(row["ParentId"])  # (its Score, if no number, is 0 as in a row read light: rows._number)
                if "Body" not in row:
                    raise KeyError("Body")
            return post_type, post_id, None
        except KeyError as exc:
            self._malformed(stats, dump.label, line_no, f"row without required attribute {exc.args[0]}")
        except ValueError as exc:
            reason = "a number of more than 4,300 digits" if "4300 digits" in str(exc) else exc  # CPython's int limit
            self._malformed(stats, dump.label, line_no, f"bad number in row: {reason}")
        return None


def _xml_reason(message: str) -> str:
    """libxml2's message for a row it refused, on one line, its advice to the programmer (``try XML_PARSE_HUGE``)
    replaced by what it means for the row: a text over libxml2's 10,000,000-byte limit (fuzzing found the
    two-line message for a 10 MB Body, issue 15)."""
    message = " ".join(message.split())
    if "XML_PARSE_HUGE" in message:
        message = ("an attribute over 10,000,000 bytes (libxml2's limit for one text; no real post is that long): "
                   + message.replace(", try XML_PARSE_HUGE", "").replace("try XML_PARSE_HUGE", "").replace(" ,", ",").strip(" ,"))
    return message
