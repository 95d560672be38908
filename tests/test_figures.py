"""Tests of simrec.viz (style and figures) on synthetic runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from simrec.results.collect import Collected, collect  # noqa: E402
from simrec.viz import figures, style  # noqa: E402
from simrec.viz.figures import (  # noqa: E402
    FIGURES,
    NoDataError,
    draw_all,
    fig_ctr_decay,
    fig_ctr_over_time,
    fig_ctr_vs_interval,
    fig_first_impression,
    fig_pipeline_timeline,
    fig_staleness_cdf,
)


def _load_synthetic():
    """Import the run-directory builders of tests/test_report.py by path."""
    path = Path(__file__).with_name("test_report.py")
    spec = importlib.util.spec_from_file_location("_simrec_synthetic_runs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


synthetic = _load_synthetic()


@pytest.fixture(scope="module")
def two_policies(tmp_path_factory) -> Collected:
    """hourly and daily, seeds 0 and 1, one day measured in 1-hour buckets."""
    root = tmp_path_factory.mktemp("sweep")
    synthetic.write_sweep(root, policies=("hourly", "daily"), seeds=(0, 1), days=1.0)
    return collect(root)


@pytest.fixture(scope="module")
def all_policies(tmp_path_factory) -> Collected:
    root = tmp_path_factory.mktemp("sweep_all")
    synthetic.write_sweep(root, policies=style.POLICY_ORDER, seeds=(0, 1), days=1.0)
    return collect(root)


def labels(ax) -> list[str]:
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def labelled_lines(ax):
    return [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]


def assert_in_ylim(ax, lines):
    lo, hi = ax.get_ylim()
    for ln in lines:
        y = np.asarray(ln.get_ydata(), dtype=float)
        y = y[np.isfinite(y)]
        assert y.size
        assert lo <= y.min() and y.max() <= hi, ln.get_label()


def assert_fonts_legible(fig: Figure, minimum: float = 7.0):
    for t in fig.findobj(Text):
        if t.get_visible() and t.get_text().strip():
            assert t.get_fontsize() >= minimum, (t.get_text(), t.get_fontsize())


# --- style --------------------------------------------------------------------------


def test_policy_colours_fixed_and_distinct():
    known = [style.policy_color(p) for p in style.POLICY_ORDER]
    assert len(set(known)) == len(known)
    assert style.policy_color("oracle") == "#000000"
    assert style.policy_style("oracle")["linestyle"] == "--"
    assert style.policy_style("hourly")["linestyle"] == "-"
    order = style.policy_order(["zz_new", "daily", "aa_new", "oracle", "daily"])
    assert order == ["oracle", "daily", "aa_new", "zz_new"]
    extra = {style.policy_color("aa_new"), style.policy_color("zz_new")}
    assert len(extra) == 2 and not extra & set(known)
    # a new policy keeps its colour once given, whatever policies are seen after it
    kept = style.policy_color("aa_new")
    style.policy_order(["0_new", "zz_other", "aa_newer"])
    assert style.policy_color("aa_new") == kept
    markers = [style.policy_marker(p) for p in style.POLICY_ORDER]
    assert len(set(markers)) == len(markers)


def test_save_pdf_and_png(tmp_path):
    with style.paper_style():
        fig = Figure(figsize=style.figsize())
        fig.add_subplot().plot([0, 1], [0, 1])
    paths = style.save(fig, tmp_path / "sub" / "fig")
    assert [p.name for p in paths] == ["fig.pdf", "fig.png"]
    assert paths[0].read_bytes().startswith(b"%PDF")
    img = mpimg.imread(paths[1])
    assert img.shape[1] == round(style.COLUMN_WIDTH_IN * style.PNG_DPI)
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["fig.pdf", "fig.png"]


def test_format_helpers():
    assert style.format_duration(90) == "1.5 min"
    assert style.format_duration(86400) == "1 d"
    assert style.format_duration(float("nan")) == "never"
    assert style.format_bytes(1.5e9) == "1.5 GB"
    assert style.format_bytes(100e9, 2) == "100 GB"
    loc = style.DurationLocator()
    assert loc.tick_values(30, 2 * 86400) == [60.0, 600.0, 3600.0, 6 * 3600.0, 86400.0]


# --- figures -------------------------------------------------------------------------


def test_ctr_over_time(two_policies):
    fig = fig_ctr_over_time(two_policies.timeseries)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert labels(ax) == ["oracle", "hourly", "daily"]
    lines = labelled_lines(ax)
    assert len(lines) == 3
    assert lines[0].get_linestyle() == "--"
    assert len(lines[1].get_xdata()) == 24  # one point per 1-hour bucket
    assert_in_ylim(ax, lines)
    assert len(ax.collections) == 3  # a seed band per line
    # expected CTR is below the oracle everywhere
    oracle, hourly, daily = (np.asarray(ln.get_ydata()) for ln in lines)
    assert (hourly <= oracle).all() and (daily <= oracle).all()
    assert ((hourly > 0.01) & (hourly < 0.1)).all()
    assert_fonts_legible(fig)


def test_ctr_over_time_one_seed_has_no_band(two_policies):
    fig = fig_ctr_over_time(two_policies.select(seed=0).timeseries)
    ax = fig.axes[0]
    assert len(labelled_lines(ax)) == 3
    assert len(ax.collections) == 0


def test_ctr_over_time_with_oracle_policy(all_policies):
    fig = fig_ctr_over_time(all_policies.timeseries)
    ax = fig.axes[0]
    assert labels(ax) == list(style.POLICY_ORDER)
    assert [ln.get_linestyle() for ln in labelled_lines(ax)].count("--") == 1


def test_ctr_over_time_on_given_axes(two_policies):
    fig = Figure()
    axes = fig.subplots(1, 2)
    out = fig_ctr_over_time(two_policies.timeseries, ax=axes[1])
    assert out is fig
    assert len(labelled_lines(axes[1])) == 3 and not axes[0].get_lines()


def test_ctr_decay(two_policies):
    fig = fig_ctr_decay(two_policies.timeseries)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert labels(ax) == ["oracle", "hourly", "daily"]
    lines = {ln.get_label(): ln for ln in labelled_lines(ax)}
    assert_in_ylim(ax, lines.values())
    assert list(lines["oracle"].get_ydata()) == [1.0, 1.0]  # reference line
    daily = np.asarray(lines["daily"].get_ydata(), dtype=float)
    assert (daily <= 1.0).all() and daily[-1] < daily[0]  # decays with time
    # daily reaches longer times since update than hourly
    assert max(lines["daily"].get_xdata()) > max(lines["hourly"].get_xdata())
    assert_fonts_legible(fig)


def test_ctr_vs_interval(all_policies):
    fig = fig_ctr_vs_interval(all_policies.runs)
    ax, ax2 = fig.axes
    assert ax.get_xscale() == "log"
    assert labels(ax) == ["online", "minute", "hourly", "daily", "oracle", "frozen"]
    lo, hi = ax.get_ylim()
    for p in ("oracle", "frozen", "hourly"):
        m = all_policies.runs.loc[all_policies.runs["policy"] == p, "expected_ctr"].mean()
        assert lo < m < hi, p
    # bytes in a panel of their own below, on the same x axis, one line per interval policy
    # at each policy's mean bytes per day
    assert ax2.get_ylabel() == "Bytes moved\nper day"
    assert ax2.get_shared_x_axes().joined(ax, ax2)
    fig.canvas.draw()
    assert ax2.get_position().y1 < ax.get_position().y0
    runs = all_policies.runs
    plotted = sorted(float(line.get_ydata()[0]) for line in ax2.get_lines())
    expected = sorted(
        runs.loc[runs["policy"] == p, "bytes_moved_per_day"].mean()
        for p in ("online", "minute", "hourly", "daily")
    )
    np.testing.assert_allclose(plotted, expected, rtol=1e-12)
    lo, hi = ax2.get_ylim()
    assert lo < min(expected) and max(expected) < hi
    assert_fonts_legible(fig)


def test_ctr_vs_interval_leaves_zero_bytes_off_a_log_axis(all_policies):
    # a policy whose update never landed moved nothing: on a log axis it gets no point
    # (a line to zero would run off the panel)
    runs = all_policies.runs.copy()
    runs.loc[runs["policy"] == "hourly", "bytes_moved_per_day"] = 1e9  # > 30x span: log
    runs.loc[runs["policy"] == "daily", "bytes_moved_per_day"] = 0.0
    fig = fig_ctr_vs_interval(runs)
    ax2 = fig.axes[1]
    assert ax2.get_yscale() == "log"
    ys = {line.get_color(): float(line.get_ydata()[0]) for line in ax2.get_lines()}
    assert np.isnan(ys[style.policy_color("daily")])
    assert ys[style.policy_color("hourly")] == 1e9
    assert ax2.get_ylim()[0] > 0


def test_ctr_vs_interval_in_given_axes(all_policies):
    # a caller's axes cannot take a second panel: the bytes go on a twin right-hand axis
    fig = Figure()
    ax = fig.add_subplot()
    assert fig_ctr_vs_interval(all_policies.runs, ax=ax) is fig
    assert len(fig.axes) == 2
    twin = fig.axes[1]
    assert twin.get_shared_x_axes().joined(ax, twin)
    assert twin.get_ylabel() == "Bytes moved per day (hollow)"
    assert len(twin.get_lines()) == 4


def test_ctr_vs_interval_without_references(two_policies):
    runs = two_policies.runs.drop(columns="oracle_expected_ctr")
    fig = fig_ctr_vs_interval(runs)
    assert labels(fig.axes[0]) == ["hourly", "daily"]
    with pytest.raises(NoDataError):
        fig_ctr_vs_interval(runs.assign(policy_interval_s=np.nan))


def _assert_cdf(line, final_max=1.0):
    y = np.asarray(line.get_ydata(), dtype=float)
    assert np.all(np.diff(y) >= -1e-12), "ECDF not monotone"
    assert y.min() >= 0 and y[-1] <= final_max + 1e-12


def test_staleness_cdf(two_policies):
    fig = fig_staleness_cdf(two_policies.staleness)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert labels(ax) == ["hourly", "daily"]
    lines = labelled_lines(ax)
    for ln in lines:
        _assert_cdf(ln)
        assert ln.get_ydata()[-1] == pytest.approx(1.0)  # every request has a staleness
    assert ax.get_ylim()[0] <= 0 and ax.get_ylim()[1] >= 1
    # hourly models are fresher: at any staleness, more of its requests are below it
    assert (np.asarray(lines[0].get_ydata()) >= np.asarray(lines[1].get_ydata()) - 0.05).all()
    assert_fonts_legible(fig)


def test_first_impression_never_shown_stays_below_one(two_policies):
    items = two_policies.items
    fig = fig_first_impression(items)
    ax = fig.axes[0]
    assert labels(ax) == ["hourly", "daily"]
    for ln, policy in zip(labelled_lines(ax), ("hourly", "daily"), strict=True):
        _assert_cdf(ln)
        d = items[items["policy"] == policy]
        shown = d.groupby("run_id")["time_to_first_impression_s"].apply(lambda s: s.notna().mean())
        assert ln.get_ydata()[-1] == pytest.approx(shown.mean(), abs=1e-9)
        assert ln.get_ydata()[-1] < 1.0


def test_first_impression_nobody_shown(two_policies):
    items = two_policies.items.assign(time_to_first_impression_s=np.nan)
    ax = fig_first_impression(items).axes[0]
    for ln in labelled_lines(ax):
        assert (np.asarray(ln.get_ydata()) == 0).all()
    # the curves lie on the x axis: the legend says why they cannot be seen
    assert labels(ax) == ["hourly (0 %)", "daily (0 %)"]


def test_first_impression_marks_only_the_policy_that_shows_nothing(two_policies):
    items = two_policies.items.copy()
    items.loc[items["policy"] == "daily", "time_to_first_impression_s"] = np.nan
    assert labels(fig_first_impression(items).axes[0]) == ["hourly", "daily (0 %)"]


def test_pipeline_timeline(two_policies):
    updates = two_policies.updates
    fig = fig_pipeline_timeline(updates)
    ax = fig.axes[0]
    rows = dict(zip(ax.get_yticks(), (t.get_text() for t in ax.get_yticklabels()), strict=True))
    assert [rows[y] for y in sorted(rows, reverse=True)] == ["us-east", "eu-west"]  # data order
    assert labels(ax) == ["save", "validate", "transfer", "load", "rejected", "landed"]
    assert ax.get_legend().get_title().get_text() == "hourly, seed 0"  # default run
    assert len(ax.collections) >= 3 * 2 * 2  # ≥ 3 updates x 2 DCs x (save, validate)
    assert_fonts_legible(fig)


def test_pipeline_timeline_window_and_rejected(two_policies):
    updates = two_policies.updates
    rejected = updates[updates["status"] == "rejected"].iloc[0]
    run = rejected["run_id"]
    t = rejected["trigger_s"]
    fig = fig_pipeline_timeline(updates, run_id=run, window_s=(t - 10, t + 600))
    ax = fig.axes[0]
    # the window asked for, padded by 3 % of its span on each side, in minutes
    assert ax.get_xlabel() == "Time (min)"
    lo, hi = ax.get_xlim()
    assert lo * 60 == pytest.approx(t - 10 - 0.03 * 610)
    assert hi * 60 == pytest.approx(t + 600 + 0.03 * 610)
    hatched = [c for c in ax.collections if c.get_hatch()]
    assert hatched, "rejected update not hatched"
    # window given as a length: from the first update of the measured period on
    fig2 = fig_pipeline_timeline(updates, run_id=run, window_s=7200.0)
    ax2 = fig2.axes[0]
    assert ax2.get_xlabel() == "Time (min)"
    lo, hi = ax2.get_xlim()
    assert (hi - lo) * 60 == pytest.approx(7200 * 1.06)
    mine = updates[updates["run_id"] == run]
    first = mine.loc[mine["trigger_s"] >= 0, "trigger_s"].min()
    assert lo * 60 == pytest.approx(first - 0.03 * 7200)
    with pytest.raises(NoDataError):
        fig_pipeline_timeline(updates, run_id="no-such-run")


def test_series_labels_disambiguate_intervals(tmp_path):
    a = synthetic.make_run_tables("custom", 0, days=0.5)[1]["timeseries"]
    b = synthetic.make_run_tables("custom", 1, days=0.5)[1]["timeseries"]
    b = b.assign(policy_interval_s=600.0, run_id="other")
    fig = fig_ctr_over_time(pd.concat([a, b], ignore_index=True))
    assert labels(fig.axes[0]) == ["oracle", "custom 10 min", "custom 2 h"]


def test_empty_inputs_raise(two_policies):
    for name, func in FIGURES.items():
        table = getattr(two_policies, figures.FIGURE_INPUTS[name])
        with pytest.raises(NoDataError):
            func(table.iloc[0:0])


def test_draw_all(two_policies, tmp_path):
    paths = draw_all(two_policies, tmp_path / "figs")
    assert len(paths) == 2 * len(FIGURES)
    assert {p.stem for p in paths} == set(FIGURES)
    for p in paths:
        assert p.stat().st_size > 1000


def test_draw_all_splits_scenarios(two_policies, tmp_path):
    c = two_policies
    other = {}
    for name in ("runs", "timeseries", "updates", "staleness", "items"):
        df = getattr(c, name)
        df2 = df.assign(scenario="shock", run_id=df["run_id"] + "-shock")
        other[name] = pd.concat([df, df2], ignore_index=True)
    paths = draw_all(Collected(**other), tmp_path, names=["ctr_over_time"])
    assert sorted(p.name for p in paths) == [
        "ctr_over_time-diurnal-two_dc.pdf",
        "ctr_over_time-diurnal-two_dc.png",
        "ctr_over_time-shock-two_dc.pdf",
        "ctr_over_time-shock-two_dc.png",
    ]
