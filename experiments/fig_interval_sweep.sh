#!/usr/bin/env bash
# Figure (c): mean expected CTR against the update interval, bytes moved per day in a panel
# below. Two sweeps into sibling folders: periodic full checkpoints every 5 min ... 1 day, and
# the online, frozen and oracle references; one report over both.
# Configs: experiments/conf/experiment/interval_sweep.yaml and interval_sweep_bounds.yaml.
# Output: results/interval_sweep/report/ctr_vs_interval.png (and .pdf).
# SMALL=1 for a quick smoke run (results/interval_sweep-small/); see common.sh.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

OUT="$(figure_dir interval_sweep)"
sweep interval_sweep "$OUT/periodic" "$@"
sweep interval_sweep_bounds "$OUT/bounds" "$@"
report "$OUT"
