"""The HTML report of a manifest: how long it takes to write, how big it is, and how long headless Chromium takes
to load and lay it out (the page's own load event, measured in a wrapper page).

    .venv/bin/python benchmarks/bench_report.py MANIFEST_DIR [--reference FILE] [--runs 3]
    .venv/bin/python benchmarks/bench_report.py MANIFEST_DIR [MANIFEST_DIR ...] --against OLD_CHECKOUT [--runs 5]
    .venv/bin/python benchmarks/bench_report.py --against OLD_CHECKOUT --build "BUILD ARGS" [--build ...] [--runs 5]

Build the manifest first, e.g. the full recipe over the shared sample data:
    lima-data build --input ../shared/data --recipe lima --out /tmp/bench-manifests

With ``--against``, each run writes the report of every manifest once with this checkout's code and once with the
other checkout's, interleaved (this machine's speed drifts), each in a fresh process that has first imported what
``lima-data build`` has imported when it starts the report (numpy, lxml, bs4, zstandard, the build and the CLI): the
seconds are those of ``from lima_data.report.html import build_report; build_report(...)``, matplotlib's import
included, which is what the report adds to a build (the manifest's filters are made first, as the build made them).
Prints the best of ``--runs`` for both, wall and CPU seconds, and their ratio.

With ``--build`` (and ``--against``), each run runs ``lima-data build -q BUILD ARGS`` whole (its own process, this
checkout's code and the other's, interleaved) and times ``build_report`` inside it, where the CLI calls it: the
report's seconds inside the build (wall and CPU) and the whole build's wall seconds, best of ``--runs``. Issue 15's
300 KB build (the first 300 KB of coffee's Posts.xml, closed) and the full recipe over the shared data:
    --build "--recipe lima --sources stackexchange --input /tmp/tiny-r --workers 1"
    --build "--recipe lima --input ../shared/data"
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent

WRAPPER = """<html><body><iframe id="f" style="width:1400px;height:1000px"></iframe><script>
var t0 = performance.now(); var f = document.getElementById('f');
f.onload = function () { var d = f.contentDocument; d.body.offsetHeight;
  document.body.setAttribute('data-ms', (performance.now() - t0).toFixed(0));
  document.body.setAttribute('data-height', d.documentElement.scrollHeight); };
f.src = "%s";
</script></body></html>"""

#: Run in a fresh process with PYTHONPATH at a checkout: the imports a build has made when it reaches the report,
#: then the report timed (seconds on stdout).
TIMED = """import json, sys, time
import numpy, lxml.etree, bs4, zstandard, lima_data.build, lima_data.cli
from lima_data.filters import build_filter
from lima_data.errors import RecipeError
recipe = json.load(open(sys.argv[1] + "/manifest.json"))["recipe"]
for spec in recipe["sources"].values():  # the build made every filter of its chains (their modules imported)
    for name in spec.get("chain", []):
        try:
            build_filter(name, spec.get("filters", {}).get(name, {}), 0)
        except RecipeError:
            pass
start, cpu = time.perf_counter(), time.process_time()
from lima_data.report.html import build_report
build_report(sys.argv[1], reference=sys.argv[2] or None)
print(time.perf_counter() - start, time.process_time() - cpu)
"""


#: ``lima-data build`` run through the CLI with ``build_report`` wrapped to print its wall and CPU seconds.
IN_BUILD = """import sys, time
import lima_data.report.html as html
write = html.build_report
def timed(*args, **kwargs):
    start, cpu = time.perf_counter(), time.process_time()
    try:
        return write(*args, **kwargs)
    finally:
        sys.stderr.write("REPORT %.4f %.4f\\n" % (time.perf_counter() - start, time.process_time() - cpu))
html.build_report = timed
from lima_data.cli import main
main(sys.argv[1:])
"""


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


def timed_report(checkout: Path, manifest: Path, reference: Path | None) -> tuple[float, float]:
    """Wall and CPU seconds ``build_report`` takes in a fresh process running ``checkout``'s code (see
    :data:`TIMED`)."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    out = subprocess.run([sys.executable, "-c", TIMED, str(manifest), str(reference or "")], env=env, cwd=checkout,
                         capture_output=True, text=True, check=True, timeout=600).stdout
    wall, cpu = out.split()[-2:]
    return float(wall), float(cpu)


