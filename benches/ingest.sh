#!/usr/bin/env bash
# Ingest benchmark: hooklake (every 200 fsynced) against the reference Express handler (benches/express:
# verify the signature, store nothing), with the same pre-signed deliveries, side by side in one invocation.
#
#   benches/ingest.sh [--build] [--prepare-only]
#
#   --build         cargo build --release first (also done when HOOKLAKE_BIN does not exist)
#   --prepare-only  install tools and generate the request files, then stop (they are reused while the
#                   knobs that size them are unchanged)
#
# Environment knobs (defaults):
#   RUNS=3            rounds; each round runs both servers, alternating which goes first
#   DURATION=30s      measured wrk run per server per round (wrk syntax: 30s, 2m, …)
#   WARMUP=3s         wrk warm-up after each server start, not measured (0 = none)
#   CONNECTIONS=64    wrk -c
#   THREADS=2         wrk -t
#   MAX_RATE=100000   req/s the request files are sized for (× duration × 1.15); past it threads wrap around
#                     and repeat ids, which the report flags (hooklake answers repeats 200 without storing)
#   HOOKLAKE_BIN=target/release/hooklake   built with `cargo build --release` if missing or with --build
#   ONLY=             "express" or "hooklake" to run one side only (no ratio then)
#   OUT_DIR=benches/out                    request files, data dirs, logs, raw results
#   BENCHMARKS_MD=BENCHMARKS.md            where the report section is written ("" = do not write)
#
# Prints a Markdown report and writes it into BENCHMARKS.md between <!-- ingest:begin --> and
# <!-- ingest:end -->. Raw data of each invocation stays in $OUT_DIR/results/<stamp>/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/benches
RUNS=${RUNS:-3}
DURATION=${DURATION:-30s}
WARMUP=${WARMUP:-3s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
MAX_RATE=${MAX_RATE:-100000}
HOOKLAKE_BIN=${HOOKLAKE_BIN:-$ROOT/target/release/hooklake}
ONLY=${ONLY:-}
OUT_DIR=${OUT_DIR:-$BENCH/out}
BENCHMARKS_MD=${BENCHMARKS_MD-$ROOT/BENCHMARKS.md}
SECRET=bench-secret
BUILD=0
PREPARE_ONLY=0

for arg in "$@"; do
  case $arg in
    --build) BUILD=1 ;;
    --prepare-only) PREPARE_ONLY=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "ingest.sh: unknown argument $arg (see --help)" >&2; exit 2 ;;
  esac
done
case $ONLY in "" | express | hooklake) ;; *) echo "ingest.sh: ONLY must be express or hooklake" >&2; exit 2 ;; esac
[[ $RUNS =~ ^[1-9][0-9]*$ && $CONNECTIONS =~ ^[1-9][0-9]*$ && $THREADS =~ ^[1-9][0-9]*$ ]] ||
  { echo "ingest.sh: RUNS, CONNECTIONS and THREADS must be positive integers" >&2; exit 2; }
(( CONNECTIONS >= THREADS )) || { echo "ingest.sh: CONNECTIONS must be >= THREADS" >&2; exit 2; }

log() { printf '[ingest %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# wrk duration syntax → whole seconds (for sizing the request files).
seconds() {
  local v=$1
  case $v in
    *h) echo $(( ${v%h} * 3600 )) ;;
    *m) echo $(( ${v%m} * 60 )) ;;
    *s) echo "${v%s}" ;;
    *) echo "$v" ;;
  esac
}
DURATION_S=$(seconds "$DURATION")
WARMUP_S=$(seconds "$WARMUP")
[[ $DURATION_S =~ ^[1-9][0-9]*$ && $WARMUP_S =~ ^[0-9]+$ ]] || die "DURATION/WARMUP must be like 30s, 2m or 1h"

want() { [[ -z $ONLY || $ONLY == "$1" ]]; }

