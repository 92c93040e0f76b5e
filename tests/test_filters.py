"""Each LIMA Stack Exchange rule, asserted by its reason string on real rows."""

from __future__ import annotations

from collections import Counter

import pytest

from lima_data.candidate import Candidate
from lima_data.errors import RecipeError
from lima_data.filters import build_filter
from lima_data.filters.base import BUILTIN_MODULES, builtin_filters
from lima_data.recipe import load_recipe
from lima_data.sources import ReaderStats
from lima_data.sources.stackexchange import StackExchangeReader, discover
from lima_data.text.markup import html_to_markdown


@pytest.fixture(scope="module")
def settings():
    return load_recipe("lima").sources["stackexchange"].filters


def make(name, settings, seed=0):
    return build_filter(name, settings.get(name, {}), seed)


@pytest.fixture(scope="module")
def real(se_dir):
    """Every question of the real dumps, with its top answer read, by id."""
    out = {}
    for dump in discover([se_dir]):
        for c in StackExchangeReader().read(dump, ReaderStats(dump.label)):
            out[c.id] = c
    return out


def get(real, site, question_id) -> Candidate:
    c = real[f"stackexchange/{site}.stackexchange.com/{question_id}"]
    return Candidate.from_dict(c.to_dict())  # a copy: transforming filters change candidates in place


def cleaned(real, settings, site, question_id) -> Candidate:
    c = get(real, site, question_id)
    make("clean", settings)(c)
    return c


def test_every_filter_declares_its_reasons():
    registry = builtin_filters()
    assert len(registry) >= 20
    for name, cls in registry.items():
        assert cls.name == name
        assert all(isinstance(r, str) and r for r in cls.reasons)


def test_builtin_modules_name_every_filter_where_it_is_defined():
    """The lazy registry's map (a build imports only its chain's filter modules) is what importing every module
    registers: a filter added or moved without updating it fails here."""
    assert {name: cls.__module__ for name, cls in builtin_filters().items()} == {
        name: f"lima_data.filters.{module}" for name, module in BUILTIN_MODULES.items()}


def test_answer_score(real, settings):
    f = make("answer_score", settings)
    assert f(get(real, "beer", 7)) == (4, "answer_score_too_low")
    assert f(get(real, "beer", 29)) == (None, "no_answer")
    value, reason = f(get(real, "beer", 50))
    assert value >= 10 and reason is None


def test_self_contained(real, settings):
    f = make("self_contained", settings)
    # a plain topic title is self-contained (LIMA kept "Understanding the Rails Authenticity Token"): kept by lima
    assert f(get(real, "matheducators", 1)) == ("not_question", None)  # "Encouraging class participation"
    assert f(Candidate("x", "s", "d", "Understanding the Rails Authenticity Token", "r")) == ("not_question", None)
    # a title pointing at its body keeps the question; prompt_choice puts the body in the prompt
    c = get(real, "matheducators", 298)
    assert f(c) == ("the following", None) and c.meta["title_refers_to_body"] == "the following"
    assert f(real["stackexchange/history.meta.stackexchange.com/70"]) == ("this", None)
    assert f(get(real, "coffee", 1)) == ("ok", None)  # "How should I store whole bean coffee?"
    strict = build_filter("self_contained", {**settings["self_contained"], "require_question": True,
                                             "prompt_with_body": False}, 0)
    assert strict(get(real, "matheducators", 1)) == ("not_question", "title_not_question")
    c = get(real, "matheducators", 298)
    assert strict(c) == ("the following", "title_refers_to_body") and "title_refers_to_body" not in c.meta


