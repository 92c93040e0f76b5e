"""LIMA's style rules for Stack Exchange: self-contained prompts, no first person, no references to the site.

Every phrase list here is recipe data (``recipes/stackexchange_style.toml``); the classes hold only the logic.
"""

from __future__ import annotations

import re

from ..candidate import Candidate
from ..text import html_prose, stable_unit, strip_code, strip_headings, strip_math, strip_quotes, word_pattern
from ..text.markup import html_to_markdown
from .base import REQUIRED, Filter, match_spans


def response_prose(candidate: Candidate, *, blockquotes: bool = True, headings: bool = True) -> str:
    """The response without code, for style rules: from the post's HTML while ``meta["response_format"]`` is
    ``"html"`` (the Stack Exchange reader's answers before ``clean``; see :func:`~lima_data.text.html_prose`),
    else from Markdown (:func:`~lima_data.text.strip_code`). ``blockquotes=False`` removes quoted blocks too,
    ``headings=False`` heading lines (:func:`~lima_data.text.strip_headings`)."""
    if candidate.meta.get("response_format") == "html":
        return html_prose(candidate.response, blockquotes=blockquotes, headings=headings)
    prose = strip_code(candidate.response)
    if not headings:
        prose = strip_headings(prose)
    return prose if blockquotes else strip_quotes(prose, spans=False)


#: Words before a capital "I" that make it a roman numeral ("Type I", "Part I", "World War I", "Phase I trial").
ROMAN_NOUNS = frozenset("""
    act appendix article book category chapter class figure grade group level method model part phase plate
    schedule section series stage step table tier title type version vol volume war world
""".split())
_ROMAN = r"(?:I{1,3}|IV|VI{0,3}|IX|X{1,3})"
_ROMAN_NEXT = re.compile(rf"\s*(?:,|/|-|\u2013|and\b|or\b|to\b|through\b)\s*{_ROMAN}\b")
_ROMAN_PREV = re.compile(rf"\b{_ROMAN}\s*(?:,|/|-|\u2013|and|or|to|through)\s*$")
#: What the text before a roman numeral's separator ends with, once stripped (the end of :data:`_ROMAN_PREV`): text
#: that ends otherwise cannot match, so the regex search is skipped.
_ROMAN_SEPARATORS = (",", "/", "-", "\u2013", "and", "or", "to", "through")
_ASCII_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
#: Characters next to an "I" that make it a symbol, a key or a format code, not the pronoun: ``\mathbb{I}``,
#: ``I^2 R``, ``I_0``, ``%I``, ``Ctrl+I``, ``Shift + I``, ``=I``.
_SYMBOL_BEFORE = set("\\{^_$%+=<>|([&#@~")
_SYMBOL_AFTER = set("^_}$+=<>|)[&#@~")


def is_pronoun_i(text: str, start: int) -> bool:
    """False when the capital ``I`` at ``text[start]`` is not the pronoun: a symbol or key name (a neighbour in
    ``\\{^_$%+=<>|()[]&#@~``: ``\\mathbb{I}``, ``I^2 R``, ``%I``, ``Shift + I``), "I.e." / "I.E.", a roman
    numeral (after a capitalised word of :data:`ROMAN_NOUNS`, or a lower-case one when no lower-case word
    follows the "I" ("at this stage I would" stays a pronoun), next to another numeral as in "I and II" /
    "I-III", or a list marker "I." / "I)" at the start of a line). Contractions ("I'm") are passed in at their
    "I" too and follow the same rules."""
    before = text[max(0, start - 40):start]
    after = text[start + 1:start + 40]
    stripped = before.rstrip()
    prev_char = stripped[-1:]
    next_char = after.lstrip()[:1]
    if prev_char in _SYMBOL_BEFORE or next_char in _SYMBOL_AFTER:
        return False
    if after[:3].lower() == ".e." or after[:2].lower() == ".e":
        return False
    line_start = not before or before.rsplit("\n", 1)[-1].strip() in ("", "-", "*", "1.")
    if line_start and after[:1] in (".", ")", ":"):
        return False
    # the word before: the ASCII letters ending the stripped window (what ``([A-Za-z]+)[\s\u00a0]*$`` finds,
    # without a regex search over the window; U+00A0 is whitespace to rstrip too)
    word = stripped[len(stripped.rstrip(_ASCII_LETTERS)):]
    if word and word.lower() in ROMAN_NOUNS and (word[0].isupper() or not re.match(r"\s+[a-z]", after)):
        return False  # "Type I diabetes", "phase I." -- but "at this stage I would" is the pronoun
    return not (_ROMAN_NEXT.match(after) or stripped.endswith(_ROMAN_SEPARATORS) and _ROMAN_PREV.search(before))


