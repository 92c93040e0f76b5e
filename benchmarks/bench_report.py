"""The HTML report of a manifest: how long it takes to write, how big it is, and how long headless Chromium takes
to load and lay it out (the page's own load event, measured in a wrapper page).

    .venv/bin/python benchmarks/bench_report.py MANIFEST_DIR [--reference FILE] [--runs 3]

Build the manifest first, e.g. the full recipe over the shared sample data:
    lima-data build --input ../shared/data --recipe lima --out /tmp/bench-manifests
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from lima_data.report.html import build_report

WRAPPER = """<html><body><iframe id="f" style="width:1400px;height:1000px"></iframe><script>
var t0 = performance.now(); var f = document.getElementById('f');
f.onload = function () { var d = f.contentDocument; d.body.offsetHeight;
  document.body.setAttribute('data-ms', (performance.now() - t0).toFixed(0));
  document.body.setAttribute('data-height', d.documentElement.scrollHeight); };
f.src = "%s";
</script></body></html>"""


def chromium_load_ms(report: Path) -> tuple[int, int] | None:
    """Milliseconds from setting the iframe's src to its load event (parse, style, layout, SVG included), and the
    page's height in pixels; ``None`` without Chromium."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        wrapper = Path(tmp) / "wrap.html"
        wrapper.write_text(WRAPPER % report.resolve().as_uri())
        dom = subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                              "--virtual-time-budget=30000", "--dump-dom", wrapper.as_uri()],
                             capture_output=True, text=True, timeout=300).stdout
    ms = re.search(r'data-ms="(\d+)"', dom)
    height = re.search(r'data-height="(\d+)"', dom)
    return (int(ms.group(1)), int(height.group(1))) if ms and height else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--reference", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for run in range(args.runs):
        start = time.perf_counter()
        report = build_report(args.manifest, reference=args.reference)
        seconds = time.perf_counter() - start
        load = chromium_load_ms(report)
        print(f"run {run + 1}: written in {seconds:.2f} s, {report.stat().st_size / 2**20:.2f} MiB; "
              + (f"Chromium load {load[0]} ms, page height {load[1]:,} px" if load else "no Chromium"))


if __name__ == "__main__":
    main()
