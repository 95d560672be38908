"""Paper figures drawn from the tables of :mod:`simrec.results.collect`.

Every ``fig_*`` function takes DataFrames only (never the simulator), draws on
``ax`` when given (else on a new single-column figure in the paper style) and
returns the :class:`~matplotlib.figure.Figure`. Lines are one per *series*: a
policy, disambiguated by its interval, scenario and infra only when the data
holds several of them. Runs of one series that differ only in ``seed`` are
replicates: lines show their mean, shaded bands the 95 % normal confidence
interval of the mean (mean ± 1.96 · sd / √n over seeds); with one seed there is
no band.

Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot),
so drawing many of them in a batch neither needs a display nor leaks memory.
"""

from __future__ import annotations

import functools
import math
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from simrec.results.collect import Collected
from simrec.viz import style

__all__ = [
    "FIGURES",
    "FIGURE_INPUTS",
    "NoDataError",
    "draw_all",
    "fig_ctr_decay",
    "fig_ctr_over_time",
    "fig_ctr_vs_interval",
    "fig_first_impression",
    "fig_pipeline_timeline",
    "fig_staleness_cdf",
    "seed_ci",
]

#: z value of a two-sided 95 % normal confidence interval.
Z95 = 1.959963984540054

_SERIES_COLUMNS = ("policy", "policy_interval_s", "scenario", "infra")
_VARIANT_LINESTYLES = ("-", "--", ":", "-.")

#: Pipeline stages drawn by :func:`fig_pipeline_timeline`: (name, start, end, colour).
PIPELINE_STAGES: tuple[tuple[str, str, str, str], ...] = (
    ("save", "save_start_s", "save_end_s", "#56B4E9"),
    ("validate", "validate_start_s", "validate_end_s", "#F0E442"),
    ("transfer", "transfer_start_s", "transfer_end_s", "#009E73"),
    ("load", "load_start_s", "load_end_s", "#CC79A7"),
)


class NoDataError(ValueError):
    """The input holds nothing this figure can show."""


# --- helpers -------------------------------------------------------------------


@dataclass(frozen=True)
class _Series:
    label: str
    policy: str
    style: dict