def test_clean_keeps_code_blocks_and_lists_drops_links_and_images(real, settings):
    html_answers = [c for c in real.values() if "<pre" in c.response and "<a " in c.response and "<li>" in c.response]
    assert html_answers, "the real dumps have answers with code, links and lists"
    f = make("clean", settings)
    for original in html_answers[:20]:
        c = Candidate.from_dict(original.to_dict())
        value, reason = f(c)
        assert reason is None
        assert value["code_blocks"] >= 1 and value["links"] >= 1 and value["lists"] >= 1
        assert "```" in c.response
        assert "\n- " in c.response or "\n1. " in c.response or c.response.startswith(("- ", "1. "))
        assert "<a " not in c.response and "href=" not in c.response and "<p>" not in c.response
        assert "&amp;" not in c.response and "&lt;" not in c.response.replace("`&lt;`", "")
    with_image = next(c for c in real.values() if "<img" in c.response)
    c = Candidate.from_dict(with_image.to_dict())
    value, _ = f(c)
    assert value["images"] >= 1 and "<img" not in c.response and "![" not in c.response


def test_clean_drops_an_empty_response(real, settings):
    c = get(real, "beer", 29)  # no answer: empty response
    assert make("clean", settings)(c) == (
        {"links": 0, "images": 0, "code_blocks": 0, "lists": 0, "link_paragraphs": 0, "urls": 0,
         "pointer_sentences": 0, "entities": 0, "chars": 0}, "empty_response")


def test_length(real, settings):
    f = make("length", settings)
    assert f(cleaned(real, settings, "beer", 1)) == (304, "too_short")
    assert f(cleaned(real, settings, "beer", 835)) == (5516, "too_long")
    value, reason = f(cleaned(real, settings, "beer", 181))
    assert 1200 <= value <= 4096 and reason is None


def test_first_person(real, settings):
    f = make("first_person", settings)
    value, reason = f(cleaned(real, settings, "beer", 590))  # "In my opinion it's a novelty, but I guess ..."
    assert value >= 2 and reason == "first_person"
    assert f(cleaned(real, settings, "beer", 181)) == (0, None)


def test_first_person_ignores_code_quotes_and_variables(settings):
    f = make("first_person", settings)
    text = ('Use `for i in range(3): print("I")`.\n\n```\nmy_var = 1  # my code\n```\n\n'
            '> I think so.\n\nThe manual says "I do not know". The I/O layer uses an I-beam; i is an index.')
    assert f(Candidate("x", "s", "d", "p", text)) == (0, None)
    assert f(Candidate("x", "s", "d", "p", "My advice: I’d wait."))[0] == 2


def test_site_reference(real, settings):
    f = make("site_reference", settings)
    assert f(cleaned(real, settings, "beer", 607)) == (["other answers"], "site_reference")
    assert f(cleaned(real, settings, "beer", 7043)) == (["as mentioned"], "site_reference")
    assert f(cleaned(real, settings, "matheducators", 875)) == (["the op"], "site_reference")
    assert f(cleaned(real, settings, "beer", 181)) == ([], None)


def test_site_group(real, settings):
    f = make("site_group", settings)
    assert f(get(real, "beer", 7)) == ("other", None)
    assert f(get(real, "genai", 1)) == ("stem", None)
    assert f(real["stackexchange/bicycles.meta.stackexchange.com/1"]) == ("meta", "meta_site")
    unknown = Candidate("x", "stackexchange", "unheardof.stackexchange.com", "p", "r")
    assert f(unknown) == ("other", None) and unknown.meta["group_assumed"]
    strict = build_filter("site_group", {**settings["site_group"], "unlisted": "drop"}, 0)
    assert strict(Candidate("x", "stackexchange", "unheardof.stackexchange.com", "p", "r")) == ("unlisted", "site_unlisted")
    codegolf = Candidate("x", "stackexchange", "codegolf.stackexchange.com", "p", "r")
    assert f(codegolf) == ("excluded", "site_excluded")


