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
#: A reference to an entity XML does not predefine (the dump uses only these and character references); lxml
#: refuses such a row, so a row read without lxml must be refused too.
_UNDEFINED_ENTITY = re.compile(rb"&(?!(?:quot|amp|lt|gt|apos|#[0-9]+|#x[0-9a-fA-F]+);)[^;\s]{0,40};?")


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
        return html.unescape(line[start + 8:stop].decode("utf-8")), None
    except UnicodeDecodeError as exc:
        return None, f"bad XML: not UTF-8 ({exc.reason})"


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


def _question(row: dict[str, str], site: str) -> dict[str, Any]:
    """The fields of a question row that a Candidate needs. Raises KeyError / ValueError on a bad row."""
    question_id = int(row["Id"])
    return {
        "id": question_id,
        "site": site,
        "title": row["Title"],
        "body": row["Body"],
        "score": int(row.get("Score", 0)),
        "tags": parse_tags(row.get("Tags")),
        "created": row.get("CreationDate"),
        "accepted_answer_id": int(row["AcceptedAnswerId"]) if row.get("AcceptedAnswerId") else None,
        "answer_count": int(row.get("AnswerCount", 0) or 0),
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
