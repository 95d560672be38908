#!/usr/bin/env bash
# Figure (b): CTR relative to the oracle against time since the last landed update.
# Config: experiments/conf/experiment/ctr_decay.yaml. Output: results/ctr_decay/report/ctr_decay.png
# (and .pdf). SMALL=1 for a quick smoke run (results/ctr_decay-small/); see common.sh.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

OUT="$(figure_dir ctr_decay)"
sweep ctr_decay "$OUT" "$@"
report "$OUT"
