"""Inline SVG plots for the HTML report.

Our own ~60 lines instead of matplotlib: a histogram of bars with threshold lines is all the report draws, and
SVG text keeps the report one self-contained file with no 40 MB plotting dependency on the curation side.
"""

from __future__ import annotations

from html import escape

COLOURS = ("#4c78a8", "#f58518", "#54a24b", "#b279a2")


def histogram_svg(series: dict[str, list[float]], thresholds: list[tuple[str, float]] = (), bins: int = 30,
                  width: int = 520, height: int = 180, density: bool = False) -> str:
    """An SVG histogram of one or more named series over shared bins, with vertical threshold lines.

    Args:
        series: name -> values (numbers). Empty series are skipped.
        thresholds: ``(label, x)`` pairs drawn as dashed red lines.
        density: plot each series as a share of its own count (to compare sets of different sizes).
    """
    values = [v for vs in series.values() for v in vs]
    if not values:
        return "<p class='muted'>no values</p>"
    xs = values + [x for _, x in thresholds]
    lo, hi = min(xs), max(xs)
    if hi == lo:
        hi = lo + 1
    step = (hi - lo) / bins
    counts = {}
    for name, vs in series.items():
        c = [0] * bins
        for v in vs:
            c[min(bins - 1, int((v - lo) / step))] += 1
        counts[name] = [x / len(vs) for x in c] if density and vs else c
    top = max(max(c) for c in counts.values()) or 1
    pad_l, pad_b, pad_t = 40, 28, 8
    plot_w, plot_h = width - pad_l - 8, height - pad_b - pad_t
    bar_w = plot_w / bins / max(1, len(counts))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" class="plot">']
    parts.append(f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{pad_l + plot_w}" y2="{pad_t + plot_h}" '
                 'stroke="#888"/>')
    for k, (name, c) in enumerate(counts.items()):
        colour = COLOURS[k % len(COLOURS)]
        for i, n in enumerate(c):
            if not n:
                continue
            h = plot_h * n / top
            x = pad_l + i * plot_w / bins + k * bar_w
            label = f"{name}: {lo + i * step:.4g} to {lo + (i + 1) * step:.4g}: {n:.3g}"
            parts.append(f'<rect x="{x:.1f}" y="{pad_t + plot_h - h:.1f}" width="{max(bar_w - 0.5, 0.5):.1f}" '
                         f'height="{h:.1f}" fill="{colour}"><title>{escape(label)}</title></rect>')
    for label, x in thresholds:
        px = pad_l + plot_w * (x - lo) / (hi - lo)
        parts.append(f'<line x1="{px:.1f}" y1="{pad_t}" x2="{px:.1f}" y2="{pad_t + plot_h}" stroke="#d62728" '
                     f'stroke-dasharray="4 3"><title>{escape(label)} = {x:g}</title></line>')
        parts.append(f'<text x="{px + 3:.1f}" y="{pad_t + 10}" font-size="10" fill="#d62728">'
                     f'{escape(label)}={x:g}</text>')
    parts.append(f'<text x="{pad_l}" y="{height - 8}" font-size="10">{lo:.4g}</text>')
    parts.append(f'<text x="{pad_l + plot_w}" y="{height - 8}" font-size="10" text-anchor="end">{hi:.4g}</text>')
    top_label = f"{top:.0%}" if density else f"{top:g}"
    parts.append(f'<text x="{pad_l - 4}" y="{pad_t + 10}" font-size="10" text-anchor="end">{top_label}</text>')
    if len(counts) > 1:
        for k, name in enumerate(counts):
            x = pad_l + plot_w - 130 * (len(counts) - k)
            parts.append(f'<rect x="{x}" y="{pad_t}" width="10" height="10" fill="{COLOURS[k % len(COLOURS)]}"/>'
                         f'<text x="{x + 14}" y="{pad_t + 9}" font-size="10">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)
