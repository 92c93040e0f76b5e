"""The py7zr fallback of :mod:`.sevenzip`: listing and streaming ``.7z`` members in pure Python when no 7-Zip binary
is found. py7zr's memory grows with the member it extracts (py7zr issue #626), so a build warns above
:data:`.sevenzip.PY7ZR_WARN_BYTES`.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path

from ...errors import InputError
from .sevenzip import Member, UnreadableArchive


def py7zr_members(archive: Path) -> list[Member]:
    """The files of ``archive`` as :class:`~.sevenzip.Member` records, listed by py7zr.

    Raises:
        InputError: the archive cannot be opened (truncated, not 7z, unreadable).
    """
    import py7zr

    try:
        with py7zr.SevenZipFile(archive, mode="r") as handle:
            encrypted = handle.needs_password()
            return [Member(info.filename, int(info.uncompressed or 0), encrypted)
                    for info in handle.list() if not info.is_directory]
    except Exception as exc:  # py7zr raises several types for a damaged archive
        raise UnreadableArchive(archive, f"cannot open as a 7z archive ({type(exc).__name__}: {exc})") from None



class _Cancelled(Exception):
    pass


class _QueueWriter:
    """py7zr writer (``Py7zIO``) that hands decompressed chunks to a bounded queue, so the member is streamed to
    the reader instead of written to disk."""

    def __init__(self, chunks, limit: int, cancelled: threading.Event, label: str):
        self.chunks, self.limit, self.cancelled, self.label, self._size = chunks, limit, cancelled, label, 0

    def write(self, data) -> int:
        import queue

        if self.cancelled.is_set():
            raise _Cancelled()
        self._size += len(data)
        if self._size > self.limit:
            raise InputError(self.label, f"decompressed size exceeds the bound of {self.limit} bytes")
        while True:
            try:
                self.chunks.put(bytes(data), timeout=0.2)
                return len(data)
            except queue.Full:
                if self.cancelled.is_set():
                    raise _Cancelled() from None

    def read(self, size=None) -> bytes:
        return b""

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._size

    def flush(self) -> None:
        pass

    def size(self) -> int:
        return self._size

    def close(self) -> None:
        pass


class Py7zrStream(io.RawIOBase):
    """One member decompressed by py7zr in a background thread into a queue of at most 16 chunks. py7zr's own
    memory still grows with the member (issue #626): the fallback when no 7-Zip binary is found."""

    def __init__(self, archive_path: Path, member: str, limit: int):
        import queue

        import py7zr
        from py7zr.io import WriterFactory

        super().__init__()
        self._chunks: queue.Queue = queue.Queue(maxsize=16)
        self._cancelled = threading.Event()
        self._buffer = b""
        self._done = False
        label = f"{archive_path}!{member}"
        writer = _QueueWriter(self._chunks, limit, self._cancelled, label)

        class _Factory(WriterFactory):
            def create(self, filename: str):
                return writer

        def produce():
            try:
                with py7zr.SevenZipFile(archive_path, mode="r") as archive:
                    archive.extract(targets=[member], factory=_Factory())
                self._put(None)
            except _Cancelled:
                pass
            except InputError as exc:
                self._put(exc)
            except BaseException as exc:  # py7zr / lzma errors on damaged data, surfaced in the reading thread
                self._put(InputError(label, f"archive data is damaged ({type(exc).__name__}: {exc})"))

        self._thread = threading.Thread(target=produce, name=f"7z:{archive_path.name}", daemon=True)
        self._thread.start()

    def _put(self, item) -> None:
        import queue

        while not self._cancelled.is_set():
            try:
                self._chunks.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._buffer and not self._done:
            item = self._chunks.get()
            if item is None:
                self._done = True
            elif isinstance(item, BaseException):
                self._done = True
                raise item
            else:
                self._buffer = item
        n = min(len(buffer), len(self._buffer))
        buffer[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n

    def close(self) -> None:
        self._cancelled.set()
        super().close()
