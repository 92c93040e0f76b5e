"""The dialogue reader: one site's Posts.xml and Comments.xml into dialogue candidates (see :mod:`.dialogue`).

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

from ...candidate import Candidate
from ...errors import InputError
from .. import ReaderStats
from ..base import Shard
from .dialogue_chains import build_chain
from .lines import NOT_LINES, head_of, rows_one_per_line
from .rows import ANSWER, QUESTION, _author, _numbers, _question
from .sites import licence_for
from .source import _posts_member
from .stream import RowStream

SOURCE = "stackexchange_dialogue"

# (at most 18 digits, as rows._NUMBER_ATTRIBUTE: a longer number is read as absent)
_OWNER = re.compile(rb' OwnerUserId="(-?\d{1,18})"')
_POST_ID = re.compile(rb' PostId="(\d{1,18})"')
_USER_ID = re.compile(rb' UserId="(-?\d{1,18})"')


def _sibling(path: Path, name: str) -> Path | None:
    """The file ``name`` (any case) in ``path``'s folder, or ``None``."""
    for child in path.parent.iterdir():
        if child.name.lower() == name.lower() and child.is_file():
            return child
    return None


class DialogueReader(RowStream):
    """Reads one site (a :class:`Shard` of :class:`StackExchangeDialogueSource`) into dialogue candidates.

    Args:
        strict: raise :class:`~lima_data.errors.InputError` on the first malformed row or truncated file.
        max_turns: comment turns kept after the answer, at most.
        min_answer_score: answers scoring less are not chained (``None``: every answer).
    """

    def __init__(self, *, strict: bool = False, max_turns: int = 16, min_answer_score: int | None = None):
        super().__init__(strict=strict, min_answer_score=min_answer_score)
        self.max_turns = max_turns

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
        for dump in (posts, comments_file):
            if not dump.member and not rows_one_per_line(head_of(dump.path)):
                raise InputError(dump.label, NOT_LINES)

        # Pass 1: numbers of every post, no XML parse.
        owners: dict[int, int] = {}  # question id -> asker
        answers: dict[int, tuple[int, int, int]] = {}  # answer id -> (question id, answerer, score)

        def post_numbers(line: bytes) -> dict[bytes, int]:
            found = _numbers(line)
            owner = _OWNER.search(line)
            if owner is not None:
                found[b"OwnerUserId"] = int(owner.group(1))
            return found

        for _, _, found in self._rows(posts, None, progress, post_numbers):
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
            post = _POST_ID.search(line)
            if not line.endswith(b"/>") or post is None:
                return line  # reported as malformed below
            stats.count("comments")
            return line if int(post.group(1)) in answers else None

        for line_no, _, line in self._rows(comments_file, stats, progress, comment_filter, root="comments"):
            if not line.endswith(b"/>"):
                self._malformed(stats, comments_file.label, line_no, "row is cut off (no closing '/>')")
                continue
            if _POST_ID.search(line) is None:
                self._malformed(stats, comments_file.label, line_no, "comment row without a usable PostId")
                continue
            row = self._parse_row(line, line_no, comments_file.label, None, repairs=stats)
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
        for line_no, _, line in self._rows(posts, None, None, wanted):
            row = self._parse_row(line, line_no, posts.label, None, repairs=stats)
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
