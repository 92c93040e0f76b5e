"""Plots of the HTML report, drawn with matplotlib and inlined as SVG.

Why matplotlib: the report needs stacked histograms with shared bins, log axes with readable ticks, labelled
threshold lines and a waterfall; a hand-written SVG writer got each of those wrong (min/max-only axes, clipped
labels, scientific notation). matplotlib draws them correctly, writes SVG with text kept as text (small, selectable,
no fonts embedded) and needs no browser script. It is imported only here, inside the functions, and only the
report imports this module, so ``lima-data build`` starts without it until it writes the report.

Every function returns an ``<svg>`` element (no XML prolog) ready to inline; the output is deterministic (fixed
hash salt, no date metadata). A figure is made once per kind of plot and thread and reused (:func:`_figure`): the
same bytes as on a new figure, at a fraction of the cost.
"""

from __future__ import annotations

import io
import math
import re
import threading
from collections.abc import Sequence

#: Colours: kept / passed, dropped, and the reference set (Tableau 10, readable for the common colour blindness).
KEPT, DROPPED, REFERENCE, THRESHOLD = "#4c78a8", "#e45756", "#f58518", "#222222"
#: Drop reasons of one filter, stacked in shades of red.
DROPPED_SHADES = (DROPPED, "#9d2b2b", "#f2a7a7", "#c2185b")

_RC = {
    "svg.fonttype": "none",  # text stays text: smaller files, selectable labels
    "svg.hashsalt": "lima-data",  # deterministic element ids
    "font.size": 9,
    "font.family": "sans-serif",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
}
#: The reused figures of :func:`_figure`, per thread.
_CANVASES = threading.local()


def _figure(kind: str, width: float, height: float, ncols: int = 1, margins: dict[str, float] | None = None):
    """The figure and axes of one ``kind`` of plot, ``width`` x ``height`` inches, placed by ``margins``
    (``subplots_adjust`` fractions) or afterwards by :func:`_place`: matplotlib's constrained layout would draw each
    figure twice (once to measure, once to write), which doubles what a figure costs.

    One figure per (kind, columns) is made once per thread and reused, emptied by :func:`_empty` (what the previous
    plot drew removed, scales and limits back to automatic): making a Figure, its Axes and their tick objects is
    more than half of what a small plot costs (about 11 of 20 ms for an empty one on the development machine)."""
    canvases = _CANVASES.__dict__.setdefault("figures", {})
    key = (kind, ncols)
    if key not in canvases:
        import matplotlib
        from matplotlib.figure import Figure

        with matplotlib.rc_context(_RC):
            fig = Figure(figsize=(width, height))
            axes = fig.subplots(1, ncols, squeeze=False)[0]
        canvases[key] = fig, list(axes)
    fig, axes = canvases[key]
    fig.set_size_inches(width, height)
    if margins:
        fig.subplots_adjust(**margins)
    for legend in list(fig.legends):
        legend.remove()
    for ax in axes:
        _empty(ax)
    return fig, axes


#: Layout sizes in points (1/72 inch) for :func:`_place`, as the constrained layout measured them for these plots:
#: the pad around everything, a tick (3.5 long, 3.5 from its label), an axis label (4 from the tick labels, its
#: 9-point line), and what lies below the x axis: tick labels and the axis label, then the legend of a lengths
#: figure.
_PAD, _TICK, _TICK_PAD, _AXIS_LABEL = 3.0, 3.5, 3.5, 13.0
_BELOW = {"funnel": 32.0, "lengths": 52.4}
_ABOVE = {"funnel": 3.0, "lengths": 18.1}