def test_prompt_choice_is_a_seeded_coin_per_question(real, settings):
    kept = [cleaned(real, settings, "beer", qid) for qid in (181, 40, 50, 1, 7043, 590, 607, 835)]
    first = [make("prompt_choice", settings, seed=0).measure(Candidate.from_dict(c.to_dict())) for c in kept]
    again = [make("prompt_choice", settings, seed=0).measure(Candidate.from_dict(c.to_dict())) for c in kept[::-1]]
    assert first == again[::-1]  # order does not matter
    other_seeds = {tuple(make("prompt_choice", settings, seed=s).measure(Candidate.from_dict(c.to_dict()))
                         for c in kept) for s in range(1, 6)}
    assert len(other_seeds) > 1
    choices = set()
    for seed in range(6):
        for c in kept:
            c2 = Candidate.from_dict(c.to_dict())
            choice, reason = make("prompt_choice", settings, seed=seed)(c2)
            choices.add(choice)
            assert reason is None
            body = html_to_markdown(c.meta["question_body"], prune_links=True)[0]
            if choice == "body":
                assert c2.prompt == body == c2.meta["question_body"]
                assert c2.meta["prompt_field"] == "body" and "<p>" not in c2.prompt
            else:
                assert c2.prompt == c.meta["title"] and c2.meta["prompt_field"] == "title"
    assert {"title", "body"} <= choices


def test_prompt_forms_follow_the_recipe_shares_and_the_cap(real, settings):
    """lima-release draws title / body / title then body about 30 / 60 / 10 (LIMA's release); a prompt is never
    longer than max_prompt_chars; a body too long for the cap falls back to the title."""
    release = load_recipe("lima-release").sources["stackexchange"].filters["prompt_choice"]
    f = build_filter("prompt_choice", release, 0)
    drawn = Counter(f.draw(f"stackexchange/x/{i}") for i in range(3000))
    assert abs(drawn["title"] / 3000 - 0.30) < 0.03 and abs(drawn["body"] / 3000 - 0.60) < 0.03
    assert abs(drawn["title_body"] / 3000 - 0.10) < 0.02
    questions = [c for c in real.values() if c.score and c.meta.get("question_body")]
    values = Counter()
    for original in questions[:400]:
        c = Candidate.from_dict(original.to_dict())
        value, reason = f(c)
        values[value] += 1
        assert reason is None and len(c.prompt) <= 1000
        if value == "title_body":
            assert c.prompt.startswith(c.meta["title"] + "\n") and c.meta["prompt_field"] == "title_body"
    assert values["body"] and values["title_body"] and values["title_fallback"]
    long_body = next(c for c in questions if len(html_to_markdown(c.meta["question_body"])[0]) > 1100
                     and "<img" not in c.meta["question_body"])
    only_body = build_filter("prompt_choice", {**release, "forms": {"body": 1.0}}, 0)
    c = Candidate.from_dict(long_body.to_dict())
    assert only_body(c) == ("title_fallback", None) and c.prompt == c.meta["title"]
    with pytest.raises(RecipeError):
        build_filter("prompt_choice", {**release, "forms": {"title": 0.5, "body": 0.2}}, 0)


def test_prompt_choice_falls_back_to_the_title(real, settings):
    always_body = build_filter("prompt_choice", {**settings["prompt_choice"], "forms": {"body": 1.0}}, 0)
    with_image = next(c for c in real.values() if "<img" in c.meta["question_body"] and c.score)
    c = Candidate.from_dict(with_image.to_dict())
    assert always_body(c) == ("title_fallback", None) and c.prompt == c.meta["title"]
    c = cleaned(real, settings, "coffee", 1)
    c.meta["question_body"] = "As the title says, " + c.meta["question_body"]
    assert always_body(c) == ("title_fallback", None)


def test_unknown_settings_are_rejected():
    from lima_data.errors import RecipeError

    with pytest.raises(RecipeError, match=r"\[filters.length\]: unknown setting"):
        build_filter("length", {"min_char": 5}, 0)
    with pytest.raises(RecipeError, match="missing required setting"):
        build_filter("first_person", {}, 0)


def test_cleaning_never_lengthens_a_real_answer(real, settings):
    """The premise of raw_length: cleaned Markdown is never longer than the raw HTML, on every real answer."""
    from lima_data.text.markup import html_to_markdown

    answers = [c.response for c in real.values() if c.response]
    assert len(answers) > 1500
    assert all(len(html_to_markdown(html)[0]) <= len(html) for html in answers)
    f = make("raw_length", settings)
    assert f(get(real, "beer", 1))[1] == "too_short"  # 304 characters once cleaned
    assert f(get(real, "beer", 181))[1] is None


