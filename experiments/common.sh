# Shared by the experiments/fig_*.sh scripts (sourced, not run).
#
# Environment switches:
#   SMALL=1     a tiny world and one seed (users.initial=2000 items.initial=800 sim.days=0.2
#               sim.warmup_days=0.2 seed=0): a smoke test (seconds per script), not a paper figure.
#               Results go to RESULTS/NAME-small so they never mix with full-size runs.
#   RESULTS=DIR where sweeps and reports go (default: results/ in the repository root;
#               a relative DIR is taken from the current directory).
#   N_JOBS=N    parallel runs of the joblib launcher (default 2).
#   SIMREC=..., SIMREC_REPORT=..., PYTHON=...   the commands to use (default simrec,
#               simrec-report, python: those of the activated virtualenv).
# Arguments given to a fig_*.sh script are passed to every simrec call as extra Hydra
# overrides (e.g. scenario=news); use another RESULTS then, see below.
#
# A run directory that already holds the summary.json of the same config is not run again
# (simrec resumes sweeps); one holding another config's run is run again and overwritten.

set -euo pipefail

EXPERIMENTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$EXPERIMENTS")"
SMALL="${SMALL:-0}"
N_JOBS="${N_JOBS:-2}"
SIMREC="${SIMREC:-simrec}"
SIMREC_REPORT="${SIMREC_REPORT:-simrec-report}"
RESULTS="${RESULTS:-$ROOT/results}"
case "$RESULTS" in
  /*) ;;
  *) RESULTS="$PWD/$RESULTS" ;;
esac

SMALL_OVERRIDES=(users.initial=2000 items.initial=800 sim.days=0.2 sim.warmup_days=0.2 seed=0)

# figure_dir NAME: the folder of one figure's sweeps and report.
figure_dir() {
  if [[ "$SMALL" == 1 ]]; then
    echo "$RESULTS/$1-small"
  else
    echo "$RESULTS/$1"
  fi
}

# sweep EXPERIMENT SWEEP_DIR [OVERRIDE...]: one Hydra multirun of experiments/conf/experiment/
# EXPERIMENT.yaml into SWEEP_DIR, N_JOBS runs at a time.
sweep() {
  local experiment="$1" dir="$2"
  shift 2
  local extra=()
  if [[ "$SMALL" == 1 ]]; then
    extra=("${SMALL_OVERRIDES[@]}")
  fi
  echo "== $experiment -> $dir" >&2
  (cd "$ROOT" && "$SIMREC" -m --config-dir "$EXPERIMENTS/conf" "+experiment=$experiment" \
    hydra/launcher=joblib "hydra.launcher.n_jobs=$N_JOBS" "hydra.sweep.dir=$dir" \
    ${extra[@]+"${extra[@]}"} "$@")
}

# report DIR: tables and figures of every run under DIR, in DIR/report.
report() {
  "$SIMREC_REPORT" "$1" -o "$1/report"
  echo "report: $1/report (${SECONDS}s in all)" >&2
}
