#!/usr/bin/env python3
"""Plugin benchmark: the shipped insightiq plugin through hooklake's wasm host against the same mapping compiled
natively (the plugin crate built for the host CPU), on the same batch of enriched events, side by side.

    python3 benches/plugin.py        # builds both sides in release mode first (cargo)

Figures: µs per event through the plugin and natively (median of ROUNDS batches per run, RUNS runs, medians),
their ratio (target ≤ 2×), instantiation time, cold load (compile) and cached load (compiled code from the cache).
Knobs (environment): RUNS (3), ROUNDS (50), EVENTS (64 per batch), BENCHMARKS_MD ("" = do not write).
Writes the section between <!-- plugin:begin --> and <!-- plugin:end --> of BENCHMARKS.md.
"""
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

RUNS = int(os.environ.get("RUNS", "3"))
ROUNDS = int(os.environ.get("ROUNDS", "50"))
EVENTS = int(os.environ.get("EVENTS", "64"))
BENCHMARKS_MD = os.environ.get("BENCHMARKS_MD", os.path.join(ROOT, "BENCHMARKS.md"))
PLUGIN = os.path.join(ROOT, "plugins", "insightiq.wasm")


def log(msg):
    print(f"[plugin {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main():
    if not os.path.exists(PLUGIN):
        raise SystemExit("plugins/insightiq.wasm is missing: run plugins/build.sh")
    log("building both sides (release)")
    subprocess.run(["cargo", "build", "--release", "--example", "plugin_bench"], cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "--locked", "--example", "native_bench", "-p", "insightiq"],
                   cwd=os.path.join(ROOT, "plugins"), check=True)
    wasm_bin = os.path.join(ROOT, "target", "release", "examples", "plugin_bench")
    native_bin = os.path.join(ROOT, "plugins", "target", "release", "examples", "native_bench")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        batch = os.path.join(tmp, "batch.json")
        for i in range(RUNS):
            order = ["wasm", "native"] if i % 2 == 0 else ["native", "wasm"]
            r = {}
            # The wasm side writes the batch first; the native side reads the same bytes.
            w = subprocess.run([wasm_bin, PLUGIN, "--write-batch", batch, "--events", str(EVENTS),
                                "--rounds", "1"], capture_output=True, text=True, check=True)
            for side in order:
                cmd = ([wasm_bin, PLUGIN, "--events", str(EVENTS), "--rounds", str(ROUNDS)] if side == "wasm"
                       else [native_bin, batch, str(ROUNDS)])
                r[side] = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
            assert w.returncode == 0
            if r["wasm"]["output_bytes"] != r["native"]["output_bytes"]:
                raise SystemExit(f"the two sides produced different output sizes: {r}")
            r["ratio"] = r["wasm"]["us_per_event"] / r["native"]["us_per_event"]
            log(json.dumps(r))
            runs.append(r)
    # The example plugins in the other languages, on the same batch (they map only CONTENTS events, but parse it all).
    examples = []
    for name, rel in [("Python (componentize-py)", "plugins/examples/python/content_daily_metrics.wasm"),
                      ("AssemblyScript", "plugins/examples/assemblyscript/content_engagement.wasm")]:
        path = os.path.join(ROOT, rel)
        if os.path.exists(path):
            log(f"example {name}")
            out = subprocess.run([wasm_bin, path, "--events", str(EVENTS), "--rounds", "20"], capture_output=True,
                                 text=True, check=True).stdout
            examples.append((name, rel, json.loads(out)))
    med = lambda f: statistics.median(f(r) for r in runs)  # noqa: E731
    ratio = med(lambda r: r["ratio"])
    w = runs[0]["wasm"]
    rows = [
        ("per event through the plugin", f"{med(lambda r: r['wasm']['us_per_event']):.1f} µs", ""),
        ("per event, same mapping native", f"{med(lambda r: r['native']['us_per_event']):.1f} µs", "reference"),
        ("plugin ÷ native", f"{ratio:.2f}×", "target ≤ 2× — " + ("met" if ratio <= 2 else "not met")),
        ("instantiate (fresh instance)", f"{med(lambda r: r['wasm']['instantiate_s']) * 1e6:.0f} µs", ""),
        ("load, cold (compile)", f"{med(lambda r: r['wasm']['cold_load_s']) * 1e3:.0f} ms", "release host"),
        ("load, compiled code from the cache", f"{med(lambda r: r['wasm']['cached_load_s']) * 1e3:.1f} ms", ""),
    ]
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    lines = [
        "## Plugin: insightiq through the wasm host vs native",
        "",
        f"`python3 benches/plugin.py` (RUNS={RUNS}, ROUNDS={ROUNDS}, EVENTS={EVENTS}), commit `{commit}`, "
        f"{time.strftime('%Y-%m-%d')}. The same batch ({EVENTS} enriched events, {w['input_bytes']:,} bytes: "
        "contents, comments, accounts, profiles, transactions, audience, a job event) mapped by "
        "`plugins/insightiq.wasm` in hooklake's host (release) and by the same crate compiled natively "
        "(`hooklake_plugin::transform_document`, the code the wasm export runs): parse, map, write the results "
        "document. Medians; runs alternate which side goes first.",
        "",
        "| figure | value | note |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows],
        "",
        "Runs (plugin ÷ native): " + ", ".join(f"{r['ratio']:.2f}×" for r in runs) + ".",
    ]
    if examples:
        lines += [
            "",
            "The example plugins of the other SDKs, through the same host on the same batch (one run, median of 20 "
            "batches; each parses the whole batch but maps only its CONTENTS events):",
            "",
            "| plugin | per event | instantiate | cold load | cached load |",
            "|---|---|---|---|---|",
            *[f"| {n} `{rel}` | {e['us_per_event']:.0f} µs | {e['instantiate_s'] * 1e6:.0f} µs | "
              f"{e['cold_load_s']:.1f} s | {e['cached_load_s'] * 1e3:.0f} ms |" for n, rel, e in examples],
        ]
    section = "\n".join(lines)
    print(section)
    if BENCHMARKS_MD:
        write_section(BENCHMARKS_MD, "plugin", section)


if __name__ == "__main__":
    main()