class SelfContained(Filter):
    """The question's title must stand alone as a prompt.

    LIMA section 2.1 takes "questions that are self-contained in the title (i.e., no body)". The paper gives no
    rule, so lima-data uses this heuristic on the title:

    1. it reads as a question: it ends with ``?`` or its first word is one of ``question_words`` (how, what,
       why, is, can, ...). Off with ``require_question = false``.
    2. it does not point at the body or at something only the body shows: none of ``body_cues`` occurs as whole
       words ("this code", "the following", "as shown", "code below", "this image", "my code", ...), and it does not
       end on a bare "this" / "these" / "that" ("Why does this happen?" is kept only if ``this`` is followed by a
       noun; "What is this?" is dropped).

    With ``prompt_with_body`` (default on), a title that points at the body does not drop the question: it gets
    ``meta["title_refers_to_body"]`` (the cue) and ``prompt_choice`` then builds the prompt with the body (title
    then body, or the body alone), so the prompt is self-contained although the title is not ("How does the
    following code work?" followed by the code). LIMA's release has 60% body prompts and 5-10% title then body:
    a title that needs its body was no reason to drop there. Off, such questions drop as
    ``title_refers_to_body``.

    Value: ``"ok"``, ``"not_question"``, or the body cue that matched (e.g. ``"this code"``).
    Reasons: ``title_not_question``, ``title_refers_to_body``.
    """

    name = "self_contained"
    reasons = ("title_not_question", "title_refers_to_body")
    defaults = {"require_question": True, "prompt_with_body": True, "question_words": REQUIRED,
                "body_cues": REQUIRED}

    _BARE_DEMONSTRATIVE = re.compile(r"\b(this|these|that|those)\s*+[?.!]*+\s*+$", re.I)  # possessive: linear

    def __init__(self, seed: int = 0, **settings):
        super().__init__(seed, **settings)
        self._question_words = {w.lower() for w in self.question_words}
        self._cues = word_pattern(self.body_cues)

    def measure(self, candidate: Candidate) -> str:
        title = candidate.meta.get("title", candidate.prompt).strip()
        match = self._cues.search(title) or self._BARE_DEMONSTRATIVE.search(title)
        if match:
            cue = (match.group(1) if match.re is self._BARE_DEMONSTRATIVE else match.group(0)).lower()
            if self.prompt_with_body:
                candidate.meta["title_refers_to_body"] = cue
            return cue
        first = re.split(r"[\s,]+", title, maxsplit=1)[0].lower().strip("\"'")
        if not title.endswith("?") and first not in self._question_words:
            return "not_question"
        return "ok"

    def explain(self, candidate: Candidate, value: str) -> list[dict[str, str]] | None:
        """The title's body cue or bare demonstrative, or (``not_question``) its first word."""
        title = candidate.meta.get("title", candidate.prompt).strip()
        match = self._cues.search(title) or self._BARE_DEMONSTRATIVE.search(title)
        if value == "not_question" or match is None:
            match = re.match(r"[^\s,]+", title)
        return match_spans("title", title, [match.span()]) if match else None

    def decide(self, value: str) -> str | None:
        if value == "ok":
            return None
        if value == "not_question":
            return "title_not_question" if self.require_question else None
        return None if self.prompt_with_body else "title_refers_to_body"


def _starts_with(text: str, prefix: str) -> bool:
    """True when ``text`` opens with ``prefix``, case, spacing and punctuation aside."""
    def words(s: str) -> list[str]:
        return re.findall(r"\w+", s.lower())

    head = words(prefix)
    return bool(head) and words(text[: len(prefix) * 2 + 20])[: len(head)] == head


