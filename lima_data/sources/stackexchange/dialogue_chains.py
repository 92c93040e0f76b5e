"""Which comments on an answer make a dialogue: the chain rules of the ``stackexchange_dialogue`` source.

Speakers are checked by user id, never by name. Comments on the answer are read in date order (then comment id):
comments by anyone else, and by the answerer, before the asker's first comment are skipped; from the asker's first
comment on, a comment by a third person ends the chain; consecutive comments by the same speaker are one turn; a
chain ends on the answerer's turn. See :mod:`.dialogue` for the whole source.
"""

from __future__ import annotations

from typing import Any


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