def timed_build(checkout: Path, args: list[str]) -> tuple[float, float, float]:
    """``(report wall s, report CPU s, whole build wall s)`` of ``lima-data build -q ARGS`` with ``checkout``'s
    code, written to a temporary folder."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", IN_BUILD, "build", "-q", "--out", out, *args], env=env,
                              cwd=checkout, capture_output=True, text=True, timeout=1800)
        whole = time.perf_counter() - start
    lines = [line.split() for line in done.stderr.splitlines() if line.startswith("REPORT ")]
    if done.returncode or not lines:
        raise SystemExit(f"{checkout}: build {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return float(lines[-1][1]), float(lines[-1][2]), whole


def compare_builds(builds: list[str], against: Path, runs: int) -> None:
    """Best of ``runs`` seconds of the report inside each build, the other checkout and this one, interleaved."""
    best: dict[tuple[str, str], tuple[float, ...]] = {}
    for _ in range(runs):
        for build in builds:
            for label, checkout in (("other", against), ("this", HERE)):
                got = timed_build(checkout, shlex.split(build))
                old = best.get((build, label), (float("inf"),) * 3)
                best[(build, label)] = tuple(min(a, b) for a, b in zip(old, got))
    for build in builds:
        (old, old_cpu, old_whole), (new, new_cpu, new_whole) = best[(build, "other")], best[(build, "this")]
        print(f"build {build}: report inside the build {against} {old:.3f} s ({old_cpu:.3f} s CPU), {HERE} "
              f"{new:.3f} s ({new_cpu:.3f} s CPU): {new / old:.2f} of the wall time ({new_cpu / old_cpu:.2f} of the "
              f"CPU time); whole build {old_whole:.2f} s vs {new_whole:.2f} s (best of {runs})")


def compare(manifests: list[Path], against: Path, reference: Path | None, runs: int) -> None:
    """Best of ``runs`` wall and CPU seconds per manifest for the other checkout and this one, interleaved."""
    best: dict[tuple[Path, str], tuple[float, float]] = {}
    for _ in range(runs):
        for manifest in manifests:
            for label, checkout in (("other", against), ("this", HERE)):
                wall, cpu = timed_report(checkout, manifest, reference)
                old = best.get((manifest, label), (float("inf"), float("inf")))
                best[(manifest, label)] = (min(old[0], wall), min(old[1], cpu))
    for manifest in manifests:
        (old, old_cpu), (new, new_cpu) = best[(manifest, "other")], best[(manifest, "this")]
        print(f"{manifest}: {against} {old:.3f} s ({old_cpu:.3f} s CPU), {HERE} {new:.3f} s ({new_cpu:.3f} s CPU), "
              f"best of {runs}: {new / old:.2f} of the wall time ({new_cpu / old_cpu:.2f} of the CPU time)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest", type=Path, nargs="*")
    parser.add_argument("--reference", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--against", type=Path, help="another checkout, timed interleaved with this one")
    parser.add_argument("--build", action="append", default=[], metavar="ARGS",
                        help="with --against: time the report inside `lima-data build -q ARGS` (repeatable)")
    args = parser.parse_args()
    if args.against is not None:
        if args.build:
            compare_builds(args.build, args.against.resolve(), args.runs)
        if args.manifest:
            compare(args.manifest, args.against.resolve(), args.reference, args.runs)
        return
    if not args.manifest:
        parser.error("a manifest folder is needed")
    sys.path.insert(0, str(HERE))
    from lima_data.report.html import build_report

    for manifest in args.manifest:
        for run in range(args.runs):
            start = time.perf_counter()
            report = build_report(manifest, reference=args.reference)
            seconds = time.perf_counter() - start
            load = chromium_load_ms(report)
            print(f"{manifest} run {run + 1}: written in {seconds:.2f} s, {report.stat().st_size / 2**20:.2f} MiB; "
                  + (f"Chromium load {load[0]} ms, page height {load[1]:,} px" if load else "no Chromium"))


if __name__ == "__main__":
    main()
