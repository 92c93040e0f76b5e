"""LIMA's own picks survive LIMA's rules (issue 11): the false drops of first_person, site_reference, quality and
language, the link cleaning of Stack Exchange answers, the two presets and LIMA's own Stack Exchange rows rebuilt
as a dump. Fixtures quote the patterns LIMA_RELEASE.md names; the rest is real text from ../shared/data."""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from pathlib import Path

import pytest

from lima_data.candidate import Candidate
from lima_data.errors import RecipeError
from lima_data.filters import build_filter
from lima_data.pipeline import Chain, RejectSink
from lima_data.recipe import load_recipe
from lima_data.sources import ReaderStats
from lima_data.sources.stackexchange import StackExchangeReader, discover
from lima_data.text import strip_code
from lima_data.text.markup import html_to_markdown

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from lima_se_keep import write_dump  # noqa: E402


@pytest.fixture(scope="module")
def lima():
    return load_recipe("lima").sources["stackexchange"].filters


def se_filter(name, settings):
    return build_filter(name, settings.get(name, {}), 0)


@pytest.fixture(scope="module")
def answers(se_dir):
    """Every answered question of the real main-site dumps, by id (HTML, as read)."""
    out = {}
    for dump in discover([se_dir]):
        if ".meta." in dump.label or "meta" in Path(dump.label).parent.name:
            continue
        for c in StackExchangeReader().read(dump, ReaderStats(dump.label)):
            if c.response:
                out[c.id] = c
    return out


def copy(c: Candidate) -> Candidate:
    return Candidate.from_dict(c.to_dict())


def md(text: str) -> Candidate:
    return Candidate("x", "stackexchange", "d", "p", text)


# -- first_person -------------------------------------------------------------------------------------------------

NOT_FIRST_PERSON = [
    "Let $I$ be the identity matrix, so that $AI = A$.",
    r"The state is $\frac{1}{2}\mathbb{I}$, the maximally mixed state; \mathbb{I} alone too.",
    "The power dissipated is I^2 R, so doubling the current quadruples it.",
    "I.e. the value is copied, not referenced.",
    "Press Shift + I to open the developer tools, or Ctrl+I for italics.",
    "Use strftime('%I:%M %p') for a 12-hour clock.",
    "Type I diabetes differs from type II. World War I ended in 1918. Phases I, II and III of the trial.",
    "## Tell me more\n\nThe manual explains the rest.",
    "**Tell me more**\n\nThe manual explains the rest.",
    'He replied "I have no idea" and left.',
    "She wrote 'I will not be back, don't wait' on the note.",
    "Customer: I want a refund.\nClerk: Do you have the receipt?",
    "I. Introduction\nII. Methods",
]


@pytest.mark.parametrize("text", NOT_FIRST_PERSON)
def test_symbols_numerals_headings_and_quoted_speech_are_not_first_person(lima, text):
    assert se_filter("first_person", lima)(md(text)) == (0, None)


def test_the_writers_own_first_person_is_still_counted(lima, answers):
    f = se_filter("first_person", lima)
    assert f(md("I'd suggest a lighter roast. At this stage I would wait."))[0] == 2
    assert f(md("Note: I think so."))[0] == 1  # "Note:" is not a speaker label
    assert f(md("My advice: I\u2019d wait."))[0] == 2
    # real: "... how industry standards have changed since (emphasis mine, hereon)"
    value, reason = f(copy(answers["stackexchange/beer.stackexchange.com/413"]))
    assert value >= 1 and reason == "first_person"


def test_lima_release_allows_an_aside(answers):
    release = load_recipe("lima-release").sources["stackexchange"].filters
    f = se_filter("first_person", release)
    assert f(md("Boil it for an hour. I'd suggest a lighter roast."))[1] is None  # one aside: kept (~9% of LIMA's)
    assert f(md("I think I should say what I know."))[1] == "first_person"


# -- site_reference ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "To your question: yes. This question comes up often.",
    "tl;dr: use a burr grinder.",
    "Use a burr grinder. Hope this helps!",
    "As someone who roasts at home, the first crack matters most.",
    "The op amp saturates at the rail.",
])
def test_phrases_the_paper_never_named_do_not_drop(lima, text):
    assert se_filter("site_reference", lima)(md(text)) == ([], None)


