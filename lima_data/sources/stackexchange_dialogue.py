"""Stack Exchange dialogues: multi-turn candidates from comment chains (LIMA section 6).

LIMA's multi-turn experiment adds 30 dialogues to the training set, 20 of them "based on comment chains in Stack
Exchange" (edited into an assistant's style by the authors). This reader builds those chains from a site's dump:
``Posts.xml`` (questions and answers) plus ``Comments.xml`` (comments on posts), both in every site's archive.

A chain is, on one answer::

    user       the question (the asker, ``OwnerUserId`` of the question)
    assistant  the answer (its owner, ``OwnerUserId`` of the answer)
    user       a comment on the answer by the asker (``UserId`` of the comment = the question's owner)
    assistant  a comment on the answer by the answerer, replying
    ...        alternating, by ``CreationDate`` (then comment id)

Speakers are checked by user id, never by name: the asker and the answerer must both be known (not deleted users)
and differ. Comments on the answer are read in date order:

- comments by anyone else, and by the answerer, before the asker's first comment are skipped (remarks on the
  answer that the dialogue does not answer; counted in ``meta["skipped_comments"]``);
- from the asker's first comment on, a comment by a third person ends the chain (the reply after it may be
  addressed to that person);
- consecutive comments by the same speaker are one turn (a long remark split over two comments);
- a chain ends on the answerer's turn: an unanswered last follow-up is dropped.

An answer with at least one follow-up and reply makes a chain; a question with several such answers gives the chain
on its top-scored answer (then the lower answer id), so there is one candidate per question, id
``stackexchange_dialogue/<site>/<question_id>``. The candidate carries the raw turns in ``meta["turns"]``
(``[{"role", "content", "format": "html" | "comment", "user_id", "created", ...}]``: the question's HTML body, the
answer's HTML, comment texts as the dump has them); the ``dialogue_clean`` filter turns them into
``meta["messages"]`` (Markdown, ``@name`` mentions removed), which :func:`~lima_data.candidate.to_example` writes as
the manifest row's conversation. ``prompt`` is the question title, ``response`` the answer's HTML, ``score`` the
answer's vote score, ``meta["group"]`` is set by the ``site_group`` filter as for single-turn Stack Exchange rows.

Inputs: a site's ``.7z`` archive holding ``Posts.xml`` and ``Comments.xml`` (also claimed by the ``stackexchange``
source when both are built: this source is a companion, see :attr:`~lima_data.sources.base.Source.companion`), or a
site folder's ``Comments.xml`` with a ``Posts.xml`` beside it. Rows are read line by line with the Stack Exchange
reader's safe lxml row parser (no entity expansion, no DTD, no network) and its bounded archive streaming.

Reading takes three streaming passes: Posts.xml for numbers only (ids, parents, owners, scores; no XML parse),
Comments.xml (only comments on answers whose asker and answerer are known are parsed, and only the asker's and
answerer's text is kept), then Posts.xml again for the texts of the chained questions and answers. Memory: about
100 bytes per post for the first pass's numbers, plus the kept comments.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..candidate import Candidate
from ..errors import InputError
from . import ReaderStats
from .base import Shard, Source
from .stackexchange import (
    ANSWER,
    QUESTION,
    StackExchangeReader,
    _author,
    _numbers,
    _posts_member,
    _question,
    licence_for,
    site_domain,
)

SOURCE = "stackexchange_dialogue"

_OWNER = re.compile(rb' OwnerUserId="(-?\d+)"')
_POST_ID = re.compile(rb' PostId="(\d+)"')
_USER_ID = re.compile(rb' UserId="(-?\d+)"')


def _comments_member(archive_path: Path) -> tuple[str, int] | None:
    """Name and uncompressed size of the Comments.xml member of a .7z archive, or ``None``."""
    import py7zr

    try:
        with py7zr.SevenZipFile(archive_path, mode="r") as archive:
            for info in archive.list():
                if not info.is_directory and Path(info.filename).name.lower() == "comments.xml":
                    return info.filename, int(info.uncompressed or 0)
    except Exception as exc:  # py7zr raises several types for a damaged archive
        raise InputError(archive_path, f"cannot open as a 7z archive ({type(exc).__name__}: {exc})") from None
    return None


def _sibling(path: Path, name: str) -> Path | None:
    """The file ``name`` (any case) in ``path``'s folder, or ``None``."""
    for child in path.parent.iterdir():
        if child.name.lower() == name.lower() and child.is_file():
            return child
    return None


