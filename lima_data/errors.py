"""Errors that lima-data reports to the user as a clear message instead of a traceback.

Every command of the CLI runs inside one error boundary (:func:`describe`, used by ``lima_data.cli``): an
expected failure, i.e. a :class:`LimaDataError`, an OS error (full disk, permission denied, read-only folder, missing
file), bytes that are not UTF-8 or a damaged archive / JSON / TOML / CSV / checkpoint in a file the user named, is
printed as one line ``error: <path>: <what is wrong and what to do>`` on stderr with exit status 1; an interrupted
run (Ctrl-C) prints one line and exits with 130. Anything else is a bug: its traceback is shown with a request to
report it. ``lima-data --debug <command>`` (or ``LIMA_DATA_DEBUG=1``) shows the traceback of every failure.
"""

from __future__ import annotations

import codecs
import errno
import os
import re
from pathlib import PurePath
from types import TracebackType


class LimaDataError(Exception):
    """Base class: the CLI prints ``str(error)`` and exits with status 1."""


class InputError(LimaDataError):
    """Bad input that cannot be read at all: names the file (and line or row when known) and what is wrong.

    Args:
        path: the offending file, as given by the user.
        message: what is wrong, in words.
        line: 1-based line (or row) number when the problem has a position.
    """

    def __init__(self, path, message: str, line: int | None = None):
        self.path = path_text(path)
        self.line = line
        self.reason = message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")

    def __reduce__(self):
        """Pickled as its own arguments, so one raised in a worker process reaches the build whole: pickle's
        default re-calls ``__init__`` with the formatted message alone, which failed, and the process pool
        reported "a worker process died" instead of the file and what is wrong (issue 15, --workers 2)."""
        return (type(self), (self.path, self.reason, self.line))


class RecipeError(LimaDataError):
    """A recipe that cannot be loaded or fails validation; the message names the recipe file and the key."""


class ShortfallError(LimaDataError):
    """Raised in strict mode when a quota cannot be filled from the inputs."""


class EmptyBuildError(LimaDataError):
    """A build selected no row (and ``allow_empty`` was not given); the message says why."""


_SURROGATES = re.compile("[\ud800-\udfff]")


def path_text(path) -> str:
    """A path (``str``, ``Path`` or ``bytes``) as text that can always be written as UTF-8.

    A file name that is not valid UTF-8 reaches Python as lone surrogates (``surrogateescape``: byte ``0xff``
    becomes ``\\udcff``), which no UTF-8 writer accepts; each such byte is written as the four characters
    ``\\xff`` instead, e.g. ``page-\\xff\\xfe.html`` (the form ``ls -b`` shows). Valid names are returned unchanged.
    """
    text = os.fsdecode(path) if isinstance(path, (bytes, PurePath)) else str(path)
    return safe_text(text)


