"""Reddit reader: Pushshift dumps (LIMA section 2.1 and Table 1: r/WritingPrompts for 150 training pairs, r/AskReddit
for 70 test prompts).

Formats, each file a shard, recognised by name and content:

- ``pushshift_zst``: zstd-compressed NDJSON: monthly ``RS_YYYY-MM.zst`` (submissions) / ``RC_YYYY-MM.zst``
  (comments), per-subreddit ``<sub>_submissions.zst`` / ``<sub>_comments.zst``. Decompressed as a stream with a
  2 GiB window (``max_window_size=2**31``, which Pushshift's frames need).
- ``reddit_ndjson``: the same rows uncompressed (``.ndjson``, ``.jsonl``, ``.json``); Arctic Shift's extra
  ``_meta`` field is ignored.
- ``reddit_csv``: top-post CSV exports (``id, title, score, subreddit, ..., body``): submissions only.

Rows are filtered by subreddit before anything else (only the recipe's ``subreddits`` are kept). Submissions are
read first and held (only those of the wanted subreddits); comment files are then streamed and each top-level
comment (``parent_id`` = ``t3_<submission id>``) is offered to its submission, which keeps the best eligible one:
not deleted or removed, not by an excluded author (AutoModerator), not stickied or distinguished, and between
``min_response_chars`` and ``max_response_chars`` characters; best = highest score, then lowest id. One candidate
per submission; its response is the best comment's body (``""`` when none).
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import zstandard

from ..candidate import Candidate
from ..errors import InputError
from . import ReaderStats
from .base import Shard, Source, csv_rows, peek_csv_header, peek_json_keys

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


def _zst_first_keys(path: Path) -> set[str]:
    try:
        with open(path, "rb") as fh:
            reader = zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(fh)
            line = io.TextIOWrapper(reader, encoding="utf-8", errors="replace").readline()
        row = json.loads(line)
        return set(row) if isinstance(row, dict) else set()
    except (zstandard.ZstdError, json.JSONDecodeError, UnicodeDecodeError, OSError):
        return set()


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


class RedditSource(Source):
    """Pushshift submissions and comments, and top-post CSVs.

    Reader settings: ``subreddits`` (kept; others skipped unread, case-insensitive), ``min_response_chars`` /
    ``max_response_chars`` (bounds on an eligible story comment, characters), ``exclude_authors``.
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
    }

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

    def read(self, shards, stats, progress) -> Iterator[Candidate]:
        wanted = {s.lower() for s in self.settings["subreddits"]}
        submissions: dict[str, dict[str, Any]] = {}
        ordered = sorted(shards, key=lambda s: (not s.kind.endswith("submissions"), str(s.path)))
        for shard in ordered:
            shard_stats = stats(shard)
            advance = progress(shard)
            rows = self._csv(shard, shard_stats) if shard.kind.startswith("reddit_csv") else self._ndjson(shard, shard_stats)
            role = shard.kind.split(":")[1]
            for line, row in rows:
                shard_stats.rows += 1
                subreddit = str(row.get("subreddit") or "")
                if subreddit.lower() not in wanted:
                    shard_stats.count("other_subreddits")
                    continue
                if role == "submissions":
                    self._submission(row, line, shard_stats, submissions)
                else:
                    self._comment(row, line, shard_stats, submissions)
            if advance is not None:
                advance(shard.size)
        for submission in submissions.values():
            yield self._candidate(submission)

    def _ndjson(self, shard: Shard, stats: ReaderStats) -> Iterator[tuple[int, dict[str, Any]]]:
        wanted = [name.lower() for name in self.settings["subreddits"]]

        def prefiltered(text):
            # A row of a wanted subreddit has its name in the line (names are plain ASCII, never escaped in
            # JSON), so lines without any wanted name are counted and skipped unparsed; "" keeps line numbers.
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

        try:
            with _open_text(shard) as text:
                yield from self.json_objects(prefiltered(text), stats)
        except zstandard.ZstdError as exc:
            raise InputError(shard.path, f"zstd decompression failed: {exc}") from None

    def _csv(self, shard: Shard, stats: ReaderStats) -> Iterator[tuple[int, dict[str, Any]]]:
        for line, row in csv_rows(shard.path):
            nsfw = (row.get("is_nsfw") or row.get("over_18") or "").strip().lower() in ("true", "1", "yes")
            yield line, {**row, "selftext": row.get("body") or row.get("selftext") or "", "over_18": nsfw}

    def _submission(self, row: dict[str, Any], line: int, stats: ReaderStats, submissions: dict) -> None:
        try:
            sid = str(row["id"])
            title = str(row["title"])
            score = int(float(row.get("score") or 0))
        except (KeyError, ValueError, TypeError) as exc:
            self.malformed(stats, line, f"submission without a usable {exc}")
            return
        stats.count("submissions")
        if sid in submissions:
            stats.count("duplicate_submissions")
            return
        permalink = str(row.get("permalink") or "")
        if permalink.startswith("/"):
            permalink = "https://www.reddit.com" + permalink
        submissions[sid] = {
            "id": sid,
            "subreddit": str(row["subreddit"]),
            "title": html.unescape(title).strip(),
            "selftext": html.unescape(str(row.get("selftext") or "")).strip(),
            "score": score,
            "num_comments": int(float(row.get("num_comments") or 0)),
            "over_18": bool(row.get("over_18")),
            "stickied": bool(row.get("stickied")),
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
            score = int(row.get("score") or 0)
            cid = str(row["id"])
        except (KeyError, ValueError, TypeError) as exc:
            self.malformed(stats, line, f"comment without a usable {exc}")
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
        if (text in _GONE or row.get("author") in self.settings["exclude_authors"] or row.get("stickied")
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
