"""Reddit reader: Pushshift dumps (LIMA section 2.1 and Table 1: r/WritingPrompts for 150 training pairs, r/AskReddit
for 70 test prompts).

Formats, each file a shard, recognised by name and content:

- ``pushshift_zst``: zstd-compressed NDJSON: monthly ``RS_YYYY-MM.zst`` (submissions) / ``RC_YYYY-MM.zst``
  (comments), per-subreddit ``<sub>_submissions.zst`` / ``<sub>_comments.zst``. Decompressed as a stream with a
  2 GiB window (``max_window_size=2**31``, which Pushshift's frames need).
- ``reddit_ndjson``: the same rows uncompressed (``.ndjson``, ``.jsonl``, ``.json``); Arctic Shift's extra
  ``_meta`` field is ignored.
- ``reddit_csv``: top-post CSV exports (``id, title, score, subreddit, ..., body``): submissions only.

Rows are filtered by subreddit before anything else (only the recipe's ``subreddits`` are kept). Two passes, in
bounded memory whatever the number of months: all submission files first (every month's ``RS_``), keeping per
subreddit only its top ``K`` submissions by score in a heap (``K`` from the recipe's quota for that subreddit times
``top_margin``, at least ``min_top``; ties at the cut go to the lower id, as selection ranks them; the others are
counted as ``below_top_k``); then all comment files (every month's ``RC_``: a comment may come months after its
submission), where each top-level comment (``parent_id`` = ``t3_<submission id>``) of a kept submission is offered
to it (comments of other submissions are counted as ``comments_without_submission``), which keeps the best
eligible one:
not deleted or removed, not by an excluded author (AutoModerator), not stickied or distinguished, and between
``min_response_chars`` and ``max_response_chars`` characters; best = highest score, then lowest id. One candidate
per submission; its response is the best comment's body (``""`` when none).

Both passes run per file, in parallel, in :meth:`RedditSource.prepare` (through the executor's ``run_map``): pass 1
(:func:`top_of_file`) keeps each submissions file's own top ``K`` per subreddit, and the global top ``K`` is the top
``K`` of their union, offered again in file order (sorted by path) with each file's rows numbered after the previous
files' (so first-seen order, ``below_top_k`` per file and the tie rule are those of one pass over all files). That
union is exact only when no submission id is repeated (a repeated id is held or re-offered depending on what was
held when it came): when any id occurs twice over all submission files (checked on the ids each file wrote, in parts
by hash), pass 1 is run again as one pass over all files in order (:func:`_sequential_top`). Pass 2
(:func:`best_of_file`) finds, per comments file, each held submission's best eligible comment and its counts; they
are merged in file order (best = highest score, then lowest id; on a tie the earlier file's, as in one pass). The
joined submissions (in first-seen order) and every file's reader counts are stored in the build's cache
(``reddit-join/<key>/``, written atomically, keyed by the files' paths, sizes and modification times, the reader
settings, the quotas and lima-data's code), where the task reads them and a resumed build finds them.
"""

from __future__ import annotations

import hashlib
import heapq
import html
import io
import json
import math
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import zstandard

from ..candidate import Candidate
from ..errors import InputError
from ..files import csv_rows, finish_folder, partial_folder
from ..text import loads_json
from . import ReaderStats
from .base import Shard, Source, peek_csv_header, peek_json_keys

SOURCE = "reddit"
LICENCE = "Reddit User Agreement (user content, no CC licence)"
_GONE = {"[deleted]", "[removed]", ""}


def _open_text(shard: Shard):
    """A text stream of a shard's NDJSON, decompressing ``.zst`` as a stream."""
    fh = open(shard.path, "rb")
    if shard.path.suffix.lower() == ".zst":
        reader = zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(fh, closefd=True)
        return io.TextIOWrapper(reader, encoding="utf-8", errors="replace")
    return io.TextIOWrapper(fh, encoding="utf-8-sig", errors="replace")