def test_style_rules_on_html_agree_with_markdown(real, settings):
    """first_person and site_reference run before cleaning, on the HTML's prose; on every real answer the
    first_person count is the one measured on the Markdown (links kept as text), at least the one measured after
    ``clean`` removed pointer sentences, and site_reference finds at least what the Markdown drops (the HTML also
    sees "edit:" split by emphasis, ``**Edit**:``)."""
    first_person, site_reference = make("first_person", settings), make("site_reference", settings)
    answers = [c for c in real.values() if c.response]
    assert len(answers) > 1500
    differ = []
    for c in answers:
        html = Candidate.from_dict(c.to_dict())
        assert html.meta["response_format"] == "html"
        markdown = Candidate.from_dict(c.to_dict())
        assert make("clean", settings)(markdown)[1] is None or not markdown.response
        assert "response_format" not in markdown.meta
        assert first_person(html)[0] >= first_person(markdown)[0]
        markdown.response = html_to_markdown(c.response)[0]
        if first_person(html)[0] != first_person(markdown)[0]:
            differ.append(c.id)
        if site_reference(markdown)[1]:
            assert site_reference(html)[1] == "site_reference", c.id
    assert not differ
    assert first_person(get(real, "beer", 181))[0] == first_person(cleaned(real, settings, "beer", 181))[0]


def test_word_pattern_matches_a_flat_alternation_on_real_posts(real, settings):
    """word_pattern groups its alternatives by first character for speed; on every real post (prose, titles)
    it finds exactly what one flat alternation of the same words finds."""
    import re

    from lima_data.text import html_prose, word_pattern

    def flat(words, sensitive=()):
        parts = []
        for word in sorted(set(words), key=len, reverse=True):
            body = re.sub(r"(?:\\ )+", r"\\s+", "".join("['\u2019]" if ch in "'\u2019" else re.escape(ch) for ch in word))
            parts.append(body if word in sensitive else f"(?i:{body})")
        return re.compile(rf"(?<![\w'\u2019/-])(?:{'|'.join(parts)})(?![\w'\u2019/-])")

    texts = [html_prose(c.response) for c in real.values() if c.response]
    texts += [c.meta["title"] for c in real.values()] + ["ßig I'm i I/O I-beam I\u2019ll 'quoted' Stack  Exchange"]
    first_person = settings["first_person"]["words"]
    pronoun = [w for w in first_person if w == "I" or w.startswith(("I'", "I\u2019"))]
    for words, sensitive in ((first_person, pronoun), (settings["site_reference"]["phrases"], ()),
                             (settings["self_contained"]["body_cues"], ()), (["ßig", "'quoted'", "x"], ())):
        ours, reference = word_pattern(words, case_sensitive=sensitive), flat(words, sensitive)
        assert all(ours.findall(t) == reference.findall(t) for t in texts)
    assert word_pattern(first_person, case_sensitive=pronoun).findall("I'm i I/O I-beam me") == ["I'm", "me"]


