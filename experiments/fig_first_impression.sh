#!/usr/bin/env bash
# Figure (e): CDF of new items' time to first impression (news scenario).
# Config: experiments/conf/experiment/first_impression.yaml. Output: results/first_impression/report/first_impression.png
# (and .pdf). SMALL=1 for a quick smoke run (results/first_impression-small/); see common.sh.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

OUT="$(figure_dir first_impression)"
sweep first_impression "$OUT" "$@"
report "$OUT"