@pytest.mark.parametrize("text, phrase", [
    ("As alluded to by Eric Shain, the yeast matters.", "as alluded to"),
    ("Another answer covers the chemistry.", "another answer"),
    ("As mentioned in the comments, it depends.", "as mentioned"),
    ("This was asked on stackoverflow years ago.", "stackoverflow"),
])
def test_real_references_to_answers_comments_and_the_site_drop(lima, text, phrase):
    value, reason = se_filter("site_reference", lima)(md(text))
    assert phrase in value and reason == "site_reference"


# -- quality ------------------------------------------------------------------------------------------------------

PROSE = ("The estimator is unbiased because its expectation equals the parameter for every sample size. "
         "The variance shrinks with the number of observations, so the estimate settles as data accumulate.")
PROSE_2 = ("A second route avoids the matrix inverse entirely: solve the normal equations by a Cholesky "
           "factorisation, which is cheaper and numerically kinder when the columns are nearly collinear.")


@pytest.mark.parametrize("latex", [
    r"$$\frac{a}{b} = \sqrt{\frac{c}{d}}$$ and $\mathbf{x}_{\text{new}}$ with braces }}",
    r"Index the array as $x[i]$ and sum over $i$.",
    r"When $k<p$ the system is overdetermined and when $n>p$ it is not.",
])
def test_latex_is_not_leftover_markup(lima, latex):
    value, reason = se_filter("quality", lima)(md(PROSE + " " + latex + "\n\n" + PROSE_2))
    assert value["markup"] == 0 and reason is None


def test_real_markup_is_still_caught(lima):
    f = se_filter("quality", lima)
    assert f(md(PROSE + " Some text &nbsp; with <div class='x'>markup</div>."))[1] == "leftover_markup"
    assert f(md(PROSE + " A [b]bold[/b] word and {{cite web}}."))[0]["markup"] == 2


def test_structured_answers_pass_quality(lima, answers):
    """Real answers Gopher's duplicate n-gram rules dropped: a list of recipes of one shape quoted from a source
    (beer 7967), a prompt quoted twice with one change (genai 460), numbered steps with LaTeX (matheducators 380),
    an example question discussed twice (genai 181); and answers the alpha / symbol ratios dropped for their
    Markdown syntax and a table's dot leaders. An answer with a passage pasted twice is still dropped."""
    clean, quality = se_filter("clean", lima), se_filter("quality", lima)
    for qid in ("beer.stackexchange.com/7967", "genai.stackexchange.com/460", "matheducators.stackexchange.com/380",
                "matheducators.stackexchange.com/122", "genai.stackexchange.com/181",
                "beer.stackexchange.com/7374",   # a quoted nested list: "> - Veggie wraps" (Markdown is not words)
                "beer.stackexchange.com/6321",   # a table with dot leaders ("Lambics ........ 40° – 50° F")
                "beer.stackexchange.com/5031"):  # mostly a quotation; its own 60 words name "the King's Shilling" 3x
        c = copy(answers[f"stackexchange/{qid}"])
        clean(c)
        assert quality(c)[1] is None, qid
    copied = copy(answers["stackexchange/beer.stackexchange.com/4972"])  # two sentences pasted twice
    clean(copied)
    assert quality(copied)[1] == "repeated_sentences"
    assert quality(md("Buy the best coffee beans now. " * 40))[1] == "repeated_sentences"
    assert quality(md(" ".join(f"buy cheap pills number {i}" for i in range(60))))[1] == "repeated_ngrams"


def test_quality_keeps_nearly_every_real_answer_of_lima_length(lima, answers):
    clean, length, quality = se_filter("clean", lima), se_filter("length", lima), se_filter("quality", lima)
    verdicts = []
    for original in answers.values():
        c = copy(original)
        clean(c)
        if length(c)[1] is None:
            verdicts.append(quality(c)[1])
    assert len(verdicts) > 400
    assert sum(v is not None for v in verdicts) <= 2  # of 539: the pasted passage, and nothing it should keep


# -- language -----------------------------------------------------------------------------------------------------

