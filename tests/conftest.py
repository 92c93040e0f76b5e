"""Shared fixtures: the real sample data in ../shared/data (beside the repository) and the bundled sample."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lima_data.recipe import PACKAGE
from lima_data.sources import ReaderStats
from lima_data.sources.base import Shard, Source, discover

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LIMA_SHARED_DATA", REPO.parent / "shared" / "data"))
SAMPLES = PACKAGE / "samples" / "stackexchange"
BEER_7Z = SAMPLES / "beer.stackexchange.com.7z"


@pytest.fixture(scope="session")
def shared() -> Path:
    """../shared/data: real Stack Exchange, wikiHow and Reddit dumps (see its README)."""
    if not (SHARED / "stackexchange").is_dir():
        pytest.fail(f"real sample data not found at {SHARED}; set LIMA_SHARED_DATA to the shared/data folder")
    return SHARED


@pytest.fixture(scope="session")
def se_dir(shared) -> Path:
    return shared / "stackexchange"


def read_source(source: Source, paths) -> tuple[list, dict[Shard, ReaderStats], list[Shard]]:
    """Discover ``paths`` with ``source`` and read every shard it claims: ``(candidates, reader stats by shard,
    shards)``."""
    found, _ = discover(paths, [source])
    stats: dict[Shard, ReaderStats] = {}
    candidates = list(source.read(found[source.name], lambda s: stats.setdefault(s, ReaderStats(s.label)),
                                  lambda s: None))
    return candidates, stats, found[source.name]


@pytest.fixture(scope="session", autouse=True)
def _user_cache(tmp_path_factory):
    """Tests keep lima-data's user cache (the decompressed language model) in their own folder, not in ~/.cache."""
    old = os.environ.get("LIMA_DATA_CACHE")
    os.environ["LIMA_DATA_CACHE"] = str(tmp_path_factory.mktemp("user-cache"))
    yield
    if old is None:
        os.environ.pop("LIMA_DATA_CACHE", None)
    else:
        os.environ["LIMA_DATA_CACHE"] = old