def _label_points(text: str, size: float = 9) -> float:
    """The width in points of ``text`` in the report's sans-serif font at ``size`` points (what the SVG writer
    measures it as)."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import text_to_path

    return text_to_path.get_text_width_height_descent(
        text, FontProperties(family=_RC["font.family"], size=size), ismath=False)[0]


def _tick_labels(axis) -> list[tuple[float, str]]:
    """The major ticks an axis will draw: ``(position along the axis, 0-1, label)``, labels as its formatter writes
    them."""
    lo, hi = sorted(axis.get_view_interval())
    scale = axis.get_transform()
    start, end = scale.transform([lo, hi])
    if not end > start:  # an empty or degenerate view: nothing drawn along it
        return []
    locs = [x for x in axis.get_majorticklocs() if lo - 1e-9 * (hi - lo) <= x <= hi + 1e-9 * (hi - lo)]
    labels = axis.get_major_formatter().format_ticks(locs)
    return [(float((scale.transform([x])[0] - start) / (end - start)), label) for x, label in zip(locs, labels)]


def _place(fig, axes, kind: str, texts: Sequence[tuple[float, str]] = ()) -> None:
    """Place ``axes`` side by side, equally wide, with room for what is drawn around each (y tick labels and
    axis label on the left, x tick labels that stick out at either end, and ``texts``: ``(fraction of the first
    axes' width where it starts, text)`` written left-aligned at 8 points inside it, which may run past its right
    edge), the constrained layout's result computed in one pass from the labels' widths (:func:`_label_points`)."""
    width, height = fig.get_size_inches() * 72
    sides = []  # per axes: left margin, right margin, [(fraction along x, points out to the left, to the right)]
    for i, ax in enumerate(axes):
        if not ax.axison:
            sides.append((_PAD, _PAD, []))
            continue
        ticks = _tick_labels(ax.yaxis)
        tick = ax.yaxis.get_major_ticks(1)[0] if ticks else None
        length = tick.tick1line.get_markersize() if tick is not None else _TICK
        left = _PAD + max((_label_points(label) for _, label in ticks if label), default=0) + length + _TICK_PAD
        if ax.get_ylabel():
            left += _AXIS_LABEL
        overhangs = [(f, w / 2, w / 2) for f, w in ((f, _label_points(label)) for f, label in _tick_labels(ax.xaxis)
                                                    if label)]
        if i == 0:
            overhangs += [(f, 0.0, _label_points(text, 8)) for f, text in texts]
        sides.append((left, _PAD, overhangs))
    for _ in range(4):  # what sticks out depends on the axes' width, which depends on the margins: converges fast
        each = (width - sum(left + right for left, right, _ in sides)) / len(axes)
        sides = [(max(left, _PAD + max((out - f * each for f, out, _ in xs), default=0)),
                  max(_PAD, _PAD + max((out - (1 - f) * each for f, _, out in xs), default=0)), xs)
                 for left, right, xs in sides]
    each = (width - sum(left + right for left, right, _ in sides)) / len(axes)
    bottom, top = _BELOW[kind] / height, 1 - _ABOVE[kind] / height
    x = 0.0
    for ax, (left, right, _) in zip(axes, sides):
        x += left
        ax.set_position([x / width, bottom, each / width, top - bottom])
        x += each + right


def _empty(ax) -> None:
    """``ax`` as a new Axes is, keeping its tick objects: artists and legend removed, linear scales with their
    default locators and formatters, limits computed from the data again, no title or labels, axis on."""
    for container in list(ax.containers):
        container.remove()
    for artist in [*ax.patches, *ax.lines, *ax.texts, *ax.collections]:
        artist.remove()
    if ax.legend_ is not None:
        ax.legend_.remove()
    ax.set_xscale("linear")
    ax.set_yscale("linear")
    ax.set_title("")
    ax.set_xlabel("")  # also back in the middle, centred
    ax.set_ylabel("")
    ax.set_axis_on()
    ax.relim()
    ax.set_autoscale_on(True)


def _svg(fig) -> str:
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text[text.index("<svg"):], flags=re.S)  # RDF boilerplate
    return text


def number(value: float) -> str:
    """A tick or bar label: thousands separated, no scientific notation (``17,740``, ``0.15``, ``3``)."""
    if value == 0:
        return "0"
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _formatter():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _pos: number(v))


def wants_log(values: Sequence[float]) -> bool:
    """True when the positive values span at least two orders of magnitude (max / min >= 100) and few values
    (< 5%) are zero or negative: those are drawn in the lowest bin of a log axis."""
    import numpy as np

    values = np.asarray(values, dtype=float)
    positive = values[values > 0]
    if not positive.size or positive.size < 0.95 * values.size:
        return False
    return positive.max() / positive.min() >= 100


def _bins(values: Sequence[float], log: bool, count: int = 40):
    import numpy as np

    values = np.asarray(values, dtype=float)
    lo, hi = values.min(), values.max()
    if log:
        lo = values[values > 0].min()
        return np.geomspace(lo, hi * 1.0001, count + 1)
    if hi - lo < count and np.all(values == np.round(values)):
        return np.arange(lo - 0.5, hi + 1.5, 1.0)  # one bar per integer
    return np.linspace(lo, hi if hi > lo else lo + 1, count + 1)


def _log_x(ax, edges) -> None:
    """Log x axis with labels at 1, 2, 5 x 10^k when it spans under three decades, else at powers of ten."""
    from matplotlib.ticker import LogLocator, NullFormatter

    ax.set_xscale("log")
    decades = math.log10(edges[-1] / edges[0])
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if decades < 3 else (1.0,)))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _linear_x(ax, ticks: int) -> None:
    """At most ``ticks`` round ticks on a linear x axis, so long labels ("12,000") do not run together."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(nbins=ticks, steps=[1, 2, 2.5, 5, 10]))


def histogram_svg(passed: Sequence[float], dropped: Sequence[float] | dict[str, Sequence[float]], *, unit: str,
                  thresholds: Sequence[tuple[str, float]] = (), dropped_label: str = "dropped here",
                  width: float = 5.4, height: float = 2.1) -> str:
    """A histogram of one measured value: candidates the filter kept and those it dropped, stacked (kept in blue,
    dropped in red; one shade of red per drop reason), with the recipe's thresholds as labelled vertical lines
    inside the plot.

    Args:
        passed: the values (numbers) of the candidates the filter kept.
        dropped: the values of those it dropped, or ``{reason: values}``.
        unit: the x axis label (``"characters"``, ``"ratio"``, ``"votes"``...).
        thresholds: ``(setting name, value)`` pairs, e.g. ``("min_chars", 1200)``.
    Log x scale when the values span orders of magnitude (:func:`wants_log`); values <= 0 then count in the lowest
    bin. Log y scale when the tallest bar is 50 times the shortest, so a few candidates beside a tall bar stay
    visible. Raises ``ValueError`` when there is no value at all.
    """
    import numpy as np

    groups = dict(dropped) if isinstance(dropped, dict) else {"": dropped}
    groups = {r: np.asarray(v, dtype=float) for r, v in groups.items() if len(v)}
    groups = dict(sorted(groups.items(), key=lambda kv: -kv[1].size))
    passed = np.asarray(passed, dtype=float)
    values = np.concatenate([passed, *groups.values()])
    if not values.size:
        raise ValueError("nothing to plot")
    log = wants_log(values)
    edges = _bins(np.concatenate([values, [x for _, x in thresholds if not log or x > 0]]), log)
    floor = edges[0]
    clip = (lambda vs: np.maximum(vs, floor)) if log else (lambda vs: vs)
    rows = math.ceil((1 + len(groups)) / 2)  # legend rows, two entries a row
    height += 0.2 * rows
    fig, (ax,) = _figure("histogram", width, height, margins={"left": 0.13, "right": 0.94, "top": 1 - 0.1 / height,
                                              "bottom": (0.5 + 0.2 * rows) / height})
    series = [clip(passed)] + [clip(vs) for vs in groups.values()]
    labels = [f"kept by this filter ({len(passed):,})"] + [
        f"{dropped_label}{': ' + reason if reason else ''} ({len(vs):,})" for reason, vs in groups.items()]
    colours = [KEPT] + [DROPPED_SHADES[i % len(DROPPED_SHADES)] for i in range(len(groups))]
    keep = [i for i, vs in enumerate(series) if len(vs) or i == 0]
    _stacked_steps(ax, [series[i] for i in keep], edges, [colours[i] for i in keep], [labels[i] for i in keep])
    if log:
        _log_x(ax, edges)
    else:
        _linear_x(ax, 7)
    counts = np.histogram(clip(values), bins=edges)[0]
    log_y = counts.max() >= 50 * max(1, counts[counts > 0].min())  # a few candidates beside a tall bar
    if log_y:
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.8)
    ax.xaxis.set_major_formatter(_formatter())
    ax.yaxis.set_major_formatter(_formatter())
    ax.set_xlabel(unit + (" (log scale)" if log else ""))
    ax.set_ylabel("candidates" + (" (log)" if log_y else ""))
    from matplotlib.transforms import blended_transform_factory

    trans = blended_transform_factory(ax.transData, ax.transAxes)
    for i, (name, x) in enumerate(thresholds):
        if log and x <= 0:
            continue
        ax.axvline(x, color=THRESHOLD, linestyle="--", linewidth=1)
        right = x >= (math.sqrt(edges[0] * edges[-1]) if log else (edges[0] + edges[-1]) / 2)
        ax.text(x, 0.97 - 0.12 * (i % 2), f" {name} = {number(x)} ", transform=trans, rotation=0,
                ha="right" if right else "left", va="top", fontsize=8, color=THRESHOLD,
                bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.85})
    handles, names = ax.get_legend_handles_labels()
    ax.legend(handles[::-1] if names and not names[0].startswith("kept") else handles,
              names[::-1] if names and not names[0].startswith("kept") else names,
              loc="upper center", bbox_to_anchor=(0.5, -0.42 / (height - (0.6 + 0.2 * rows))), ncol=2,
              frameon=False, fontsize=8)
    return _svg(fig)


