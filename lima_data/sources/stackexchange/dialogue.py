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

The chain rules are :func:`.dialogue_chains.build_chain`'s; the three reading passes are
:class:`.dialogue_reader.DialogueReader`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from ...candidate import Candidate
from ...errors import InputError
from ..base import Shard, Source
from .dialogue_reader import SOURCE, DialogueReader, _sibling
from .sevenzip import UnreadableArchive
from .sites import site_domain
from .source import (
    UNREADABLE,
    StackExchangeSource,
    _one_per_site,
    _site_member,
    record_unreadable,
    unreadable_archive,
)


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

    # The reader's minimum answer score from the chain's ``answer_score`` filter unless set; the rank of
    # single-turn Stack Exchange rows (question score, then the answer's, both descending, then question id).
    configure = StackExchangeSource.configure
    rank_key = staticmethod(StackExchangeSource.rank_key)

    def claim(self, path: Path, explicit: bool) -> Shard | None:
        if path.suffix.lower() == ".7z":
            try:
                comments = _site_member(path, "Comments.xml")
            except UnreadableArchive:
                if self.strict:
                    raise
                return unreadable_archive(path, SOURCE)  # (skipped with a warning, as by ``stackexchange``)
            if comments is None:
                return None
            posts = _site_member(path, "Posts.xml")
            if posts is None:  # e.g. stackoverflow.com-Comments.7z: its posts are another archive
                if explicit:
                    raise InputError(path, "no Posts.xml in this archive (a dialogue needs both)")
                return None
            posts_size = posts[1]
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
        return _one_per_site(shards, warn)

    def read(self, shards, stats, progress) -> Iterator[Candidate]:
        reader = DialogueReader(strict=self.strict, max_turns=self.settings["max_turns"],
                                min_answer_score=self.settings["min_answer_score"])
        for shard in shards:
            if shard.kind == UNREADABLE:
                record_unreadable(shard, stats(shard), lambda path: _site_member(path, "Comments.xml"))
                continue
            yield from reader.read(shard, stats(shard), progress(shard))
