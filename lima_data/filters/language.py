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