# ---------------------------------------------------------------- servers we started, stopped on any exit
SERVER_PID=""
stop_server() {
  local pid=$SERVER_PID
  [[ -n $pid ]] || return 0
  SERVER_PID=""
  kill -TERM "$pid" 2>/dev/null || return 0
  # hooklake drains open connections (bounded by its own 10 s); give it a little more, then insist.
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.25
  done
  log "server $pid did not stop within 15 s of SIGTERM; killing it"
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
trap 'stop_server' EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- tools
ensure_tools() {
  if ! command -v wrk >/dev/null; then
    log "installing wrk"
    apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; } ||
      die "cannot install wrk"
  fi
  for t in python3 curl; do command -v $t >/dev/null || die "$t is needed"; done
  if want express; then
    command -v node >/dev/null && command -v npm >/dev/null || die "node and npm are needed for the Express side"
    if [[ ! -d $BENCH/express/node_modules/express ]]; then
      log "installing the Express side's dependencies (npm ci)"
      (cd "$BENCH/express" && npm ci --no-audit --no-fund >/dev/null) || die "npm ci failed in benches/express"
    fi
  fi
  if want hooklake && (( ! PREPARE_ONLY )); then
    if (( BUILD )) || [[ ! -x $HOOKLAKE_BIN ]]; then
      log "building hooklake (cargo build --release)"
      (cd "$ROOT" && cargo build --release) || die "cargo build --release failed"
    fi
    [[ -x $HOOKLAKE_BIN ]] || die "no hooklake binary at $HOOKLAKE_BIN"
  fi
}

# ---------------------------------------------------------------- request files
# Two disjoint sets: warm.<t>.tsv for the warm-ups, run.<t>.tsv for the measured runs. Every server start gets
# an empty data dir, so reusing the sets across rounds never repeats an id within one hooklake's lifetime.
REQ_DIR=$OUT_DIR/requests
prepare_requests() {
  local warm_n=$(( MAX_RATE * WARMUP_S * 115 / 100 + THREADS ))
  local run_n=$(( MAX_RATE * DURATION_S * 115 / 100 + THREADS ))
  local key have_warm have_run
  key="threads=$THREADS secret=$SECRET gen=$(cksum <"$BENCH/gen_requests.py")"
  # Reuse the files while they were made the same way and hold at least as many deliveries as needed.
  if [[ -f $REQ_DIR/key && $(cat "$REQ_DIR/key") == "$key" && -f $REQ_DIR/counts ]]; then
    read -r have_warm have_run <"$REQ_DIR/counts"
    if (( have_warm >= warm_n && have_run >= run_n )); then
      log "reusing request files in $REQ_DIR ($have_warm warm-up + $have_run measured)"
      return
    fi
  fi
  rm -rf "$REQ_DIR"
  mkdir -p "$REQ_DIR"
  log "generating $warm_n warm-up + $run_n measured signed deliveries ($THREADS files each)"
  python3 "$BENCH/gen_requests.py" --out "$REQ_DIR" --prefix warm --threads "$THREADS" --count "$warm_n" \
    --secret "$SECRET" --first-index 0 >"$REQ_DIR/warm.json"
  python3 "$BENCH/gen_requests.py" --out "$REQ_DIR" --prefix run --threads "$THREADS" --count "$run_n" \
    --secret "$SECRET" --first-index "$warm_n" >"$REQ_DIR/run.json"
  echo "$key" >"$REQ_DIR/key"
  echo "$warm_n $run_n" >"$REQ_DIR/counts"
  log "generated: $(cat "$REQ_DIR/warm.json") $(cat "$REQ_DIR/run.json")"
}

# ---------------------------------------------------------------- one measured run
# CPU ticks (utime + stime) of a process; the comm field may hold spaces, so cut after its ')'.
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

# Starts one server in the background; sets SERVER_PID and URL (read from the line it prints).
start_server() {
  local server=$1 dir=$2
  case $server in
    hooklake)
      mkdir -p "$dir/data"
      cat >"$dir/hooklake.toml" <<EOF
