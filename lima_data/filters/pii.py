"""The ``pii`` filter: personal contacts (emails, phone numbers, IPv4 addresses, ``u/`` and ``@`` handles) in prose
replaced with placeholders; fenced and inline code are left as they are (code legitimately holds addresses and
handles)."""

from __future__ import annotations

import re

from ..candidate import Candidate
from ..text import code_spans
from .base import Filter

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
PII_PATTERNS = {
    "email": re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])"),
    "ip": re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?![\w.]*\d)"),
    # groups separated by spaces or hyphens (not dots: "34.000.000" is a number), optional +country code
    "phone": re.compile(r"(?<![\w+.-])(?:\+?\d{1,3}[ -])?(?:\(\d{2,4}\)[ -]?|\d{2,4}[ -])\d{3,4}[ -]\d{3,4}(?![\w-]|\.\d)"),
    "user": re.compile(r"(?<![\w/])/?u/[A-Za-z0-9_-]{3,20}\b|(?<![\w.@])@[A-Za-z_][A-Za-z0-9_]{1,29}\b"),
}
#: Text a match of each pattern must contain: a piece without any of it skips that pattern (same result, faster).
_PII_NEEDS = {"email": ("@",), "ip": (".",), "phone": ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9"),
              "user": ("@", "u/")}
#: What a match must hold, found by a quick scan (a regex that opens with a digit, so the engine skips to digits;
#: the patterns above open with a look-behind and are tried at every character): a piece without it skips the
#: pattern. An IPv4 address holds "digit.digit"; a phone number ends in ``\d{3,4}[ -]\d{3,4}``.
_PII_HINTS = {"ip": re.compile(r"\d\.\d"), "phone": re.compile(r"\d{3}[ -]\d{3}")}


def replace_pii(text: str, placeholders: dict[str, str], kinds=PII_PATTERNS) -> tuple[str, dict[str, int]]:
    """Replace emails, IPv4 addresses, phone numbers and ``u/`` / ``@`` handles outside code with placeholders
    (only the ``kinds`` named, default all).

    Returns the new text and how many of each kind were replaced (0 for kinds not asked for).
    """
    counts = dict.fromkeys(PII_PATTERNS, 0)
    pieces = []
    last = 0
    for start, end in code_spans(text):
        pieces.append((text[last:start], True))
        pieces.append((text[start:end], False))
        last = end
    pieces.append((text[last:], True))
    out = []
    for piece, is_prose in pieces:
        if is_prose:
            for kind, pattern in PII_PATTERNS.items():  # email before user: an address's @ is not a handle
                if kind not in kinds or not any(needed in piece for needed in _PII_NEEDS[kind]):
                    continue
                if kind in _PII_HINTS and not _PII_HINTS[kind].search(piece):
                    continue
                piece, n = pattern.subn(placeholders[kind], piece)
                counts[kind] += n
        out.append(piece)
    return "".join(out), counts


class Pii(Filter):
    """Replace personal contacts in the prompt and response with placeholders (a transform; never drops): emails
    ``[EMAIL]``, phone numbers ``[PHONE]``, IPv4 addresses ``[IP]``, Reddit ``u/name`` and ``@handle`` ``[USER]``.
    Code is left as it is.

    The rule (ours): mask what a person wrote about themselves or others in a user post (Stack Exchange answers,
    Reddit posts: contacts there are personal); leave edited reference text as written: a wikiHow article's
    numbers and addresses are organisations' public contacts ("Call TransUnion (800) 680-7289", "Forward
    phishing emails to reportphishing@apwg.org"), and blanking them breaks the instructions. So ``mask`` (the
    kinds replaced, default all four) is recipe data per source: LIMA's recipe sets ``mask = []`` for wikiHow,
    where the filter still counts what it finds (the report shows it) but changes nothing.

    Value: contacts found, ``{"email", "ip", "phone", "user"}`` (counts; replaced when the kind is in ``mask``).
    """

    name = "pii"
    reasons = ()
    defaults = {"placeholders": {"email": "[EMAIL]", "ip": "[IP]", "phone": "[PHONE]", "user": "[USER]"},
                "mask": ["email", "ip", "phone", "user"]}

    def __init__(self, seed: int = 0, **settings):
        super().__init__(seed, **settings)
        from ..errors import RecipeError

        unknown = set(self.mask) - set(PII_PATTERNS)
        if unknown:
            raise RecipeError(f"[filters.pii]: mask names unknown kind(s) {sorted(unknown)}; "
                              f"known: {sorted(PII_PATTERNS)}")

    def measure(self, candidate: Candidate) -> dict[str, int]:
        placeholders = {**self.defaults["placeholders"], **self.placeholders}
        found = dict.fromkeys(PII_PATTERNS, 0)
        for field in ("prompt", "response"):
            text = getattr(candidate, field)
            masked, counts = replace_pii(text, placeholders)  # every kind counted
            if any(counts[kind] for kind in self.mask):
                if set(self.mask) != set(PII_PATTERNS):
                    masked = replace_pii(text, placeholders, kinds=self.mask)[0]
                setattr(candidate, field, masked)
            for kind, n in counts.items():
                found[kind] += n
        return found

    def decide(self, value: dict[str, int]) -> str | None:
        return None
