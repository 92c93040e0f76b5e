"""One Posts.xml row: the safe lxml parser, the number regex, a light question's title, and a question's and answer's
fields.

Format notes:

- The dump writes one ``<row .../>`` per line (also after 2024). Each row line is parsed on its own with lxml
  (:data:`_PARSER`), with entity resolution, DTD loading and network access off, so a ``<!DOCTYPE ...>`` line is
  never fetched or expanded and one bad row is counted (with its line number) instead of ending the read.
- ``PostTypeId`` 1 is a question, 2 an answer; other post types (tag wikis, ...) are counted and skipped.
- Rows only counted or ranked are read without an XML parse (:func:`_numbers`, or :func:`_plain_numbers` from the
  stream's fast-path match; :func:`_light_question`, :func:`_light_title`); every row whose text is used is parsed
  by lxml. :func:`_candidate` makes a question and its top answer one :class:`~lima_data.candidate.Candidate`,
  :func:`_light_candidate` a light question's.
"""

from __future__ import annotations

import html
import re
from typing import Any

from lxml import etree

from ...candidate import Candidate
from .sites import SOURCE, licence_for, parse_tags

#: Post types in PostTypeId.
QUESTION, ANSWER = 1, 2

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
#: The numbers a row is ranked and joined by; at most 18 digits, so they fit the Int64 columns of the byte-range
#: join (:mod:`.ranges`) and CPython's ``int`` limit (4,300 digits): a longer one (a damaged row; no real id or score
#: has one) is read as absent, as text that is no number always was, instead of ending the read or the build
#: (issue 15, found by fuzzing: 2**70 stopped the polars join, 5,000 digits the file's read).
_NUMBER_ATTRIBUTE = re.compile(rb' (Id|PostTypeId|ParentId|Score|AcceptedAnswerId)="(-?\d{1,18})"')
#: A number as :data:`_NUMBER_ATTRIBUTE` reads one, for an attribute's parsed text (:func:`_number`).
_WHOLE_NUMBER = re.compile(r"-?[0-9]{1,18}")
#: A reference to an entity XML does not predefine (the dump uses only these and character references); lxml
#: refuses such a row, so a row read without lxml must be refused too.
_UNDEFINED_ENTITY = re.compile(rb"&(?!(?:quot|amp|lt|gt|apos|#[0-9]+|#x[0-9a-fA-F]+);)[^;\s]{0,40};?")

#: A numeric character reference, decimal or hex (a longer number than 8 digits is beyond U+10FFFF either way).
_CHAR_REF = re.compile(rb"&#(?:[xX]([0-9a-fA-F]+)|([0-9]+));")
#: Raw bytes XML 1.0 refuses in a document: C0 controls other than tab, LF and CR, and U+FFFE / U+FFFF in UTF-8.
_RAW_NOT_XML = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]|\xef\xbf[\xbe\xbf]")
_REPLACEMENT_REF = b"&#xFFFD;"


def _xml_char(code: int) -> bool:
    """XML 1.0's ``Char`` production (section 2.2): tab, LF, CR, U+0020-U+D7FF, U+E000-U+FFFD,
    U+10000-U+10FFFF."""
    return (0x20 <= code <= 0xD7FF or code in (0x9, 0xA, 0xD) or 0xE000 <= code <= 0xFFFD
            or 0x10000 <= code <= 0x10FFFF)


def _one_ref(found: re.Match) -> bytes:
    digits = found[1] or found[2]
    if len(digits.lstrip(b"0")) <= 8 and _xml_char(int(digits, 16 if found[1] else 10)):
        return found[0]
    return _REPLACEMENT_REF


def _repair_chars(text: bytes) -> bytes | None:
    """``text`` (a row line, or part of one) with every character XML 1.0 refuses replaced by U+FFFD, or
    ``None`` when it holds none: character references to code points outside XML's ``Char`` production
    (``&#1;``, ``&#x1F;``, ``&#0;``, lone surrogates ``&#xD800;``, ``&#xFFFE;``, numbers beyond U+10FFFF) and
    the same characters written raw (C0 controls but tab / LF / CR; U+FFFE, U+FFFF).

    libxml2 refuses a row holding one ("xmlParseCharRef: invalid xmlChar value 1"), so the whole row was lost,
    yet real dumps have them (bodies pasted from binary files or Word documents, issue 15). U+FFFD (the Unicode
    replacement character, what a decoder writes for input it cannot represent) rather than nothing: the text
    keeps a visible mark where something was, words on either side are not joined, and the response filters see
    that the text was damaged. Only rows that failed to parse are repaired (:meth:`.stream.RowStream._parse_row`),
    so good rows cost nothing.
    """
    repaired = _CHAR_REF.sub(_one_ref, text) if b"&#" in text else text
    repaired = _RAW_NOT_XML.sub(_REPLACEMENT_REF, repaired)
    return None if repaired == text else repaired