data_dir = "$dir/data"
max_journal_bytes = "50GiB"
[sources.insightiq]
type = "webhook"
listen = "127.0.0.1:0"
path = "/webhooks/insightiq"
max_connections = 1024
[transforms.verify]
type = "verify"
inputs = ["insightiq"]
scheme = "insightiq"
secrets = ["$SECRET"]
[transforms.dedup]
type = "dedup"
inputs = ["verify"]
EOF
      "$HOOKLAKE_BIN" run -c "$dir/hooklake.toml" >"$dir/server.out" 2>"$dir/server.err" &
      ;;
    express)
      NODE_ENV=production WEBHOOK_SECRET=$SECRET node "$BENCH/express/server.js" 0 \
        >"$dir/server.out" 2>"$dir/server.err" &
      ;;
  esac
  SERVER_PID=$!
  URL=""
  for _ in $(seq 1 200); do # up to 20 s
    URL=$(grep -m1 -o 'http://127\.0\.0\.1:[0-9]*/[^ ]*' "$dir/server.out" 2>/dev/null || true)
    [[ -n $URL ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  [[ -n $URL ]] || die "$server did not print its listening line; see $dir/server.err"
  [[ $URL == http://127.0.0.1:* ]] || die "$server listens on $URL, not loopback"
}

# A wrong signature must be refused: proves both servers really verify before the numbers mean anything.
check_refuses_bad_signature() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H 'Content-Type: application/json' \
    -H "Webhook-Signatures: $(printf '0%.0s' $(seq 1 64))" \
    --data '{"event":"CONTENTS.ADDED","id":"bench-bad-signature","data":{}}' "$URL")
  [[ $code == 401 ]] || die "$1 answered $code (not 401) to a bad signature at $URL"
}

# Runs wrk over the request set `prefix`; its output goes to `output`, its own CPU (user system seconds, from
# bash's `time`: the client shares the machine with the server) to `output.time`.
run_wrk() { # prefix duration output [extra wrk args]
  local prefix=$1 duration=$2 output=$3
  shift 3
  local TIMEFORMAT='%3U %3S'
  { time BENCH_REQUESTS=$REQ_DIR/$prefix BENCH_THREADS=$THREADS \
      wrk -t"$THREADS" -c"$CONNECTIONS" -d"$duration" --timeout 10s "$@" -s "$BENCH/wrk/signed.lua" "$URL" \
      >"$output" 2>&1; } 2>"$output.time" || die "wrk failed; see $output"
  grep -q '^BENCH_JSON ' "$output" || die "wrk printed no BENCH_JSON; see $output"
}

measure() {
  local round=$1 server=$2
  local dir=$RESULTS/$round-$server
  local work=$OUT_DIR/work/$STAMP-$round-$server # hooklake's data dir lives here, outside the results
  mkdir -p "$dir" "$work"
  log "round $round/$RUNS: $server"
  start_server "$server" "$work"
  check_refuses_bad_signature "$server"
  if (( WARMUP_S > 0 )); then
    run_wrk warm "$WARMUP" "$dir/warmup.txt"
    if ! grep -q '"status":0,' "$dir/warmup.txt"; then
      log "warning: $server answered non-2xx during warm-up: $(grep '^BENCH_JSON' "$dir/warmup.txt")"
    fi
  fi
  local base=${URL%%/webhooks/*}
  if [[ $server == hooklake ]]; then curl -sf --max-time 5 "$base/metrics" >"$dir/metrics-before.txt"; fi
  local ticks0 stat0 ticks1 stat1
  ticks0=$(cpu_ticks "$SERVER_PID")
  stat0=$(head -1 /proc/stat)
  run_wrk run "$DURATION" "$dir/wrk.txt" --latency
  ticks1=$(cpu_ticks "$SERVER_PID")
  stat1=$(head -1 /proc/stat)
  if [[ $server == hooklake ]]; then curl -sf --max-time 5 "$base/metrics" >"$dir/metrics-after.txt"; fi
  stop_server
  cp "$work/server.out" "$work/server.err" "$dir/"
  rm -rf "$work" # the journal of a run is ~GBs and of no further use
  cat >"$dir/stat.json" <<EOF
{"server": "$server", "round": $round, "clk_tck": $CLK_TCK,
 "server_ticks_before": $ticks0, "server_ticks_after": $ticks1,
 "wrk_cpu_seconds": $(awk '{ print $1 + $2 }' "$dir/wrk.txt.time"),
 "proc_stat_before": "$stat0", "proc_stat_after": "$stat1"}
EOF
  log "  $(grep -o '"requests":[0-9]*,"duration_us":[0-9]*' "$dir/wrk.txt"), $(grep -o '"p99":[0-9]*' "$dir/wrk.txt") µs, $(grep -o '"status":[0-9]*' "$dir/wrk.txt")"
}

# ---------------------------------------------------------------- main
ensure_tools
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
REQ_DIR=$OUT_DIR/requests
prepare_requests
if (( PREPARE_ONLY )); then exit 0; fi

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=$OUT_DIR/results/$STAMP
mkdir -p "$RESULTS" "$OUT_DIR/work"
CLK_TCK=$(getconf CLK_TCK)
cat "$REQ_DIR/warm.json" "$REQ_DIR/run.json" | python3 -c '
import json, sys
print(json.dumps({j["prefix"]: j for j in map(json.loads, sys.stdin)}))' >"$RESULTS/gen.json"

# fdatasync latency where hooklake's data dirs live (OUT_DIR/work).
python3 "$BENCH/fsync_probe.py" "$OUT_DIR/work" >"$RESULTS/fsync.json"
log "fdatasync: $(cat "$RESULTS/fsync.json")"

commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null || commit="$commit (with uncommitted changes)"
command_line="RUNS=$RUNS DURATION=$DURATION WARMUP=$WARMUP CONNECTIONS=$CONNECTIONS THREADS=$THREADS MAX_RATE=$MAX_RATE"
if [[ -n $ONLY ]]; then command_line+=" ONLY=$ONLY"; fi
command_line+=" benches/ingest.sh${*:+ $*}"
express_version=none
if [[ -f $BENCH/express/node_modules/express/package.json ]]; then
  express_version=$(node -p "require('$BENCH/express/node_modules/express/package.json').version")
fi
# Values go to Python through the environment: no quoting games.
P_COMMAND=$command_line P_COMMIT=$commit P_DATE=$(date -u '+%Y-%m-%d %H:%M UTC') P_NPROC=$(nproc) \
P_CPU=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //') \
P_WRK=$(wrk -v 2>&1 | grep -o -m1 '[0-9][0-9.]*[0-9]' | head -1) \
P_NODE=$(node --version 2>/dev/null || echo none) P_EXPRESS=$express_version \
P_RUNS=$RUNS P_DURATION=$DURATION P_WARMUP=$WARMUP P_CONNECTIONS=$CONNECTIONS P_THREADS=$THREADS \
P_MAX_RATE=$MAX_RATE P_ONLY=$ONLY python3 -c '
import json, os, sys
e = os.environ
json.dump({
    "command": e["P_COMMAND"], "date": e["P_DATE"], "commit": e["P_COMMIT"], "nproc": int(e["P_NPROC"]),
    "cpu_model": e["P_CPU"], "wrk_version": e["P_WRK"], "node_version": e["P_NODE"],
    "express_version": e["P_EXPRESS"], "runs": int(e["P_RUNS"]), "duration": e["P_DURATION"],
    "warmup": e["P_WARMUP"], "connections": int(e["P_CONNECTIONS"]), "threads": int(e["P_THREADS"]),
    "max_rate": int(e["P_MAX_RATE"]), "only": e["P_ONLY"],
}, open(sys.argv[1], "w"), indent=1)' "$RESULTS/params.json"

for round in $(seq 1 "$RUNS"); do
  if (( round % 2 )); then order="hooklake express"; else order="express hooklake"; fi
  for server in $order; do
    if want "$server"; then measure "$round" "$server"; fi
  done
done

log "results in $RESULTS"
if [[ -n $BENCHMARKS_MD ]]; then
  python3 "$BENCH/ingest_report.py" "$RESULTS" --write "$BENCHMARKS_MD"
  log "report written to $BENCHMARKS_MD"
else
  python3 "$BENCH/ingest_report.py" "$RESULTS"
fi
