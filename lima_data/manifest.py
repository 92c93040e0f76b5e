"""Manifest folders: ``manifests/<name>/`` (DESIGN.md section 4).

Layout::

    train.jsonl dev.jsonl test.jsonl   one example per line, {"id", "source", "domain", "messages", "meta"}
    manifest.json                      name, version, resolved recipe and its sha256, seed, inputs (size, sha256),
                                       counts, funnel, selection, sha256 of each JSONL, created time
    report/stats.json                  per-source funnel with value summaries, reader stats, selection, timings
    report/rejects/<filter>.jsonl.zst  every rejected candidate with its filter and reason
    report/measurements.jsonl.zst      every candidate's measured values

A manifest is built in a hidden staging folder next to its destination and moved into place only when complete,
so a failed or killed build never leaves a half-written manifest and never damages the previous one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .errors import InputError, path_text
from .files import pid_alive, read_jsonl

SPLIT_FILES = {"train": "train.jsonl", "dev": "dev.jsonl", "test": "test.jsonl"}
MANIFEST_FILE = "manifest.json"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class StagedManifest:
    """A manifest folder being built: files go to a staging folder; :meth:`commit` moves it to
    ``out_dir/name`` (replacing an older manifest of that name only then); leaving the ``with`` block with an
    exception removes the staging folder and keeps any older manifest untouched.

    The staging folder is ``out_dir/.<name>.partial-<pid>-<random>``, locked (``flock``) while its build runs. A
    build killed with SIGKILL cannot remove it, so each new build first removes the staging folders in
    ``out_dir`` that are provably stale: not locked by any process and their pid gone (see :func:`stale_staging`);
    a concurrent build's folder is left alone. A build killed between the two renames of :meth:`commit` leaves
    the previous manifest as ``.<name>.old-<pid>-<random>`` and no ``<name>``: it is put back. ``note(message)``
    is told of each folder removed or restored.
    """

    def __init__(self, out_dir: Path, name: str, note: Callable[[str], None] = lambda message: None):
        if not name or "/" in name or name.startswith("."):
            raise InputError(name, "a manifest name must be a plain folder name")
        self.out_dir = Path(out_dir)
        self.final = self.out_dir / name
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.final.exists() and not self.final.is_dir():
            raise InputError(self.final, "exists and is not a manifest folder; remove it or choose another --name")
        for message in clean_stale_staging(self.out_dir):
            note(message)
        self.path = Path(tempfile.mkdtemp(prefix=f".{name}.partial-{os.getpid()}-", dir=self.out_dir))
        self._lock = _lock(self.path)
        (self.path / "report").mkdir()
        self.committed = False

    def __enter__(self) -> "StagedManifest":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.committed:
            shutil.rmtree(self.path, ignore_errors=True)
        self._unlock()

    def _unlock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def commit(self, carry: Iterable[Path] = ()) -> Path:
        """Move the staged folder into place (two renames; the old manifest is removed last). ``carry``: paths
        (relative to the folder) of the old manifest that move into the new one before the old is removed (files
        the build did not write, e.g. an export or a user's notes)."""
        old = None
        if self.final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{self.final.name}.old-{os.getpid()}-", dir=self.out_dir))
            os.rmdir(old)
            os.replace(self.final, old)
        os.replace(self.path, self.final)
        self.committed = True
        self._unlock()
        if old is not None:
            for rel in carry:
                if (old / rel).exists() or (old / rel).is_symlink():
                    (self.final / rel).parent.mkdir(parents=True, exist_ok=True)
                    os.replace(old / rel, self.final / rel)
            shutil.rmtree(old, ignore_errors=True)
        return self.final


_STAGING = re.compile(r"^\.(?P<name>.+)\.(?P<kind>partial|old)-(?:(?P<pid>\d+)-)?[^-]+$")
#: A staging folder whose name holds no pid (written by lima-data before 0.1.1) counts as stale once it has not
#: changed for this long (seconds).
LEGACY_STALE_AFTER = 3600.0


def _lock(folder: Path) -> int | None:
    """Hold an exclusive ``flock`` on ``folder`` (the descriptor, to close at the end); ``None`` where the platform
    or file system has no ``flock``."""
    try:
        import fcntl

        fd = os.open(folder, os.O_RDONLY)
    except (ImportError, OSError):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def stale_staging(folder: Path) -> bool:
    """Whether a ``.<name>.partial-<pid>-*`` / ``.<name>.old-<pid>-*`` folder was left by a build that is gone:
    no process holds its lock, and its pid is not alive (a folder without a pid in its name: unchanged for
    :data:`LEGACY_STALE_AFTER` seconds). A build's own folders are never stale to itself."""
    match = _STAGING.match(folder.name)
    if match is None or not folder.is_dir() or folder.is_symlink():
        return False
    fd = _lock(folder)
    if fd is None:
        try:
            import fcntl  # noqa: F401
        except ImportError:
            pass  # no flock on this platform: the pid decides
        else:
            return False  # locked by a running build (or the folder could not be opened)
    else:
        os.close(fd)
    if match["pid"] is None:
        import time

        return time.time() - folder.stat().st_mtime > LEGACY_STALE_AFTER
    pid = int(match["pid"])
    return pid != os.getpid() and not pid_alive(pid)


def clean_stale_staging(out_dir: Path) -> list[str]:
    """Remove the stale staging folders (:func:`stale_staging`) of killed builds in ``out_dir``; put back a
    previous manifest that a kill in the middle of :meth:`StagedManifest.commit` left as ``.<name>.old-*``.
    Returns a note for each folder removed or restored."""
    notes = []
    for folder in sorted(out_dir.glob(".*.*-*")):
        match = _STAGING.match(folder.name)
        if match is None or not stale_staging(folder):
            continue
        shown = path_text(folder)
        final = out_dir / match["name"]
        if match["kind"] == "old" and not final.exists():
            try:
                os.replace(folder, final)
            except OSError:
                continue
            notes.append(f"restored the previous manifest {path_text(final)} from {shown}, left by a build "
                         "killed while it replaced it")
            continue
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            notes.append(f"removed {shown}, left by a build that was killed"
                         + (f" (process {match['pid']} is gone)" if match["pid"] else ""))
    return notes


def read_split(path: str | Path, split: str) -> list[dict[str, Any]]:
    """The rows of one split of a manifest folder (``[]`` when the file is absent and manifest.json does not list
    it, or lists it with no row).

    Raises:
        InputError: ``path`` is not a manifest folder, the file is missing although manifest.json lists rows for
            it, or a line is not UTF-8, not JSON or not a manifest row (:func:`row_problems`; file and line
            named).
    """
    file = Path(path) / SPLIT_FILES[split]
    if not (Path(path) / MANIFEST_FILE).is_file():
        load_manifest(path)  # raises: names what is wrong with the folder
    if not file.is_file():
        listed = _listed_rows(Path(path), SPLIT_FILES[split])
        if listed:
            raise InputError(file, f"missing, but manifest.json lists {listed} row(s) for it: the manifest folder is "
                                   "incomplete; copy the file back or build the manifest again")
        return []
    rows = []
    for line, row in read_jsonl(file):
        problems = row_problems(row, split)
        if problems:
            raise InputError(file, f"not a manifest row: {problems[0]} (lima-data validate lists every problem)",
                             line)
        rows.append(row)
    return rows


def _listed_rows(folder: Path, name: str) -> int:
    try:
        return int(json.loads((folder / MANIFEST_FILE).read_bytes())["files"][name]["rows"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


#: Keys of manifest.json that the commands reading a manifest rely on, with their JSON type.
REQUIRED_KEYS = {"name": str, "recipe": dict, "files": dict, "counts": dict, "funnel": dict}


def load_manifest(path: str | Path) -> dict[str, Any]:
    """Read ``manifest.json`` of a manifest folder.

    Raises:
        InputError: the folder or its manifest.json is missing, not UTF-8, not JSON, or not a manifest (a key of
            :data:`REQUIRED_KEYS` missing or of the wrong type).
    """
    folder = Path(path)
    file = folder / MANIFEST_FILE
    if not folder.is_dir():
        raise InputError(folder, "no such manifest folder" if not folder.exists() else
                         "is a file, not a manifest folder (manifests/<name>)")
    if not file.is_file():
        raise InputError(folder, "not a manifest folder (no manifest.json); build one with `lima-data build`")
    try:
        data = json.loads(file.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(file, f"not UTF-8 text (byte offset {exc.start}); restore it or build the manifest again"
                         ) from None
    except json.JSONDecodeError as exc:
        raise InputError(file, f"not valid JSON: {exc.msg}", exc.lineno) from None
    if not isinstance(data, dict):
        raise InputError(file, "not a manifest (a JSON object is expected); restore it or build the manifest again")
    for key, kind in REQUIRED_KEYS.items():
        if not isinstance(data.get(key), kind):
            raise InputError(file, f"{'no' if key not in data else 'a malformed'} {key!r} entry: the file was "
                                   "edited or is not lima-data's; restore it or build the manifest again")
    return data


def row_problems(row: Any, split: str) -> list[str]:
    """What is wrong with one manifest row of ``split`` (empty when it is valid): the keys and types of
    DESIGN.md section 4 (``id``, ``source``, ``domain``, ``messages`` starting with a user turn, ``meta``); test
    rows may hold only the user turn."""
    if not isinstance(row, dict):
        return ["not a JSON object"]
    problems = []
    for key, kind in (("id", str), ("source", str), ("messages", list), ("meta", dict)):
        if not isinstance(row.get(key), kind):
            problems.append(f"{key!r} missing or not a {kind.__name__}")
    if not isinstance(row.get("domain"), (str, type(None))) or "domain" not in row:
        problems.append("'domain' missing or not a string or null")
    messages = row.get("messages")
    if isinstance(messages, list):
        roles = []
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") or not isinstance(
                    m.get("content"), str):
                problems.append(f"messages[{i}] must be {{'role': user|assistant|system, 'content': str}}")
            else:
                roles.append(m["role"])
        turns = [r for r in roles if r != "system"]
        if not turns or turns[0] != "user":
            problems.append("messages must start with a user turn")
        if split != "test" and "assistant" not in turns:
            problems.append(f"a {split} row needs an assistant turn")
    return problems
