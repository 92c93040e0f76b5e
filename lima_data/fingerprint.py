"""Fingerprints of code, for cache keys: a result cached by other code (an edited checkout of the same version, an
edited user filter) is not reused. Below both ``sources/`` and the executor, so either may key its caches on it."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """A fingerprint of lima-data's own code (its .py files' paths, sizes and modification times): 16 hex digits."""
    root = Path(__file__).resolve().parent
    return files_fingerprint(sorted(str(p) for p in root.rglob("*.py")), root)


def files_fingerprint(paths: list[str], root: Path | None = None) -> str:
    """16 hex digits of sha256 over each file's path (relative to ``root`` when given), size and modification time."""
    entries = []
    for path in paths:
        p = Path(path)
        st = p.stat()
        entries.append((str(p.relative_to(root)) if root else str(p.resolve()), st.st_size, st.st_mtime_ns))
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()[:16]
