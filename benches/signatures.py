#!/usr/bin/env python3
"""Signature checks per second: hooklake's `verify` stage (release, `examples/hmac_bench.rs`) against Python's
`hmac` (OpenSSL's HMAC-SHA256, `hmac.compare_digest`) on the same 1,000 bodies of the live-like mix, one core
each, medians of 3 alternating runs.

    python3 benches/signatures.py            # builds the example with cargo build --release --example hmac_bench

Writes the section between <!-- hmac:begin --> and <!-- hmac:end --> of BENCHMARKS.md and
benches/out/results/hmac.json.
"""
import hashlib
import hmac
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benches"))
from benchmarks_md import write_section  # noqa: E402

BENCHMARKS_MD = os.environ.get("BENCHMARKS_MD", os.path.join(ROOT, "BENCHMARKS.md"))


def python_rate(bodies, seconds=3.0):
    key = b"bench-secret"
    signed = [(b, hmac.new(key, b, hashlib.sha256).hexdigest()) for b in bodies]
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for b, sig in signed:
            if not hmac.compare_digest(hmac.new(key, b, hashlib.sha256).hexdigest(), sig):
                raise SystemExit("mismatch")
        n += len(signed)
    return n / (time.perf_counter() - t0)


def main():
    subprocess.run(["cargo", "build", "--release", "--example", "hmac_bench"], cwd=ROOT, check=True)
    example = os.path.join(ROOT, "target/release/examples/hmac_bench")
    with tempfile.TemporaryDirectory() as tmp:
        # 1,000 bodies of the ingest benchmark's generator (InsightIQ-like envelopes, varied sizes).
        bodies_file = os.path.join(tmp, "bodies.jsonl")
        subprocess.run([sys.executable, os.path.join(ROOT, "benches/gen_requests.py"), "--out", tmp, "--prefix", "b",
                        "--threads", "1", "--count", "1000"], check=True, capture_output=True)
        bodies = [line.split(b"\t", 1)[1].rstrip(b"\n") for line in open(os.path.join(tmp, "b.0.tsv"), "rb")]
        with open(bodies_file, "wb") as f:
            f.write(b"\n".join(bodies) + b"\n")
        rust, py = [], []
        for _ in range(3):
            out = subprocess.run([example, bodies_file, "--seconds", "3"], capture_output=True, text=True, check=True)
            rust.append(json.loads(out.stdout)["checks_per_s"])
            py.append(python_rate(bodies))
    r, p = statistics.median(rust), statistics.median(py)
    mean = sum(map(len, bodies)) // len(bodies)
    res = {"hooklake_per_s": r, "python_per_s": p, "ratio": r / p, "mean_body_bytes": mean}
    os.makedirs(os.path.join(ROOT, "benches/out/results"), exist_ok=True)
    json.dump(res, open(os.path.join(ROOT, "benches/out/results/hmac.json"), "w"), indent=1)
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    section = "\n".join([
        "## Signature checks: hooklake's verify vs Python's hmac (OpenSSL)",
        "",
        f"`python3 benches/signatures.py`, commit `{commit}`, {time.strftime('%Y-%m-%d %H:%M')} UTC: 1,000 bodies from "
        f"`benches/gen_requests.py` (mean {mean} bytes), HMAC-SHA256 + hex + constant-time compare, one core, "
        "medians of 3 runs of 3 s.",
        "",
        "| checker | checks/s |",
        "|---|---:|",
        f"| hooklake `Verifier::check_body` (RustCrypto `hmac`/`sha2`) | {r:,.0f} |",
        f"| Python `hmac.new(...).hexdigest()` + `compare_digest` | {p:,.0f} |",
        "",
        f"**hooklake ÷ Python = {r / p:.2f}×.** At ~36 µs of CPU per request end to end (BENCHMARKS.md, ingest), "
        f"the check is {1e6 / r:.1f} µs of it.",
    ])
    print(section)
    if BENCHMARKS_MD:
        write_section(BENCHMARKS_MD, "hmac", section)


if __name__ == "__main__":
    main()