def build_chain(asker: int, answerer: int, comments: list[tuple[str, int, int | None, Any]]
                ) -> tuple[list[tuple[str, list[tuple[str, int, Any]]]], int]:
    """The dialogue turns after an answer, from the comments on it.

    Args:
        asker, answerer: user ids of the question's and the answer's owners.
        comments: ``(creation date, comment id, user id or None, payload)`` of every comment on the answer (the
            payload, e.g. the text, is carried into the turns; other people's comments may have ``None``).

    Returns:
        ``(turns, skipped)``: turns as ``[("user" | "assistant", [(created, comment id, payload), ...]), ...]``
        alternating, starting with ``"user"`` and ending with ``"assistant"`` (empty when there is no follow-up
        with a reply), and the number of comments skipped before the asker's first one. See the module docstring
        for the rules.
    """
    turns: list[tuple[str, list[tuple[str, int, str]]]] = []
    skipped = 0
    for created, comment_id, user_id, text in sorted(comments, key=lambda c: (c[0], c[1])):
        role = "user" if user_id == asker else "assistant" if user_id == answerer else None
        if not turns:
            if role != "user":
                skipped += 1
                continue
        elif role is None:
            break
        if turns and turns[-1][0] == role:
            turns[-1][1].append((created, comment_id, text))
        else:
            turns.append((role, [(created, comment_id, text)]))
    if turns and turns[-1][0] == "user":
        turns.pop()
    return turns, skipped


class StackExchangeDialogueSource(Source):
    """Multi-turn dialogues from Stack Exchange comment chains (see the module docstring).

    Claims a ``.7z`` archive holding both ``Posts.xml`` and ``Comments.xml``, or a ``Comments.xml`` file with a
    ``Posts.xml`` in the same folder. Quota groups: ``stem``, ``other`` (set by the ``site_group`` filter).
    Reader settings: ``max_turns`` (default 16): comment turns kept after the answer, at most (a longer chain is
    cut after the answerer's turn that reaches it; the ``turn_count`` filter decides what is too long);
    ``min_answer_score`` (default: the chain's ``answer_score`` filter's ``min_score``): answers scoring less are
    not held in memory nor chained (counted as ``answers_below_min_score``), so memory follows the answers that can
    pass, not the whole site.
    """

    name = SOURCE
    groups = ("stem", "other")
    methods = ("tau", "top")
    defaults = {"max_turns": 16, "min_answer_score": None}
    companion = True

    def configure(self, filters) -> None:
        """Take the reader's minimum answer score from the chain's ``answer_score`` filter unless set."""
        if self.settings["min_answer_score"] is None:
            self.settings["min_answer_score"] = next((f.min_score for f in filters if f.name == "answer_score"), None)

    @staticmethod
    def rank_key(candidate: Candidate) -> tuple:
        """Question score, then the answer's score, both descending, then question id (as single-turn Stack
        Exchange rows)."""
        return (-(candidate.meta.get("question_score") or 0), -(candidate.score or 0),
                candidate.meta.get("question_id", 0), candidate.id)

    def claim(self, path: Path, explicit: bool) -> Shard | None:
        if path.suffix.lower() == ".7z":
            comments = _comments_member(path)
            if comments is None:
                return None
            _, posts_size = _posts_member(path)  # raises when the archive has no Posts.xml
            return Shard(SOURCE, path, "7z", comments[1] + 2 * posts_size, 1, comments[0], site_domain(path.name))
        if path.name.lower() == "comments.xml":
            posts = _sibling(path, "Posts.xml")
            if posts is None:
                if explicit:
                    raise InputError(path, "no Posts.xml beside this Comments.xml (a dialogue needs both)")
                return None
            size = path.stat().st_size + 2 * posts.stat().st_size
            return Shard(SOURCE, path, "comments_xml", size, 1, None, site_domain(path.resolve().parent.name))
        return None

    def finalize(self, shards: list[Shard], warn: Callable[[str], None]) -> list[Shard]:
        by_site: dict[str, Shard] = {}
        for shard in sorted(shards, key=lambda d: (d.domain, str(d.path))):
            if shard.domain in by_site:
                warn(f"site {shard.domain} given twice: reading {by_site[shard.domain].path}, skipping {shard.path}")
                continue
            by_site[shard.domain] = shard
        return list(by_site.values())

    def read(self, shards, stats, progress) -> Iterator[Candidate]:
        reader = DialogueReader(strict=self.strict, max_turns=self.settings["max_turns"],
                                min_answer_score=self.settings["min_answer_score"])
        for shard in shards:
            yield from reader.read(shard, stats(shard), progress(shard))


