#!/usr/bin/env python3
"""Ack → visible-in-lake latency of the raw Parquet sink (target: p99 ≤ roll_interval + 2 s).

    python3 benches/lake_latency.py [--duration 30] [--connections 4] [--roll-interval 10]

Runs the release binary with a `parquet` sink on local disk, drives it with wrk (pre-signed bodies made by
benches/ingest.sh --prepare-only), waits until the last file has rolled by interval (not by shutdown), and then
measures, for every row, the time from `_received_at` (taken just before the durable write that precedes the
200) to the moment its file appeared (the file's mtime: files appear by rename, so mtime is visibility).
Writes the figures into BENCHMARKS.md between <!-- sink-latency:begin --> and <!-- sink-latency:end -->.
"""
import argparse
import datetime
import os
import signal
import subprocess
import sys
import tempfile
import time

from benchmarks_md import write_section

NAME = "sink-latency"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUESTS = os.path.join(ROOT, "benches", "out", "requests", "run")


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=30)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--roll-interval", type=int, default=10)
    args = ap.parse_args()
    import duckdb

    if not os.path.exists(REQUESTS + ".0.tsv"):
        subprocess.run(["bash", os.path.join(ROOT, "benches", "ingest.sh"), "--prepare-only"], check=True)
    exe = os.path.join(ROOT, "target", "release", "hooklake")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "config.toml")
        with open(config, "w") as f:
            f.write(f"""data_dir = "data"
[sources.insightiq]
type = "webhook"
listen = "127.0.0.1:0"
path = "/webhooks/insightiq"
[transforms.verify]
type = "verify"
inputs = ["insightiq"]
secrets = ["bench-secret"]
[transforms.dedup]
type = "dedup"
inputs = ["verify"]
[sinks.raw]
type = "parquet"
inputs = ["dedup"]
url = "file://lake"
roll_interval = "{args.roll_interval}s"
""")
        server = subprocess.Popen([exe, "run", "-c", config], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            line = server.stdout.readline()
            url = line.split("listening on ")[1].strip()
            env = dict(os.environ, BENCH_REQUESTS=REQUESTS, BENCH_THREADS="2")
            wrk = subprocess.run(["wrk", "-t2", f"-c{args.connections}", f"-d{args.duration}s", "-s",
                                  os.path.join(ROOT, "benches", "wrk", "signed.lua"), url],
                                 env=env, capture_output=True, text=True, check=True)
            rate = next((l.split()[1] for l in wrk.stdout.splitlines() if l.startswith("Requests/sec")), "?")
            # Let the last buffer roll by interval, so no file's time is a shutdown flush.
            time.sleep(args.roll_interval + 3)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
        lake = os.path.join(tmp, "lake")
        rows = duckdb.connect().execute(
            f"select filename, epoch_us(_received_at) from read_parquet('{lake}/events/**/*.parquet', filename=true)"
        ).fetchall()
        mtimes = {}
        lat = []
        for filename, received_us in rows:
            if filename not in mtimes:
                mtimes[filename] = os.stat(filename).st_mtime_ns / 1000
            lat.append((mtimes[filename] - received_us) / 1e6)
        lat.sort()
        files = len(mtimes)
    p50, p99, mx = percentile(lat, 50), percentile(lat, 99), lat[-1]
    target = args.roll_interval + 2
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    section = f"""## Lake: ack → visible latency

- Command: `python3 benches/lake_latency.py --duration {args.duration} --connections {args.connections} --roll-interval {args.roll_interval}`
- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; commit `{commit}`; `nproc` = {os.cpu_count()}
- Load: wrk `-t2 -c{args.connections} -d{args.duration}s`, distinct signed deliveries ({rate} req/s acknowledged); raw `parquet` sink on local disk, `roll_interval = "{args.roll_interval}s"`, other settings default. Latency per row = file mtime (files appear by rename) − `_received_at`.

| rows | files | p50 s | p99 s | max s | target p99 ≤ roll_interval + 2 s |
| ---: | ---: | ---: | ---: | ---: | --- |
| {len(lat):,} | {files} | {p50:.2f} | {p99:.2f} | {mx:.2f} | {target} s: **{"met" if p99 <= target else "not met"}** |"""
    print(section)
    write_section(os.path.join(ROOT, "BENCHMARKS.md"), NAME, section)


if __name__ == "__main__":
    sys.exit(main())