def _styled(func: Callable[..., Figure]) -> Callable[..., Figure]:
    """Run a figure function inside :func:`simrec.viz.style.paper_style`."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with style.paper_style():
            return func(*args, **kwargs)

    return wrapper


def _require(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    if df is None or df.empty:
        raise NoDataError(f"{what}: no rows")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise NoDataError(f"{what}: missing columns {missing}")


def _new_axes(ax: Axes | None, size: tuple[float, float] | None = None) -> tuple[Figure, Axes]:
    if ax is not None:
        try:
            fig = ax.get_figure(root=True)
        except TypeError:  # matplotlib < 3.10
            fig = ax.figure
        return fig, ax
    fig = Figure(figsize=size or style.figsize(), layout="constrained")
    return fig, fig.add_subplot()


def _label_series(
    df: pd.DataFrame, policy: str | None = None, warn: bool = True, by_interval: bool = True
) -> tuple[pd.Series, list[_Series]]:
    """Label each run with its series.

    Args:
        df: Any table with ``run_id`` and identity columns.
        policy: Treat every run as this policy (used for the oracle reference).
        warn: Warn when the runs mix several scenario/infra combinations.
        by_interval: Split a policy run at several intervals into one series per interval
            (not where the interval is the x axis).

    Returns:
        ``(labels, series)``: labels indexed by ``run_id``, and the series in
        legend order with their line style.
    """
    cols = ["run_id"] + [c for c in _SERIES_COLUMNS if c in df.columns]
    runs = df[cols].drop_duplicates("run_id").set_index("run_id")
    if policy is not None:
        runs = runs.assign(policy=policy, policy_interval_s=np.nan)
    runs["policy"] = runs["policy"].astype(str)
    if "policy_interval_s" not in runs:
        runs["policy_interval_s"] = np.nan
    labels = runs["policy"].copy()
    interval = runs["policy_interval_s"]
    n_int = interval.fillna(-1.0).groupby(runs["policy"]).nunique()
    multi = (runs["policy"].map(n_int) > 1) & by_interval
    if multi.any():
        named = interval[multi].map(style.format_duration).astype(str)
        labels[multi] = labels[multi] + " " + named
    for col in ("scenario", "infra"):
        if col in runs and runs[col].nunique(dropna=False) > 1:
            labels = labels + " · " + runs[col].astype(str)

    order = {p: i for i, p in enumerate(style.policy_order(runs["policy"]))}
    info = runs.assign(_label=labels, _o=runs["policy"].map(order))
    sort_cols = ["_o", "policy_interval_s"] + [c for c in ("scenario", "infra") if c in info]
    info = info.drop_duplicates("_label").sort_values(sort_cols, na_position="first")
    series: list[_Series] = []
    variants: dict[str, int] = {}
    for _, row in info.iterrows():
        p = row["policy"]
        k = variants.get(p, 0)
        variants[p] = k + 1
        st = style.policy_style(p)
        if k:
            st["linestyle"] = _VARIANT_LINESTYLES[k % len(_VARIANT_LINESTYLES)]
        series.append(_Series(row["_label"], p, st))
    n_combos = runs[[c for c in ("scenario", "infra") if c in runs]].drop_duplicates().shape[0]
    if warn and n_combos > 1:
        warnings.warn(
            "data mixes several scenario/infra combinations; filter it (e.g. "
            "Collected.select) for one figure per combination",
            stacklevel=3,
        )
    return labels, series


def seed_ci(per_run: pd.DataFrame, by: Sequence[str], value: str) -> pd.DataFrame:
    """Mean and 95 % normal confidence interval of a value across runs (seeds).

    Args:
        per_run: One row per run and group (e.g. per run and time bucket).
        by: Grouping columns (typically series label and x value).
        value: Column to summarise.

    Returns:
        One row per group with ``by`` columns and ``mean``, ``lo``, ``hi`` (NaN
        when fewer than two runs) and ``n`` (number of runs with a finite
        value), sorted by ``by``.
    """
    finite = per_run[np.isfinite(per_run[value].to_numpy(dtype=float))]
    g = finite.groupby(list(by), sort=True, dropna=False)[value]
    out = g.agg(mean="mean", sd="std", n="count").reset_index()
    half = Z95 * out["sd"] / np.sqrt(out["n"])
    half = half.where(out["n"] >= 2)
    out["lo"] = out["mean"] - half
    out["hi"] = out["mean"] + half
    return out.drop(columns="sd")


def _plot_series(
    ax: Axes,
    agg: pd.DataFrame,
    series: list[_Series],
    x: str,
    clip: tuple[float, float] | None = None,
    markers: int = 6,
    mark_at: Sequence[float] | None = None,
    drawstyle: str = "default",
) -> list[Line2D]:
    """Draw mean lines and seed bands; returns the lines in legend order.

    Markers go on every ``len / markers``-th point (staggered between series),
    or, with ``mark_at``, where the line first reaches each of those y values
    (used for ECDFs, whose flat tops would otherwise stack markers).
    """
    lines = []
    for i, s in enumerate(series):
        d = agg[agg["_series"] == s.label].sort_values(x)
        if d.empty:
            continue
        xs = d[x].to_numpy(dtype=float)
        ys = d["mean"].to_numpy(dtype=float)
        if mark_at is None:
            step = max(1, len(xs) // markers)
            markevery = (min(i * max(1, step // 3), len(xs) - 1) % step, step)
        else:
            markevery = sorted({int(np.argmax(ys >= q)) for q in mark_at if (ys >= q).any()})
        (line,) = ax.plot(
            xs,
            ys,
            label=s.label,
            markevery=markevery,
            drawstyle=drawstyle,
            # fresher policies (listed first) on top: their lines are shorter
            zorder=3 if s.policy == "oracle" else 2 + 0.01 * (len(series) - i),
            **s.style,
        )
        lines.append(line)
        if (d["n"] >= 2).any():
            lo, hi = d["lo"].to_numpy(dtype=float), d["hi"].to_numpy(dtype=float)
            if clip is not None:
                lo, hi = np.clip(lo, *clip), np.clip(hi, *clip)
            ax.fill_between(
                xs,
                lo,
                hi,
                color=s.style["color"],
                alpha=0.2,
                linewidth=0,
                step="post" if drawstyle == "steps-post" else None,
                zorder=1,
            )
    return lines


def _legend(ax: Axes, handles: list | None = None, ncols: int | None = None) -> None:
    """Legend in a band above the axes, so it never hides data."""
    if handles is None:
        handles, _ = ax.get_legend_handles_labels()
    if not handles:
        return
    n = len(handles)
    ncols = ncols or (n if n <= 3 else min(4, math.ceil(n / 2)))
    ax.legend(
        handles=handles,
        loc="lower left",
        bbox_to_anchor=(0.0, 1.02, 1.0, 0.1),
        mode="expand",
        ncols=ncols,
        borderaxespad=0.0,
        handlelength=1.8,
        handletextpad=0.4,
    )


class _PercentTicks(ticker.Formatter):
    """Fractions as percent with just enough decimals to tell ticks apart."""

    def __init__(self) -> None:
        self.decimals = 1

    def format_ticks(self, values):
        v = np.sort(np.asarray(values, dtype=float))
        steps = np.diff(v) * 100
        steps = steps[steps > 1e-12]
        if steps.size:
            self.decimals = int(np.clip(-math.floor(math.log10(steps.min()) + 1e-9), 0, 4))
        return [self(x, i) for i, x in enumerate(values)]

    def __call__(self, x, pos=None) -> str:
        return f"{x * 100:.{self.decimals}f}%"


def _percent_axis(axis) -> None:
    axis.set_major_formatter(_PercentTicks())


def _ecdf_on_grid(values: np.ndarray, weights: np.ndarray, grid: np.ndarray, total: float):
    """Weighted share of ``values`` ≤ each grid point (NaN values never count)."""
    ok = np.isfinite(values)
    v, w = values[ok], weights[ok]
    if v.size == 0 or total <= 0:
        return np.zeros_like(grid)
    order = np.argsort(v, kind="stable")
    v, cw = v[order], np.cumsum(w[order])
    idx = np.searchsorted(v, grid, side="right")
    reached = np.where(idx > 0, cw[np.maximum(idx - 1, 0)], 0.0)
    return np.minimum(reached / total, 1.0)


def _log_grid(values: np.ndarray, n: int = 256) -> np.ndarray:
    v = values[np.isfinite(values) & (values > 0)]
    if v.size == 0:
        return np.geomspace(1.0, 86400.0, n)
    lo, hi = float(v.min()), float(v.max())
    # a little room on both sides so steps at the extremes stay visible
    return np.geomspace(lo / 1.5, hi * 1.5, n)


def _ecdf_figure(
    df: pd.DataFrame,
    value: str,
    weight: str | None,
    xlabel: str,
    ylabel: str,
    ax: Axes | None,
) -> Figure:
    labels, series = _label_series(df)
    values = df[value].to_numpy(dtype=float)
    grid = _log_grid(values)
    lo = grid[0]
    rows = []
    for run_id, d in df.groupby("run_id", sort=False):
        v = d[value].to_numpy(dtype=float)
        v = np.where(np.isfinite(v), np.maximum(v, lo), v)  # zero → left edge
        w = np.ones_like(v) if weight is None else d[weight].to_numpy(dtype=float)
        total = float(w.sum())
        rows.append(
            pd.DataFrame(
                {"_series": labels[run_id], "x": grid, "F": _ecdf_on_grid(v, w, grid, total)}
            )
        )
    agg = seed_ci(pd.concat(rows, ignore_index=True), ["_series", "x"], "F")
    fig, ax = _new_axes(ax)
    for line in _plot_series(ax, agg, series, "x", clip=(0.0, 1.0), mark_at=(0.25, 0.5, 0.75)):
        if not (np.asarray(line.get_ydata(), dtype=float) > 0).any():
            # a curve that never leaves zero lies on the x axis: say so where it is named
            line.set_label(f"{line.get_label()} (0 %)")
    style.duration_axis(ax.xaxis)
    ax.set_xlim(grid[0], grid[-1])
    ax.set_ylim(0.0, 1.02)
    ax.yaxis.set_major_locator(ticker.MultipleLocator(0.25))
    _percent_axis(ax.yaxis)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    _legend(ax)
    return fig


# --- figures ---------------------------------------------------------------------


@_styled
def fig_ctr_over_time(timeseries: pd.DataFrame, ax: Axes | None = None) -> Figure:
    """Expected CTR per time bucket, one line per policy.

    Expected CTR of a bucket is ``sum(expected_clicks) / sum(impressions)`` over
    datacenters (cohort ``"all"``), computed per run and then averaged over
    seeds. The oracle is dashed: the ``oracle`` policy's runs if present,
    otherwise ``oracle_expected_clicks / impressions`` of all runs.

    Args:
        timeseries: The ``timeseries`` table (times in seconds since the start
            of the measured period).
        ax: Axes to draw on; default a new single-column figure.

    Returns:
        The figure. x: time (days, hours, minutes or seconds, chosen from the
        span); y: expected CTR in percent.

    Raises:
        NoDataError: If there is no cohort-``"all"`` row with impressions.
    """
    need = ["run_id", "policy", "time_s", "impressions", "expected_clicks"]
    _require(timeseries, need, "fig_ctr_over_time")
    ts = timeseries
    if "cohort" in ts:
        ts = ts[ts["cohort"] == "all"]
    cols = ["expected_clicks", "impressions"]
    if "oracle_expected_clicks" in ts:
        cols.append("oracle_expected_clicks")
    keys = ["run_id", "time_s"] + (["bucket_s"] if "bucket_s" in ts else [])
    per_run = ts.groupby(keys, sort=False)[cols].sum(min_count=1).reset_index()
    per_run = per_run[per_run["impressions"] > 0]
    if per_run.empty:
        raise NoDataError("fig_ctr_over_time: no impressions in cohort 'all'")
    half = per_run["bucket_s"] / 2 if "bucket_s" in per_run else 0.0
    per_run["t"] = per_run["time_s"] + half
    per_run["ctr"] = per_run["expected_clicks"] / per_run["impressions"]

    runs_info = ts.drop_duplicates("run_id")
    labels, series = _label_series(runs_info)
    per_run["_series"] = per_run["run_id"].map(labels)
    agg = seed_ci(per_run, ["_series", "t"], "ctr")
    if "oracle" not in set(runs_info["policy"]) and "oracle_expected_clicks" in per_run:
        o_labels, o_series = _label_series(runs_info, policy="oracle", warn=False)
        ref = per_run.assign(
            _series=per_run["run_id"].map(o_labels),
            ctr=per_run["oracle_expected_clicks"] / per_run["impressions"],
        )
        if "seed" in runs_info:
            # runs of one seed share a world: average them so the band is over seeds
            ref["seed"] = ref["run_id"].map(runs_info.set_index("run_id")["seed"])
            ref = ref.groupby(["_series", "seed", "t"], sort=False)["ctr"].mean().reset_index()
        agg = pd.concat([agg, seed_ci(ref, ["_series", "t"], "ctr")], ignore_index=True)
        series = o_series + series

    unit_s, unit = style.time_unit(per_run["t"].max() - per_run["t"].min())
    agg["x"] = agg["t"] / unit_s
    fig, ax = _new_axes(ax)
    _plot_series(ax, agg, series, "x", markers=8)
    _percent_axis(ax.yaxis)
    if unit == "h":  # ticks at 6, 12, 24 h rather than 10, 20, 30 h
        ax.xaxis.set_major_locator(ticker.MaxNLocator(nbins=7, steps=[1, 1.2, 2, 2.4, 3, 6, 10]))
    ax.set_xlabel(f"Time ({unit})")
    ax.set_ylabel("Expected CTR")
    ax.set_xlim(agg["x"].min(), agg["x"].max())
    _legend(ax)
    return fig


@_styled
def fig_ctr_decay(
    timeseries: pd.DataFrame,
    ax: Axes | None = None,
    bins_per_decade: int = 4,
) -> Figure:
    """Expected CTR relative to the oracle against time since the last update.

    Rows of cohort ``"all"`` (one per bucket and datacenter) are binned by
    ``time_since_update_s`` on log-spaced bins; per run and bin the ratio is
    ``sum(expected_clicks) / sum(oracle_expected_clicks)``, then averaged over
    seeds. Policies that never land an update (no finite time since update)
    draw no line. A dashed line at 100 % marks the oracle.

    Args:
        timeseries: The ``timeseries`` table.
        ax: Axes to draw on; default a new single-column figure.
        bins_per_decade: Number of log bins per factor 10 of time.

    Returns:
        The figure. x: time since the serving model landed (log, seconds shown
        as round durations); y: expected CTR as a percentage of the oracle's.

    Raises:
        NoDataError: If no row has a finite time since update and a positive
            oracle expectation.
    """
    need = ["run_id", "policy", "time_since_update_s", "expected_clicks", "oracle_expected_clicks"]
    _require(timeseries, need, "fig_ctr_decay")
    ts = timeseries
    if "cohort" in ts:
        ts = ts[ts["cohort"] == "all"]
    x = ts["time_since_update_s"].to_numpy(dtype=float)
    ok = np.isfinite(x) & (ts["oracle_expected_clicks"].to_numpy(dtype=float) > 0)
    ts = ts[ok]
    if ts.empty:
        raise NoDataError("fig_ctr_decay: no finite time since update")
    x = ts["time_since_update_s"].to_numpy(dtype=float)
    pos = x[x > 0]
    lo = float(pos.min()) if pos.size else 1.0
    hi = max(float(x.max()), lo * 1.5)
    n_bins = int(np.clip(round(bins_per_decade * np.log10(hi / lo)), 3, 40))
    edges = np.geomspace(lo, hi * (1 + 1e-9), n_bins + 1)
    centres = np.sqrt(edges[:-1] * edges[1:])
    b = np.clip(np.searchsorted(edges, np.maximum(x, lo), side="right") - 1, 0, n_bins - 1)
    per_run = (
        ts.assign(_bin=b)
        .groupby(["run_id", "_bin"], sort=False)[["expected_clicks", "oracle_expected_clicks"]]
        .sum()
        .reset_index()
    )
    per_run["ratio"] = per_run["expected_clicks"] / per_run["oracle_expected_clicks"]
    per_run["x"] = centres[per_run["_bin"].to_numpy()]
    labels, series = _label_series(ts.drop_duplicates("run_id"))
    per_run["_series"] = per_run["run_id"].map(labels)
    agg = seed_ci(per_run, ["_series", "x"], "ratio")

    fig, ax = _new_axes(ax)
    lines = _plot_series(ax, agg, series, "x")
    if not any(s.policy == "oracle" for s in series if s.label in set(agg["_series"])):
        ref = ax.axhline(
            1.0,
            color=style.policy_color("oracle"),
            linestyle="--",
            linewidth=0.8,
            label="oracle",
            zorder=1,
        )
        lines = [ref, *lines]
    style.duration_axis(ax.xaxis)
    ax.set_xlim(edges[0], edges[-1])
    _percent_axis(ax.yaxis)
    ax.set_xlabel("Time since last model update")
    ax.set_ylabel("Expected CTR / oracle")
    _legend(ax, handles=lines)
    return fig


@_styled
def fig_ctr_vs_interval(runs: pd.DataFrame, ax: Axes | None = None) -> Figure:
    """Mean expected CTR and bytes moved per day against the update interval.

    Only runs with a finite positive ``policy_interval_s`` are placed on the x
    axis (error bars = 95 % CI over seeds). The ``oracle`` and ``frozen``
    policies, when present, are horizontal reference lines in the CTR panel
    (the oracle falls back to the mean ``oracle_expected_ctr`` of all runs if
    no oracle run exists). Bytes moved per day, when the runs have them, get a
    panel of their own below the CTR, sharing its x axis, so that no marker can
    be read against the other quantity's axis.

    Args:
        runs: The ``runs`` table (one row per run, from ``summary.json``).
        ax: Axes to draw the CTR on; default a new single-column figure with
            both panels. In a given axes the bytes go on a twin right-hand axis
            (hollow markers), since the function cannot add a panel there.

    Returns:
        The figure. x: update interval (log; series sharing an interval are
        dodged by a few percent); top y: expected CTR in percent; bottom y
        (right y in a given axes): bytes moved per day (decimal prefixes; log
        when the values span more than 30x, where zero bytes get no point).

    Raises:
        NoDataError: If no run has an interval.
    """
    _require(runs, ["run_id", "policy", "policy_interval_s", "expected_ctr"], "fig_ctr_vs_interval")
    interval = runs["policy_interval_s"].to_numpy(dtype=float)
    has = np.isfinite(interval) & (interval > 0) & ~runs["policy"].isin(["oracle", "frozen"])
    r = runs[has]
    if r.empty:
        raise NoDataError("fig_ctr_vs_interval: no run with an update interval")
    labels, series = _label_series(r, by_interval=False)
    r = r.assign(_series=r["run_id"].map(labels))
    ctr = seed_ci(r, ["_series", "policy_interval_s"], "expected_ctr")
    has_bytes = "bytes_moved_per_day" in r and r["bytes_moved_per_day"].notna().any()
    if has_bytes:
        moved = seed_ci(r, ["_series", "policy_interval_s"], "bytes_moved_per_day")

    # Dodge series that share an interval (e.g. online and minute) apart a little.
    rank = {s.label: i for i, s in enumerate(series)}
    ctr["_rank"] = ctr["_series"].map(rank)
    k = ctr.groupby("policy_interval_s")["_rank"].rank(method="first") - 1
    m = ctr.groupby("policy_interval_s")["_rank"].transform("count")
    ctr["_x"] = ctr["policy_interval_s"] * 1.15 ** (k - (m - 1) / 2)
    dodge = ctr.set_index(["_series", "policy_interval_s"])["_x"]

    def dodged(d: pd.DataFrame) -> np.ndarray:
        keys = pd.MultiIndex.from_frame(d[["_series", "policy_interval_s"]])
        return dodge.reindex(keys).to_numpy(dtype=float)

    panel = ax is None and has_bytes  # bytes in a panel of their own below the CTR
    if panel:
        fig = Figure(figsize=style.figsize(aspect=1.0), layout="constrained")
        ax, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    else:
        fig, ax = _new_axes(ax)
    handles = []
    # thin trend line through all interval points
    trend = ctr.groupby("policy_interval_s")["mean"].mean().sort_index()
    if len(trend) > 1 and len(series) > 1:
        ax.plot(trend.index, trend.to_numpy(), color="0.6", linewidth=0.7, zorder=1, label="_trend")
    for s in series:
        d = ctr[ctr["_series"] == s.label].sort_values("policy_interval_s")
        err = np.vstack([d["mean"] - d["lo"], d["hi"] - d["mean"]])
        ax.errorbar(
            dodged(d),
            d["mean"],
            yerr=np.nan_to_num(err) if np.isfinite(err).any() else None,
            label=s.label,
            color=s.style["color"],
            marker=s.style["marker"],
            linestyle=s.style["linestyle"],
            markersize=4.5,
            elinewidth=0.7,
            zorder=3,
        )
        handles.append(Line2D([], [], label=s.label, markersize=4.5, **s.style))
    refs = []
    if "oracle" in set(runs["policy"]):
        refs.append(("oracle", runs.loc[runs["policy"] == "oracle", "expected_ctr"]))
    elif "oracle_expected_ctr" in runs and runs["oracle_expected_ctr"].notna().any():
        # runs of one seed share a world: average them so the band is over seeds
        by = runs["seed"] if "seed" in runs else runs["run_id"]
        refs.append(("oracle", runs.groupby(by)["oracle_expected_ctr"].mean()))
    if "frozen" in set(runs["policy"]):
        refs.append(("frozen", runs.loc[runs["policy"] == "frozen", "expected_ctr"]))
    for name, values in refs:
        v = values.to_numpy(dtype=float)
        v = v[np.isfinite(v)]
        if v.size == 0:
            continue
        m = v.mean()
        ls = "--" if name == "oracle" else ":"
        line = ax.axhline(
            m, color=style.policy_color(name), linestyle=ls, linewidth=0.9, label=name, zorder=2
        )
        handles.append(line)
        if v.size >= 2:
            h = Z95 * v.std(ddof=1) / np.sqrt(v.size)
            ax.axhspan(m - h, m + h, color=style.policy_color(name), alpha=0.12, linewidth=0)
    style.duration_axis(ax.xaxis)
    xs = ctr["policy_interval_s"].to_numpy(dtype=float)
    ax.set_xlim(xs.min() / 2.5, xs.max() * 2.5)
    _percent_axis(ax.yaxis)
    ax.set_ylabel("Expected CTR")
    (ax2 if panel else ax).set_xlabel("Update interval")

    if has_bytes:
        if not panel:
            ax2 = ax.twinx()
            ax2.grid(False)
            ax2.spines["right"].set_visible(True)
        vals = moved["mean"].to_numpy(dtype=float)
        vals = vals[np.isfinite(vals) & (vals > 0)]
        log = bool(vals.size) and vals.max() / vals.min() > 30
        for s in series:
            d = moved[moved["_series"] == s.label].sort_values("policy_interval_s")
            y = d["mean"].to_numpy(dtype=float)
            if log:  # nothing moved (e.g. no update within the run) has no place on a log axis
                y = np.where(y > 0, y, np.nan)
            ax2.plot(
                dodged(d),
                y,
                color=s.style["color"],
                marker=s.style["marker"],
                markerfacecolor=s.style["color"] if panel else "white",
                markersize=4.5,
                linestyle=s.style["linestyle"] if panel else ":",
                linewidth=0.8,
                zorder=2,
            )
        if log:
            ax2.set_yscale("log")
            if panel:
                ax2.margins(y=0.15)  # the extreme markers clear the frame
        else:
            ax2.set_ylim(bottom=0)
        ax2.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _p: style.format_bytes(v, 2)))
        ax2.set_ylabel("Bytes moved\nper day" if panel else "Bytes moved per day (hollow)")
    _legend(ax, handles=handles, ncols=3)
    return fig


@_styled
def fig_staleness_cdf(staleness: pd.DataFrame, ax: Axes | None = None) -> Figure:
    """Request-weighted ECDF of model staleness, one line per policy.

    Each row of ``staleness`` says that ``requests`` requests were served by a
    model ``staleness_s`` seconds stale; per run the ECDF is evaluated on a
    shared log grid, then averaged over seeds.

    Args:
        staleness: The ``staleness`` table.
        ax: Axes to draw on; default a new single-column figure.

    Returns:
        The figure. x: staleness (log, round durations); y: share of requests
        served at most that stale (0-100 %).

    Raises:
        NoDataError: If the table is empty.
    """
    _require(staleness, ["run_id", "policy", "staleness_s", "requests"], "fig_staleness_cdf")
    df = staleness[staleness["requests"] > 0]
    if df.empty:
        raise NoDataError("fig_staleness_cdf: no requests")
    return _ecdf_figure(df, "staleness_s", "requests", "Model staleness", "Share of requests", ax)


@_styled
def fig_first_impression(
    items: pd.DataFrame,
    ax: Axes | None = None,
    column: str = "time_to_first_impression_s",
) -> Figure:
    """ECDF of new items' time to first impression, one line per policy.

    Items never shown (NaN) stay in the denominator, so a curve ends at the
    share of items ever shown, below 100 % if some never were.

    Args:
        items: The ``items`` table (one row per new item and run).
        ax: Axes to draw on; default a new single-column figure.
        column: Column holding the delay in seconds.

    Returns:
        The figure. x: time from item birth to first impression (log, round
        durations); y: share of new items shown by then.

    Raises:
        NoDataError: If the table is empty.
    """
    _require(items, ["run_id", "policy", column], "fig_first_impression")
    return _ecdf_figure(
        items, column, None, "Time to first impression", "Share of new items shown", ax
    )


def _pick_timeline_run(updates: pd.DataFrame) -> str:
    staged = updates[
        updates[[c for _, c, _, _ in PIPELINE_STAGES if c in updates]].notna().any(axis=1)
    ]
    pool = staged if not staged.empty else updates
    for p in ("hourly", "daily", "minute", "online", *style.policy_order(pool["policy"])):
        cand = pool[pool["policy"] == p]
        if not cand.empty:
            first = cand.sort_values(["seed", "run_id"]) if "seed" in cand else cand
            return str(first["run_id"].iloc[0])
    return str(pool["run_id"].iloc[0])


@_styled
def fig_pipeline_timeline(
    updates: pd.DataFrame,
    run_id: str | None = None,
    window_s: float | tuple[float, float] | None = None,
    ax: Axes | None = None,
    n_updates: int = 3,
) -> Figure:
    """Save, validate, transfer and load stages of updates, one row per datacenter.

    Args:
        updates: The ``updates`` table.
        run_id: Run to draw; default the lowest-seed run of the first policy
            with staged updates among hourly, daily, minute, online, others.
        window_s: Time window to show, seconds since the start of the measured
            period: ``(start, end)``, or a length starting at the first shown
            update's trigger. Default: from the trigger of the first update
            triggered at or after 0 s (or the first at all) to the end of the
            last stage of the ``n_updates``-th.
        ax: Axes to draw on; default a new double-column figure.
        n_updates: Updates spanned by the default window.

    Returns:
        The figure. Bars per stage; rejected updates hatched, superseded or
        skipped ones faded; a black tick marks when an update landed. Two
        alternating sub-lanes keep overlapping updates apart.

    Raises:
        NoDataError: If the run has no update with a timed stage, or ``run_id``
            is unknown.
    """
    _require(updates, ["run_id", "update_id", "datacenter"], "fig_pipeline_timeline")
    if run_id is None:
        run_id = _pick_timeline_run(updates)
    u = updates[updates["run_id"] == str(run_id)]
    if u.empty:
        raise NoDataError(f"fig_pipeline_timeline: no updates for run {run_id!r}")
    stages = [s for s in PIPELINE_STAGES if s[1] in u and s[2] in u]
    starts = u[[s[1] for s in stages]].min(axis=1)
    ends = u[[s[2] for s in stages]].max(axis=1)
    u = u.assign(_start=u.get("trigger_s", starts), _end=ends)
    u.loc[u["_start"].isna(), "_start"] = starts
    u = u[u["_start"].notna() & u["_end"].notna()]
    if u.empty:
        raise NoDataError(f"fig_pipeline_timeline: run {run_id!r} has no timed stage")

    per_update = u.groupby("update_id").agg(start=("_start", "min"), end=("_end", "max"))
    per_update = per_update.sort_values("start")
    if window_s is None or np.isscalar(window_s):
        after = per_update[per_update["start"] >= 0]
        first = after if not after.empty else per_update
        t0 = float(first["start"].iloc[0])
        if window_s is None:
            t1 = float(first["end"].iloc[: max(1, n_updates)].max())
        else:
            t1 = t0 + float(window_s)
    else:
        t0, t1 = (float(v) for v in window_s)
    if not t1 > t0:
        t1 = t0 + 1.0
    pad = 0.03 * (t1 - t0)
    t0, t1 = t0 - pad, t1 + pad
    shown = per_update[(per_update["end"] >= t0) & (per_update["start"] <= t1)].index
    u = u[u["update_id"].isin(shown)]
    lane = {uid: i % 2 for i, uid in enumerate(per_update.index)}

    unit_s, unit = style.time_unit(t1 - t0)
    dcs = list(pd.unique(u["datacenter"].astype(str)))  # simulator's order
    row = {dc: len(dcs) - 1 - i for i, dc in enumerate(dcs)}  # first DC on top
    size = style.figsize("double", aspect=min(0.6, 0.17 + 0.08 * len(dcs)))
    fig, ax = _new_axes(ax, size)
    h = 0.36
    for rec in u.itertuples(index=False):
        rec = rec._asdict()
        y = row[str(rec["datacenter"])] + (0.2 if lane[rec["update_id"]] == 0 else -0.2)
        status = str(rec.get("status", "landed"))
        rejected = status == "rejected" or rec.get("validation_passed") is False
        faded = status in ("superseded", "skipped")
        for _name, c0, c1, color in stages:
            a, b = rec[c0], rec[c1]
            if not (pd.notna(a) and pd.notna(b)):
                continue
            ax.broken_barh(
                [((a - 0.0) / unit_s, max(b - a, 0.0) / unit_s)],
                (y - h / 2, h),
                facecolors=color,
                edgecolors="0.25" if rejected else "none",
                linewidth=0.4,
                hatch="/////" if rejected else None,
                alpha=0.4 if faded else 1.0,
                zorder=2,
            )
        landed = rec.get("landed_s")
        if landed is not None and pd.notna(landed):
            ax.plot(
                [landed / unit_s] * 2,
                [y - h / 2 - 0.04, y + h / 2 + 0.04],
                color="black",
                linewidth=1.0,
                zorder=3,
            )
    ax.set_xlim(t0 / unit_s, t1 / unit_s)
    ax.set_ylim(-0.6, len(dcs) - 0.4)
    ax.set_yticks([row[dc] for dc in dcs], dcs)
    ax.grid(False, axis="y")
    ax.tick_params(axis="y", length=0)
    ax.set_xlabel(f"Time ({unit})")
    shown_updates = per_update.loc[per_update.index.isin(shown)]
    if 0 < len(shown_updates) <= 12:  # name each update above the plot
        version = u.groupby("update_id")["version"].first() if "version" in u else None
        for uid, rec in shown_updates.iterrows():
            if t0 <= rec["start"] <= t1:
                name = f"v{version[uid]}" if version is not None else f"#{uid}"
                ax.text(
                    rec["start"] / unit_s,
                    1.01,
                    name,
                    transform=ax.get_xaxis_transform(),
                    ha="left",
                    va="bottom",
                    fontsize=7,
                    color="0.3",
                )
    title = ", ".join(
        part
        for part in (
            str(u["policy"].iloc[0]) if "policy" in u else "",
            f"seed {u['seed'].iloc[0]}" if "seed" in u else "",
        )
        if part
    )
    handles = [Patch(facecolor=c, label=n) for n, _, _, c in stages]
    handles.append(
        Patch(facecolor="white", edgecolor="0.25", hatch="/////", linewidth=0.4, label="rejected")
    )
    handles.append(Line2D([], [], color="black", linewidth=1.0, label="landed"))
    ax.legend(
        handles=handles,
        title=title or None,
        loc="center left",
        bbox_to_anchor=(1.01, 0.5),
        borderaxespad=0.0,
        alignment="left",
    )
    return fig


# --- batch ---------------------------------------------------------------------

#: Figure name → function.
FIGURES: dict[str, Callable[..., Figure]] = {
    "ctr_over_time": fig_ctr_over_time,
    "ctr_decay": fig_ctr_decay,
    "ctr_vs_interval": fig_ctr_vs_interval,
    "staleness_cdf": fig_staleness_cdf,
    "first_impression": fig_first_impression,
    "pipeline_timeline": fig_pipeline_timeline,
}

#: Figure name → the :class:`Collected` table it is drawn from.
FIGURE_INPUTS: dict[str, str] = {
    "ctr_over_time": "timeseries",
    "ctr_decay": "timeseries",
    "ctr_vs_interval": "runs",
    "staleness_cdf": "staleness",
    "first_impression": "items",
    "pipeline_timeline": "updates",
}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def draw_all(
    collected: Collected,
    out_dir: str | Path,
    names: Sequence[str] | None = None,
) -> list[Path]:
    """Draw every figure that has data and write it as PDF and PNG.

    When the runs span several (scenario, infra) combinations, each figure is
    drawn once per combination, named ``NAME-SCENARIO-INFRA``; otherwise
    ``NAME``. A figure whose input table is empty is skipped silently; one
    whose table lacks what it needs (columns, runs with an interval...) is
    skipped with a warning.
    Files are written atomically (see :func:`simrec.viz.style.save`).

    Args:
        collected: Output of :func:`simrec.results.collect.collect`.
        out_dir: Folder for the files (created).
        names: Figures to draw (keys of :data:`FIGURES`); default all.

    Returns:
        The paths written, PDF and PNG of each figure.
    """
    out_dir = Path(out_dir)
    names = list(FIGURES) if names is None else list(names)
    runs = collected.runs
    combo_cols = [c for c in ("scenario", "infra") if c in runs]
    combos = runs[combo_cols].drop_duplicates().to_dict("records") if combo_cols else [{}]
    # Register every policy once, in order, so colours match across figures.
    if "policy" in runs:
        style.policy_order(runs["policy"])
    written: list[Path] = []
    for combo in combos:
        part = collected.select(**combo) if len(combos) > 1 else collected
        suffix = "-" + "-".join(_slug(str(v)) for v in combo.values()) if len(combos) > 1 else ""
        for name in names:
            df = getattr(part, FIGURE_INPUTS[name])
            if df.empty:
                continue
            try:
                fig = FIGURES[name](df)
            except NoDataError as exc:
                warnings.warn(f"skipping figure {name}{suffix}: {exc}", stacklevel=2)
                continue
            written += style.save(fig, out_dir / f"{name}{suffix}")
    return written
