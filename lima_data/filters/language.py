"""Language identification.

py3langid ships its model as an LZMA-compressed ``.npz`` (4.6 MB) that takes ~0.45 s to decompress on every start,
about half a raw lxml scan of a 100 MB Posts.xml. :func:`_py3langid` therefore keeps the decompressed arrays once in
the user's cache (:func:`~lima_data.files.user_cache_dir`: ``$LIMA_DATA_CACHE``, else
``$XDG_CACHE_HOME/lima-data``, else ``~/.cache/lima-data``; 68 MB, one folder per py3langid version and model file)
as ``.npy`` files and memory-maps them (~25 ms). The arrays are py3langid's own, handed to its public
``LanguageIdentifier`` constructor as its loader does (the transition table as a view of the map instead of a copy);
any problem with the cache (not writable, damaged, another layout) falls back to py3langid's own
loader, so the cache can only make start-up faster, never change a decision (tested).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from ..candidate import Candidate
from ..files import user_cache_dir
from ..text import strip_code
from .base import Filter

DETECTORS = ("langdetect", "py3langid")
_MODEL_ARRAYS = ("ptc", "pc", "classes", "nextmove", "nextmove_row", "out_feat")


def _cached_model_arrays(model: Path) -> dict | None:
    """py3langid's model arrays (``_MODEL_ARRAYS``), memory-mapped from their decompressed copy in
    :func:`~lima_data.files.user_cache_dir`, made on first use (atomically: a folder renamed into place); ``None`` when the cache
    cannot be made or read."""
    import lzma
    from importlib.metadata import version

    import numpy as np

    try:
        st = model.stat()
        folder = user_cache_dir() / f"py3langid-{version('py3langid')}-{st.st_size}-{st.st_mtime_ns}"
        if not folder.is_dir():
            folder.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.partial-", dir=folder.parent))
            try:
                with lzma.open(model) as src, tempfile.TemporaryFile(dir=tmp) as npz:
                    shutil.copyfileobj(src, npz, 1 << 20)
                    npz.seek(0)
                    with np.load(npz, allow_pickle=False) as data:
                        for name in _MODEL_ARRAYS:
                            np.save(tmp / f"{name}.npy", data[name], allow_pickle=False)
                os.replace(tmp, folder)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
                if not folder.is_dir():  # (another process may have put its copy in place first)
                    raise
        return {name: np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in _MODEL_ARRAYS}
    except (OSError, ValueError, KeyError, ImportError, RuntimeError):  # (RuntimeError: no home folder)
        return None


@lru_cache(maxsize=None)
def _py3langid():
    """py3langid's identifier with normalised probabilities, loaded once per process (see the module docstring)."""
    import numpy as np
    from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

    data = _cached_model_arrays(MODEL_DIR / MODEL_FILE)
    if data is not None:
        try:
            from py3langid.modelio import _to_array

            # the 39 MB transition table as a zero-copy view of the memory map (its loader copies it into an
            # ``array.array``, 26 ms a process): indexing either gives Python ints, as fast
            nextmove = data["nextmove"]
            view = memoryview(nextmove).cast("B").cast({2: "H", 4: "I", 8: "Q"}[nextmove.dtype.itemsize])
            return LanguageIdentifier(
                np.asarray(data["ptc"]), np.asarray(data["pc"]), data["classes"].tolist(),
                view, data["out_feat"].tolist(), norm_probs=True, tk_row=_to_array(data["nextmove_row"]))
        except (ImportError, AttributeError, TypeError, ValueError, KeyError):
            pass  # another py3langid layout: its own loader below
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect(text: str, detector: str = "py3langid", seed: int = 0) -> tuple[str, float]:
    """``(ISO 639-1 code, probability)`` of ``text``; ``("", 0.0)`` when there is nothing to detect.

    ``langdetect`` is made deterministic (its ``DetectorFactory.seed``); ``py3langid`` (langid.py's model,
    shipped in the package, offline) is about twice as fast on the same text (``benchmarks/bench_filters.py``).
    """
    if not text.strip():
        return "", 0.0
    if detector == "py3langid":
        code, probability = _py3langid().classify(text)
        return code, float(probability)
    from langdetect import DetectorFactory, detect_langs
    from langdetect.lang_detect_exception import LangDetectException

    DetectorFactory.seed = seed
    try:
        best = detect_langs(text)[0]
    except LangDetectException:
        return "", 0.0
    return best.lang, float(best.prob)


class Language(Filter):
    """Keep responses in one of ``languages`` (default English), detected with ``probability >= min_probability``.

    Runs on the response with code blocks and inline code removed; when there is no response (test prompts such as
    r/AskReddit titles) on the prompt followed by the post's body (``meta["selftext"]``) where there is one, for more
    text to judge. The text is cut to its first ``max_chars`` characters (language ID needs no more, and it bounds
    the cost). The detector is a recipe setting: ``py3langid`` (default) or ``langdetect`` (seeded). py3langid is
    about 7x faster (0.43 vs 3.0 ms on a 1,000-character answer) with the same decisions on 400 real Stack Exchange
    answers.

    Short texts: below ``short_chars`` characters (default 100, ours) a detector's guess is noise ("Mike Bloomberg
    supporters: why?" comes out as Nigerian Pidgin at 0.14, "What's an unfun fact?" as English at 0.58), so such a
    text is dropped only when another language is detected with ``probability >= min_probability`` ("Was ist dein
    Lieblingsessen?": German, 0.95); an uncertain guess keeps it. On the 987 real AskReddit titles of
    ../shared/data this drops none of the plain English questions (the long-text rule dropped 11).

    Value: ``{"lang": code, "probability": p, "chars": characters judged}``. Reasons: ``not_english`` (another
    language; the name holds for any ``languages`` list), ``language_uncertain`` (probability below the bound or
    nothing to detect, texts of at least ``short_chars``).
    """

    name = "language"
    reasons = ("not_english", "language_uncertain")
    defaults = {"languages": ["en"], "min_probability": 0.8, "detector": "py3langid", "max_chars": 1000,
                "short_chars": 100}

    def __init__(self, seed: int = 0, **settings):
        super().__init__(seed, **settings)
        if self.detector not in DETECTORS:
            from ..errors import RecipeError

            raise RecipeError(f"[filters.language]: detector must be one of {DETECTORS}, not {self.detector!r}")
        if self.detector == "langdetect":
            import importlib.util

            if importlib.util.find_spec("langdetect") is None:
                from ..errors import RecipeError

                raise RecipeError("[filters.language]: detector \"langdetect\" needs the langdetect extra: "
                                  "pip install 'lima-data[langdetect]' (or use the default, \"py3langid\")")

    def measure(self, candidate: Candidate) -> dict:
        if candidate.response:
            text = strip_code(candidate.response)
        else:
            body = candidate.meta.get("selftext") or ""
            body = "" if body.strip() in ("[deleted]", "[removed]") else body
            text = strip_code(f"{candidate.prompt}\n\n{body}".strip())
        text = text.strip()[: self.max_chars]
        lang, probability = detect(text, self.detector, self.seed)
        return {"lang": lang, "probability": round(probability, 4), "chars": len(text)}

    def decide(self, value: dict) -> str | None:
        if value.get("chars", self.short_chars) < self.short_chars:
            other = value["lang"] and value["lang"] not in self.languages
            return "not_english" if other and value["probability"] >= self.min_probability else None
        if value["lang"] and value["lang"] not in self.languages:
            return "not_english"
        if value["probability"] < self.min_probability:
            return "language_uncertain"
        return None
