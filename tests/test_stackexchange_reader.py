"""The Stack Exchange reader on the real dumps in ../shared/data and the bundled sample."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from lima_data.errors import InputError
from lima_data.sources import ReaderStats
from lima_data.sources.stackexchange import (
    SiteDump,
    StackExchangeReader,
    discover,
    licence_for,
    parse_tags,
    site_domain,
)

from .conftest import BEER_7Z


def read_all(dump: SiteDump, **kwargs):
    stats = ReaderStats(dump.label)
    candidates = list(StackExchangeReader(**kwargs).read(dump, stats))
    return candidates, stats


def one_site(path: Path) -> SiteDump:
    (dump,) = discover([path])
    return dump


def test_beer_archive_yields_every_question_and_answer(se_dir):
    for archive in (BEER_7Z, se_dir / "beer.stackexchange.com_2020" / "beer.stackexchange.com.7z"):
        dump = one_site(archive)
        assert dump.domain == "beer.stackexchange.com"
        candidates, stats = read_all(dump)
        assert stats.counts["questions"] == 1029
        assert stats.counts["answers"] == 2277
        assert stats.malformed == 0 and not stats.truncated
        assert len(candidates) == 1029
        assert len({c.id for c in candidates}) == 1029


def test_top_answer_is_the_highest_scored_answer(se_dir):
    path = se_dir / "coffee" / "Posts.xml"
    from lxml import etree

    best: dict[int, tuple[int, int]] = {}
    for _, row in etree.iterparse(str(path), tag="row", resolve_entities=False, no_network=True):
        if row.get("PostTypeId") == "2":
            parent, score, answer_id = int(row.get("ParentId")), int(row.get("Score")), int(row.get("Id"))
            if parent not in best or (score, -answer_id) > (best[parent][0], -best[parent][1]):
                best[parent] = (score, answer_id)
    candidates, _ = read_all(one_site(path))
    assert len(candidates) == 225
    for c in candidates:
        qid = c.meta["question_id"]
        if qid in best:
            assert (c.score, c.meta["answer_id"]) == best[qid]
            assert c.response  # the body was read (no min_answer_score given)
        else:
            assert c.score is None and c.response == ""


def test_min_answer_score_skips_low_answer_bodies(se_dir):
    candidates, _ = read_all(one_site(se_dir / "coffee"), min_answer_score=10)
    low = [c for c in candidates if c.score is not None and c.score < 10]
    high = [c for c in candidates if c.score is not None and c.score >= 10]
    assert low and high
    assert all(c.response == "" for c in low)
    assert all(c.response.startswith("<p>") or c.response.startswith("<") for c in high)


def test_candidate_fields_and_attribution(se_dir):
    candidates, _ = read_all(one_site(se_dir / "genai"))
    c = next(c for c in candidates if c.meta["question_id"] == 1)
    assert c.id == "stackexchange/genai.stackexchange.com/1"
    assert c.source == "stackexchange" and c.domain == "genai.stackexchange.com"
    assert c.prompt == "What do (parentheses) and [square brackets] do in image prompts?"
    assert c.meta["tags"] == ["image-generation", "prompt-design"]
    assert c.meta["url"] == "https://genai.stackexchange.com/questions/1"
    assert c.meta["answer_url"] == f"https://genai.stackexchange.com/a/{c.meta['answer_id']}"
    assert c.meta["licence"] == "CC BY-SA 4.0"  # the 2023 dump's ContentLicense attribute
    assert c.meta["author_url"].startswith("https://genai.stackexchange.com/users/")


def test_discover_a_directory_of_many_sites(se_dir):
    sites = [d.domain for d in discover([se_dir])]
    assert sites == [
        "3dprinting.meta.stackexchange.com",
        "beer.stackexchange.com",
        "bicycles.meta.stackexchange.com",
        "coffee.stackexchange.com",
        "genai.stackexchange.com",
        "history.meta.stackexchange.com",
        "matheducators.stackexchange.com",
    ]


def test_site_given_twice_is_read_once(se_dir):
    warnings = []
    dumps = discover([se_dir / "coffee", se_dir / "coffee" / "Posts.xml"], warnings.append)
    assert len(dumps) == 1 and "given twice" in warnings[0]


@pytest.mark.parametrize(
    "name, domain",
    [
        ("beer.stackexchange.com.7z", "beer.stackexchange.com"),
        ("stackoverflow.com-Posts.7z", "stackoverflow.com"),
        ("coffee", "coffee.stackexchange.com"),
        ("bicycles_meta", "bicycles.meta.stackexchange.com"),
        ("meta.stackoverflow.com.7z", "meta.stackoverflow.com"),
        ("mathoverflow", "mathoverflow.net"),
        ("beer.stackexchange.com_2020", "beer.stackexchange.com"),
    ],
)
def test_site_domain(name, domain):
    assert site_domain(name) == domain


def test_tags_in_both_formats_and_licence_by_date():
    assert parse_tags("<storage><whole-bean>") == ["storage", "whole-bean"]
    assert parse_tags("|storage|whole-bean|") == ["storage", "whole-bean"]
    assert parse_tags(None) == []
    assert licence_for("2010-05-01T00:00:00", None) == "CC BY-SA 2.5"
    assert licence_for("2015-01-27T20:09:32.720", None) == "CC BY-SA 3.0"
    assert licence_for("2019-01-01T00:00:00", None) == "CC BY-SA 4.0"
    assert licence_for("2010-05-01T00:00:00", "CC BY-SA 4.0") == "CC BY-SA 4.0"


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8-sig").splitlines(keepends=True)


def test_2024_format_rows(tmp_path, se_dir):
    """2024+ dumps: |a|b| tags and ContentLicense; real rows of coffee rewritten in that format."""
    site = tmp_path / "coffee.stackexchange.com"
    site.mkdir()
    lines = _lines(se_dir / "coffee" / "Posts.xml")
    out = []
    for line in lines:
        if "<row" in line and "Tags=" in line:
            import re

            line = re.sub(r'Tags="([^"]*)"', lambda m: 'Tags="|' + "|".join(re.findall(r"&lt;(.+?)&gt;", m.group(1))) + '|"', line)
        if "<row" in line:
            line = line.replace(" />", ' ContentLicense="CC BY-SA 4.0" />')
        out.append(line)
    (site / "Posts.xml").write_text("".join(out), encoding="utf-8")
    candidates, stats = read_all(one_site(site))
    assert stats.counts["questions"] == 225 and stats.malformed == 0
    first = next(c for c in candidates if c.meta["question_id"] == 1)
    assert first.meta["tags"] == ["storage", "whole-bean"]
    assert first.meta["question_licence"] == "CC BY-SA 4.0"


def test_doctype_is_never_fetched_and_entities_never_expanded(tmp_path, se_dir):
    # history_meta has a real <!DOCTYPE posts SYSTEM 'posts.dtd'> line.
    candidates, stats = read_all(one_site(se_dir / "history_meta"))
    assert stats.counts["questions"] == 556 and stats.malformed == 0
    # An internal entity that points at a local file must not be expanded: the row is counted as malformed.
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    site = tmp_path / "coffee"
    site.mkdir()
    lines = _lines(se_dir / "coffee" / "Posts.xml")
    lines.insert(1, f'<!DOCTYPE posts [<!ENTITY xxe SYSTEM "file://{secret}"><!ENTITY lol "lol">]>\n')
    lines[3] = lines[3].replace("How should I store whole bean coffee?", "&xxe; &lol;")
    (site / "Posts.xml").write_text("".join(lines), encoding="utf-8")
    candidates, stats = read_all(one_site(site))
    assert stats.malformed == 1
    assert stats.errors[0]["line"] == 4 and "xxe" in stats.errors[0]["error"]
    assert all("TOP-SECRET" not in c.prompt and "lol lol" not in c.prompt for c in candidates)
    assert len(candidates) == 224


def test_missing_optional_attributes(tmp_path):
    site = tmp_path / "coffee"
    site.mkdir()
    (site / "Posts.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<posts>\n'
        '  <row Id="1" PostTypeId="1" Title="How should I store coffee?" Body="&lt;p&gt;Q&lt;/p&gt;" />\n'
        '  <row Id="2" PostTypeId="2" ParentId="1" Body="&lt;p&gt;A&lt;/p&gt;" />\n</posts>\n',
        encoding="utf-8",
    )
    (c,), stats = read_all(one_site(site))
    assert stats.malformed == 0
    assert c.score == 0 and c.meta["tags"] == [] and c.meta["author"] is None
    assert c.response == "<p>A</p>" and c.meta["licence"] == "CC BY-SA"


def test_answer_before_its_question_is_still_joined(tmp_path, se_dir):
    lines = _lines(se_dir / "coffee" / "Posts.xml")
    rows = [line for line in lines if "<row" in line]
    head = [line for line in lines[:2] if "<row" not in line]
    site = tmp_path / "coffee"
    site.mkdir()
    (site / "Posts.xml").write_text("".join(head + rows[::-1] + ["</posts>\n"]), encoding="utf-8")
    reversed_, _ = read_all(one_site(site))
    original, _ = read_all(one_site(se_dir / "coffee"))
    as_dict = lambda cs: {c.id: (c.score, c.response) for c in cs}  # noqa: E731
    assert as_dict(reversed_) == as_dict(original)


# -- bad input ------------------------------------------------------------------------------------------------


def test_posts_xml_cut_mid_row_is_counted_not_fatal(tmp_path, se_dir):
    data = (se_dir / "coffee" / "Posts.xml").read_bytes()
    cut = data[: len(data) // 2]
    site = tmp_path / "coffee"
    site.mkdir()
    (site / "Posts.xml").write_bytes(cut)
    candidates, stats = read_all(one_site(site))
    last_line = cut.count(b"\n") + 1
    assert stats.truncated
    assert stats.malformed == 1
    assert stats.errors[0] == {"line": last_line, "error": "row is cut off (no closing '/>')"}
    assert 0 < len(candidates) < 225
    with pytest.raises(InputError, match=rf"Posts.xml:{last_line}: row is cut off"):
        read_all(one_site(site), strict=True)


def test_row_without_body_is_counted_with_its_line(tmp_path, se_dir):
    lines = _lines(se_dir / "coffee" / "Posts.xml")
    import re

    lines[2] = re.sub(r' Body="[^"]*"', "", lines[2])
    site = tmp_path / "coffee"
    site.mkdir()
    (site / "Posts.xml").write_text("".join(lines), encoding="utf-8")
    candidates, stats = read_all(one_site(site))
    assert stats.malformed == 1
    assert stats.errors == [{"line": 3, "error": "row without required attribute Body"}]
    assert len(candidates) == 224


def test_file_that_is_not_xml(tmp_path, shared):
    site = tmp_path / "coffee"
    site.mkdir()
    shutil.copy(shared / "wikihow" / "scraped_paragraphs" / "wikihow.csv", site / "Posts.xml")
    with pytest.raises(InputError, match=r"coffee/Posts.xml:1: not an XML file"):
        read_all(one_site(site))


def test_xml_that_is_not_posts(tmp_path, se_dir):
    site = tmp_path / "bicycles_meta"
    site.mkdir()
    shutil.copy(se_dir / "bicycles_meta" / "Users.xml", site / "Posts.xml")
    with pytest.raises(InputError, match=r"root element is <users>"):
        read_all(one_site(site))


def test_truncated_7z_names_the_file(tmp_path):
    broken = tmp_path / "beer.stackexchange.com.7z"
    broken.write_bytes(BEER_7Z.read_bytes()[:1_000_000])
    with pytest.raises(InputError, match=r"beer.stackexchange.com.7z"):
        read_all(one_site(broken))


def test_damaged_7z_data_names_the_file(tmp_path):
    data = bytearray(BEER_7Z.read_bytes())
    for i in range(1_500_000, 1_500_064):  # inside the packed stream, before the header at the end
        data[i] ^= 0xFF
    damaged = tmp_path / "beer.stackexchange.com.7z"
    damaged.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"beer.stackexchange.com.7z!Posts.xml: archive data is damaged"):
        read_all(one_site(damaged))


def test_7z_decompressed_size_is_bounded():
    with pytest.raises(InputError, match=r"beer.stackexchange.com.7z!Posts.xml: decompressed size exceeds the bound of 100000 bytes"):
        read_all(one_site(BEER_7Z), max_decompressed_bytes=100_000)


def test_missing_path_and_empty_folder(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        discover([tmp_path / "nope.7z"])
    with pytest.raises(InputError, match="no Stack Exchange dump here"):
        discover([tmp_path])


def test_questions_answer_score_drops_are_read_light(tmp_path, se_dir):
    full, full_stats = read_all(one_site(se_dir / "coffee"))
    light, light_stats = read_all(one_site(se_dir / "coffee"), min_answer_score=10)
    assert light_stats.to_dict() == full_stats.to_dict()
    by_id = {c.id: c for c in full}
    dropped = [c for c in light if c.score is None or c.score < 10]
    assert dropped and len(light) == len(full)
    for c in dropped:  # ids, scores, the title decoded as lxml decodes it; nothing the reject does not need
        assert c.prompt == by_id[c.id].prompt and c.meta["title"] == by_id[c.id].meta["title"]
        assert c.score == by_id[c.id].score and c.meta.get("answer_id") == by_id[c.id].meta.get("answer_id")
        assert c.meta.get("accepted") == by_id[c.id].meta.get("accepted")
        assert c.meta["url"] == by_id[c.id].meta["url"] and "question_body" not in c.meta and c.response == ""
    assert any("&" in c.prompt or "\u2019" in c.prompt or '"' in c.prompt for c in dropped)
    # A light row with an entity XML does not define is refused like a parsed one, with its line.
    lines = _lines(se_dir / "coffee" / "Posts.xml")
    low = next(i for i, line in enumerate(lines) if f' Id="{dropped[0].meta["question_id"]}" ' in line)
    lines[low] = lines[low].replace(' Title="', ' Title="&xxe; ', 1)
    site = tmp_path / "coffee"
    site.mkdir()
    (site / "Posts.xml").write_text("".join(lines), encoding="utf-8")
    candidates, stats = read_all(one_site(site), min_answer_score=10)
    assert stats.malformed == 1 and stats.errors[0]["line"] == low + 1 and "xxe" in stats.errors[0]["error"]
    assert len(candidates) == len(full) - 1


def test_rows_in_another_form_read_the_same(tmp_path, se_dir):
    """Row lines as the dump writes them take the reader's fast path (one regex for the numbers); the same rows
    indented with a tab, ended with CRLF, or with their attributes in another order take the order-agnostic
    path: candidates, counts, errors and byte-range indexes must not differ (a cut row and a bad entity too)."""
    lines = _lines(se_dir / "coffee" / "Posts.xml")
    rows = [i for i, line in enumerate(lines) if line.startswith("  <row")]
    questions = [i for i in rows if 'PostTypeId="1"' in lines[i]]
    answers = [i for i in rows if 'PostTypeId="2"' in lines[i]]
    lines[questions[3]] = lines[questions[3]].replace(' Body="', ' Body="&bad; ', 1)
    lines[rows[30]] = lines[rows[30]].replace("/>", "", 1)
    lines[answers[5]] = lines[answers[5]].replace(' ParentId="', ' Parent="', 1)
    variants = {
        "plain": lines,
        "tab": [("\t" + line[2:]) if line.startswith("  <row") else line for line in lines],
        "crlf": [line.replace("\n", "\r\n") for line in lines],
        "order": [re.sub(r' (CreationDate="[^"]*")(.*?) ?/>', r"\2 \1 />", line, count=1) for line in lines],
    }
    results = {}
    for name, text in variants.items():
        site = tmp_path / name / "coffee"
        site.mkdir(parents=True)
        (site / "Posts.xml").write_text("".join(text), encoding="utf-8")
        dump = one_site(site)
        got = []
        for hold in (None, 10):
            candidates, stats = read_all(dump, min_answer_score=hold)
            for error in stats.errors:  # (lxml's message gives the column, which moves with the attributes)
                error["error"] = re.sub(r", line \d+, column \d+$", "", error["error"])
            got.append(([c.to_dict() for c in candidates], stats.to_dict() | {"shard": None}))
        questions, best, lines_read = StackExchangeReader().index_range(dump)  # (offsets differ by the form)
        got.append((questions, {parent: (score, answer, line) for parent, (score, answer, _, line) in best.items()},
                    lines_read))
        results[name] = got
    assert results["plain"][0][1]["malformed"] == 3
    assert results["plain"][0][1]["counts"]["answers"] > 300
    for name in ("tab", "crlf", "order"):
        assert results[name] == results["plain"], name