def test_code_blocks_are_removed_as_the_lazy_patterns_define_in_linear_time(real):
    """strip_code, html_prose and code_spans (pii's and the link pruning's code pieces) find code as the lazy
    ``open.*?close`` patterns did (on every real post and on random markup), but an opener never closed no longer
    costs a scan per opener: 100 KB of unclosed openers took 4-11 s with the lazy patterns."""
    import random
    import re

    from lima_data.filters.style import SelfContained
    from lima_data.text import _strip_html_code, code_spans, html_prose, strip_code

    fenced = re.compile(r"^(```|~~~)[^\n]*\n.*?^\1[ \t]*$", re.S | re.M)
    inline = re.compile(r"`[^`\n]+`")
    html_code = re.compile(r"<(pre|code)\b[^>]*>.*?</\1\s*>", re.S | re.I)
    for candidate in real.values():
        for text in (candidate.response, candidate.meta.get("question_body") or ""):
            assert _strip_html_code(text) == html_code.sub(" ", text)
    rnd = random.Random(0)
    md = ["```", "~~~", "````", "```py", "\n", " ", "\t", "x", "`", "``` ", "~~~\t"]
    markup = ["<pre>", "<PRE>", "</pre>", "</PRE >", "<code>", "</code>", "<Code a='b'>", "</CODE>", "<prefix>", ">",
              "<", "x", "\n", "</pre", "<code", "</code\n>"]
    for _ in range(3000):
        text = "".join(rnd.choice(md) for _ in range(rnd.randint(0, 30)))
        assert strip_code(text) == inline.sub(" ", fenced.sub("\n", text))
        text = "".join(rnd.choice(markup) for _ in range(rnd.randint(0, 30)))
        assert _strip_html_code(text) == html_code.sub(" ", text)
    code = re.compile(r"(^(```|~~~)[^\n]*\n.*?^\2[ \t]*$|`[^`\n]+`)", re.S | re.M)  # pii's and markup's code
    md_spans = md + ["`a`", "``", "\n```\n"]
    for _ in range(3000):
        text = "".join(rnd.choice(md_spans) for _ in range(rnd.randint(0, 30)))
        assert list(code_spans(text)) == [m.span() for m in code.finditer(text)]
    for candidate in real.values():
        markdown = html_to_markdown(candidate.response)[0]
        assert list(code_spans(markdown)) == [m.span() for m in code.finditer(markdown)]
    unclosed = "```py\nx = 1\n" * 8000
    assert strip_code(unclosed) == unclosed  # nothing closes: left as it is
    assert list(code_spans(unclosed + "`a`")) == [(len(unclosed), len(unclosed) + 3)]
    assert _strip_html_code("<pre>x " * 15000) == "<pre>x " * 15000
    assert html_prose("a<b " * 30000) == "a<b " * 30000 and html_prose("<p " * 30000 + ">") == "\n"  # one tag
    assert SelfContained._BARE_DEMONSTRATIVE.search("this" + " " * 50000 + "x") is None
    assert SelfContained._BARE_DEMONSTRATIVE.search("What does this do? Explain this ?! ").group(1) == "this"