def _stacked_steps(ax, series, edges, colours, labels) -> None:
    """What ``ax.hist(series, bins=edges, stacked=True, histtype="stepfilled", color=colours, label=labels)``
    draws (the same polygons, added in the same order: the top of the stack first), with the data limits set from
    the polygons' corners at once: ``hist`` adds each polygon with ``add_patch``, which walks its ~160 edges one
    Bezier segment at a time in Python to find the same limits (a tenth of a histogram's time)."""
    import numpy as np
    from matplotlib.patches import Polygon

    n = len(edges)
    x = np.zeros(4 * n - 3)
    x[0:2 * n - 1:2], x[1:2 * n - 1:2] = edges, edges[:-1]
    x[2 * n - 1:] = x[1:2 * n - 1][::-1]
    y = np.zeros(4 * n - 3)
    polygons = []
    top = np.zeros(n - 1)
    for values, colour, label in zip(series, colours, labels):
        y[2 * n - 1:] = y[1:2 * n - 1][::-1]  # the previous top is this polygon's bottom
        top = top + np.histogram(values, bins=edges)[0]
        y[1:2 * n - 1:2] = y[2:2 * n:2] = top
        y[0] = y[-1]
        polygon = Polygon(np.column_stack([x[:-1], y[:-1]]), closed=True, facecolor=colour, label=label)
        polygon.sticky_edges.y.append(0)
        polygons.append(polygon)
    for polygon in reversed(polygons):  # lower in the stack drawn over higher, as hist does
        ax.add_artist(polygon)
        ax.update_datalim(polygon.get_xy())
    ax.autoscale_view()