def test_short_askreddit_prompts_are_not_dropped(shared):
    language = build_filter("language", load_recipe("lima").sources["reddit"].filters.get("language", {}), 0)
    with open(shared / "reddit" / "top_posts_csv" / "askreddit.csv", newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    dropped = []
    for row in rows:
        c = Candidate("x", "reddit", "askreddit", row["title"], "", meta={"selftext": row["body"]})
        if language(c)[1]:
            dropped.append(row["title"])
    assert not dropped
    titles = {row["title"] for row in rows}
    assert {"What\u2019s an unfun fact?", "Mike Bloomberg supporters: why?"} <= titles
    for short_foreign in ("Was ist dein Lieblingsessen?", "Qu'est-ce que vous pensez de la politique?"):
        assert language(Candidate("x", "reddit", "askreddit", short_foreign, ""))[1] == "not_english"


# -- cleaning -----------------------------------------------------------------------------------------------------

def cleaned(answers, lima, qid):
    c = copy(answers[f"stackexchange/{qid}"])
    value, _ = se_filter("clean", lima)(c)
    return c.response, value


def test_source_lines_link_lists_and_pointer_sentences_are_removed(lima, answers):
    text, value = cleaned(answers, lima, "coffee.stackexchange.com/116")
    assert "Sourced from" not in text and "theroasterspack" not in text and value["link_paragraphs"] == 1
    assert text.rstrip().endswith("5.5-8% CGA.")
    text, _ = cleaned(answers, lima, "coffee.stackexchange.com/14")  # "More Information" then two URLs
    assert "More Information" not in text and "http" not in text
    text, _ = cleaned(answers, lima, "beer.stackexchange.com/181")
    assert "Trappiste website" not in text and "Westmalle" in text
    text, _ = cleaned(answers, lima, "matheducators.stackexchange.com/621")
    assert "Another counter-intuitive example is about vector spaces:" in text and "(see here)" not in text
    # a long sentence that says more than where to look keeps the link's text
    text, _ = cleaned(answers, lima, "beer.stackexchange.com/369")
    assert "process outlined here, but one step is added" in text


def test_no_url_is_left_in_the_prose_of_real_answers(lima, answers):
    clean = se_filter("clean", lima)
    for original in answers.values():
        c = copy(original)
        clean(c)
        prose = strip_code(c.response)
        assert "http://" not in prose and "https://" not in prose, c.id
        assert not any(ch in c.response for ch in "\ue000\ue001\ue002"), c.id


def test_link_pruning_is_off_unless_asked():
    html = '<p>Sourced from <a href="http://x.com/">http://x.com/</a></p>'
    assert html_to_markdown(html)[0] == "Sourced from http://x.com/"
    assert html_to_markdown(html, prune_links=True)[0] == ""


# -- presets ------------------------------------------------------------------------------------------------------

def test_presets_share_their_pieces_and_differ_where_the_release_does():
    paper, release = load_recipe("lima"), load_recipe("lima-release")
    se, se_r = paper.sources["stackexchange"], release.sources["stackexchange"]
    assert se.filters["length"] == {"min_chars": 1200, "max_chars": 4096}
    assert se_r.filters["length"] == {"min_chars": 190, "max_chars": 6800, "band_min_chars": 1200,
                                         "band_max_chars": 4096}
    assert se_r.selection.band_shares == {"short": 0.11, "long": 0.01} and not se.selection.band_shares
    assert se.filters["first_person"]["max_count"] == 0 and se_r.filters["first_person"]["max_count"] == 2
    assert "language" in se.chain and "language" not in se_r.chain
    assert "language" not in se_r.filters  # the included settings of a filter left out are dropped
    assert se_r.filters["site_reference"] == se.filters["site_reference"]  # shared phrase list
    assert release.sources["reddit"].reader["min_response_chars"] == 92
    assert {"WP", "CW", "IP", "EU"} <= set(release.sources["reddit"].filters["prompt_tag"]["keep_tags"])
    assert paper.sources["reddit"].filters["prompt_tag"]["keep_tags"] == ["WP"]
    assert release.sources["wikihow"] == paper.sources["wikihow"]


def test_an_including_recipe_can_shorten_a_chain(tmp_path):
    recipe = tmp_path / "mine.toml"
    recipe.write_text('include = ["lima.toml"]\n[sources.stackexchange]\n'
                      'chain = ["site_group", "answer_score", "clean", "length"]\n')
    loaded = load_recipe(recipe)
    assert set(loaded.sources["stackexchange"].filters) <= {"site_group", "answer_score", "clean", "length"}
    typo = tmp_path / "typo.toml"
    typo.write_text('include = ["lima.toml"]\n[sources.stackexchange.filters.lenght]\nmin_chars = 1\n')
    with pytest.raises(RecipeError, match="lenght.*not in the chain"):
        load_recipe(typo)
    # a source taking its settings from the shortened one (filters_from) still gets those the chain no longer runs
    dialogue = tmp_path / "dialogue.toml"
    dialogue.write_text('include = ["lima-dialogue.toml"]\n[sources.stackexchange]\n'
                        'chain = ["site_group", "answer_score", "clean", "length"]\n')
    loaded = load_recipe(dialogue)
    assert "first_person" not in loaded.sources["stackexchange"].filters
    lima = load_recipe("lima").sources["stackexchange"].filters
    assert loaded.sources["stackexchange_dialogue"].filters["first_person"]["words"] == lima["first_person"]["words"]
    assert "__unrun" not in json.dumps(loaded.data)


def test_lima_own_stack_exchange_rows_survive(shared, tmp_path):
    """LIMA's Stack Exchange rows of the shared slice, written back as a Posts.xml dump
    (benchmarks/lima_se_keep.py): lima-release keeps all 5; lima keeps all but the one that opens "I'll answer this
    question from the theoretical side" (the paper's first-person rule)."""
    rows = [json.loads(line) for line in (shared / "lima" / "lima_train_slice.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["source"] == "stackexchange"]
    (dump,) = discover([write_dump(rows, tmp_path)])
    kept = {}
    for name in ("lima", "lima-release"):
        recipe = load_recipe(name)
        spec = recipe.sources["stackexchange"]
        chain = Chain("stackexchange", [build_filter(n, spec.filters.get(n, {}), 0) for n in spec.chain])
        sink = RejectSink(tmp_path / name)
        kept[name] = list(chain.run(StackExchangeReader(min_answer_score=10).read(dump, ReaderStats("x")), sink))
        sink.close()
        dropped = {(s.name, r) for s in chain.stats for r in s.dropped}
        assert dropped <= {("first_person", "first_person")}, dropped
    assert len(kept["lima-release"]) == 5 and len(kept["lima"]) == 4
    assert all(len(c.prompt) <= 1000 for c in kept["lima-release"])


def test_length_bands_cap_their_share_of_a_quota():
    """lima-release admits 190-6,800 characters but fills at most 11% of a quota with answers under 1,200 and 1%
    over 4,096 (LIMA's release); with too few answers in the band, the others fill the quota."""
    from lima_data.selection import select

    spec = load_recipe("lima-release").sources["stackexchange"]
    length = build_filter("length", spec.filters["length"], 0)
    candidates = []
    for i in range(400):
        chars = (300, 2000, 5000)[i % 3]
        c = Candidate(f"stackexchange/s.stackexchange.com/{i}", "stackexchange", "s.stackexchange.com", "p",
                      "x" * chars, score=1000 - i, meta={"group": "other"})
        assert length(c)[1] is None
        candidates.append(c)
    assert Counter(c.meta["length_band"] for c in candidates) == {"short": 134, "core": 133, "long": 133}
    selection = spec.selection.model_copy(update={"quotas": {"other": 100}})
    (picked,) = select("stackexchange", candidates, selection, 0)
    assert Counter(c.meta["length_band"] for c in picked.selected) == {"core": 88, "short": 11, "long": 1}
    selection = spec.selection.model_copy(update={"quotas": {"other": 200}})  # only 133 in the core band
    (picked,) = select("stackexchange", candidates, selection, 0)
    bands = Counter(c.meta["length_band"] for c in picked.selected)
    assert len(picked.selected) == 200 and bands["core"] == 133
    assert build_filter("length", {}, 0)(c := md("x" * 1500)) == (1500, None) and "length_band" not in c.meta


def test_entities_escaped_twice_are_decoded_in_prose_not_in_code(lima):
    """A post whose HTML escaped an entity twice (``&amp;quot;``, as LIMA's converter left ``&quot;`` in 12% of its
    answers) is cleaned to plain text, so ``quality`` does not drop it as leftover markup."""
    html = ('<p>He said &amp;quot;salt it&amp;quot; and x &amp;lt; y.</p>'
            '<pre><code>if a &amp;lt; b: print(&quot;&amp;amp;&quot;)</code></pre>')
    c = Candidate("x", "stackexchange", "d", "p", html, meta={"response_format": "html"})
    value, _ = se_filter("clean", lima)(c)
    assert value["entities"] == 3
    assert c.response.startswith('He said "salt it" and x < y.') and 'if a &lt; b: print("&amp;")' in c.response
    assert se_filter("quality", lima)(c)[0]["markup"] == 0


def test_a_title_pointing_at_its_body_is_prompted_with_the_body(lima, answers):
    """matheducators 298's title points at its body ("... the following ..."): the question is kept and its
    prompt is the title then the body, never the title alone; without a usable body it is dropped."""
    c = copy(answers["stackexchange/matheducators.stackexchange.com/298"])
    assert se_filter("self_contained", lima)(c) == ("the following", None)
    value, reason = se_filter("prompt_choice", lima)(c)
    assert reason is None and value in ("title_body", "body") and c.prompt != c.meta["title"]
    assert len(c.prompt) <= 1000
    if value == "title_body":
        assert c.prompt.startswith(c.meta["title"] + "\n")
    bare = Candidate("stackexchange/s/1", "stackexchange", "s", "What is this?", "r",
                     meta={"title": "What is this?", "question_body": "<p><img src='x.png'></p>"})
    assert se_filter("self_contained", lima)(bare) == ("this", None)
    assert se_filter("prompt_choice", lima)(bare) == ("none", "no_standalone_prompt")


def test_title_then_body_does_not_repeat_a_title_the_body_opens_with(lima):
    f = build_filter("prompt_choice", {**lima["prompt_choice"], "forms": {"title_body": 1.0}}, 0)
    body = "<p>Can brain cells move? By movement I mean long distance migration (preferably within the brain).</p>"
    c = Candidate("stackexchange/s/1", "stackexchange", "s", "Can brain cells move?", "r",
                  meta={"title": "Can brain cells move?", "question_body": body})
    assert f(c) == ("body", None) and c.prompt.count("Can brain cells move?") == 1
    c = Candidate("stackexchange/s/2", "stackexchange", "s", "Brain cell migration", "r",
                  meta={"title": "Brain cell migration", "question_body": body})
    assert f(c) == ("title_body", None) and c.prompt.startswith("Brain cell migration\nCan brain cells move?")


def test_nouns_and_abbreviations_that_spell_first_person_words(lima):
    f = se_filter("first_person", lima)
    assert f(md("It was a gold mine for historians, and the mine closed in 1950. ME/CFS is common in ME.")) == (0, None)
    assert f(md("That choice is mine, and a friend of mine agrees."))[0] == 2


def test_a_list_of_named_links_is_content_a_paragraph_of_links_is_not():
    html = ('<p>US beers in that style:</p><ul><li><a href="http://a.com">Sierra Nevada Kellerweis</a></li>'
            '<li><a href="http://b.com">http://b.com</a></li></ul><p><a href="http://c.com">Further reading</a></p>')
    text, changes = html_to_markdown(html, prune_links=True)
    assert text == "US beers in that style:\n\n- Sierra Nevada Kellerweis"
    assert changes["link_paragraphs"] == 1


def test_link_pruning_leaves_no_marker_after_a_fence_line_inside_code():
    """A ``~~~`` line inside a code block neither closes the block nor leaves the private-use link marks in
    the text (review finding: prose after it was treated as code and kept U+E000..U+E002)."""
    html = ("<pre><code>~~~\nx = 1\n</code></pre><p>The long sentence of prose goes on and on here, and it explains "
            "the whole idea in many plain words, as the author wrote it at <a href='http://a.com/x'>http://a.com/x</a> "
            "for everyone who asks.</p><p>Read it <a href='u'>here</a>.</p>")
    markdown, counts = html_to_markdown(html, prune_links=True)
    assert not any(ch in markdown for ch in "\ue000\ue001\ue002")
    assert "~~~\nx = 1" in markdown and "http" not in markdown and counts["urls"] + counts["links"] >= 1
    assert "explains the whole idea" in markdown and "Read it" not in markdown  # prose pruned as prose