class PromptChoice(Filter):
    """Choose the prompt's form: the question's title, its body, or the title followed by the body, by a seeded
    draw per question.

    LIMA section 2.1: "we use the title as the prompt for some examples and the body for others". Its release
    (../shared/LIMA_RELEASE.md) shows about 32% title alone, 52-60% body alone and 5-10% title then body, and no
    prompt above 997 characters. The shares are the recipe's ``forms`` (``{title, body, title_body}``, summing to
    1); the draw is ``stable_unit(seed, candidate.id)``, so it does not depend on read order or sharding.

    A form that cannot be used falls back to the title (``"title_fallback"``):

    - ``body`` needs a body that stands alone without the title (:meth:`body_stands_alone`): no image (cleaning
      removes images, so the prompt would lose them), no reference to the title (``title_cues``: "the title",
      "as titled", ...), a request (a ``?`` outside code or one of ``request_cues``: "how do", "wondering", ...),
      at least ``min_body_chars`` characters;
    - ``title_body`` needs a body of at least ``min_body_chars`` characters with no image (the title gives the
      context, so the body need not stand alone); title and body are joined by a line break (a body that opens
      with the title is the prompt alone);
    - both: the prompt at most ``max_prompt_chars`` characters (1,000: LIMA's release has none longer than 997).

    A title that points at its body (``meta["title_refers_to_body"]``, set by ``self_contained``) is never the
    prompt alone: title then body when it fits, else the body when it stands alone, else the question is dropped
    (``no_standalone_prompt``).

    Transforms: sets ``candidate.prompt`` and ``meta["prompt_field"]`` (``"title"``, ``"body"`` or
    ``"title_body"``); when a form with the body is drawn, cleans ``meta["question_body"]`` from HTML to Markdown
    as ``clean`` does the response.
    Value: ``"title"``, ``"body"``, ``"title_body"``, ``"title_fallback"`` or ``"none"``. Reason:
    ``no_standalone_prompt`` (value ``"none"``: a title that points at its body, and no usable body).
    """

    name = "prompt_choice"
    reasons = ("no_standalone_prompt",)
    FORMS = ("title", "body", "title_body")
    defaults = {
        "forms": {"title": 0.5, "body": 0.5, "title_body": 0.0},
        "min_body_chars": 40,
        "max_prompt_chars": 1000,
        "title_cues": REQUIRED,
        "request_cues": REQUIRED,
    }

    def __init__(self, seed: int = 0, **settings):
        super().__init__(seed, **settings)
        from ..errors import RecipeError

        forms = self.forms
        if (not isinstance(forms, dict) or set(forms) - set(self.FORMS)
                or not all(isinstance(v, (int, float)) and v >= 0 for v in forms.values())
                or abs(sum(forms.values()) - 1.0) > 1e-6):
            raise RecipeError(f"[filters.prompt_choice]: forms must give shares of {list(self.FORMS)} that sum to 1, "
                              f"not {forms!r}")
        self._title_cues = word_pattern(self.title_cues)
        self._request_cues = word_pattern(self.request_cues)

    def draw(self, candidate_id: str) -> str:
        """The form drawn for a candidate: ``"title"``, ``"body"`` or ``"title_body"`` (seeded, per id)."""
        unit = stable_unit(self.seed, "prompt_choice", candidate_id)
        edge = 0.0
        for form in self.FORMS:
            edge += self.forms.get(form, 0.0)
            if unit < edge:
                return form
        return "title"

    def body_stands_alone(self, body: str, images: int) -> bool:
        """True when ``body`` (cleaned Markdown) can be a prompt without the title; see the class docstring."""
        if images or not (self.min_body_chars <= len(body) <= self.max_prompt_chars):
            return False
        prose = strip_code(body)
        if self._title_cues.search(prose):
            return False
        return "?" in prose or bool(self._request_cues.search(prose))

    def measure(self, candidate: Candidate) -> str:
        title = candidate.meta.get("title", candidate.prompt)
        needs_body = bool(candidate.meta.get("title_refers_to_body"))
        form = "title_body" if needs_body else self.draw(candidate.id)
        prompt = title
        if form != "title":
            body, changes = html_to_markdown(candidate.meta.get("question_body") or "", prune_links=True)
            candidate.meta["question_body"] = body
            usable = not changes["images"] and len(body) >= self.min_body_chars
            repeats = usable and _starts_with(body, title) and len(body) <= self.max_prompt_chars
            if form == "title_body" and repeats:
                prompt, form = body, "body"  # the body repeats the title: joining them would say it twice
            elif form == "title_body" and usable and len(title) + 1 + len(body) <= self.max_prompt_chars:
                prompt = f"{title}\n{body}"
            elif (form == "body" or needs_body) and self.body_stands_alone(body, changes["images"]):
                prompt, form = body, "body"
            else:
                form = "none" if needs_body else "title_fallback"
        candidate.prompt = prompt
        candidate.meta["prompt_field"] = "title" if form in ("title_fallback", "none") else form
        return form

    def decide(self, value: str) -> str | None:
        return "no_standalone_prompt" if value == "none" else None