def _step_outline(ax, values, edges, weight: float, colour: str):
    """What ``ax.hist(values, bins=edges, weights=[weight] * len(values), histtype="step", linewidth=1.6,
    color=colour)`` draws (the same open outline), with the data limits set from its corners at once (see
    :func:`_stacked_steps`). Returns the outline (the legend's handle)."""
    import numpy as np
    from matplotlib.patches import Polygon

    n = len(edges)
    x = np.zeros(2 * n)
    x[0:2 * n - 1:2], x[1:2 * n - 1:2] = edges, edges[:-1]
    x[2 * n - 1] = edges[-1]
    y = np.zeros(2 * n)
    y[1:2 * n - 1:2] = y[2:2 * n:2] = np.histogram(values, bins=edges, weights=np.full(len(values), weight))[0]
    outline = Polygon(np.column_stack([x, y]), closed=False, fill=False, edgecolor=colour, linewidth=1.6, zorder=2)
    outline.sticky_edges.y.append(0)
    ax.add_artist(outline)
    ax.update_datalim(outline.get_xy())
    ax.autoscale_view()
    return outline


def funnel_svg(rows: Sequence[tuple[str, int, int]], *, width: float = 5.6) -> str:
    """A horizontal waterfall: one bar per stage that dropped something, the candidates it kept in one colour and
    those it dropped in the other, with the counts written on the bars.

    Args:
        rows: ``(label, in, kept)`` per stage, top to bottom; the first is usually ``("read", n, n)``.
    """
    height = 0.55 + 0.3 * len(rows)
    fig, (ax,) = _figure("funnel", width, height)
    top = max((r[1] for r in rows), default=1) or 1
    ax.barh(range(len(rows)), [kept for _, _, kept in rows], color=KEPT, height=0.7)
    lost = [(y, entered - kept, kept) for y, (_, entered, kept) in enumerate(rows) if entered > kept]
    if lost:
        ys, widths, lefts = zip(*lost)
        ax.barh(ys, widths, left=lefts, color=DROPPED, height=0.7)
    counts = []
    for y, (label, entered, kept) in enumerate(rows):
        text = f"{kept:,}" + (f"  (−{entered - kept:,})" if entered > kept else "")
        ax.text(entered + top * 0.01, y, text, va="center", ha="left", fontsize=8)
        counts.append(((entered + top * 0.01) / (top * 1.35), text))
    ax.set_yticks(range(len(rows)), [r[0] for r in rows])
    ax.yaxis.set_inverted(True)
    ax.set_xlim(0, top * 1.35)
    ax.xaxis.set_major_formatter(_formatter())
    ax.tick_params(axis="y", length=0)
    _place(fig, [ax], "funnel", counts)
    label = "candidates (blue: go on; red: dropped at this stage)"
    box = ax.get_position()
    room = (1 - box.x0) * width * 72 - _PAD  # the label is centred under the bars unless that would clip it
    ax.set_xlabel(label, x=min(0.5, (room - _label_points(label) / 2) / (box.width * width * 72)))
    return _svg(fig)


