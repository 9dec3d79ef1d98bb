#!/usr/bin/env python3
"""Enrichment benchmark: hooklake's `enrich` stage against the InsightIQ simulator at its real limit
(10 requests/s, fixed windows, 100 ids per bulk call), so the ceiling is 1,000 ids/s.

    python3 benches/enrich.py            # needs target/release/hooklake (cargo build --release)

Two scenarios, each in a fresh data dir, with the release binary on both sides:
  burst  BURST_EVENTS (50,000) CONTENTS.* webhooks with one id each, sent as fast as hooklake acknowledges them;
         measured: backlog drain time (first send → everything handed on), ids enriched per second against the
         1,000 ids/s ceiling, calls per id against the 0.01 floor. RUNS (3) times; medians.
  mix    MIX_EVENTS (1,000) webhooks of the live-like mix of all 26 types (accounts, profiles and comments
         need one call per id or page; they cannot be coalesced), once: calls per event and per id.

Knobs (environment): RUNS, BURST_EVENTS, MIX_EVENTS, HOOKLAKE_BIN, BENCHMARKS_MD ("" = do not write).
Writes the section between <!-- enrich:begin --> and <!-- enrich:end --> of BENCHMARKS.md.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benches"))
from benchmarks_md import write_section  # noqa: E402
from procs import commit, first_line_addr, metrics  # noqa: E402

BIN = os.environ.get("HOOKLAKE_BIN", os.path.join(ROOT, "target/release/hooklake"))
RUNS = int(os.environ.get("RUNS", "3"))
BURST_EVENTS = int(os.environ.get("BURST_EVENTS", "50000"))
MIX_EVENTS = int(os.environ.get("MIX_EVENTS", "1000"))
BENCHMARKS_MD = os.environ.get("BENCHMARKS_MD", os.path.join(ROOT, "BENCHMARKS.md"))
RATE_LIMIT = 10
SECRET = "bench-secret"


def log(msg):
    print(f"[enrich {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def metric(addr, name):
    return metrics(addr).get(name)


def run_once(events, sender_args):
    with tempfile.TemporaryDirectory() as tmp:
        sim = subprocess.Popen(
            [BIN, "simulate", "--api-listen", "127.0.0.1:0", "--rate-limit", str(RATE_LIMIT),
             "--client-id", "bench", "--client-secret", "bench-api"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        api = first_line_addr(sim)
        with open(os.path.join(tmp, "config.toml"), "w") as f:
            f.write(f"""data_dir = "data"
