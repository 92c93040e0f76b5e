"""Stack Exchange path throughput: Posts.xml -> candidates after the LIMA filter chain, in MB/s of XML, beside a raw
lxml ``iterparse`` scan of the same file that only reads each row's attributes (the floor), and the whole
`lima-data build` of the bundled sample (wall time, peak RSS).

    .venv/bin/python benchmarks/bench_stackexchange.py [POSTS_XML_OR_SITE ...]

Default input: the bundled sample's Posts.xml files. Figures go to stdout as a table; nothing is asserted.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

from lxml import etree

from lima_data.build import build
from lima_data.filters import build_filter
from lima_data.pipeline import Chain, RejectSink
from lima_data.recipe import PACKAGE, load_recipe
from lima_data.sources import ReaderStats
from lima_data.sources.stackexchange import StackExchangeReader, discover


def raw_scan(path: Path) -> int:
    rows = 0
    for _, element in etree.iterparse(str(path), tag="row", resolve_entities=False, no_network=True, load_dtd=False):
        dict(element.attrib)
        rows += 1
        element.clear()
    return rows


def chain_scan(path: Path, recipe) -> int:
    spec = recipe.sources["stackexchange"]
    filters = [build_filter(n, spec["filters"].get(n, {}), recipe.seed) for n in spec["chain"]]
    (dump,) = discover([path])
    with tempfile.TemporaryDirectory() as tmp:
        sink = RejectSink(Path(tmp))
        kept = list(Chain("stackexchange", filters).run(
            StackExchangeReader(min_answer_score=10).read(dump, ReaderStats(dump.label)), sink))
        sink.close()
    return len(kept)


def main(argv: list[str]) -> None:
    recipe = load_recipe("lima")
    samples = PACKAGE / "samples" / "stackexchange"
    paths = [Path(a) for a in argv] or sorted(samples.glob("*/Posts.xml"))
    chain_scan(sorted(samples.glob("*/Posts.xml"))[0], recipe)  # warm-up: language profiles, imports
    print(f"{'file':50} {'MB':>6} {'raw MB/s':>9} {'chain MB/s':>11} {'ratio':>6}")
    for path in paths:
        posts = path / "Posts.xml" if path.is_dir() else path
        mb = posts.stat().st_size / 1e6
        t = time.perf_counter(); raw_scan(posts); raw = time.perf_counter() - t
        t = time.perf_counter(); chain_scan(posts, recipe); chained = time.perf_counter() - t
        print(f"{str(posts)[-50:]:50} {mb:6.1f} {mb / raw:9.1f} {mb / chained:11.1f} {raw / chained:6.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        build(load_recipe("sample"), out_dir=tmp, quiet=True)
        wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"lima-data build (bundled sample): {wall:.2f} s, peak RSS of this process {peak:.0f} MiB")


if __name__ == "__main__":
    main(sys.argv[1:])