def _zst_cut(path: Path) -> bool:
    """The ``.zst`` file ends inside a zstd frame: a cut download (zstandard's stream reader ends such a file
    without an error, its last line cut off). Decompresses the file once more, the output discarded (in 64 KiB
    steps: bounded memory); called only for a file whose last line has no line end, so a good file never pays.
    Pushshift files end every line, the last included, with a line end."""
    decompressor = zstandard.ZstdDecompressor(max_window_size=2**31)
    frame = None
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 16):
                while chunk:
                    frame = frame or decompressor.decompressobj()
                    frame.decompress(chunk)
                    chunk, frame = (frame.unused_data, None) if frame.eof else (b"", frame)
    except (zstandard.ZstdError, OSError):
        return False  # (damaged, not cut: its own error is reported by the read)
    return frame is not None


def _zst_first_keys(path: Path) -> set[str]:
    try:
        with open(path, "rb") as fh:
            reader = zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(fh)
            line = io.TextIOWrapper(reader, encoding="utf-8", errors="replace").readline()
        row = loads_json(line)
        return set(row) if isinstance(row, dict) else set()
    except (zstandard.ZstdError, json.JSONDecodeError, UnicodeDecodeError, OSError):
        return set()


def _flag(value: Any) -> bool:
    """A yes/no field of a Pushshift row or Reddit CSV cell (``over_18``, ``stickied``, ``is_nsfw``): a JSON boolean
    as it is; a text is true only when it reads ``true`` / ``1`` / ``yes`` (any case, spaces around): ``"false"``
    and ``"0"`` are false (``bool("false")`` is true: a safe post was dropped as NSFW); a number is true when not 0;
    missing, ``null`` and anything else false."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    if isinstance(value, (bool, int, float)):
        return bool(value) and value == value  # (NaN: false)
    return False


def _whole_number(value: Any, *, fractions: bool = True) -> int | None:
    """A vote score or count of a Pushshift row / Reddit CSV cell as an ``int``, or ``None`` when it is none.

    Missing, ``null``, ``""``, ``0``, ``[]`` and ``{}`` are 0 (Pushshift leaves fields empty); ints of any size
    and booleans are taken as they are; a finite float is truncated; a text is read by ``int`` (``"12"``,
    ``" 12 "``) and, with ``fractions``, else by ``float`` and truncated (``"12.7"`` -> 12; submissions were always
    read so). ``None`` for anything else: text that is no number, NaN and infinities (JSON ``NaN`` /
    ``Infinity`` / ``1e999``: ``int(inf)`` raises OverflowError), non-empty lists and objects, a 5,000-digit text
    (over CPython's ``int`` limit). Fuzzing whole builds found these as tracebacks (issue 15)."""
    if not value:
        return 0
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            if not fractions:
                return None
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, int):  # bool too
        return int(value)
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return None


def _shown(value: Any) -> str:
    """``value`` as a short repr for a message (at most 60 characters)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _role(name: str, keys: set[str]) -> str | None:
    """``"submissions"`` or ``"comments"`` from the file name, else from the first row's keys."""
    lowered = name.lower()
    if lowered.startswith("rs_") or "_submissions" in lowered:
        return "submissions"
    if lowered.startswith("rc_") or "_comments" in lowered:
        return "comments"
    if "subreddit" not in keys:
        return None
    if "title" in keys:
        return "submissions"
    if "body" in keys and ("link_id" in keys or "parent_id" in keys):
        return "comments"
    return None


class _TopSubmissions:
    """Per subreddit, the ``keep(subreddit)`` best submissions seen so far (score descending, then id ascending:
    selection's order) in a min-heap whose root is the worst held; memory is bounded by the sum of the ``K``s.
    A submission id seen again while held is counted as ``duplicate_submissions`` and the first kept."""

    def __init__(self, keep):
        self.keep = keep
        self.heaps: dict[str, list] = {}
        self.ids: dict[str, dict[str, Any]] = {}
        self.order = 0

    def offer(self, submission: dict[str, Any], stats: ReaderStats, order: int | None = None) -> None:
        """Offer ``submission`` (its ``order``: the next number, or ``order`` when merging per-file tops)."""
        sid = submission["id"]
        if sid in self.ids:
            stats.count("duplicate_submissions")
            return
        self.order = self.order + 1 if order is None else order
        submission["order"] = self.order
        subreddit = submission["subreddit"].lower()
        heap = self.heaps.setdefault(subreddit, [])
        entry = _Ranked(submission)
        limit = self.keep(subreddit)
        if limit is None or len(heap) < limit:
            heapq.heappush(heap, entry)
            self.ids[sid] = submission
            return
        if heap[0] < entry:  # better than the worst held: it takes its place
            dropped = heapq.heapreplace(heap, entry).submission
            del self.ids[dropped["id"]]
            self.ids[sid] = submission
        stats.count("below_top_k")  # (in the file whose row pushed one out)

    def held(self) -> dict[str, dict[str, Any]]:
        return self.ids


