"""Time the adversarial inputs fuzzing found (issue 15): each was quadratic (or worse) before its fix.

    PYTHONPATH=$PWD python benchmarks/bench_adversarial.py

Before the fixes (commit 8cf24a7, same machine): strip_debris 9.0 s, <pre> 23.9 s, U+E000 26.8 s, 20,000 nested
<b> 10.0 s, diff_marked over 60 s (killed), 1,000,000 nested <b> not run (hours). comment_markdown's link pattern
before its fix (commit 72ea613): 100,000 '[' 39.5 s, '[a](http://x' x 10,000 with no ')' 21.8 s. Each line is one
call.
"""

from __future__ import annotations

import time

from lima_data.filters.dialogue import comment_markdown
from lima_data.report.html import diff_marked
from lima_data.sources.wikihow import strip_debris
from lima_data.text.markup import html_to_markdown

CASES = [
    ("strip_debris, 16,000 spaces/tabs", lambda: strip_debris(" \t" * 8000)),
    ("html_to_markdown, <pre> with 100,000 spaces",
     lambda: html_to_markdown("<pre><code>a" + " " * 100_000 + "b</code></pre>", prune_links=True)),
    ("html_to_markdown, 100,000 U+E000", lambda: html_to_markdown("<p>a" + "\ue000" * 100_000 + "b</p>", prune_links=True)),
    ("html_to_markdown, 20,000 nested <b>", lambda: html_to_markdown("<p>" + "<b>" * 20_000 + "x", prune_links=True)),
    ("html_to_markdown, 1,000,000 nested <b> (linear: bs4's parse)",
     lambda: html_to_markdown("<p>" + "<b>" * 1_000_000 + "x", prune_links=True)),
    ("diff_marked, 30,000 'x '", lambda: diff_marked("<p>hello</p> " + "x " * 30000, "hello " + "x " * 30000)),
    ("comment_markdown, 100,000 '['", lambda: comment_markdown("[" * 100_000)),
    ("comment_markdown, '[a](http://x' x 10,000, no ')'", lambda: comment_markdown("[a](http://x" * 10_000)),
]

if __name__ == "__main__":
    for name, call in CASES:
        start = time.perf_counter()
        call()
        print(f"{name}: {time.perf_counter() - start:.3f} s", flush=True)
