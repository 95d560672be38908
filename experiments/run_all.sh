#!/usr/bin/env bash
# Every paper figure, one after the other (SMALL=1, RESULTS, N_JOBS as for each script).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
for fig in ctr_over_time ctr_decay interval_sweep staleness_cdf first_impression \
  pipeline_timeline; do
  "$here/fig_$fig.sh" "$@"
done
