#!/usr/bin/env bash
# Every benchmark, one after the other, on this machine, then the summary table at the top of BENCHMARKS.md.
# Each script measures hooklake side by side with its reference in the same run and rewrites its own section.
#
#   benches/run.sh [--quick]
#
#   --quick   shorter runs (ingest 1×10 s, end to end 20 s, soak 60 s, smaller component runs): a smoke test of
#             the scripts, not figures to publish
#
# Needs: cargo (release build), plugins/build.sh (done here if the plugin is missing), Python 3 with pyarrow
# (installed into benches/.venv if missing), wrk and node/npm (ingest.sh installs them with apt/npm).
# Takes about 35 minutes on 2 cores (ingest ~4, end to end ~3, soak 10, components ~4, lake latency ~1,
# enrich ~7, plus the build).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
log() { printf '\n== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)" >&2; }

log "release build"
cargo build --release --locked
[ -f plugins/insightiq.wasm ] || plugins/build.sh
PY=python3
if ! $PY -c 'import pyarrow' 2>/dev/null; then
  log "pyarrow into benches/.venv"
  python3 -m venv benches/.venv
  benches/.venv/bin/pip install --quiet pyarrow duckdb
  PY=benches/.venv/bin/python
fi

if [ "$QUICK" = 1 ]; then
  log "ingest (quick)";      RUNS=1 DURATION=10s benches/ingest.sh
  log "end to end + soak";   $PY benches/e2e.py --duration 20 --soak 60
  log "parquet writer";      $PY benches/parquet_writer.py --rows 200000 --runs 3
  log "plugin vs native";    RUNS=1 $PY benches/plugin.py
  log "ack → visible (raw)"; $PY benches/lake_latency.py --duration 10 --roll-interval 2
  log "enrich";              RUNS=1 BURST_EVENTS=5000 MIX_EVENTS=100 $PY benches/enrich.py
else
  log "ingest";              benches/ingest.sh
  log "end to end + soak";   $PY benches/e2e.py --duration 60 --soak 600
  log "parquet writer";      $PY benches/parquet_writer.py --rows 1000000 --runs 5
  log "plugin vs native";    $PY benches/plugin.py
  log "ack → visible (raw)"; $PY benches/lake_latency.py --duration 30 --connections 4 --roll-interval 10
  log "enrich";              $PY benches/enrich.py
fi
log "signature checks";      $PY benches/signatures.py
log "summary"
$PY benches/summary.py BENCHMARKS.md
