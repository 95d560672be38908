"""Paper figures of simrec results.

:mod:`simrec.viz.style` holds the paper style (sizes, fonts, a fixed colour and
marker per policy, ``save`` to PDF + PNG); :mod:`simrec.viz.figures` the figure
functions, which take DataFrames from :func:`simrec.results.collect.collect`.
"""

from simrec.viz.figures import (
    FIGURE_INPUTS,
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
from simrec.viz.style import paper_style, policy_color, policy_marker, policy_style, save

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
    "paper_style",
    "policy_color",
    "policy_marker",
    "policy_style",
    "save",
]
