"""Byte ranges of a big Posts.xml and their join: split at line starts, index each range to Parquet, join with
polars.

A plain ``Posts.xml`` bigger than the reader's ``shard_bytes`` is split into byte ranges at line starts
(:func:`split_ranges`), read by separate tasks: pass 1 per range (:func:`index_range`) writes Parquet,
:func:`join_index` finds each question's top answer over the whole file with polars, and pass 2 per range
(:meth:`~lima_data.sources.stackexchange.reader.StackExchangeReader.read_range`) reads the range's questions and
fetches their top answers by byte offset. Both ways give the same candidates and counts (tested on every real
dump). A ``.7z`` member bigger than ``shard_bytes`` cannot be read from the middle: it is unpacked once into the
build's cache (:func:`unpack_site`) and its ranges (:func:`member_ranges`) are read from that copy.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

from ...errors import InputError
from . import sevenzip
from .reader import StackExchangeReader
from .sites import SiteDump


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
    columns = [list(best), *(list(column) for column in zip(*best.values()))] if best else [[]] * 5
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
