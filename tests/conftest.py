"""Shared fixtures: the real sample data in ../shared/data (beside the repository) and the bundled sample."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lima_data.recipe import PACKAGE

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
