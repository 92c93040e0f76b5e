"""Dump XML files whose rows are not one per line: found, and rewritten one row per line.

The reader (:mod:`.stream`) reads a dump file line by line, one ``<row .../>`` per line, as the Stack Exchange
dump writes it. The same XML written by another tool (``lxml`` / ElementTree ``tree.write()``: every row on one
line; a pretty-printer wrapping attributes over lines) is still the dump, but read by lines it gave no row at all,
silently (issue 15: a whole site lost, the file reported as "truncated"). :func:`rows_one_per_line` tells such a
file from the first MiB; :func:`rewrite_in_lines` streams it through lxml's ``iterparse`` (the same safe parser
settings: no entity expansion, no DTD, no network; memory bounded: each row is cleared once written) into a copy
in the dump's form, which the reader then reads. Line numbers in that copy's messages count rows: row ``n`` is
line ``n + 2``.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from lxml import etree

from ...errors import InputError

#: How much of a file :func:`rows_one_per_line` looks at.
_HEAD = 1 << 20
#: The message for a file whose rows are not one per line where no rewrite is made (byte ranges, dialogues).
NOT_LINES = ("its rows are not one per line (the dump writes one <row .../> per line; this file was rewritten by "
             "another tool?)")


def rows_one_per_line(head: bytes) -> bool:
    """Whether the first bytes of a dump XML file hold their rows one per line, as the dump writes them: the
    first line holding ``<row`` starts with it (after spaces) and holds no other row, and ends with ``/>``. A
    head without any row says yes (an empty file or one of only a root is read as before)."""
    at = head.find(b"<row")
    if at < 0:
        return True
    start = head.rfind(b"\n", 0, at) + 1
    stop = head.find(b"\n", at)
    line = head[start:stop if stop >= 0 else len(head)]
    if line.strip()[:4] != b"<row" or line.count(b"<row") > 1:
        return False
    return stop < 0 or line.rstrip().endswith(b"/>")  # (a first line longer than the head: its one row, cut)


def rewrite_in_lines(stream: BinaryIO, out: BinaryIO, root: str, label: str) -> int:
    """Write the rows of the dump XML ``stream`` to ``out`` one per line, in the dump's form (``<?xml ...?>``,
    ``<root>``, one ``<row .../>`` a line, ``</root>``); return the number of rows.

    Raises:
        InputError: the root element is not ``<root>``, or the XML is not well formed (with libxml2's line and
            reason; its rows cannot be told apart by lines either, so the file cannot be read).
    """
    parser = dict(events=("start", "end"), resolve_entities=False, no_network=True, load_dtd=False,
                  huge_tree=False, remove_comments=True, remove_pis=True)
    rows = 0
    try:
        for event, element in etree.iterparse(stream, **parser):
            if rows == 0 and event == "start" and element.getparent() is None:
                if element.tag != root:
                    raise InputError(label, f"not a {root.capitalize()}.xml: the root element is <{element.tag}>, "
                                            f"not <{root}>")
                out.write(b'<?xml version="1.0" encoding="utf-8"?>\n<' + root.encode() + b">\n")
            elif event == "end" and element.tag == "row":
                out.write(b"  " + etree.tostring(element, with_tail=False) + b"\n")
                rows += 1
                element.clear(keep_tail=False)
                parent = element.getparent()
                while parent is not None and element.getprevious() is not None:
                    del parent[0]
    except etree.XMLSyntaxError as exc:
        raise InputError(label, f"{NOT_LINES}, and it is not well-formed XML (line {exc.lineno}: "
                                f"{' '.join(exc.msg.split())})") from None
    out.write(b"</" + root.encode() + b">\n")
    return rows


def head_of(path: Path) -> bytes:
    """The first MiB of a file (for :func:`rows_one_per_line`)."""
    with open(path, "rb") as fh:
        return fh.read(_HEAD)
