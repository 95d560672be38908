#!/usr/bin/env bash
# Figure (d): request-weighted CDF of model staleness.
# Config: experiments/conf/experiment/staleness_cdf.yaml. Output: results/staleness_cdf/report/staleness_cdf.png
# (and .pdf). SMALL=1 for a quick smoke run (results/staleness_cdf-small/); see common.sh.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

OUT="$(figure_dir staleness_cdf)"
sweep staleness_cdf "$OUT" "$@"
report "$OUT"
