"""Language identification."""

from __future__ import annotations

from functools import lru_cache

from ..candidate import Candidate
from ..text import strip_code
from .base import Filter

DETECTORS = ("langdetect", "py3langid")


@lru_cache(maxsize=None)
def _py3langid():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

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

    Runs on the response with code blocks and inline code removed (on the prompt when there is no response, e.g.
    test prompts), cut to its first ``max_chars`` characters (language ID needs no more, and it bounds the cost).
    The detector is a recipe setting: ``py3langid`` (default) or ``langdetect`` (seeded). py3langid is about 7x
    faster (0.43 vs 3.0 ms on a 1,000-character answer) with the same decisions on 400 real Stack Exchange
    answers, and on 987 real AskReddit titles it drops 11 (mostly megathreads and news posts) where langdetect
    drops 12, most of them plain questions misread as Dutch, Welsh or Afrikaans.

    Value: ``{"lang": code, "probability": p}``. Reasons: ``not_english`` (another language; the name holds for
    any ``languages`` list), ``language_uncertain`` (probability below the bound or nothing to detect).
    """

    name = "language"
    reasons = ("not_english", "language_uncertain")
    defaults = {"languages": ["en"], "min_probability": 0.8, "detector": "py3langid", "max_chars": 1000}

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
        text = strip_code(candidate.response or candidate.prompt)[: self.max_chars]
        lang, probability = detect(text, self.detector, self.seed)
        return {"lang": lang, "probability": round(probability, 4)}

    def decide(self, value: dict) -> str | None:
        if value["lang"] and value["lang"] not in self.languages:
            return "not_english"
        if value["probability"] < self.min_probability:
            return "language_uncertain"
        return None