class _Ranked:
    """Heap order of a held submission: lower score first, then (same score) the higher id first."""

    __slots__ = ("submission", "key")

    def __init__(self, submission: dict[str, Any]):
        self.submission = submission
        self.key = (submission["score"], submission["id"])

    def __lt__(self, other: "_Ranked") -> bool:
        return self.key[0] < other.key[0] or (self.key[0] == other.key[0] and self.key[1] > other.key[1])


class RedditSource(Source):
    """Pushshift submissions and comments, and top-post CSVs.

    Reader settings: ``subreddits`` (kept; others skipped unread, case-insensitive), ``min_response_chars`` /
    ``max_response_chars`` (bounds on an eligible story comment, characters), ``exclude_authors``;
    ``top_margin`` (default 20) and ``min_top`` (default 2,000): per subreddit only the ``max(top_margin x quota,
    min_top)`` highest-scored submissions are held (``quotas``, set from the recipe's selection by the build;
    ``min_top`` for a subreddit without one); ``min_top = 0`` holds every submission (memory then grows with them).
    Quota groups: the subreddits, lower-cased (``writingprompts``, ``askreddit``).
    """

    name = SOURCE
    groups = None
    methods = ("top", "random")
    joins_files = True  # submissions and comments of different files are joined: one task for all shards
    defaults = {
        "subreddits": ["WritingPrompts", "AskReddit"],
        "min_response_chars": 500,
        "max_response_chars": 4096,
        "exclude_authors": ["AutoModerator", "[deleted]"],
        "top_margin": 20,
        "min_top": 2000,
    }
    uses_quotas = True  # what is held depends on the quotas: they are part of a task's cache key

    def keep_top(self, subreddit: str) -> int | None:
        """How many submissions of ``subreddit`` are held (``None``: all): ``max(top_margin x its quota,
        min_top)``. The margin covers what the chain and dedup drop before selection takes the top ``quota``
        (for r/WritingPrompts most drops are untagged posts and posts without a long enough story)."""
        if not self.settings["min_top"]:
            return None
        quota = {k.lower(): v for k, v in (self.quotas or {}).items()}.get(subreddit.lower(), 0)
        return max(int(self.settings["top_margin"] * quota), int(self.settings["min_top"]))

    @staticmethod
    def rank_key(candidate: Candidate) -> tuple:
        """The most upvoted posts first (LIMA picked among them), then the comment's score, then id."""
        return (-(candidate.meta.get("submission_score") or 0), -(candidate.score or 0), candidate.id)

    def claim(self, path: Path, explicit: bool) -> Shard | None:
        suffix = path.suffix.lower()
        if suffix == ".zst":
            role = _role(path.name, set()) or _role("", _zst_first_keys(path))
            if role is None and explicit:
                raise InputError(path, "a .zst file that is neither Pushshift submissions nor comments")
            return Shard(SOURCE, path, f"pushshift_zst:{role}", path.stat().st_size) if role else None
        if suffix in (".ndjson", ".jsonl", ".json"):
            keys = peek_json_keys(path)
            role = _role("", keys) if "subreddit" in keys else None
            return Shard(SOURCE, path, f"reddit_ndjson:{role}", path.stat().st_size) if role else None
        if suffix == ".csv":
            header = {h.lower() for h in peek_csv_header(path)}
            if {"id", "title", "score", "subreddit"} <= header:
                return Shard(SOURCE, path, "reddit_csv:submissions", path.stat().st_size)
        return None

    # -- reading -------------------------------------------------------------------------------------------------

    def _join_folder(self, shards: list[Shard], workdir: Path) -> Path:
        """Where the join of ``shards`` lives in ``workdir``: keyed by the files (path, kind, size, modification
        time), the reader settings, the quotas, strictness and lima-data's code."""
        from ..fingerprint import code_fingerprint

        files = []
        for shard in sorted(shards, key=lambda s: str(s.path)):
            st = shard.path.stat()
            files.append([str(shard.path.resolve()), shard.kind, st.st_size, st.st_mtime_ns])
        key = json.dumps([files, self.settings, self.quotas, self.strict, code_fingerprint()], sort_keys=True,
                         default=str)
        return workdir / "reddit-join" / hashlib.sha256(key.encode()).hexdigest()[:32]

    def prepare(self, shards: list[Shard], workdir: Path, run_map) -> None:
        """Run both passes per file through ``run_map`` (pass 1: :func:`top_of_file` per submissions file; pass
        2: :func:`best_of_file` per comments file), merge them (see the module docstring) and store the joined
        submissions and each file's reader counts in ``workdir`` (``reddit-join/<key>/held.jsonl`` and
        ``stats.json``, the folder renamed into place when complete), unless already there.

        Raises:
            InputError: a file cannot be decompressed, or a malformed row in strict mode.
        """
        folder = self._join_folder(shards, workdir)
        if (folder / "stats.json").is_file():
            return
        tmp = partial_folder(folder)
        ordered = sorted(shards, key=lambda s: str(s.path))
        firsts = [s for s in ordered if s.kind.endswith(":submissions")]
        seconds = [s for s in ordered if not s.kind.endswith(":submissions")]
        args = (self.settings, self.quotas, self.strict)
        ids = tmp / "ids"
        tops = run_map(top_of_file, [(*args, shard, str(ids), k) for k, shard in enumerate(firsts)])
        stats = {str(shard.path): ReaderStats(**top["stats"]) for shard, top in zip(firsts, tops)}
        if _ids_repeat(ids):
            held, sequential = _sequential_top(self, firsts)
            stats.update(sequential)
        else:
            merged = _TopSubmissions(self.keep_top)
            offset = 0
            for shard, top in zip(firsts, tops):
                file_stats = stats[str(shard.path)]
                for subreddit, early in top["early"].items():  # a full heap before the file's first other row
                    limit = self.keep_top(subreddit)
                    if limit is not None and len(merged.heaps.get(subreddit, ())) + early > limit:
                        file_stats.counts.setdefault("below_top_k", 0)
                        _count_before(file_stats.counts, "below_top_k", "other_subreddits")
                for submission in top["held"]:
                    merged.offer(submission, file_stats, offset + submission["order"])
                offset += top["offered"]
                if file_stats.counts.get("below_top_k") == 0:
                    del file_stats.counts["below_top_k"]
            held = merged.held()
        shutil.rmtree(ids, ignore_errors=True)
        wanted = sorted(held)
        found = run_map(best_of_file, [(*args, shard, wanted) for shard in seconds])
        for shard, part in zip(seconds, found):
            stats[str(shard.path)] = ReaderStats(**part["stats"])
            for sid, seen in part["found"].items():
                submission = held[sid]
                submission["comments"] += seen["comments"]
                submission["eligible"] += seen["eligible"]
                best, other = submission["best"], seen["best"]
                if other is not None and (best is None or (-other["score"], other["id"]) < (-best["score"], best["id"])):
                    submission["best"] = other
        with open(tmp / "held.jsonl", "w", encoding="utf-8") as fh:
            for sid in sorted(held, key=lambda k: held[k]["order"]):
                fh.write(json.dumps(held[sid]) + "\n")
        (tmp / "stats.json").write_text(json.dumps({path: st.to_dict() for path, st in stats.items()}))
        finish_folder(tmp, folder)  # (another build may have joined the same files first)

    def read(self, shards, stats, progress) -> Iterator[Candidate]:
        if self.workdir is None:
            self._tmp = getattr(self, "_tmp", None) or tempfile.TemporaryDirectory(prefix="lima-reddit-join-")
            self.workdir = Path(self._tmp.name)
        folder = self._join_folder(shards, self.workdir)
        if not (folder / "stats.json").is_file():  # no executor prepared it: both passes here, in this process
            self.prepare(shards, self.workdir, lambda fn, calls: [fn(*a) for a in calls])
        counts = json.loads((folder / "stats.json").read_text())
        for shard in sorted(shards, key=lambda s: (not s.kind.endswith(":submissions"), str(s.path))):
            stats(shard).merge(ReaderStats(**counts[str(shard.path)]))
            advance = progress(shard)
            if advance is not None:
                advance(shard.size)
        with open(folder / "held.jsonl", encoding="utf-8") as fh:
            for line in fh:
                yield self._candidate(json.loads(line))

    def rows(self, shard: Shard, stats: ReaderStats) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(line, row)`` for each row of ``shard`` of a wanted subreddit; every row is counted in ``stats``
        (``rows``; others as ``other_subreddits``, bad ones as malformed).

        Raises:
            InputError: the file cannot be decompressed, or a malformed row in strict mode.
        """
        wanted = {s.lower() for s in self.settings["subreddits"]}
        rows = self._csv(shard, stats) if shard.kind.startswith("reddit_csv") else self._ndjson(shard, stats)
        for line, row in rows:
            stats.rows += 1
            subreddit = str(row.get("subreddit") or "")
            if subreddit.lower() not in wanted:
                stats.count("other_subreddits")
                continue
            yield line, row

    def _ndjson(self, shard: Shard, stats: ReaderStats) -> Iterator[tuple[int, dict[str, Any]]]:
        wanted = [name.lower() for name in self.settings["subreddits"]]

        last = [""]

        def prefiltered(text):
            # A row of a wanted subreddit has its name in the line (names are plain ASCII, never escaped in
            # JSON), so lines without any wanted name are counted and skipped unparsed; "" keeps line numbers.
            raw = ""
            for raw in text:
                lowered = raw.lower()
                line = raw.strip()
                if any(name in lowered for name in wanted) or not (line.startswith("{") and line.endswith("}")):
                    yield raw  # parsed: a wanted row, or a line that is not even an object (counted as malformed)
                else:
                    if raw.strip():
                        stats.rows += 1
                        stats.count("other_subreddits")
                    yield ""
            last[0] = raw

        try:
            with _open_text(shard) as text:
                yield from self.json_objects(prefiltered(text), stats)
        except zstandard.ZstdError as exc:
            raise InputError(shard.path, f"zstd decompression failed: {exc}") from None
        if last[0] and not last[0].endswith("\n") and shard.path.suffix.lower() == ".zst" and _zst_cut(shard.path):
            message = "the file ends inside a zstd frame (cut short: an interrupted download?)"
            if self.strict:
                raise InputError(shard.path, message)
            stats.truncated = True
            stats.error(None, message, row=False)

    def _csv(self, shard: Shard, stats: ReaderStats) -> Iterator[tuple[int, dict[str, Any]]]:
        for line, row in csv_rows(shard.path):
            nsfw = _flag(row.get("is_nsfw") or row.get("over_18"))
            yield line, {**row, "selftext": row.get("body") or row.get("selftext") or "", "over_18": nsfw}

    def _submission(self, row: dict[str, Any], line: int, stats: ReaderStats) -> dict[str, Any] | None:
        """The held fields of a submission row, or ``None`` (counted as malformed)."""
        try:
            sid = str(row["id"])
            title = row["title"]
        except KeyError as exc:
            self.malformed(stats, line, f"submission without a usable {exc}")
            return None
        if not isinstance(title, str):
            self.malformed(stats, line, f"submission whose title is not text: {_shown(title)}")
            return None
        score = _whole_number(row.get("score"))
        if score is None:
            self.malformed(stats, line, f"submission whose score is not a number: {_shown(row.get('score'))}")
            return None
        stats.count("submissions")
        permalink = str(row.get("permalink") or "")
        if permalink.startswith("/"):
            permalink = "https://www.reddit.com" + permalink
        return {
            "id": sid,
            "subreddit": str(row["subreddit"]),
            "title": html.unescape(title).strip(),
            "selftext": html.unescape(str(row.get("selftext") or "")).strip(),
            "score": score,
            "num_comments": _whole_number(row.get("num_comments")),  # None: not a number (only shown in meta)
            "over_18": _flag(row.get("over_18")),
            "stickied": _flag(row.get("stickied")),
            "author": row.get("author"),
            "created_utc": row.get("created_utc"),
            "url": permalink or f"https://www.reddit.com/comments/{sid}",
            "best": None,
            "comments": 0,
            "eligible": 0,
        }

    def _comment(self, row: dict[str, Any], line: int, stats: ReaderStats, submissions: dict) -> None:
        try:
            parent = str(row["parent_id"])
            body = str(row["body"])
            cid = str(row["id"])
        except KeyError as exc:
            self.malformed(stats, line, f"comment without a usable {exc}")
            return
        score = _whole_number(row.get("score"), fractions=False)
        if score is None:
            self.malformed(stats, line, f"comment whose score is not a whole number: {_shown(row.get('score'))}")
            return
        stats.count("comments")
        if not parent.startswith("t3_"):
            return  # a reply, not a top-level comment
        submission = submissions.get(parent[3:])
        if submission is None:
            stats.count("comments_without_submission")
            return
        submission["comments"] += 1
        text = html.unescape(body).strip()
        if (text in _GONE or row.get("author") in self.settings["exclude_authors"] or _flag(row.get("stickied"))
                or row.get("distinguished")
                or not self.settings["min_response_chars"] <= len(text) <= self.settings["max_response_chars"]):
            return
        submission["eligible"] += 1
        best = submission["best"]
        if best is None or (-score, cid) < (-best["score"], best["id"]):
            submission["best"] = {"id": cid, "score": score, "body": text, "author": row.get("author"),
                                  "created_utc": row.get("created_utc")}

    def _candidate(self, submission: dict[str, Any]) -> Candidate:
        best = submission["best"]
        subreddit = submission["subreddit"]
        meta: dict[str, Any] = {
            "group": subreddit.lower(),
            "title": submission["title"],
            "selftext": submission["selftext"],
            "submission_id": submission["id"],
            "submission_score": submission["score"],
            "num_comments": submission["num_comments"],
            "comments_read": submission["comments"],
            "eligible_comments": submission["eligible"],
            "over_18": submission["over_18"],
            "stickied": submission["stickied"],
            "submission_author": submission["author"],
            "created_utc": submission["created_utc"],
            "url": submission["url"],
            "licence": LICENCE,
        }
        if best is not None:
            meta.update({"comment_id": best["id"], "author": best["author"],
                         "comment_url": f"{submission['url'].rstrip('/')}/{best['id']}/"})
        return Candidate(
            id=f"{SOURCE}/{subreddit.lower()}/{submission['id']}",
            source=SOURCE,
            domain=subreddit.lower(),
            prompt=submission["title"],
            response=best["body"] if best else "",
            score=best["score"] if best else None,
            meta=meta,
        )


def _label(shard: Shard) -> str:
    return str(shard.path) + (f"!{shard.member}" if shard.member else "")


def _reader(settings: dict[str, Any], quotas: dict[str, int] | None, strict: bool) -> RedditSource:
    source = RedditSource(settings, strict=strict)
    source.quotas = quotas
    return source


def top_of_file(settings: dict[str, Any], quotas: dict[str, int] | None, strict: bool, shard: Shard,
                ids_folder: str, number: int) -> dict[str, Any]:
    """Pass 1 over one submissions file (a worker's call): its top ``K`` per subreddit as one pass over this file
    alone keeps them. Writes the id of every submission offered to ``ids_folder`` (one JSON string a line, in
    :data:`ID_PARTS` files ``<part>/<number>.txt`` by a hash of the id) so the merge can tell whether an id
    repeats, one part at a time.

    Returns ``{"held": [submission, ...] in first-seen order (``order`` = its number among this file's offered
    rows, from 1), "offered": rows offered, "stats": ReaderStats as a dict, "early": {subreddit: rows offered
    before the file's first row of another subreddit}}`` (the last for the order of the file's counts).

    Raises:
        InputError: the file cannot be decompressed, or a malformed row in strict mode.
    """
    source = _reader(settings, quotas, strict)
    stats = ReaderStats(_label(shard))
    top = _TopSubmissions(source.keep_top)
    early: dict[str, int] = {}
    parts: dict[int, Any] = {}
    try:
        for line, row in source.rows(shard, stats):
            submission = source._submission(row, line, stats)
            if submission is not None:
                text = json.dumps(submission["id"]) + "\n"
                part = zlib.crc32(text.encode()) % ID_PARTS
                if part not in parts:
                    (Path(ids_folder) / str(part)).mkdir(parents=True, exist_ok=True)
                    parts[part] = open(Path(ids_folder) / str(part) / f"{number}.txt", "w", encoding="utf-8")
                parts[part].write(text)
                if "other_subreddits" not in stats.counts:
                    subreddit = submission["subreddit"].lower()
                    early[subreddit] = early.get(subreddit, 0) + 1
                top.offer(submission, stats)
    finally:
        for fh in parts.values():
            fh.close()
    held = top.held()
    return {"held": sorted(held.values(), key=lambda s: s["order"]), "offered": top.order, "stats": stats.to_dict(),
            "early": early}


def _count_before(counts: dict[str, int], key: str, later: str) -> None:
    """Move ``key`` just before ``later`` in ``counts`` (insertion order: the order in which a file's kinds were
    first counted, as one pass over it counts them; used when one pass would count a ``below_top_k`` before the
    file's first ``other_subreddits`` row: the subreddit's heap is full before the file's rows ahead of that one
    are all offered)."""
    keys = list(counts)
    if key in keys and later in keys and keys.index(key) > keys.index(later):
        value = counts.pop(key)
        moved = {}
        for name, n in counts.items():
            if name == later:
                moved[key] = value
            moved[name] = n
        counts.clear()
        counts.update(moved)


#: Submission ids are written in this many parts (by a hash of the id), so that :func:`_ids_repeat` holds one
#: part's ids at a time: about 1/64 of all (a year of r/AskReddit, ~4 million posts: ~60,000 ids, a few MB).
ID_PARTS = 64


def _ids_repeat(folder: Path) -> bool:
    """Whether any submission id occurs twice among those :func:`top_of_file` wrote to ``folder`` (within or across
    files), checked one part at a time (a repeated id is always in one part)."""
    if not folder.is_dir():
        return False
    for part in sorted(folder.iterdir()):
        seen: set[str] = set()
        for path in sorted(part.iterdir()):
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    if line in seen:
                        return True
                    seen.add(line)
    return False


def _sequential_top(source: RedditSource, shards: list[Shard]) -> tuple[dict[str, dict[str, Any]],
                                                                       dict[str, ReaderStats]]:
    """Pass 1 as one pass over all submission ``shards`` in order (needed when an id repeats): the held
    submissions by id, and each file's reader counts by path."""
    top = _TopSubmissions(source.keep_top)
    stats = {}
    for shard in shards:
        stats[str(shard.path)] = shard_stats = ReaderStats(_label(shard))
        for line, row in source.rows(shard, shard_stats):
            submission = source._submission(row, line, shard_stats)
            if submission is not None:
                top.offer(submission, shard_stats)
    return top.held(), stats


def best_of_file(settings: dict[str, Any], quotas: dict[str, int] | None, strict: bool, shard: Shard,
                 held: list[str]) -> dict[str, Any]:
    """Pass 2 over one comments file (a worker's call): for each submission id in ``held`` that has a top-level
    comment in this file, ``{"comments": top-level comments read, "eligible": eligible ones, "best": the best
    eligible comment or None}``.

    Returns ``{"found": {submission id: that}, "stats": ReaderStats as a dict}``.

    Raises:
        InputError: the file cannot be decompressed, or a malformed row in strict mode.
    """
    source = _reader(settings, quotas, strict)
    stats = ReaderStats(_label(shard))
    submissions = {sid: {"best": None, "comments": 0, "eligible": 0} for sid in held}
    for line, row in source.rows(shard, stats):
        source._comment(row, line, stats, submissions)
    return {"found": {sid: seen for sid, seen in submissions.items() if seen["comments"]},
            "stats": stats.to_dict()}
