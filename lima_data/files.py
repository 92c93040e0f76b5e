"""Reading and writing the files lima-data's rows live in: JSON lines (plain and zstd-compressed), JSON and CSV,
each read and written one way everywhere. Below the sources, the filters, the manifest and the report (DESIGN.md
section 3, walls), so any of them may read a user's file or write a row without reaching across a wall.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import zstandard

from .errors import InputError, safe_text
from .text import loads_json, utf8_lines


def user_cache_dir() -> Path:
    """The folder lima-data keeps files in that outlive one build and are derived from installed packages only
    (py3langid's decompressed model, Jinja2's compiled report template): ``$LIMA_DATA_CACHE``, else
    ``$XDG_CACHE_HOME/lima-data``, else ``~/.cache/lima-data`` (the XDG convention Hugging Face's caches follow).
    A build's own cache (task results, byte-range indexes, unpacked archives) lives in its output folder."""
    if os.environ.get("LIMA_DATA_CACHE"):
        return Path(os.environ["LIMA_DATA_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lima-data"


def dumps(row: Any) -> str:
    """The one JSON encoding lima-data writes: compact, UTF-8 kept, keys in insertion order; lone surrogates (a
    file name that is not UTF-8, an unpaired JSON escape) written escaped (:func:`~lima_data.errors.safe_text`)."""
    return safe_text(json.dumps(row, ensure_ascii=False, separators=(",", ":")), json=True)


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows as UTF-8 JSON lines (compact, keys in insertion order, ``\\n`` endings); return the count."""
    n = 0
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(dumps(row) + "\n")
            n += 1
    return n


def write_json(path: Path, data: Any) -> None:
    """Write pretty JSON (2-space indent, sorted nowhere: insertion order is meaningful); lone surrogates (a file
    name that is not UTF-8) are written escaped (:func:`~lima_data.errors.safe_text`)."""
    text = safe_text(json.dumps(data, ensure_ascii=False, indent=2), json=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text + "\n")


def read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` for each non-blank JSON line of a file (BOM allowed).

    Raises:
        InputError: a line is not UTF-8 or not JSON (file and line named).
    """
    for line, raw in utf8_lines(path):
        if not raw.strip():
            continue
        try:
            yield line, loads_json(raw)
        except json.JSONDecodeError as exc:
            raise InputError(path, f"not JSON: {exc.msg}", line) from None


def read_zstd_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Read the rows of a ``.jsonl.zst`` file written by :class:`ZstdJsonlWriter`, one ``\\n``-ended line a row.

    Rows are read in 1 MB blocks and parsed by :func:`~lima_data.text.loads_json` (orjson; ``json`` for what
    orjson refuses or would read as a float: about 2x faster than ``json`` alone on the report's measurements).

    Raises:
        InputError: the file is not zstd, is damaged or truncated, or a row is not UTF-8 JSON (file and row named).
    """
    row = 0
    with open(path, "rb") as fh:
        reader = zstandard.ZstdDecompressor().stream_reader(fh, read_across_frames=True)
        try:
            pending: list[bytes] = []  # the start of a row not ended yet (a row may span many reads)
            while True:
                chunk = reader.read(1 << 20)
                if chunk:
                    cut = chunk.rfind(b"\n") + 1
                    if not cut:
                        pending.append(chunk)
                        continue
                    block, pending = b"".join([*pending, chunk[:cut]]), [chunk[cut:]]
                else:
                    rest = b"".join(pending)
                    if not rest:
                        break
                    block, pending = rest + b"\n", []  # a last row without its newline
                for line in block[:-1].split(b"\n"):
                    row += 1
                    if line.strip():
                        yield loads_json(line)
        except zstandard.ZstdError as exc:
            raise InputError(path, f"damaged or not zstd-compressed ({exc}); build the manifest again", row + 1
                             ) from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(path, f"damaged row ({exc}); build the manifest again", row) from None


#: The most characters one CSV field may hold (see :func:`csv_rows`).
CSV_FIELD_LIMIT = 1 << 24


def csv_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a CSV file with a header, as ``(line the record starts on, {lower-cased column: value})``.

    A field may hold up to :data:`CSV_FIELD_LIMIT` characters (16 Mi): Python's csv module stops at 131,072 by
    default, which a long article or self-post in a real dump can pass; one larger field is a damaged file (e.g. a
    quote never closed) and an error.

    Raises:
        InputError: the CSV is malformed (the message names the file and line).
    """
    import csv

    if csv.field_size_limit() < CSV_FIELD_LIMIT:
        csv.field_size_limit(CSV_FIELD_LIMIT)
    line = 1
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            reader.fieldnames = [f.strip().lower() for f in reader.fieldnames or []]
            line = reader.line_num + 1
            for row in reader:
                yield line, row  # a quoted field may span lines: report where the record starts
                line = reader.line_num + 1
    except csv.Error as exc:
        raise InputError(path, f"bad CSV: {exc}", line) from None
    except UnicodeDecodeError as exc:
        raise InputError(path, f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x}, in the record starting here "
                               "or the next ones); save the file as UTF-8", line) from None


_PARTIAL_PID = re.compile(r"\.partial-(\d+)")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (a zombie, killed but not reaped, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def partial_folder(folder: Path) -> Path:
    """A new folder beside ``folder`` to build it in, ``.<name>.partial-<pid>``, made after removing the partial
    folders of ``folder`` that killed processes left (:func:`remove_stale_partials`). :func:`finish_folder` puts it
    in place: a cache entry is complete or absent, never half-written."""
    remove_stale_partials(list(folder.parent.glob(f".{glob.escape(folder.name)}.partial-*")))
    tmp = folder.with_name(f".{folder.name}.partial-{os.getpid()}")
    tmp.mkdir(parents=True)
    return tmp


def finish_folder(tmp: Path, folder: Path) -> None:
    """Rename the finished :func:`partial_folder` ``tmp`` to ``folder``; when another process put ``folder`` in
    place first (the same cache entry, built twice at once), ``tmp`` is removed and theirs kept."""
    try:
        tmp.rename(folder)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_stale_partials(pattern_paths: list[Path]) -> list[Path]:
    """Remove the ``*.partial-<pid>...`` files or folders among ``pattern_paths`` that no running process is
    writing: left by a process that is gone (its pid not alive here), or by this process itself (an attempt that
    failed earlier; callers never write one entry from two threads). A partial of another live process (a
    concurrent build or worker writing the same cache entry now) is left alone. Returns what was removed.

    On a Ray cluster whose cache is on shared storage, a pid is only meaningful on the machine that wrote it: a
    partial of a live worker on another machine whose pid is not alive here would be removed; run one build per
    cache there."""
    removed = []
    for path in pattern_paths:
        match = _PARTIAL_PID.search(path.name)
        pid = int(match.group(1)) if match else None
        if pid is None or (pid != os.getpid() and pid_alive(pid)):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed
