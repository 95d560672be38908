#!/usr/bin/env bash
# Figure (f): per-datacenter pipeline timeline (geo3, hourly, a narrow window): save,
# validate, transfer and load of each update, one row per inference datacenter.
# Config: experiments/conf/experiment/pipeline_timeline.yaml.
# Output: results/pipeline_timeline/report/pipeline_timeline_zoom.png (one update, the
# paper figure) and pipeline_timeline.png (the report's view of three updates), with PDFs.
# SMALL=1 for a quick smoke run (results/pipeline_timeline-small/); see common.sh.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

OUT="$(figure_dir pipeline_timeline)"
sweep pipeline_timeline "$OUT" "$@"
report "$OUT"
"${PYTHON:-python}" "$EXPERIMENTS/pipeline_zoom.py" "$OUT" -o "$OUT/report"