def _numbers(line: bytes) -> dict[bytes, int]:
    """The numeric attributes Id, PostTypeId, ParentId and Score of a row line, read without an XML parse: they
    are plain digits (no entities), so a regular expression reads them exactly; plus ``b"Body": 1`` when the row
    has a body. Used for rows that are only counted or ranked; every row whose text is used is parsed by lxml.

    The dump writes the numbers before ``Body``, so only the part before the body is searched (the whole line
    when that part lacks one of them)."""
    body = line.find(b' Body="')
    found = {name: int(value) for name, value in _NUMBER_ATTRIBUTE.findall(line, 0, body if body > 0 else len(line))}
    if body > 0:
        if b"Score" not in found or b"Id" not in found:
            found = {name: int(value) for name, value in _NUMBER_ATTRIBUTE.findall(line)}
        found[b"Body"] = 1
    return found


def _plain_numbers(found: re.Match) -> dict[bytes, int]:
    """:func:`_numbers` of a row line matched by :data:`.stream._PLAIN_ROW` (its groups: Id, PostTypeId,
    AcceptedAnswerId, ParentId, Score; then the body), from the match: the same dict, without searching the
    line again."""
    row_id, post_type, accepted, parent, score = found.groups()
    numbers = {b"Id": int(row_id), b"PostTypeId": int(post_type), b"Score": int(score), b"Body": 1}
    if accepted is not None:
        numbers[b"AcceptedAnswerId"] = int(accepted)
    if parent is not None:
        numbers[b"ParentId"] = int(parent)
    return numbers


def _light_question(line: bytes, numbers: dict[bytes, int]) -> dict[bytes, Any]:
    """Add the title of a question row that is read without an XML parse (its top answer cannot pass the minimum
    score, so the ``answer_score`` filter drops it: ids, score and title are all its reject needs) to its
    numbers, as ``numbers[b"Title"]``; or, when lxml would refuse the row, the reason as ``numbers[b"Error"]``
    (see :func:`_light_title`)."""
    title, error = _light_title(line, b"Body" in numbers)
    if error is not None:
        numbers[b"Error"] = error
    else:
        numbers[b"Title"] = title
    return numbers


def _light_title(line: bytes, body: bool) -> tuple[str | None, str | None]:
    """``(title, None)`` of a question row line read without an XML parse (``body``: the row has a Body), or
    ``(None, reason)`` when lxml would refuse the row or a required attribute is missing. An attribute's text
    holds no raw ``"`` (the dump writes ``&quot;``), so the first `` Title="`` and the next ``"`` bound exactly
    the attribute; its entities are decoded with :func:`html.unescape` once undefined ones are ruled out."""
    undefined = _UNDEFINED_ENTITY.search(line)
    if undefined is not None:
        return None, f"bad XML: undefined entity {undefined.group(0).decode(errors='replace')}"
    start = line.find(b' Title="')
    stop = line.find(b'"', start + 8) if start >= 0 else -1
    if stop < 0 or not body:
        return None, f"row without required attribute {'Title' if stop < 0 else 'Body'}"
    try:
        title = line[start + 8:stop].decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"bad XML: not UTF-8 ({exc.reason})"
    if "&" not in title:  # (html.unescape's own first test, without the call)
        return title, None
    if "&#" in title:  # a character XML refuses becomes U+FFFD, as in a parsed row (html.unescape drops some)
        repaired = _repair_chars(line[start + 8:stop])
        title = title if repaired is None else repaired.decode("utf-8")
    return html.unescape(title), None


def _add_top_answer(meta: dict[str, Any], site: str, best: tuple | None, accepted: int | None) -> None:
    """Add the top answer's ``answer_id``, ``answer_url`` and ``accepted`` (is it the question's accepted answer)
    to a candidate's ``meta`` when there is one (``best``: ``(score, answer id, ...)``)."""
    if best is not None:
        answer_id = best[1]
        meta["answer_id"] = answer_id
        meta["answer_url"] = f"https://{site}/a/{answer_id}"
        meta["accepted"] = answer_id == accepted