class FirstPerson(Filter):
    """No first-person writing in the response, outside code.

    LIMA section 2.1 drops "answers written in the first person ('I', 'my')". Counts whole-word occurrences of
    ``words`` in the response's prose (:func:`response_prose`: HTML or Markdown, so the rule can run before the
    costly HTML cleaning) with code, blockquotes, headings ("Tell me more"), LaTeX math (``$I$``) and quoted speech
    removed (quoted spans and dialogue lines, :func:`~lima_data.text.strip_quotes`: quoting someone's "I don't know"
    is not writing in the first person). The pronoun "I" and its contractions match only capitalised (so ``i`` as a
    loop variable in prose does not count) and only where :func:`is_pronoun_i` holds (not ``\\mathbb{I}``,
    ``I^2 R``, "Shift + I", ``%I``, "I.e.", "Type I", "I, II and III"); the other words ignore case, but an
    all-capitals "ME" / "MY" is an abbreviation and "a (gold) mine" a noun. Kept when the
    count is ``<= max_count`` (default 0; LIMA's release keeps about 9% of answers with an aside such as "I'd
    suggest", usually one: the ``lima-release`` preset allows 2).

    Value: the count (int). Reason: ``first_person``.
    """

    name = "first_person"
    reasons = ("first_person",)
    defaults = {"words": REQUIRED, "max_count": 0}

    def __init__(self, seed: int = 0, **settings):
        super().__init__(seed, **settings)
        capitalised = [w for w in self.words if w == "I" or w.startswith(("I'", "I\u2019"))]
        self._pattern = word_pattern(self.words, case_sensitive=capitalised)

    @staticmethod
    def _prose(candidate: Candidate) -> str:
        return strip_quotes(strip_math(response_prose(candidate, blockquotes=False, headings=False)))

    def _matches(self, prose: str) -> list[re.Match]:
        return [m for m in self._pattern.finditer(prose) if self._counts(prose, m)]

    def measure(self, candidate: Candidate) -> int:
        prose = self._prose(candidate)
        matches = self._matches(prose)
        self._last = (candidate.response, prose, matches)  # explain() of a drop reuses them (same response object)
        return len(matches)

    _NOUN_MINE = re.compile(r"\b(?:a|an|the|this|that|each|every|gold|coal|silver|copper|iron|salt|diamond|land|"
                            r"uranium|open|abandoned|old|underground|naval|sea)\s+$", re.I)

    @classmethod
    def _counts(cls, prose: str, match: re.Match) -> bool:
        word = match.group(0)
        if word.startswith("I"):
            return is_pronoun_i(prose, match.start())
        if len(word) > 1 and word.isupper():
            return False  # "ME" (Maine, ME/CFS, Windows ME), "MY" (Malaysia): abbreviations
        if word.lower() == "mine" and cls._NOUN_MINE.search(prose[max(0, match.start() - 20):match.start()]):
            return False  # "a gold mine", "the mine shaft"
        return True

    def explain(self, candidate: Candidate, value: int) -> list[dict[str, str]] | None:
        """The first-person words in the prose that ``measure`` counts (same text, same pattern)."""
        last = getattr(self, "_last", None)
        if last is not None and last[0] is candidate.response:
            _, prose, matches = last
        else:
            prose = self._prose(candidate)
            matches = self._matches(prose)
        return match_spans("response", prose, (m.span() for m in matches))

    def decide(self, value: int) -> str | None:
        return "first_person" if value > self.max_count else None


class SiteReference(Filter):
    """No references to other answers, to the question as a post, or to the site.

    LIMA section 2.1 drops answers that refer to other answers ("as mentioned", "stack exchange", ...). Looks for
    the recipe's ``phrases`` as whole words, ignoring case (except phrases holding an upper-case abbreviation,
    "the OP", "SE site": those match as written), in the response's prose (:func:`response_prose`, code
    removed; HTML or Markdown).

    Value: the sorted list of distinct phrases found (lower-cased). Reason: ``site_reference``.
    """

    name = "site_reference"
    reasons = ("site_reference",)
    defaults = {"phrases": REQUIRED}

    _ABBREVIATION = re.compile(r"\b[A-Z]{2,}\b")

    def __init__(self, seed: int = 0, **settings):
        super().__init__(seed, **settings)
        # A phrase holding an upper-case abbreviation ("the OP", "SE site") matches only as written: lower-cased,
        # "the op" is also the start of "the op amp". The others are matched in lower-cased text (2x faster than
        # (?i)).
        exact = [p for p in self.phrases if self._ABBREVIATION.search(p)]
        lowered = [p.lower() for p in self.phrases if p not in exact]
        self._pattern = word_pattern(lowered, case_sensitive=lowered)
        self._exact = word_pattern(exact, case_sensitive=exact) if exact else None

    def measure(self, candidate: Candidate) -> list[str]:
        prose = response_prose(candidate)
        self._last = (candidate.response, prose)  # explain() of a drop reuses it (same response object)
        found = self._pattern.findall(prose.lower())
        if self._exact is not None:
            found += [m.lower() for m in self._exact.findall(prose)]
        return sorted({" ".join(m.split()).replace("\u2019", "'") for m in found})

    def explain(self, candidate: Candidate, value: list[str]) -> list[dict[str, str]] | None:
        """The phrases in the prose that ``measure`` finds (same text, same pattern; shown in the original case)."""
        last = getattr(self, "_last", None)
        prose = last[1] if last is not None and last[0] is candidate.response else response_prose(candidate)
        lowered = prose.lower()
        text = prose if len(lowered) == len(prose) else lowered  # offsets shift only for a few non-ASCII letters
        return match_spans("response", text, (m.span() for m in self._pattern.finditer(lowered)))

    def decide(self, value: list[str]) -> str | None:
        return "site_reference" if value else None