def safe_text(text: str, *, json: bool = False) -> str:
    """``text`` with every lone surrogate replaced so it encodes as UTF-8: an escaped byte of a non-UTF-8 file
    name (``\\udc80``-``\\udcff``) becomes ``\\xNN`` (the byte's value), any other lone surrogate (e.g. from a
    JSON ``"\\ud83d"`` escape with no pair) becomes U+FFFD. With ``json=True``, ``text`` is JSON text and the
    backslash is written as JSON's ``\\\\`` (the value read back is then the same ``\\xNN``). Unchanged (and
    fast) when there is no surrogate."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    slash = "\\\\" if json else "\\"

    def one(match: re.Match) -> str:
        code = ord(match.group())
        return f"{slash}x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else "\ufffd"

    return _SURROGATES.sub(one, text)


def _escape_surrogates(error: UnicodeError) -> tuple[str, int]:
    """Codec error handler ``"lima-data-escape"``: what :func:`safe_text` writes (``\\xff`` for a byte of a
    non-UTF-8 file name), so terminal output names a file as manifest.json does; other characters a terminal
    cannot encode are backslash-escaped."""
    if isinstance(error, UnicodeEncodeError):
        text = error.object[error.start:error.end]
        return "".join(f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF else
                       c.encode("ascii", "backslashreplace").decode("ascii") for c in text), error.end
    raise error


codecs.register_error("lima-data-escape", _escape_surrogates)


#: What to say about an OS error, by errno: what is wrong and what to do.
OS_ERRORS = {
    errno.ENOSPC: "no space left on the device; free some space (or write to another folder) and run again "
                  "(nothing written before was changed)",
    errno.EDQUOT: "disk quota exceeded; free some space (or write to another folder) and run again",
    errno.EACCES: "permission denied; change the permissions or use another path",
    errno.EPERM: "operation not permitted; change the permissions or use another path",
    errno.EROFS: "read-only file system; write to another folder",
    errno.ENOENT: "no such file or directory",
    errno.ENOTDIR: "a part of this path is a file, not a folder; use another path",
    errno.EISDIR: "is a folder where a file was expected",
    errno.EEXIST: "already exists and is not a folder; remove it or use another path",
    errno.ENOTEMPTY: "folder is not empty",
    errno.ENAMETOOLONG: "file name too long; use a shorter name",
    errno.ELOOP: "too many symbolic links (a link cycle?)",
    errno.EMFILE: "too many open files; raise the limit (ulimit -n) or use fewer --workers",
    errno.EIO: "input/output error; the disk or network file system failed: check it and run again",
    errno.ENXIO: "no such device (a FIFO with no writer, or a device that is gone); name a regular file",
    errno.EBUSY: "device or resource busy; try again when it is free",
    errno.EFBIG: "file too large for this file system; write to another folder",
    errno.ESTALE: "stale network file handle; remount the file system and run again",
}

#: Names of frame locals that hold the file a function works on (for errors that carry no file name).
_PATH_NAMES = ("path", "file", "filename", "shard", "folder", "target", "out", "self")


def file_in_traceback(tb: TracebackType | None) -> str | None:
    """The innermost file a failing call was working on: the value of a local named ``path``, ``file``, ... (or a
    ``Path`` method's ``self``) in the traceback's frames, innermost first; ``None`` when there is none.
    Used for errors that do not name their file themselves (``UnicodeDecodeError``, a JSON or archive error)."""
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        for name in _PATH_NAMES:
            value = frame.f_locals.get(name)
            if name != "self" and isinstance(getattr(value, "path", None), PurePath):  # a Shard
                value = value.path
            if isinstance(value, PurePath) and (name != "self" or str(value)):
                return path_text(value)
            if isinstance(value, str) and name != "self" and value and ("/" in value or "." in value) \
                    and len(value) < 4096 and os.path.exists(value):
                return path_text(value)
    return None


#: Errors of writing, not reading: the file to name is the one being written.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}


def _writable_name(value) -> str | None:
    mode, name = getattr(value, "mode", None), getattr(value, "name", None)
    if isinstance(mode, str) and any(c in mode for c in "wax+") and isinstance(name, (str, bytes, PurePath)):
        return path_text(name)
    return None


def file_being_written(tb: TracebackType | None) -> str | None:
    """The innermost file open for writing among the locals of a traceback's frames (or the attributes of a
    ``self`` there, e.g. a compressed writer's file), for write errors that carry no file name (a full disk)."""
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        for name, value in list(frame.f_locals.items()):
            found = _writable_name(value)
            if found is None and name == "self" and hasattr(value, "__dict__"):
                found = next((n for v in list(vars(value).values()) if (n := _writable_name(v))), None)
            if found is not None:
                return found
    return None


def _raised_in(tb: TracebackType | None, function: str) -> bool:
    while tb is not None:
        if tb.tb_frame.f_code.co_name == function:
            return True
        tb = tb.tb_next
    return False


def _raised_reading(tb: TracebackType | None, fragments: tuple[str, ...]) -> bool:
    """Whether a frame of ``tb`` that loads or reads (by its function's name) is in a file whose path holds one of
    ``fragments``."""
    while tb is not None:
        code = tb.tb_frame.f_code
        if any(f in code.co_filename.replace("\\", "/") for f in fragments) and (
                "load" in code.co_name or "read" in code.co_name):
            return True
        tb = tb.tb_next
    return False


def _os_message(exc: OSError, where: str | None) -> str:
    hint = OS_ERRORS.get(exc.errno) or (exc.strerror or str(exc)).rstrip(".")
    if exc.errno == errno.ENOENT and exc.filename2 is None and where is None:
        hint = "no such file or directory"
    name = exc.filename if exc.filename is not None else where
    if exc.filename2 is not None:
        return f"{path_text(exc.filename)} -> {path_text(exc.filename2)}: {hint}"
    return f"{path_text(name)}: {hint}" if name is not None else hint


def _unwrap(exc: BaseException) -> BaseException:
    """The original error of a wrapper: a Ray task error's cause."""
    cause = getattr(exc, "cause", None)
    if type(exc).__name__.startswith("RayTaskError") and isinstance(cause, BaseException):
        return cause
    return exc


def describe(exc: BaseException) -> str | None:
    """The one-line message (``<path>: <what is wrong and what to do>``) for an expected failure, or ``None``
    when ``exc`` is unexpected (a bug: the caller shows its traceback)."""
    exc = _unwrap(exc)
    if isinstance(exc, LimaDataError):
        return safe_text(str(exc))
    where = file_in_traceback(exc.__traceback__)
    prefix = f"{where}: " if where else ""
    kind, module = type(exc).__name__, type(exc).__module__ or ""
    if isinstance(exc, OSError) and exc.errno is not None:
        if exc.errno in _WRITE_ERRNOS and exc.filename is None:
            where = file_being_written(exc.__traceback__) or where
        return _os_message(exc, where)
    if type(exc) is OSError and str(exc).strip():  # a library's own OSError (e.g. transformers: model not found)
        return " ".join(str(exc).split())
    if where and ".lima-cache" in where and (kind in ("UnpicklingError", "EOFError") or
                                             _raised_in(exc.__traceback__, "load_result")):
        return f"{where}: damaged cache entry; delete that folder (or all of .lima-cache) and run again"
    if isinstance(exc, UnicodeDecodeError):
        return (f"{prefix}not UTF-8 text (byte 0x{exc.object[exc.start]:02x}); save the file as UTF-8 or name the "
                "right file")
    if isinstance(exc, MemoryError):
        return "out of memory; use fewer --workers or a machine with more memory"
    if module.startswith("zstandard") or kind == "ZstdError":
        return f"{prefix}damaged zstd data ({exc}); download the file again"
    if module.startswith("py7zr") or kind in ("Bad7zFile", "CrcError", "UnsupportedCompressionMethodError"):
        return f"{prefix}damaged or truncated 7z archive ({kind}: {exc}); download the archive again"
    if module.startswith(("lzma", "gzip", "zlib", "zipfile", "bz2")) or kind in ("BadGzipFile", "BadZipFile",
                                                                                  "LZMAError"):
        return f"{prefix}damaged compressed data ({kind}: {exc}); download the file again"
    if kind == "XMLSyntaxError":
        return f"{prefix}not well-formed XML ({exc})"
    if kind == "JSONDecodeError":
        return f"{prefix}not JSON at line {exc.lineno} ({exc.msg})"
    if kind == "TOMLDecodeError":
        return f"{prefix}not valid TOML ({exc})"
    if module == "_csv" or kind == "Error" and module == "csv":
        return f"{prefix}bad CSV ({exc})"
    if kind == "CheckpointException":  # torch.distributed.checkpoint: the first rank's error
        failures = sorted((getattr(exc, "failures", None) or {}).items())
        inner = failures[0][1] if failures else None
        if isinstance(inner, tuple) and inner and isinstance(inner[0], BaseException):  # (error, traceback)
            inner = inner[0]
        what = f"{type(inner).__name__}{': ' + str(inner).splitlines()[0] if str(inner).strip() else ''}" \
            if isinstance(inner, BaseException) else kind
        return f"{prefix}damaged checkpoint ({what}); remove it to resume from an earlier one"
    if "PytorchStreamReader" in str(exc) or kind == "SafetensorError" or _raised_reading(
            exc.__traceback__, ("torch/distributed/checkpoint/", "torch/serialization.py", "safetensors/")):
        first = (str(exc).strip().splitlines() or [""])[0]
        return (f"{prefix}damaged checkpoint ({kind}{': ' + first if first else ''}); remove it to resume from "
                "an earlier one")
    if kind == "BrokenProcessPool":
        return "a worker process died (killed, or out of memory?); run again, with fewer --workers if it recurs"
    if kind == "ChildFailedError":  # torchrun: the first failed worker's own message
        failures = sorted((getattr(exc, "failures", None) or {}).items())
        if failures:
            rank, failure = failures[0]
            detail = getattr(failure, "message", "")
            detail = detail.get("message", "") if isinstance(detail, dict) else str(detail)
            return (f"training worker rank {rank} failed (exit code {getattr(failure, 'exitcode', '?')})"
                    + (f": {' '.join(detail.split())[:500]}" if detail else "; see its output above"))
        return "a training worker failed; see its output above"
    return None


def translated(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, with an expected failure raised as a :class:`LimaDataError` carrying
    :func:`describe`'s message. For work run in another process (a worker of a process pool or Ray), where the
    frames that name the file are lost once the error is sent back."""
    try:
        return fn(*args, **kwargs)
    except LimaDataError:
        raise
    except Exception as exc:  # noqa: BLE001 - translated or re-raised
        message = describe(exc)
        if message is None:
            raise
        raise LimaDataError(message) from exc
