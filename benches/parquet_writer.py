#!/usr/bin/env python3
"""Parquet writer throughput: hooklake's writer vs pyarrow on the same 20-column, 1M-row table, same codec
(zstd level 1 in both), same row group size, measured side by side in one invocation (medians).

    python3 benches/parquet_writer.py [--rows N] [--runs R]

Writes the table once (uncompressed) to benches/out/table20.parquet; hooklake's side reads it and times only
encoding (examples/encode_bench.rs, release build); pyarrow's side times pq.write_table into memory. Prints a
Markdown section and writes it into BENCHMARKS.md between <!-- sink-writer:begin --> and <!-- sink-writer:end -->.
"""
import argparse
import datetime
import io
import json
import os
import statistics
import subprocess
import sys
import time

from benchmarks_md import write_section

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

NAME = "sink-writer"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "benches", "out")
ROW_GROUP = 131072


def make_table(n):
    """A table shaped like InsightIQ content rows: ids, enums, urls, counts, rates, timestamps."""
    rng = np.random.default_rng(42)
    ids = np.array([f"{x:032x}" for x in rng.integers(0, 2**63, n)])
    accounts = np.array([f"{x:032x}" for x in rng.integers(0, 2**63, 5000)])[rng.integers(0, 5000, n)]
    formats = np.array(["VIDEO", "IMAGE", "TEXT", "AUDIO", "COLLECTION"])[rng.integers(0, 5, n)]
    types = np.array(["POST", "STORY", "REELS", "SHORT", "VIDEO", "TWEET"])[rng.integers(0, 6, n)]
    visibility = np.array(["PUBLIC", "PRIVATE", "UNLISTED"])[rng.integers(0, 3, n)]
    urls = np.array([f"https://www.instagram.com/p/{x:x}/" for x in rng.integers(0, 2**40, n)])
    titles = np.array([f"Post number {x} about things" for x in rng.integers(0, 10**6, n)])
    base = np.datetime64("2026-01-01T00:00:00", "us")
    published = base + rng.integers(0, 3 * 10**13, n).astype("timedelta64[us]")
    updated = published + rng.integers(0, 10**11, n).astype("timedelta64[us]")
    ts = pa.timestamp("us", tz="UTC")
    cols = {
        "_event_id": pa.array(ids), "id": pa.array(ids[::-1].copy()), "account_id": pa.array(accounts),
        "format": pa.array(formats), "type": pa.array(types), "visibility": pa.array(visibility),
        "url": pa.array(urls), "title": pa.array(titles),
        "_seq": pa.array(np.arange(n, dtype=np.uint64)),
        "like_count": pa.array(rng.poisson(300, n).astype(np.int64)),
        "comment_count": pa.array(rng.poisson(20, n).astype(np.int64)),
        "view_count": pa.array(rng.integers(0, 10**7, n).astype(np.int64)),
        "share_count": pa.array(rng.poisson(5, n).astype(np.int64)),
        "save_count": pa.array(rng.poisson(8, n).astype(np.int64)),
        "duration": pa.array(rng.integers(0, 3600, n).astype(np.int64)),
        "watch_time_in_hours": pa.array(rng.random(n) * 1000),
        "engagement_rate": pa.array(rng.random(n) * 100),
        "_received_at": pa.array(updated, type=ts), "published_at": pa.array(published, type=ts),
        "is_sponsored": pa.array(rng.random(n) < 0.1),
    }
    return pa.table(cols)


def time_pyarrow(table, runs):
    secs = []
    size = 0
    for _ in range(runs):
        buf = io.BytesIO()
        t0 = time.perf_counter()
        pq.write_table(table, buf, compression="zstd", compression_level=1, row_group_size=ROW_GROUP)
        secs.append(time.perf_counter() - t0)
        size = buf.tell()
    return {"median_s": statistics.median(secs), "rows_per_s": table.num_rows / statistics.median(secs),
            "bytes": size, "all_s": sorted(secs)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    table = make_table(args.rows)
    src = os.path.join(OUT, "table20.parquet")
    pq.write_table(table, src, compression="none", row_group_size=ROW_GROUP)
    subprocess.run(["cargo", "build", "--release", "--example", "encode_bench", "--quiet"], cwd=ROOT, check=True)
    exe = os.path.join(ROOT, "target", "release", "examples", "encode_bench")
    # Alternate the two sides so drift on a noisy machine hits both alike.
    rust_runs, py_runs = [], []
    for _ in range(args.runs):
        out = subprocess.run([exe, src, "1", "zstd", str(ROW_GROUP)], check=True, capture_output=True, text=True)
        rust_runs.append(json.loads(out.stdout)["median_s"])
        py_runs.append(time_pyarrow(table, 1)["median_s"])
    rust = statistics.median(rust_runs)
    py = statistics.median(py_runs)
    rust_size = json.loads(subprocess.run([exe, src, "1"], check=True, capture_output=True, text=True).stdout)["bytes"]
    py_size = time_pyarrow(table, 1)["bytes"]
    n = table.num_rows
    ratio = py / rust
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    verdict = "met" if ratio >= 1.2 else "not met"
    section = f"""## Parquet writer: hooklake vs pyarrow

- Command: `python3 benches/parquet_writer.py --rows {n} --runs {args.runs}`
- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; commit `{commit}`; `nproc` = {os.cpu_count()}; pyarrow {pa.__version__}
- Table: {n:,} rows × {table.num_columns} columns (8 strings incl. 32-hex ids and low-cardinality enums, 7 int64/uint64, 2 float64, 2 timestamp µs UTC, 1 bool), built once in memory; zstd level 1, row groups of {ROW_GROUP:,} rows, one file written to memory; {args.runs} alternating runs per side, medians.

| writer | median s | rows/s | file bytes |
| --- | ---: | ---: | ---: |
| hooklake (`sinks::parquet::encode`, parquet-rs) | {rust:.3f} | {n / rust:,.0f} | {rust_size:,} |
| pyarrow `pq.write_table` | {py:.3f} | {n / py:,.0f} | {py_size:,} |

**hooklake ÷ pyarrow = {ratio:.2f}× rows/s** (target ≥ 1.2×: **{verdict}**)."""
    print(section)
    write_section(os.path.join(ROOT, "BENCHMARKS.md"), NAME, section)


if __name__ == "__main__":
    sys.exit(main())