def _light_candidate(site: str, question_id: int, score: int, title: str, accepted: int | None,
                     best: tuple | None) -> Candidate:
    """:func:`_candidate` of a light question (see :func:`_light_question`): ids, score, title and url, plus its
    top answer's id and url when it has one (``best``: ``(score, answer id, ...)``); no body, no answer."""
    meta: dict[str, Any] = {"question_id": question_id, "question_score": score, "title": title,
                            "url": f"https://{site}/questions/{question_id}"}
    _add_top_answer(meta, site, best, accepted)
    return Candidate(id=f"{SOURCE}/{site}/{question_id}", source=SOURCE, domain=site, prompt=title, response="",
                     score=best[0] if best is not None else None, meta=meta)


def _number(value: str | None, absent: int | None = None) -> int | None:
    """A numeric attribute's parsed text read as a row read without a parse reads it (:data:`_NUMBER_ATTRIBUTE`):
    a whole number of at most 18 digits, else ``absent`` (text that is no number: ``"abc"``, ``""``, ``"1.5"``,
    ``" 5"``, 19 digits or more). So a ranked-only number (Score, AcceptedAnswerId) means the same in a parsed
    row and in one read light: a Score that is no number is 0, as a missing Score, whichever way the row is read
    (issue 15: a parsed row with ``Score="abc"`` was malformed while the same row read light scored 0)."""
    if value is None:
        return absent
    if len(value) <= 18 and value.isdigit() and value.isascii():  # the usual case, without the regex
        return int(value)
    return int(value) if _WHOLE_NUMBER.fullmatch(value) else absent


def _question(row: dict[str, str], site: str) -> dict[str, Any]:
    """The fields of a question row that a Candidate needs. Raises KeyError / ValueError on a bad row (a
    missing Id, Title or Body, an Id that is no number); ``Score``, ``AcceptedAnswerId`` and ``AnswerCount``
    that are no number are read as absent (:func:`_number`)."""
    question_id = int(row["Id"])
    return {
        "id": question_id,
        "site": site,
        "title": row["Title"],
        "body": row["Body"],
        "score": _number(row.get("Score"), 0),
        "tags": parse_tags(row.get("Tags")),
        "created": row.get("CreationDate"),
        "accepted_answer_id": _number(row.get("AcceptedAnswerId")),
        "answer_count": _number(row.get("AnswerCount"), 0),
        "owner_user_id": row.get("OwnerUserId"),
        "owner_display_name": row.get("OwnerDisplayName"),
        "licence": licence_for(row.get("CreationDate"), row.get("ContentLicense")),
    }


def _author(site: str, user_id: str | None, display_name: str | None) -> tuple[str | None, str | None]:
    url = f"https://{site}/users/{user_id}" if user_id and user_id != "-1" else None
    name = display_name or (f"user {user_id}" if user_id else None)
    return name, url


def _candidate(question: dict[str, Any], best: tuple[int, int] | None, answer: dict[str, str] | None) -> Candidate:
    """A Candidate from a question parsed in full (:func:`_question`) and its top answer; ``answer`` is None when
    its body was not read. A light question's is :func:`_light_candidate`."""
    site, question_id = question["site"], question["id"]
    author, author_url = _author(site, question["owner_user_id"], question["owner_display_name"])
    meta: dict[str, Any] = {
        "question_id": question_id,
        "question_score": question["score"],
        "title": question["title"],
        "question_body": question["body"],
        "tags": question["tags"],
        "created": question["created"],
        "answer_count": question["answer_count"],
        "url": f"https://{site}/questions/{question_id}",
        "question_author": author,
        "question_author_url": author_url,
        "question_licence": question["licence"],
    }
    _add_top_answer(meta, site, best, question["accepted_answer_id"])
    if answer is not None:
        author, author_url = _author(site, answer.get("OwnerUserId"), answer.get("OwnerDisplayName"))
        meta["author"] = author
        meta["author_url"] = author_url
        meta["answer_created"] = answer.get("CreationDate")
        meta["licence"] = licence_for(answer.get("CreationDate"), answer.get("ContentLicense"))
        meta["response_format"] = "html"  # until the ``clean`` filter turns it into Markdown
    return Candidate(
        id=f"{SOURCE}/{site}/{question_id}",
        source=SOURCE,
        domain=site,
        prompt=question["title"],
        response=answer["Body"] if answer is not None else "",
        score=best[0] if best is not None else None,
        meta=meta,
    )