class DialogueReader:
    """Reads one site (a :class:`Shard` of :class:`StackExchangeDialogueSource`) into dialogue candidates.

    Args:
        strict: raise :class:`~lima_data.errors.InputError` on the first malformed row or truncated file.
        max_turns: comment turns kept after the answer, at most.
        min_answer_score: answers scoring less are not chained (``None``: every answer).
    """

    def __init__(self, *, strict: bool = False, max_turns: int = 16, min_answer_score: int | None = None):
        self.strict = strict
        self.max_turns = max_turns
        self.min_answer_score = min_answer_score
        self._rows_reader = StackExchangeReader(strict=strict)

    def _files(self, shard: Shard) -> tuple[Shard, Shard]:
        """``(posts, comments)`` as Stack Exchange shards the row streamer can open."""
        if shard.member:
            member, size = _posts_member(shard.path)
            return replace(shard, member=member, size=size), shard
        posts = _sibling(shard.path, "Posts.xml")
        if posts is None:
            raise InputError(shard.path, "no Posts.xml beside this Comments.xml")
        return (replace(shard, path=posts, size=posts.stat().st_size, kind="posts_xml"),
                replace(shard, size=shard.path.stat().st_size))

    def rows(self, dump: Shard, root: str, stats: ReaderStats | None, progress: Callable[[int], None] | None,
             numbers: Callable[[bytes], Any] | None = None) -> Iterator[tuple[int, Any]]:
        """``(line number, row)`` of each ``<row>`` of a dump XML file whose root element is ``<root>``.

        ``numbers``: called with each row line's bytes; a row for which it returns ``None`` is skipped unparsed,
        else its result is yielded instead of the row's parsed attributes (``numbers=None`` parses every row).
        Malformed rows and a missing closing tag are recorded in ``stats`` (raised when strict).

        Raises:
            InputError: the file cannot be read, is not XML, or its root element is not ``<root>``.
        """
        label = dump.label
        tag = root.encode()
        opened = closed = False
        line_no = 0
        try:
            with self._rows_reader._open(dump) as stream:
                for line in stream:
                    line_no += 1
                    if progress is not None:
                        progress(len(line))
                    text = line.strip()
                    if line_no == 1:
                        text = text.removeprefix(b"\xef\xbb\xbf")
                        if not text.startswith(b"<"):
                            raise InputError(label, f"not an XML file (expected a Stack Exchange {root}.xml)", 1)
                    if not text:
                        continue
                    if text.startswith(b"<row"):
                        if not opened:
                            raise InputError(label, f"a <row> before the <{root}> root element", line_no)
                        if numbers is not None:
                            found = numbers(text)
                            if found is not None:
                                yield line_no, found
                            continue
                        row = self._rows_reader._parse_row(text, line_no, label, stats)
                        if row is not None:
                            yield line_no, row
                    elif text.startswith((b"<?xml", b"<!DOCTYPE", b"<!--")):
                        opened = opened or b"<" + tag + b">" in text
                    elif text.startswith(b"<" + tag):
                        opened = True
                    elif text.startswith(b"</" + tag):
                        closed = True
                    elif not opened:
                        raise InputError(label, f"not a {root.capitalize()}.xml: root element is not <{root}>",
                                         line_no)
                    elif stats is not None:
                        self._malformed(stats, label, line_no, "not a <row> element")
        except InputError:
            raise
        except (OSError, EOFError, ValueError) as exc:
            raise InputError(label, f"read failed after line {line_no}: {exc}") from None
        if line_no == 0:
            raise InputError(label, "the file is empty")
        if not closed and stats is not None:
            stats.truncated = True
            message = f"the file ends at line {line_no} without </{root}> (truncated?)"
            if self.strict:
                raise InputError(label, message, line_no)
            stats.error(line_no, message, row=False)

    def _malformed(self, stats: ReaderStats, label: str, line_no: int, message: str) -> None:
        if self.strict:
            raise InputError(label, message, line_no)
        stats.error(line_no, message)

    def read(self, shard: Shard, stats: ReaderStats, progress: Callable[[int], None] | None = None
             ) -> Iterator[Candidate]:
        """Yield one candidate per question with a comment chain on one of its answers (module docstring).

        ``stats`` counts ``questions``, ``answers`` (Posts.xml), ``comments`` (Comments.xml rows), and
        ``chains`` (answers with a chain); malformed rows are those of Comments.xml and of the parsed posts.

        Raises:
            InputError: a file cannot be read at all, or any malformed row when ``strict``.
        """
        posts, comments_file = self._files(shard)
        site = shard.domain

        # Pass 1: numbers of every post, no XML parse.
        owners: dict[int, int] = {}  # question id -> asker
        answers: dict[int, tuple[int, int, int]] = {}  # answer id -> (question id, answerer, score)

        def post_numbers(line: bytes) -> dict[bytes, int]:
            found = _numbers(line)
            owner = _OWNER.search(line)
            if owner is not None:
                found[b"OwnerUserId"] = int(owner.group(1))
            return found

        for _, found in self.rows(posts, "posts", None, progress, post_numbers):
            kind, post_id, owner = found.get(b"PostTypeId"), found.get(b"Id"), found.get(b"OwnerUserId")
            if kind == QUESTION:
                stats.count("questions")
                if post_id is not None and owner is not None and owner > 0:
                    owners[post_id] = owner
            elif kind == ANSWER:
                stats.count("answers")
                parent = found.get(b"ParentId")
                score = found.get(b"Score", 0)
                if self.min_answer_score is not None and score < self.min_answer_score:
                    stats.count("answers_below_min_score")
                elif post_id is not None and parent is not None and owner is not None and owner > 0:
                    answers[post_id] = (parent, owner, score)
        answers = {a: v for a, v in answers.items() if v[0] in owners and owners[v[0]] != v[1]}

        # Pass 2: comments on those answers; the text only of the asker's and the answerer's.
        on_answer: dict[int, list[tuple[str, int, int | None, str | None]]] = defaultdict(list)

        def comment_filter(line: bytes) -> bytes | None:
            stats.rows += 1
            post = _POST_ID.search(line)
            if not line.endswith(b"/>") or post is None:
                return line  # reported as malformed below
            stats.count("comments")
            return line if int(post.group(1)) in answers else None

        for line_no, line in self.rows(comments_file, "comments", stats, progress, comment_filter):
            if not line.endswith(b"/>"):
                self._malformed(stats, comments_file.label, line_no, "row is cut off (no closing '/>')")
                continue
            if _POST_ID.search(line) is None:
                self._malformed(stats, comments_file.label, line_no, "comment row without a usable PostId")
                continue
            row = self._rows_reader._parse_row(line, line_no, comments_file.label, None)
            if row is None:
                self._malformed(stats, comments_file.label, line_no, "bad XML in comment row")
                continue
            try:
                answer_id, comment_id = int(row["PostId"]), int(row["Id"])
                created = row["CreationDate"]
                user_id = int(row["UserId"]) if row.get("UserId") not in (None, "") else None
            except (KeyError, ValueError) as exc:
                self._malformed(stats, comments_file.label, line_no, f"comment row without a usable {exc}")
                continue
            question_id, answerer, _ = answers[answer_id]
            speaker = user_id in (owners[question_id], answerer)
            licence = licence_for(created, row.get("ContentLicense"))
            on_answer[answer_id].append((created, comment_id, user_id,
                                         (row.get("Text", ""), licence) if speaker else None))

        # Chains; per question the top-scored answer with one.
        chosen: dict[int, tuple[int, int, list, int]] = {}  # question id -> (score, answer id, turns, skipped)
        for answer_id, comments in on_answer.items():
            question_id, answerer, score = answers[answer_id]
            turns, skipped = build_chain(owners[question_id], answerer, comments)
            if len(turns) > self.max_turns:
                turns = turns[: self.max_turns - self.max_turns % 2]
            if not turns:
                continue
            stats.count("chains")
            held = chosen.get(question_id)
            if held is None or (score, -answer_id) > (held[0], -held[1]):
                chosen[question_id] = (score, answer_id, turns, skipped)
        del on_answer
        wanted_answers = {held[1]: question_id for question_id, held in chosen.items()}

        # Pass 3: texts of the chained questions and answers.
        def wanted(line: bytes) -> bytes | None:
            found = _numbers(line)
            post_id = found.get(b"Id")
            return line if post_id in chosen or post_id in wanted_answers else None

        questions: dict[int, dict[str, Any]] = {}
        early: dict[int, dict[str, str]] = {}
        for line_no, line in self.rows(posts, "posts", None, None, wanted):
            row = self._rows_reader._parse_row(line, line_no, posts.label, None)
            if row is None:
                self._malformed(stats, posts.label, line_no, "bad XML in a chained post")
                continue
            try:
                post_id, kind = int(row["Id"]), int(row["PostTypeId"])
                question = _question(row, site) if kind == QUESTION else None
            except (KeyError, ValueError) as exc:
                self._malformed(stats, posts.label, line_no, f"post row without a usable {exc}")
                continue
            if kind == QUESTION and post_id in chosen:
                answer_id = chosen[post_id][1]
                if answer_id in early:
                    yield self._candidate(question, early.pop(answer_id), chosen.pop(post_id))
                else:
                    questions[post_id] = question
            elif kind == ANSWER and post_id in wanted_answers:
                question_id = wanted_answers[post_id]
                if question_id in questions:
                    yield self._candidate(questions.pop(question_id), row, chosen.pop(question_id))
                else:
                    early[post_id] = row

    def _candidate(self, question: dict[str, Any], answer: dict[str, str], chain: tuple[int, int, list, int]
                   ) -> Candidate:
        score, answer_id, turns, skipped = chain
        site, question_id = question["site"], question["id"]
        asker, asker_url = _author(site, question["owner_user_id"], question["owner_display_name"])
        answerer, answerer_url = _author(site, answer.get("OwnerUserId"), answer.get("OwnerDisplayName"))
        raw = [{"role": "user", "format": "html", "content": question["body"], "title": question["title"],
                "user_id": int(question["owner_user_id"]), "created": question["created"],
                "post_id": question_id},
               {"role": "assistant", "format": "html", "content": answer.get("Body", ""),
                "user_id": int(answer["OwnerUserId"]), "created": answer.get("CreationDate"),
                "post_id": answer_id}]
        comment_meta = []
        for role, comments in turns:
            raw.append({"role": role, "format": "comment",
                        "content": "\n\n".join(text for _, _, (text, _) in comments),
                        "user_id": raw[0 if role == "user" else 1]["user_id"],
                        "created": comments[0][0], "comment_ids": [c for _, c, _ in comments]})
            comment_meta += [{"id": comment_id, "role": role, "created": created, "licence": licence,
                              "url": f"https://{site}/questions/{question_id}#comment{comment_id}_{answer_id}"}
                             for created, comment_id, (_, licence) in comments]
        meta = {
            "question_id": question_id,
            "question_score": question["score"],
            "title": question["title"],
            "question_body": question["body"],
            "tags": question["tags"],
            "created": question["created"],
            "url": f"https://{site}/questions/{question_id}",
            "answer_id": answer_id,
            "answer_url": f"https://{site}/a/{answer_id}",
            "accepted": answer_id == question["accepted_answer_id"],
            "question_author": asker,
            "question_author_url": asker_url,
            "question_licence": question["licence"],
            "author": answerer,
            "author_url": answerer_url,
            "answer_created": answer.get("CreationDate"),
            "licence": licence_for(answer.get("CreationDate"), answer.get("ContentLicense")),
            "response_format": "html",
            "turns": raw,
            "comments": comment_meta,  # attribution: the asker's and the answerer's comments, with their licence
            "skipped_comments": skipped,
        }
        return Candidate(id=f"{SOURCE}/{site}/{question_id}", source=SOURCE, domain=site, prompt=question["title"],
                         response=answer.get("Body", ""), score=score, meta=meta)