def lengths_svg(panels: Sequence[tuple[str, dict[str, Sequence[float]]]], *, unit: str = "characters",
                width: float = 7.6, height: float = 2.4) -> str:
    """Side-by-side length distributions as shares of each set (so sets of different sizes compare): one panel
    per ``(title, {set name: values})``, the first set in the kept colour, the second in the reference colour;
    each panel's title gives the sets' medians, one legend below names the sets."""
    import numpy as np

    fig, axes = _figure("lengths", width, height, ncols=len(panels))
    handles = {}
    for ax, (title, series) in zip(axes, panels):
        values = [v for vs in series.values() for v in vs]
        if not values:
            ax.set_title(title)
            ax.set_axis_off()
            ax.text(0.5, 0.5, "no rows", transform=ax.transAxes, ha="center", color="#777")
            continue
        log = wants_log(values)
        edges = _bins(values, log, count=30)
        floor = edges[0]
        medians = []
        for colour, (name, vs) in zip((KEPT, REFERENCE, DROPPED), series.items()):
            if not vs:
                medians.append("-")
                continue
            medians.append(number(float(np.median(vs))))
            vs = [max(v, floor) for v in vs] if log else list(vs)
            handles.setdefault(name, _step_outline(ax, vs, edges, 100.0 / len(vs), colour))
        ax.set_title(f"{title}: median " + " vs ".join(medians))
        if log:
            _log_x(ax, edges)
        else:
            _linear_x(ax, 5)
        ax.xaxis.set_major_formatter(_formatter())
        ax.set_xlabel(unit + (" (log scale)" if log else ""))
        ax.set_ylabel("% of the set")
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=len(handles),
                   frameon=False, fontsize=8)
    _place(fig, axes, "lengths")
    return _svg(fig)
