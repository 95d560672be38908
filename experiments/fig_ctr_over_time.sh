#!/usr/bin/env bash
# Figure (a): expected CTR over time, one line per policy.
# Config: experiments/conf/experiment/ctr_over_time.yaml. Output: results/ctr_over_time/report/ctr_over_time.png
# (and .pdf). SMALL=1 for a quick smoke run (results/ctr_over_time-small/); see common.sh.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

OUT="$(figure_dir ctr_over_time)"
sweep ctr_over_time "$OUT" "$@"
report "$OUT"