def test_fast_regexes_find_what_their_plain_forms_find_on_real_posts(real):
    """The text helpers' regexes are written to open with a literal or a class (a look-behind moved after it,
    a line start read as the line break before it) so the regex engine skips ahead; on every real post (its HTML,
    its prose) each finds exactly what the plain form finds (the plain forms are written out here), and quality's
    token and letter counts equal a count over ``str.split()`` tokens."""
    import re

    from lima_data.filters import pii, quality
    from lima_data.text import _INLINE, _NOT_SPEAKERS, _QUOTED, html_prose, strip_code, strip_math, strip_quotes

    fenced = re.compile(r"^(```|~~~)[^\n]*\n.*?^\1[ \t]*$", re.S | re.M)
    single = re.compile(r"(?<![^\s(\[])['\u2018](?=\S)[^\n]{1,300}?(?<=\S)['\u2019](?![\w'\u2019])")
    dialogue = re.compile(r"^[ \t]*(?:[-*][ \t]+)?[*_]{0,2}([A-Z][\w.'\u2019-]*(?:[ \t]+[A-Z][\w.'\u2019-]*){0,2})"
                          r"[*_]{0,2}[ \t]*[*_]{0,2}:[*_]{0,2}[ \t]+\S.*$", re.M)
    math = re.compile(r"\$\$.{1,4000}?\$\$|(?<![\\$\w])\$(?=[^\s$\d])[^$\n]{1,400}?(?<=[^\s\\])\$(?![\w$])"
                      r"|\\\(.{1,400}?\\\)|\\\[.{1,4000}?\\\]|\\begin\{(\w+\*?)\}.{0,8000}?\\end\{\1\}", re.S)
    sentence, ellipsis = re.compile(r"(?<=[.!?])\s+|\n+"), re.compile(r"(?<!\.)\.{3,4}(?!\.)|\u2026")
    texts = [t for c in real.values() if c.response for t in (c.response, html_prose(c.response))]
    texts += ["'a' b:\nAlice: 'hi' \u2018x\u2019 $x$ a$y$ $5 and $10 ... .... ..... \u2026 x\u00b2 \u00bd 12 ab 3a"]
    assert any(single.search(t) for t in texts) and any(dialogue.search(t) for t in texts)
    for text in texts:
        assert strip_code(text) == _INLINE.sub(" ", fenced.sub("\n", text))
        assert strip_math(text) == (math.sub(" ", text) if "$" in text or "\\" in text else text)
        reference = re.sub(r"^[ \t]*>.*$", "", text, flags=re.M)
        reference = dialogue.sub(lambda m: m.group(0) if m.group(1).lower().rstrip(".") in _NOT_SPEAKERS else "",
                                 reference)
        assert strip_quotes(text) == single.sub(" ", _QUOTED.sub(" ", reference))
        assert quality._SENTENCE.split(text) == sentence.split(text)
        assert quality._ELLIPSIS.findall(text) == ellipsis.findall(text)
        assert quality._NO_ASCII_LETTER_TOKEN.findall(" " + text) == [t for t in text.split()
                                                                       if not re.search("[A-Za-z]", t)]
        prose = strip_math(strip_code(text))  # what quality_measures counts tokens in
        tokens = [t for t in prose.split() if any(ch.isalnum() for ch in t)]
        letters = sum(1 for t in tokens if any(map(str.isalpha, t)))
        assert quality.quality_measures(text)["alpha_ratio"] == (round(letters / len(tokens), 4) if tokens else 1.0)
        for kind in ("ip", "phone"):
            if pii.PII_PATTERNS[kind].search(text):
                assert pii._PII_HINTS[kind].search(text)


def test_markdown_conversion_helpers_match_bs4_on_real_posts(real):
    """html_to_markdown's soup class finds a tag's ``<pre>`` parent as bs4's ``find_parent`` does, its tree walks
    find what ``find_all`` / ``find`` find, and trailing spaces go as ``[ \\t]+$`` removes them, on every tag of
    every real post."""
    import re

    from bs4 import BeautifulSoup, Tag

    from lima_data.text.markup import _parent_tag, _strip_trailing, html_to_markdown
    from lima_data.text.markup_reference import _first_tag, _Tag, _tags

    for c in real.values():
        if not c.response:
            continue
        fast, plain = BeautifulSoup(c.response, "lxml", element_classes={Tag: _Tag}), BeautifulSoup(c.response, "lxml")
        assert str(fast) == str(plain)
        for ours, theirs in zip(fast.find_all(True), plain.find_all(True)):
            for name in ("pre", "p", "li"):
                mine = ours.find_parent(name)
                assert (mine.name, mine.sourcepos) == (theirs.find_parent(name).name, theirs.find_parent(name).sourcepos) \
                    if mine else theirs.find_parent(name) is None
            found = _parent_tag(ours, ("p", "li", "dd", "dt"))
            assert (found and found.sourcepos) == ((theirs.find_parent(["p", "li", "dd", "dt"]) or None)
                                                   and theirs.find_parent(["p", "li", "dd", "dt"]).sourcepos)
            assert [t.sourcepos for t in _tags(ours, ("a", "ul"))] == [t.sourcepos for t in theirs.find_all(["a", "ul"])]
            first = _first_tag(ours, ("pre", "img"))
            assert (first and first.sourcepos) == (theirs.find(["pre", "img"]) and theirs.find(["pre", "img"]).sourcepos)
        markdown = html_to_markdown(c.response)[0] + " \t\n x  \n\t"
        assert _strip_trailing(markdown) == re.sub(r"[ \t]+$", "", markdown, flags=re.M)
