"""Stack Exchange data dumps (DESIGN.md section 2; LIMA sections 2.1 and 6): the ``stackexchange`` source
(one question joined to its top answer per candidate) and the ``stackexchange_dialogue`` source (multi-turn
dialogues from comment chains).

A site's ``Posts.xml`` is read from a ``.7z`` archive of the official dump (streamed, never extracted to disk unless
it is split), a folder holding ``Posts.xml``, a ``Posts.xml`` path, or a directory of many sites. The files, in
the order a row travels:

- :mod:`.sites`: a site's domain from its archive or folder name, licences by date, tags (``SiteDump``);
- :mod:`.sevenzip`: ``.7z`` members listed, streamed and unpacked through the 7-Zip binary, in bounded memory;
  :mod:`.py7zr_fallback` when no binary is found;
- :mod:`.rows`: one row line: the safe lxml parser, the number regex and light title, a question's and answer's
  fields, the Candidate;
- :mod:`.stream`: the rows of a file, a byte range or an archive member, read in blocks, checked and classified
  (a fast path for rows in the dump's usual form);
- :mod:`.reader`: :class:`StackExchangeReader`, the two passes (top answers, then questions) over a whole file or a
  byte range;
- :mod:`.ranges`: a big file's byte ranges, each indexed to Parquet, joined with polars;
- :mod:`.source`: :class:`StackExchangeSource`: which paths are dumps, tasks per site, preparing the join;
- :mod:`.dialogue`, :mod:`.dialogue_chains`, :mod:`.dialogue_reader`: the ``stackexchange_dialogue`` source, its
  chain rules, and its three passes over Posts.xml and Comments.xml.

Importing this package registers both sources (:func:`~lima_data.sources.base.source_class`).
"""

from .dialogue import StackExchangeDialogueSource
from .dialogue_chains import build_chain
from .dialogue_reader import DialogueReader
from .ranges import index_range, join_index, member_ranges, split_ranges, unpack_site
from .reader import SPOOL_BYTES, StackExchangeReader
from .rows import ANSWER, QUESTION
from .sites import SOURCE, SiteDump, licence_for, parse_tags, site_domain
from .source import StackExchangeSource, discover

__all__ = [
    "ANSWER", "QUESTION", "SOURCE", "SPOOL_BYTES", "DialogueReader", "SiteDump", "StackExchangeDialogueSource",
    "StackExchangeReader", "StackExchangeSource", "build_chain", "discover", "index_range", "join_index",
    "licence_for", "member_ranges", "parse_tags", "site_domain", "split_ranges", "unpack_site",
]
