"""Faults a user's machine produces end in one clear line naming the file, never a traceback (issue 17): bad bytes
in files the user names, a full disk, odd file names, edited or incomplete manifests, killed builds, Ctrl-C.

Each fault is made in the test: binary and non-UTF-8 files are written, the full disk is a patched write raising
ENOSPC (tests run as root, where a read-only chmod does not stop writes), non-UTF-8 file names are made with
``os.fsencode`` paths, a killed build is a subprocess killed with SIGKILL.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from lima_data import build as build_module
from lima_data.cli import main
from lima_data.errors import LimaDataError, describe, path_text, safe_text, translated
from lima_data.files import read_zstd_jsonl
from lima_data.manifest import MANIFEST_FILE, clean_stale_staging, stale_staging

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_clear_error(result, *needles: str, code: int = 1) -> None:
    """Exit ``code``, one ``error:`` line on stderr holding every needle, and no traceback."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def sample_manifest(tmp_path_factory) -> Path:
    """The bundled sample built once (CLI), copied by tests that damage it."""
    out = tmp_path_factory.mktemp("built")
    result = cli("build", "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    return out / "sample"


def copy_of(manifest: Path, tmp_path: Path) -> Path:
    target = tmp_path / manifest.name
    shutil.copytree(manifest, target)
    return target


# --- files the user names: bad bytes, wrong kinds ---------------------------------------------------------------

def test_keep_and_drop_lists_that_are_binary_or_not_utf8(tmp_path):
    binary = tmp_path / "ids.7z"
    binary.write_bytes(b"7z\xbc\xaf\x27\x1c\x00\x04" + bytes(range(256)))
    latin1 = tmp_path / "ids.txt"
    latin1.write_bytes("stackexchange/coffee.stackexchange.com/1\nwikihow/Caf\xe9\n".encode("latin-1"))
    assert_clear_error(cli("build", "--out", tmp_path / "out", "-q", "--keep", binary), f"{binary}: a binary file")
    assert_clear_error(cli("build", "--out", tmp_path / "out", "-q", "--drop", latin1),
                       f"{latin1}:2: not UTF-8 text (byte 0xe9")
    assert not (tmp_path / "out" / "sample").exists()


def test_benchmark_and_reference_files_that_are_not_utf8(tmp_path, sample_manifest):
    prompts = tmp_path / "bench.txt"
    prompts.write_bytes(b"How do I brew coffee?\n\xff\xfe broken\n")
    assert_clear_error(cli("build", "--out", tmp_path / "out", "-q", "--benchmark", prompts),
                       f"{prompts}:2: not UTF-8 text")
    rows = tmp_path / "bench.jsonl"
    rows.write_bytes(b'{"prompt": "fine"}\n{"prompt": "caf\xe9"}\n')
    assert_clear_error(cli("build", "--out", tmp_path / "out", "-q", "--benchmark", rows), f"{rows}:2: not UTF-8")
    rows.write_text('{"prompt": "fine"}\n{"prompt": \n')
    assert_clear_error(cli("build", "--out", tmp_path / "out", "-q", "--benchmark", rows), f"{rows}:2: not JSON")
    assert_clear_error(cli("report", sample_manifest, "--reference", prompts), str(prompts))


def test_recipe_files_with_bad_bytes_syntax_or_names(tmp_path):
    bad_toml = tmp_path / "syntax.toml"
    bad_toml.write_text('name = "x"\nseed = [\n')
    assert_clear_error(cli("build", "--recipe", bad_toml, "--out", tmp_path), f"{bad_toml}: not valid TOML")
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(b'name = "caf\xe9"\n')
    assert_clear_error(cli("build", "--recipe", latin1, "--out", tmp_path), f"{latin1}: not UTF-8 text")
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('[sources.authored]\nchain = ["no_such_filter"]\n[sources.authored.selection]\n'
                       'quotas = { train = 1 }\n')
    assert_clear_error(cli("build", "--recipe", unknown, "--out", tmp_path),
                       f"{unknown}: sources.authored.filters.no_such_filter: unknown filter")
    including = tmp_path / "including.toml"
    including.write_text('include = ["missing.toml"]\n')
    assert_clear_error(cli("build", "--recipe", including, "--out", tmp_path),
                       f"{including}: include: recipe 'missing.toml' not found")


def test_input_that_is_a_fifo(tmp_path):
    fifo = tmp_path / "dump.jsonl"
    os.mkfifo(fifo)
    assert_clear_error(cli("build", "--input", fifo, "--out", tmp_path / "out", "-q"),
                       f"{fifo}: not a regular file or folder")


def test_authored_jsonl_with_a_non_utf8_row_and_lone_surrogate_escapes(tmp_path, shared):
    rows = (shared / "lima" / "lima_train_slice.jsonl").read_text().splitlines()[:12]
    authored = tmp_path / "authored.jsonl"
    with open(authored, "wb") as fh:
        for i, line in enumerate(rows):
            if i == 3:  # one row saved as Latin-1
                fh.write(line.encode().replace(b"a", b"\xe9", 1) + b"\n")
                continue
            row = json.loads(line)
            row["conversations"][1] += " broken emoji: "  # a lone surrogate escape, as Pushshift dumps hold
            fh.write(json.dumps(row).replace("broken emoji: ", "broken emoji: \\ud83d").encode() + b"\n")
    out = tmp_path / "out"
    result = cli("build", "--sources", "authored", "--input", authored, "--out", out, "--name", "a")
    assert result.exit_code == 0, result.output
    assert f"{authored}: 1 malformed row(s) (line 4: not UTF-8" in result.stderr
    written = "".join(f.read_bytes().decode("utf-8")  # strict UTF-8; a split with no rows has no file
                      for f in (out / "a").glob("*.jsonl"))
    assert written.count("broken emoji: \ufffd") >= 1 and "\\ud83d" not in written
    assert_clear_error(cli("build", "--sources", "authored", "--input", authored, "--out", out, "--strict"),
                       f"{authored}:4: not UTF-8")


# --- OS errors: full disk, output path that is a file ----------------------------------------------------------

def test_full_disk_while_writing_the_manifest_keeps_the_previous_one(tmp_path, monkeypatch, sample_manifest):
    out = tmp_path / "out"
    shutil.copytree(sample_manifest.parent, out)  # a previous build, and its cache
    before = {p.relative_to(out): p.read_bytes() for p in (out / "sample").rglob("*") if p.is_file()}
    real = build_module.write_json

    def full_disk(path, data):
        if Path(path).name != MANIFEST_FILE:
            return real(path, data)
        with open(path, "w", encoding="utf-8") as fh:  # half written, then the disk is full
            fh.write("{")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(build_module, "write_json", full_disk)
    result = cli("build", "--out", out, "-q")
    assert_clear_error(result, f"{MANIFEST_FILE}: no space left on the device; free some space")
    after = {p.relative_to(out): p.read_bytes() for p in (out / "sample").rglob("*") if p.is_file()}
    assert after == before  # the previous manifest, byte for byte
    assert not list(out.glob(".sample.partial-*"))  # the staging folder is gone


def test_full_disk_in_a_worker_process_names_the_file(tmp_path):
    target = tmp_path / "rejects.jsonl.zst"

    def write_rejects():
        with open(target, "wb") as fh:
            fh.write(b"x")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(LimaDataError, match=f"{target}: no space left on the device"):
        translated(write_rejects)


def test_permission_denied_and_output_that_is_a_file(tmp_path, monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    assert_clear_error(cli("build", "--out", afile, "-q"), f"{afile}: already exists and is not a folder")
    assert_clear_error(cli("build", "--out", afile / "sub", "-q"), f"{afile / 'sub'}: ")
    assert afile.read_text() == "not a folder"

    ids = tmp_path / "keep.txt"
    ids.write_text("wikihow/x\n")
    real_open = open

    def denied(file, *args, **kwargs):
        if str(file) == str(ids):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", denied)
    assert_clear_error(cli("build", "--out", tmp_path / "out", "-q", "--keep", ids),
                       f"{ids}: permission denied; change the permissions or use another path")


# --- edited and incomplete manifests ---------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["report"], ["inspect"], ["export", "--format", "gair"]])
def test_manifest_missing_a_split_file(tmp_path, sample_manifest, command):
    manifest = copy_of(sample_manifest, tmp_path)
    (manifest / "train.jsonl").unlink()
    assert_clear_error(cli(command[0], manifest, *command[1:]),
                       f"{manifest / 'train.jsonl'}: missing, but manifest.json lists 40 row(s)")


@pytest.mark.parametrize("command", [["report", "--no-html"], ["inspect"], ["export", "--format", "gair"],
                                     ["validate"]])
def test_manifest_json_edited(tmp_path, sample_manifest, command):
    manifest = copy_of(sample_manifest, tmp_path)
    data = json.loads((manifest / MANIFEST_FILE).read_text())
    del data["funnel"]
    (manifest / MANIFEST_FILE).write_text(json.dumps(data))
    assert_clear_error(cli(command[0], manifest, *command[1:]), f"{manifest / MANIFEST_FILE}: no 'funnel' entry")
    (manifest / MANIFEST_FILE).write_text("[]")
    assert_clear_error(cli(command[0], manifest, *command[1:]), f"{manifest / MANIFEST_FILE}: not a manifest")
    assert_clear_error(cli(command[0], tmp_path / "nowhere", *command[1:]), f"{tmp_path / 'nowhere'}: no such")


@pytest.mark.parametrize("command", [["report"], ["inspect"], ["export", "--format", "messages"]])
def test_manifest_split_with_a_bad_row(tmp_path, sample_manifest, command):
    manifest = copy_of(sample_manifest, tmp_path)
    rows = len((manifest / "train.jsonl").read_bytes().splitlines())
    with open(manifest / "train.jsonl", "a") as fh:
        fh.write('{"id": "by-hand", "messages": []}\n')
    assert_clear_error(cli(command[0], manifest, *command[1:]),
                       f"{manifest / 'train.jsonl'}:{rows + 1}: not a manifest row: 'source' missing")


def test_damaged_report_stats_and_missing_report_folder(tmp_path, sample_manifest):
    manifest = copy_of(sample_manifest, tmp_path)
    stats = manifest / "report" / "stats.json"
    stats.write_text("[1, 2]")
    assert_clear_error(cli("report", manifest), f"{stats}: damaged (a JSON object is expected)")
    shutil.rmtree(manifest / "report")
    result = cli("report", manifest)
    assert result.exit_code == 0, result.output
    assert (manifest / "report" / "report.html").is_file()


def test_damaged_cache_entry_is_named(tmp_path, sample_manifest):
    out = tmp_path / "out"
    shutil.copytree(sample_manifest.parent, out)
    for result in (out / ".lima-cache").glob("*/result.pkl"):
        result.write_bytes(b"garbage\n")
    assert_clear_error(cli("build", "--out", out, "-q"), f"{out / '.lima-cache'}/",
                       "damaged cache entry; delete that folder")


def test_filter_setting_of_the_wrong_kind(tmp_path):
    recipe = tmp_path / "kind.toml"
    recipe.write_text('include = ["sample"]\n[sources.stackexchange.filters.length]\nmin_chars = "1200"\n')
    assert_clear_error(cli("build", "--recipe", recipe, "--out", tmp_path),
                       f"{recipe}: sources.stackexchange.filters.length: [filters.length]: min_chars = '1200' must "
                       "be a number")


def test_damaged_rejects_file_and_non_utf8_split_row(tmp_path, sample_manifest):
    manifest = copy_of(sample_manifest, tmp_path)
    rejects = manifest / "report" / "rejects" / "length.jsonl.zst"
    assert list(read_zstd_jsonl(rejects))
    rejects.write_bytes(b"not zstd at all")
    assert_clear_error(cli("inspect", manifest, "--what", "rejects"), f"{rejects}:1: damaged or not zstd")
    rows = len((manifest / "dev.jsonl").read_bytes().splitlines())
    with open(manifest / "dev.jsonl", "ab") as fh:
        fh.write(b'{"id": "caf\xe9"}\n')
    result = cli("validate", manifest)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"dev.jsonl:{rows + 1}: not UTF-8 (byte 0xe9 at column 12)" in result.stdout


# --- file names that are not UTF-8 -----------------------------------------------------------------------------

def test_file_names_that_are_not_utf8_are_written_escaped(tmp_path, shared, sample_manifest):
    inputs = os.fsencode(tmp_path / "dumps")
    os.mkdir(inputs)
    page = sorted((shared / "wikihow" / "html_pages_2020").glob("*.html"))[0]
    shutil.copy(page, os.path.join(inputs, b"page-\xff\xfe.html"))
    shutil.copytree(os.fsencode(shared / "stackexchange" / "coffee"), os.path.join(inputs, b"co\xfeffee"))
    out = tmp_path / "out"
    result = cli("build", "--input", os.fsdecode(inputs), "--out", out, "--name", "odd")
    assert result.exit_code == 0, result.output
    assert "co\\xfeffee.stackexchange.com is in no site list" in result.stderr
    manifest = json.loads((out / "odd" / MANIFEST_FILE).read_bytes().decode("utf-8"))
    paths = {entry["path"] for entry in manifest["inputs"]}
    assert f"{tmp_path}/dumps/page-\\xff\\xfe.html" in paths
    assert f"{tmp_path}/dumps/co\\xfeffee/Posts.xml" in paths
    for file in (out / "odd").rglob("*"):  # every file written is valid UTF-8 JSON (lines)
        if file.suffix == ".jsonl":
            rows = [json.loads(line) for line in file.read_bytes().decode("utf-8").splitlines()]
        elif file.name.endswith(".jsonl.zst"):
            rows = list(read_zstd_jsonl(file))
        else:
            continue
        assert all("\udcfe" not in json.dumps(row, ensure_ascii=False) for row in rows)
    ids = [json.loads(line)["id"] for line in (out / "odd" / "train.jsonl").read_text().splitlines()]
    assert any(i.startswith("stackexchange/co\\xfeffee.stackexchange.com/") for i in ids)
    result = cli("report", out / "odd", "--per-reason", "1")
    assert result.exit_code == 0, result.output
    assert cli("validate", out / "odd").exit_code == 0


def test_terminal_output_names_a_non_utf8_file_as_manifest_json_does(tmp_path):
    name = os.fsdecode(b"n\xff")
    result = cli("build", "--out", tmp_path, "-q", "--name", name)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"{tmp_path}/n\\xff"
    assert json.loads((tmp_path / name / MANIFEST_FILE).read_text())["name"] == "n\\xff"


def test_path_text_and_safe_text():
    assert path_text(os.fsdecode(b"/data/page-\xff\xfe.html")) == "/data/page-\\xff\\xfe.html"
    assert path_text(b"/data/caf\xc3\xa9") == "/data/caf\u00e9"
    assert safe_text("fine \U0001f600") == "fine \U0001f600"
    assert safe_text("half \ud83d emoji") == "half \ufffd emoji"
    text = safe_text(json.dumps({"p": os.fsdecode(b"a\xff")}, ensure_ascii=False), json=True)
    assert json.loads(text) == {"p": "a\\xff"}


# --- killed builds -----------------------------------------------------------------------------------------------

def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_build_killed_with_sigkill_leaves_a_folder_the_next_build_removes(tmp_path, sample_manifest):
    out = tmp_path / "out"
    shutil.copytree(sample_manifest.parent, out)  # a previous build, and its cache
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "lima_data.cli", "build", "--out", str(out), "-q"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not list(out.glob(".sample.partial-*")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = list(out.glob(".sample.partial-*"))
    assert len(left) == 1 and left[0].name.startswith(f".sample.partial-{proc.pid}-")
    result = cli("build", "--out", out)
    assert result.exit_code == 0, result.output
    assert f"note: removed {left[0]}, left by a build that was killed (process {proc.pid} is gone)" in \
        result.stderr.replace("\n", "")
    assert not left[0].exists() and (out / "sample" / MANIFEST_FILE).is_file()


def test_only_provably_stale_staging_folders_are_removed(tmp_path):
    dead = _dead_pid()
    gone = tmp_path / f".a.partial-{dead}-abcd1234"
    locked = tmp_path / f".b.partial-{dead}-abcd1234"
    for folder in (gone, locked):
        folder.mkdir()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        running = tmp_path / f".c.partial-{live.pid}-abcd1234"
        running.mkdir()
        fd = os.open(locked, os.O_RDONLY)  # a running build holds the lock on its folder
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            assert stale_staging(gone) and not stale_staging(locked) and not stale_staging(running)
            notes = clean_stale_staging(tmp_path)
        finally:
            os.close(fd)
        assert notes == [f"removed {gone}, left by a build that was killed (process {dead} is gone)"]
        assert not gone.exists() and locked.exists() and running.exists()
    finally:
        live.kill()
        live.wait()
    legacy = tmp_path / ".d.partial-x1y2z3w4"  # no pid in the name: stale only once old
    legacy.mkdir()
    assert not stale_staging(legacy)
    os.utime(legacy, (time.time() - 7200, time.time() - 7200))
    assert stale_staging(legacy)


def test_a_kill_between_the_commit_renames_gets_the_previous_manifest_back(tmp_path):
    old = tmp_path / f".m.old-{_dead_pid()}-abcd1234"
    old.mkdir()
    (old / MANIFEST_FILE).write_text("{}")
    notes = clean_stale_staging(tmp_path)
    assert len(notes) == 1 and notes[0].startswith(f"restored the previous manifest {tmp_path / 'm'}")
    assert (tmp_path / "m" / MANIFEST_FILE).read_text() == "{}" and not old.exists()


# --- the boundary itself -----------------------------------------------------------------------------------------

def test_interrupt_is_one_line_and_exit_130(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(build_module, "build", interrupted)
    result = cli("build", "--out", tmp_path, "-q")
    assert_clear_error(result, "interrupted", code=130)
    result = cli("--debug", "build", "--out", tmp_path, "-q")
    assert result.exit_code == 130 and "Traceback" in result.stderr


def test_debug_shows_the_traceback_and_a_bug_asks_for_a_report(tmp_path, monkeypatch):
    latin1 = tmp_path / "ids.txt"
    latin1.write_bytes(b"caf\xe9\n")
    result = cli("--debug", "build", "--out", tmp_path, "-q", "--keep", latin1)
    assert result.exit_code == 1 and "Traceback" in result.stderr and f"error: {latin1}:1:" in result.stderr

    def bug(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(build_module, "build", bug)
    result = cli("build", "--out", tmp_path, "-q")
    assert result.exit_code == 1
    assert "Traceback" in result.stderr and "ZeroDivisionError" in result.stderr
    assert "This is a bug in lima-data" in result.stderr and "please report it" in result.stderr


def test_describe_names_the_file_of_errors_that_carry_none(tmp_path):
    def read(path):
        return path.read_text(encoding="utf-8")

    file = tmp_path / "notes.txt"
    file.write_bytes(b"\xff")
    try:
        read(file)
    except UnicodeDecodeError as exc:
        assert describe(exc).startswith(f"{file}: not UTF-8 text (byte 0xff")
    assert describe(ValueError("a bug")) is None


def test_a_damaged_checkpoint_from_torch_is_one_line(tmp_path, monkeypatch):
    class CheckpointException(BaseException):  # torch.distributed.checkpoint's error is a BaseException
        def __init__(self, failures):
            super().__init__("CheckpointException ranks:dict_keys([0])")
            self.failures = failures

    checkpoint = tmp_path / "run" / "checkpoints" / "step-00000002"
    checkpoint.mkdir(parents=True)

    def resume(path=checkpoint):
        raise CheckpointException({0: (EOFError(), "traceback text")})

    monkeypatch.setattr(build_module, "build", lambda *a, **k: resume())
    assert_clear_error(cli("build", "--out", tmp_path, "-q"),
                       f"{checkpoint}: damaged checkpoint (EOFError); remove it to resume from an earlier one")


def test_a_live_process_partial_cache_entry_is_left_alone(tmp_path):
    """A cache entry another live build is writing (same task key) is not removed; a dead process's is."""
    from lima_data.files import remove_stale_partials

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        running = tmp_path / f".key.partial-{live.pid}"
        gone = tmp_path / f".key.partial-{dead.pid}"
        for folder in (running, gone):
            folder.mkdir()
            (folder / "rows.jsonl").write_text("{}\n")
        removed = remove_stale_partials(sorted(tmp_path.glob(".key.partial-*")))
        assert removed == [gone] and running.is_dir() and not gone.exists()
    finally:
        live.kill()
        live.wait()


def test_json_lines_keep_integers_beyond_64_bits(tmp_path):
    """orjson reads an integer beyond 64 bits as a float; every JSON-lines reader keeps it exact, as ``json`` does
    (a Reddit id or a user's own row number may be that long)."""
    from lima_data.files import read_jsonl
    from lima_data.text import loads_json

    row = '{"id": 123456789012345678901234567890, "low": -9223372036854775809, "x": 1.5}'
    assert loads_json(row) == loads_json(row.encode()) == json.loads(row)
    assert isinstance(loads_json(row)["id"], int)
    (tmp_path / "rows.jsonl").write_text(row + "\n")
    assert [r for _, r in read_jsonl(tmp_path / "rows.jsonl")] == [json.loads(row)]
