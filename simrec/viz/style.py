"""One paper style for every simrec figure.

Sizes fit a two-column paper: a single-column figure is 3.3 in wide, a
double-column one 6.9 in. Fonts are 7-8 pt (never smaller than 7 pt once
printed at 100 %). Each update policy has a fixed colour and marker
(colour-blind-safe Okabe-Ito palette) in the order oracle, online, minute,
hourly, daily, frozen; any other policy name gets the next free colour and
marker the first time it is seen, so a policy looks the same in every figure
drawn by one process.

Typical use::

    from simrec.viz import style

    with style.paper_style():
        fig = Figure(figsize=style.figsize())
        ...
    style.save(fig, "out/ctr")  # writes out/ctr.pdf and out/ctr.png (200 dpi)
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib import ticker
from matplotlib.figure import Figure

from simrec.results.collect import atomic_output

__all__ = [
    "COLUMN_WIDTH_IN",
    "DOUBLE_COLUMN_WIDTH_IN",
    "PNG_DPI",
    "POLICY_ORDER",
    "RC_PARAMS",
    "DurationLocator",
    "bytes_scale",
    "duration_axis",
    "figsize",
    "format_bytes",
    "format_duration",
    "paper_style",
    "policy_color",
    "policy_marker",
    "policy_order",
    "policy_style",
    "save",
    "time_unit",
]

#: Width of one column of a two-column paper, inches.
COLUMN_WIDTH_IN = 3.3
#: Width of a figure spanning both columns, inches.
DOUBLE_COLUMN_WIDTH_IN = 6.9
#: Resolution of the PNG written next to each PDF, dots per inch.
PNG_DPI = 200

#: Known policies in legend order (strongest to weakest freshness).
POLICY_ORDER: tuple[str, ...] = ("oracle", "online", "minute", "hourly", "daily", "frozen")

# Okabe-Ito: black, blue, bluish green, orange, vermillion, grey; then the rest.
_COLORS = (
    "#000000",  # oracle
    "#0072B2",  # online
    "#009E73",  # minute
    "#E69F00",  # hourly
    "#D55E00",  # daily
    "#7F7F7F",  # frozen
    "#CC79A7",
    "#56B4E9",
    "#8C564B",
    "#BCBD22",
    "#17BECF",
    "#9467BD",
)
_MARKERS = ("*", "o", "s", "^", "D", "X", "v", "P", "<", ">", "h", "p")

_registry: dict[str, int] = {name: i for i, name in enumerate(POLICY_ORDER)}

#: rcParams applied by :func:`paper_style`.
RC_PARAMS: dict[str, object] = {
    "figure.figsize": (COLUMN_WIDTH_IN, 2.2),
    "figure.dpi": 100,
    "figure.constrained_layout.use": True,
    "figure.constrained_layout.h_pad": 0.02,
    "figure.constrained_layout.w_pad": 0.02,
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica", "sans-serif"],
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "axes.linewidth": 0.6,
    "axes.grid": True,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": mpl.cycler(color=list(_COLORS)),
    "grid.linewidth": 0.4,
    "grid.alpha": 0.35,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.major.size": 2.5,
    "ytick.major.size": 2.5,
    "xtick.minor.size": 1.5,
    "ytick.minor.size": 1.5,
    "legend.fontsize": 7,
    "legend.title_fontsize": 7,
    "legend.frameon": False,
    "legend.handlelength": 1.8,
    "legend.columnspacing": 1.0,
    "legend.borderaxespad": 0.2,
    "lines.linewidth": 1.1,
    "lines.markersize": 3.5,
    "patch.linewidth": 0.5,
    "hatch.linewidth": 0.6,
    "errorbar.capsize": 1.5,
    "savefig.dpi": PNG_DPI,
    "savefig.bbox": None,  # keep the exact paper width
    "pdf.fonttype": 42,  # embed TrueType, not Type 3 (required by most venues)
    "ps.fonttype": 42,
    "svg.fonttype": "none",
}


@contextlib.contextmanager
def paper_style(**overrides: object) -> Iterator[None]:
    """Apply the paper rcParams inside a ``with`` block.

    Args:
        **overrides: rcParams to change on top of :data:`RC_PARAMS`; names
            contain dots, so pass them as ``**{"font.size": 9}``.

    Yields:
        Nothing; rcParams are restored on exit.
    """
    with mpl.rc_context({**RC_PARAMS, **overrides}):
        yield


def figsize(width: str | float = "single", aspect: float = 0.68) -> tuple[float, float]:
    """Figure size for the paper.

    Args:
        width: ``"single"`` (3.3 in), ``"double"`` (6.9 in) or a width in inches.
        aspect: Height divided by width.

    Returns:
        ``(width, height)`` in inches.
    """
    w = {"single": COLUMN_WIDTH_IN, "double": DOUBLE_COLUMN_WIDTH_IN}.get(width, width)
    w = float(w)  # type: ignore[arg-type]
    return (w, round(w * aspect, 3))


def _index(policy: str) -> int:
    policy = str(policy)
    if policy not in _registry:
        _registry[policy] = len(_registry)
    return _registry[policy]


def policy_order(policies: Iterable[str]) -> list[str]:
    """Sort policy names: known policies in :data:`POLICY_ORDER`, then the rest.

    Unknown names are sorted alphabetically and registered, so they keep the
    same colour in every later figure.

    Args:
        policies: Policy names (duplicates allowed).

    Returns:
        Unique names in legend order.
    """
    names = {str(p) for p in policies}
    known = [p for p in POLICY_ORDER if p in names]
    others = sorted(names - set(POLICY_ORDER))
    for p in others:
        _index(p)
    return known + sorted(others, key=_index)


def policy_color(policy: str) -> str:
    """Fixed colour of a policy (hex string)."""
    i = _index(policy)
    if i < len(_COLORS):
        return _COLORS[i]
    cmap = mpl.colormaps["tab20"]
    return mpl.colors.to_hex(cmap((i - len(_COLORS)) % cmap.N))


def policy_marker(policy: str) -> str:
    """Fixed marker of a policy (matplotlib marker code)."""
    return _MARKERS[_index(policy) % len(_MARKERS)]


def policy_style(policy: str) -> dict[str, object]:
    """Line keyword arguments for a policy: colour, marker and line style.

    The oracle is dashed, every other policy solid.

    Args:
        policy: Policy name.

    Returns:
        Keyword arguments for ``Axes.plot``.
    """
    return {
        "color": policy_color(policy),
        "marker": policy_marker(policy),
        "linestyle": "--" if policy == "oracle" else "-",
    }


def save(fig: Figure, path_stem: str | os.PathLike[str]) -> list[Path]:
    """Write a figure as vector PDF and as PNG at 200 dpi, atomically.

    Each file is first written to a temporary file in the target folder and
    then renamed, so an interrupted call never leaves a half-written figure.

    Args:
        fig: The figure.
        path_stem: Output path without suffix (``out/ctr`` → ``out/ctr.pdf``
            and ``out/ctr.png``). A ``.pdf``/``.png`` suffix is replaced.

    Returns:
        The two paths written (PDF first).
    """
    stem = Path(path_stem)
    if stem.suffix.lower() in (".pdf", ".png"):
        stem = stem.with_suffix("")
    written = []
    with paper_style():
        for fmt, extra in (
            ("pdf", {"metadata": {"CreationDate": None}}),  # reproducible bytes
            ("png", {"dpi": PNG_DPI, "metadata": {"Software": None}}),
        ):
            target = stem.with_name(f"{stem.name}.{fmt}")
            with atomic_output(target) as tmp:
                fig.savefig(tmp, format=fmt, **extra)
            written.append(target)
    return written


# --- units -------------------------------------------------------------------

_DURATION_UNITS = (("d", 86400.0), ("h", 3600.0), ("min", 60.0), ("s", 1.0), ("ms", 1e-3))


def format_duration(seconds: float, digits: int = 2) -> str:
    """Human-readable duration: ``90`` → ``"1.5 min"``, ``86400`` → ``"1 d"``.

    Args:
        seconds: Duration in seconds (NaN or inf → ``"never"``).
        digits: Significant digits.

    Returns:
        The duration with the largest unit that keeps the number ≥ 1.
    """
    if seconds is None or not np.isfinite(seconds):
        return "never"
    if seconds == 0:
        return "0 s"
    a = abs(seconds)
    for unit, size in _DURATION_UNITS:
        if a >= size or unit == "ms":
            v = seconds / size
            text = f"{v:.{digits}g}"
            return f"{v:.0f} {unit}" if "e" in text else f"{text} {unit}"
    raise AssertionError("unreachable")


def format_bytes(n: float, digits: int = 3) -> str:
    """Human-readable byte count with decimal prefixes (``1.5e9`` → ``"1.5 GB"``).

    Args:
        n: Number of bytes.
        digits: Significant digits.

    Returns:
        The count with the largest prefix that keeps the number ≥ 1.
    """
    if n is None or not np.isfinite(n):
        return "n/a"
    for prefix, size in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3), ("", 1)):
        if abs(n) >= size or prefix == "":
            v = n / size
            text = f"{v:.{digits}g}"
            return f"{v:.0f} {prefix}B" if "e" in text else f"{text} {prefix}B"
    raise AssertionError("unreachable")


def bytes_scale(max_bytes: float) -> tuple[float, str]:
    """Decimal prefix to plot byte counts with.

    Args:
        max_bytes: Largest value to show, bytes.

    Returns:
        ``(divisor, unit)``, e.g. ``(1e9, "GB")``.
    """
    for unit, size in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if np.isfinite(max_bytes) and max_bytes >= size:
            return size, unit
    return 1.0, "B"


# Candidate ticks for a log-scaled duration axis, seconds: primary, secondary.
_PRIMARY_TICKS = (1e-3, 1.0, 60.0, 3600.0, 86400.0, 7 * 86400.0, 30 * 86400.0)
_SECONDARY_TICKS = (1e-2, 0.1, 10.0, 600.0, 6 * 3600.0)


def _format_tick(seconds: float, _pos: object = None) -> str:
    s = format_duration(seconds, digits=3)
    return s.replace(" ", "\u2009")  # thin space keeps tick labels compact


class DurationLocator(ticker.Locator):
    """Ticks at round durations (1 s, 1 min, 1 h, 1 d, 7 d...) on a log axis.

    Adds 10 s, 10 min and 6 h when fewer than four round durations are in
    view, and falls back to decades when the view is outside their range.
    """

    def __call__(self) -> list[float]:
        lo, hi = sorted(self.axis.get_view_interval())
        return self.tick_values(lo, hi)

    def tick_values(self, vmin: float, vmax: float) -> list[float]:
        lo, hi = sorted((vmin, vmax))
        ticks = [t for t in _PRIMARY_TICKS if lo <= t <= hi]
        if len(ticks) < 4:
            ticks = sorted(ticks + [t for t in _SECONDARY_TICKS if lo <= t <= hi])
        if len(ticks) < 2 and lo > 0 and hi > lo:
            decades = np.arange(math.floor(np.log10(lo)), math.ceil(np.log10(hi)) + 1)
            ticks = [float(10.0**d) for d in decades]
        return ticks


def duration_axis(axis: mpl.axis.Axis, log: bool = True) -> None:
    """Label an axis holding seconds with round durations (``1 min``, ``1 h``).

    Args:
        axis: ``ax.xaxis`` or ``ax.yaxis``; values must be seconds.
        log: Also set a log scale.
    """
    if log:
        if axis is axis.axes.xaxis:
            axis.axes.set_xscale("log")
        else:
            axis.axes.set_yscale("log")
    axis.set_major_locator(DurationLocator())
    axis.set_major_formatter(ticker.FuncFormatter(_format_tick))
    axis.set_minor_formatter(ticker.NullFormatter())


def time_unit(span_s: float) -> tuple[float, str]:
    """Unit to show a linear time axis spanning ``span_s`` seconds in.

    Args:
        span_s: Span of the axis, seconds.

    Returns:
        ``(seconds per unit, unit name)``, e.g. ``(3600.0, "h")``.
    """
    span_s = abs(float(span_s)) if np.isfinite(span_s) else 0.0
    if span_s >= 3 * 86400:
        return 86400.0, "d"
    if span_s >= 3 * 3600:
        return 3600.0, "h"
    if span_s >= 3 * 60:
        return 60.0, "min"
    return 1.0, "s"