[api.insightiq]
base_url = "http://{api}"
client_id = "bench"
client_secret = "bench-api"
rate_limit = {RATE_LIMIT}
[sources.insightiq]
type = "webhook"
listen = "127.0.0.1:0"
path = "/webhooks/insightiq"
[transforms.verify]
type = "verify"
inputs = ["insightiq"]
secrets = ["{SECRET}"]
[transforms.dedup]
type = "dedup"
inputs = ["verify"]
[transforms.enrich]
type = "enrich"
inputs = ["dedup"]
max_wait = "500ms"
""")
        hook = subprocess.Popen([BIN, "run", "-c", os.path.join(tmp, "config.toml")],
                                stdout=subprocess.PIPE, stderr=open(os.path.join(tmp, "hooklake.log"), "w"),
                                env={**os.environ, "RUST_LOG": "warn"})
        url = first_line_addr(hook)
        addr = url.split("/", 1)[0]
        report = os.path.join(tmp, "report.json")
        t0 = time.monotonic()
        subprocess.run([BIN, "simulate", "--send-to", f"http://{url}", "--client-secret", SECRET,
                        "--events", str(events), "--concurrency", "64", "--report", report, *sender_args],
                       check=True, stderr=subprocess.DEVNULL)
        acked_s = time.monotonic() - t0
        acked = len(json.load(open(report))["acknowledged"])
        while True:
            backlog = metric(addr, 'hooklake_enrich_backlog{stage="enrich"}')
            if backlog == 0:
                break
            time.sleep(0.1)
        drain_s = time.monotonic() - t0
        stats = json.loads(get(f"http://{api}/_sim/stats"))
        handed = metric(addr, 'hooklake_enrich_events_total{stage="enrich"}')
        hook.terminate()
        hook.wait(30)
        sim.terminate()
        sim.wait(30)
        singles = stats["requests"] - stats["bulk_calls"]
        return {
            "events": acked, "handed_on": int(handed or 0), "ack_s": acked_s, "drain_s": drain_s,
            "requests": stats["requests"], "bulk_calls": stats["bulk_calls"], "bulk_ids": stats["bulk_ids"],
            "single_requests": singles, "max_sliding": stats["max_sliding_window"],
            "rate_limited": stats["rate_limited"],
        }


def main():
    if not os.access(BIN, os.X_OK):
        raise SystemExit(f"no binary at {BIN}: cargo build --release")
    burst = []
    for i in range(RUNS):
        log(f"burst run {i + 1}/{RUNS}: {BURST_EVENTS} CONTENTS.* events, one id each")
        r = run_once(BURST_EVENTS, ["--event-types", "CONTENTS.ADDED,CONTENTS.UPDATED", "--max-items", "1",
                                    "--seed", str(100 + i)])
        r["ids_per_s"] = r["bulk_ids"] / r["drain_s"]
        log(json.dumps(r))
        burst.append(r)
    log(f"mix run: {MIX_EVENTS} events of the live-like mix")
    mix = run_once(MIX_EVENTS, ["--seed", "7"])
    log(json.dumps(mix))

    med = lambda key: statistics.median(r[key] for r in burst)  # noqa: E731
    ceiling = RATE_LIMIT * 100
    rows = [
        ("backlog drain time, burst of %d events" % BURST_EVENTS, f"{med('drain_s'):.1f} s",
         f"ideal {med('bulk_ids') / ceiling:.1f} s at {ceiling} ids/s"),
        ("ids enriched per second", f"{med('ids_per_s'):.0f}",
         f"{med('ids_per_s') / ceiling:.2f} × the {ceiling} ids/s ceiling"),
        ("calls per id (burst)", f"{med('requests') / med('bulk_ids'):.4f}", "floor 0.0100 (100 ids per call)"),
        ("acknowledging the burst", f"{med('ack_s'):.1f} s", "the journal absorbs it; enrich drains behind"),
        ("most requests in any sliding second", f"{max(r['max_sliding'] for r in burst)}",
         f"limit {RATE_LIMIT}; refused for the limit: {sum(r['rate_limited'] for r in burst)}"),
        ("mix: calls per event", f"{mix['requests'] / mix['events']:.3f}",
         f"{mix['bulk_calls']} bulk calls for {mix['bulk_ids']} ids + {mix['single_requests']} single/page requests"),
        ("mix: drain time, %d events" % mix["events"], f"{mix['drain_s']:.1f} s", "one run"),
    ]
    commit_ = commit(ROOT)
    lines = [
        "## Enrichment against the simulator at 10 requests/s",
        "",
        f"`python3 benches/enrich.py` (RUNS={RUNS}, BURST_EVENTS={BURST_EVENTS}, MIX_EVENTS={MIX_EVENTS}), "
        f"commit `{commit_}`, {time.strftime('%Y-%m-%d')}, release build, simulator and hooklake on the same 2-core "
        "machine. Reference: the API's own ceiling (10 requests/s × 100 ids). Medians of the burst runs.",
        "",
        "| figure | value | reference |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows],
        "",
        "Burst runs: " + "; ".join(
            f"{r['drain_s']:.1f} s, {r['bulk_ids']} ids in {r['bulk_calls']} calls" for r in burst) + ".",
    ]
    section = "\n".join(lines)
    print(section)
    if BENCHMARKS_MD:
        write_section(BENCHMARKS_MD, "enrich", section)


if __name__ == "__main__":
    main()
