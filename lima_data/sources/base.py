"""What every source has in common: shards, the source interface, and finding dumps in the user's paths.

``lima-data build --input DUMPS_DIR`` hands the same paths to every source of the recipe; each file is offered to
the sources in turn and the first that recognises it (by name, then by a peek at its content) claims it as a
:class:`Shard`. A file named explicitly that no source claims is an error; unclaimed files inside a folder are
skipped (and counted).
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..candidate import Candidate
from ..errors import InputError, RecipeError, safe_text
from ..text import loads_json
from . import ReaderStats

Progress = Callable[[int], None]
#: ``run_map(function, argument_tuples)`` -> results in argument order, computed by the build's executor
#: (this process, a process pool or Ray); ``function`` must be a module-level function.
RunMap = Callable[[Callable[..., Any], list[tuple]], list[Any]]


@dataclass(frozen=True)
class Shard:
    """One unit of reading: a file (or an archive member) of one source.

    Attributes:
        source: the source that claimed it.
        path: the file.
        kind: its format, e.g. ``"posts_xml"``, ``"7z"``, ``"wikihow_html"``, ``"pushshift_zst"``.
        size: bytes one pass reads (for progress bars; for an archive, the member's declared size).
        passes: how many times the reader reads it.
        member: for an archive, the member read.
        domain: for Stack Exchange, the site's domain.
        start, end: for a byte range of a big file, its first byte and the byte after its last (both at line
            starts); ``end`` is ``None`` for a whole file.
    """

    source: str
    path: Path
    kind: str
    size: int = 0
    passes: int = 1
    member: str | None = None
    domain: str | None = None
    start: int = 0
    end: int | None = None

    @property
    def label(self) -> str:
        return f"{self.path}!{self.member}" if self.member else str(self.path)

    @property
    def is_range(self) -> bool:
        return self.end is not None


class Source:
    """A source: claims files, reads shards into Candidates.

    Subclasses set ``name``, ``groups`` (the quota groups its candidates fall in, or ``None`` for any name, e.g.
    subreddits), ``methods`` (selection methods it supports) and ``defaults`` (reader settings; the recipe's
    ``[sources.<name>.reader]`` overrides them).
    """

    name: ClassVar[str]
    groups: ClassVar[tuple[str, ...] | None] = None
    methods: ClassVar[tuple[str, ...]] = ("top",)
    defaults: ClassVar[dict[str, Any]] = {}
    #: A companion source reads files that another source also reads (Stack Exchange dialogues read the same
    #: site archives as ``stackexchange``): it is offered every file, even one an earlier source claimed, and its
    #: claim does not keep the file from the others.
    companion: ClassVar[bool] = False

    #: Folder for work files shared between tasks (set by the executor: the build's cache); ``None`` outside
    #: a build, when a source uses a temporary folder instead.
    workdir: Path | None = None
    #: The recipe's quotas for this source's groups (``[sources.<name>.selection] quotas``; set by the executor)
    #: for a reader whose memory bound follows them (``uses_quotas``); ``None`` outside a build.
    quotas: dict[str, int] | None = None
    uses_quotas: ClassVar[bool] = False

    def __init__(self, settings: dict[str, Any] | None = None, *, strict: bool = False, seed: int = 0):
        settings = dict(settings or {})
        unknown = set(settings) - set(self.defaults)
        if unknown:
            raise RecipeError(f"[sources.{self.name}.reader]: unknown setting(s) {sorted(unknown)}; "
                              f"known: {sorted(self.defaults)}")
        self.settings = {**self.defaults, **settings}
        self.strict = strict
        self.seed = seed

    def configure(self, filters: list) -> None:
        """Let the reader see the source's filter chain (e.g. to skip work a filter would drop anyway)."""

    @staticmethod
    def rank_key(candidate: Candidate) -> tuple:
        """Selection order within a group, best first; default: response score descending, then id."""
        from ..selection import default_rank_key

        return default_rank_key(candidate)

    def claim(self, path: Path, explicit: bool) -> Shard | None:
        """Return a Shard if ``path`` is a dump of this source, else ``None``. ``explicit``: the user named
        this very file (not found by walking a folder)."""
        raise NotImplementedError

    def finalize(self, shards: list[Shard], warn: Callable[[str], None]) -> list[Shard]:
        """Order (and de-duplicate) the claimed shards; default: sorted by path."""
        return sorted(shards, key=lambda s: (str(s.path), s.member or ""))

    def prepare(self, shards: list[Shard], workdir: Path, run_map: "RunMap") -> None:
        """Work that must be done over all of a source's shards before their tasks run (e.g. Stack Exchange's
        cross-range question/answer join), using ``run_map`` to spread it over the executor's workers and
        ``workdir`` (in the build's cache) for its files. Default: nothing."""

    def read(self, shards: list[Shard], stats: Callable[[Shard], ReaderStats],
             progress: Callable[[Shard], Progress | None]) -> Iterator[Candidate]:
        """Yield the candidates of all ``shards``; ``stats(shard)`` gives the shard's ReaderStats to fill and
        ``progress(shard)`` its byte-count callback."""
        raise NotImplementedError

    def json_objects(self, lines: Iterable[str], stats: ReaderStats) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(line number, object)`` for each JSON-object line of ``lines``; blank lines are skipped, bad JSON and
        non-objects counted as malformed rows (or raised in strict mode). ``lines`` may be bytes (a file opened in
        binary mode), so that a line that is not UTF-8 is one malformed row, not the end of the file. A file with
        no line but blank ones (and no row counted by whoever fed ``lines``) is empty: :meth:`ReaderStats.empty`.

        Raises:
            InputError: strict mode, and a bad row or an empty file.
        """
        blank = True
        for line, raw in enumerate(lines, 1):
            if isinstance(raw, bytes):
                try:
                    raw = raw.decode("utf-8-sig" if line == 1 else "utf-8")
                except UnicodeDecodeError as exc:
                    self.malformed(stats, line, f"not UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})")
                    continue
            if not raw.strip():
                continue
            blank = False
            try:
                row = loads_json(raw)
            except json.JSONDecodeError as exc:
                self.malformed(stats, line, f"bad JSON: {exc.msg}")
                continue
            if "\\u" in raw and _LONE_ESCAPE.search(raw):
                row = _without_lone_surrogates(row)
            if not isinstance(row, dict):
                self.malformed(stats, line, "not a JSON object")
                continue
            yield line, row
        if blank and not stats.rows:  # (a reader that skips rows unparsed counts them in ``rows``, e.g. Reddit's)
            stats.empty(self.strict)

    def malformed(self, stats: ReaderStats, line: int | None, message: str) -> None:
        """Count a bad row (or raise it in strict mode)."""
        if self.strict:
            raise InputError(stats.shard, message, line)
        stats.error(line, message)


#: A JSON \uXXXX escape of a surrogate (paired ones, e.g. an escaped emoji, are fine, but a lone one is common
#: in Pushshift dumps and cannot be written as UTF-8).
_LONE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _without_lone_surrogates(value: Any) -> Any:
    """``value`` (parsed JSON, changed in place) with every lone surrogate in its strings and keys replaced by
    U+FFFD. Iterative: a row nested 1,000 deep (orjson reads up to 1,024) with one lone escape hit Python's
    recursion limit (issue 15, found by fuzzing)."""
    if isinstance(value, str):
        return safe_text(value)
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            for i, item in enumerate(node):
                if isinstance(item, str):
                    node[i] = safe_text(item)
                elif isinstance(item, (list, dict)):
                    stack.append(item)
        elif isinstance(node, dict):
            items = list(node.items())
            node.clear()  # rebuilt in order: a key may change
            for key, item in items:
                if isinstance(item, str):
                    item = safe_text(item)
                elif isinstance(item, (list, dict)):
                    stack.append(item)
                node[safe_text(key)] = item
    return value


#: The module of this package that defines each source: :func:`source_class` imports only the sources a build
#: names (issue 15: start-up imports only what the recipe uses; a Stack Exchange build does not load the wikiHow,
#: Reddit or Natural Instructions readers). ``tests/test_recipe.py`` checks it against the subclasses every module
#: defines (:func:`source_names`).
SOURCE_MODULES: dict[str, str] = {
    "authored": "jsonl", "natural_instructions": "natural_instructions", "reddit": "reddit",
    "stackexchange": "stackexchange", "stackexchange_dialogue": "stackexchange", "wikihow": "wikihow",
}


def source_class(name: str) -> type[Source]:
    """The Source class registered under ``name``; only its module is imported.

    Raises:
        RecipeError: no such source.
    """
    module = SOURCE_MODULES.get(name)
    if module is None:
        raise RecipeError(f"unknown source {name!r} (known: {', '.join(sorted(SOURCE_MODULES))})")
    importlib.import_module(f"{__package__}.{module}")
    return {cls.name: cls for cls in _subclasses(Source)}[name]


def source_names() -> list[str]:
    """Every source's name (every source module imported)."""
    from . import jsonl, natural_instructions, reddit, stackexchange, wikihow  # noqa: F401

    return sorted(cls.name for cls in _subclasses(Source))


def _subclasses(cls):
    for sub in cls.__subclasses__():
        if "name" in sub.__dict__:
            yield sub
        yield from _subclasses(sub)


def walk(paths: Iterable[str | Path]) -> Iterator[tuple[Path, bool]]:
    """Yield ``(file, explicit)`` for each path: a file as given (explicit), or every file under a folder,
    recursively, in sorted order, skipping hidden names.

    Raises:
        InputError: a path does not exist, or is neither a regular file nor a folder.
    """
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise InputError(path, "no such file or directory")
        if path.is_file():
            yield path, True
            continue
        if not path.is_dir():
            raise InputError(path, "not a regular file or folder (a FIFO, socket or device?); name a dump file "
                                   "or a folder of them")
        for child in sorted(path.rglob("*")):
            # (a broken symbolic link, or a loop, is yielded too: :func:`discover` lists it as skipped, issue 15)
            if ((child.is_file() or child.is_symlink() and not child.exists())
                    and not any(part.startswith(".") for part in child.relative_to(path).parts)):
                yield child, False


def discover(paths: Iterable[str | Path], sources: list[Source], warn: Callable[[str], None] = lambda m: None
             ) -> tuple[dict[str, list[Shard]], list[Path]]:
    """Offer every file under ``paths`` to ``sources`` (in order); return the shards per source name and the
    files no source claimed (in walk order). The first source that claims a file keeps it from the others, except
    that a :attr:`Source.companion` source is offered every file and its claim keeps it from none.

    Raises:
        InputError: a path does not exist, or a file named explicitly is not a dump of any of ``sources``.
    """
    found: dict[str, list[Shard]] = {s.name: [] for s in sources}
    skipped: list[Path] = []
    for path, explicit in walk(paths):
        if not explicit and not path.exists():  # a broken symbolic link found in a folder: skipped, listed
            skipped.append(path)
            continue
        claimed = primary = False
        for source in sources:
            if primary and not source.companion:
                continue
            shard = source.claim(path, explicit)
            if shard is not None:
                found[source.name].append(shard)
                claimed = True
                primary = primary or not source.companion
        if not claimed:
            if explicit:
                if path.stat().st_size == 0:  # no source can tell an empty file's format (issue 15)
                    raise InputError(path, "the file is empty")
                if utf16(path):
                    raise InputError(path, UTF16)
                raise InputError(path, "not a dump of any source being built "
                                       f"({', '.join(s.name for s in sources)})")
            skipped.append(path)
    return {s.name: s.finalize(found[s.name], warn) for s in sources}, skipped


#: What a UTF-16 file (Windows tools write them) is told: every source reads UTF-8.
UTF16 = "the file is UTF-16; lima-data reads UTF-8 (convert it, e.g. iconv -f UTF-16 -t UTF-8)"


def utf16(path: Path) -> bool:
    """The file starts with a UTF-16 byte-order mark (FF FE or FE FF)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(2) in (b"\xff\xfe", b"\xfe\xff")
    except OSError:
        return False


def peek_lines(path: Path, n: int = 1, limit: int = 1 << 16) -> list[str]:
    """The first ``n`` non-empty lines of a text file (at most ``limit`` bytes read), BOM removed."""
    with open(path, "rb") as fh:
        head = fh.read(limit)
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    return [line for line in text.splitlines() if line.strip()][:n]


def peek_json_keys(path: Path) -> set[str]:
    """Keys of the first JSON object line of a JSON-lines file, or an empty set."""
    lines = peek_lines(path)
    if not lines:
        return set()
    try:
        row = loads_json(lines[0])
    except json.JSONDecodeError:  # also JSON nested too deep or with a 5,000-digit number (see loads_json)
        return set()
    return set(row) if isinstance(row, dict) else set()


def peek_csv_header(path: Path) -> list[str]:
    """The header row of a CSV file, or ``[]``."""
    import csv
    import io

    lines = peek_lines(path)
    if not lines:
        return []
    try:
        return [h.strip() for h in next(csv.reader(io.StringIO(lines[0])))]
    except (csv.Error, StopIteration):
        return []


