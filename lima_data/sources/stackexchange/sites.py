"""Stack Exchange sites: a site's domain from its archive or folder name, a post's licence by date, its tags.

- A dump names a site by its archive (``beer.stackexchange.com.7z``, ``stackoverflow.com-Posts.7z``) or folder;
  :func:`site_domain` turns either into the site's domain, the candidate's ``domain``.
- ``ContentLicense`` (2024+ and some earlier dumps) gives the licence; without it the licence follows Stack
  Exchange's dates (:func:`licence_for`): CC BY-SA 2.5 before 2011-04-08, 3.0 before 2018-05-02, 4.0 after.
- ``Tags`` is ``<a><b>`` before 2024 and ``|a|b|`` from 2024 on; :func:`parse_tags` reads both.
"""

from __future__ import annotations

import re

from ..base import Shard

SOURCE = "stackexchange"

_TOP_LEVEL = {"stackoverflow": "com", "serverfault": "com", "superuser": "com", "askubuntu": "com",
              "stackapps": "com", "mathoverflow": "net"}
_DATE_SUFFIX = re.compile(r"[_-]\d{4}(?:-\d{2}(?:-\d{2})?)?$")


def site_domain(name: str) -> str:
    """The site's domain from an archive, folder or file name.

    ``beer.stackexchange.com.7z`` -> ``beer.stackexchange.com``; ``stackoverflow.com-Posts.7z`` ->
    ``stackoverflow.com``; a bare folder name ``coffee`` -> ``coffee.stackexchange.com``; ``bicycles_meta`` or
    ``meta.bicycles`` -> ``bicycles.meta.stackexchange.com``; a trailing date (``_2020``) is ignored.
    """
    n = name.strip().lower()
    n = re.sub(r"\.7z$", "", n)
    n = re.sub(r"-posts$", "", n)
    n = _DATE_SUFFIX.sub("", n)
    if "." in n and n.rsplit(".", 1)[-1] in ("com", "net", "org"):
        return n
    meta = False
    m = re.fullmatch(r"(.+?)[_.-]meta", n) or re.fullmatch(r"meta[_.-](.+)", n)
    if m:
        n, meta = m.group(1), True
    if n in _TOP_LEVEL:
        return f"{'meta.' if meta else ''}{n}.{_TOP_LEVEL[n]}"
    return f"{n}.meta.stackexchange.com" if meta else f"{n}.stackexchange.com"


def licence_for(created: str | None, content_license: str | None) -> str:
    """The CC BY-SA version of a post: its ``ContentLicense`` if the dump has one, else by creation date."""
    if content_license:
        return content_license
    if not created:
        return "CC BY-SA"
    if created < "2011-04-08":
        return "CC BY-SA 2.5"
    if created < "2018-05-02":
        return "CC BY-SA 3.0"
    return "CC BY-SA 4.0"


def parse_tags(value: str | None) -> list[str]:
    """Tags in either dump format: ``<a><b>`` (before 2024) or ``|a|b|`` (2024 on)."""
    if not value:
        return []
    if value.startswith("<"):
        return re.findall(r"<([^<>]+)>", value)
    return [t for t in value.split("|") if t]


#: A site's Posts.xml (a file or an archive member): the Stack Exchange kind of :class:`Shard`.
SiteDump = Shard
