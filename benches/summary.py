#!/usr/bin/env python3
"""Collects the headline figure of every section of BENCHMARKS.md, with its target and whether it is met, into
the `summary` section at the top (and prints it). Each benchmark script owns its section; this one only reads
them, so the summary can never disagree with the sections below it.

    python3 benches/summary.py [BENCHMARKS.md]
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benches"))
from benchmarks_md import write_section  # noqa: E402

# section, what, regex for the figure (group 1 = number), target text, met(figure) → bool
HEADLINES = [
    ("ingest", "durable acks/s ÷ Express (no durability)", r"hooklake ÷ Express = ([\d.]+)×", "≥ 8×",
     lambda x: x >= 8),
    ("ingest", "acks/s ÷ group-commit bound", r"group-commit bound = ([\d.]+) %", "≥ 80 %", lambda x: x >= 80),
    ("e2e", "landed/s ÷ ack-only/s", r"\*\*([\d.]+)× the ack-only rate\*\*", "≥ 0.6×", lambda x: x >= 0.6),
    ("soak", "RSS last ÷ second quarter", r"\| ([\d.]+) / ([\d.]+) MiB \| flat", "≤ 1.10", None),
    ("sink-writer", "Parquet writer rows/s ÷ pyarrow", r"hooklake ÷ pyarrow = ([\d.]+)×", "≥ 1.2×",
     lambda x: x >= 1.2),
    ("sink-latency", "raw sink ack → visible p99 (s)", r"\| [\d,]+ \| \d+ \| [\d.]+ \| ([\d.]+) \|",
     "≤ roll_interval + 2 s (12 s)", lambda x: x <= 12),
    ("plugin", "insightiq plugin ÷ native", r"plugin ÷ native \| ([\d.]+)×", "≤ 2×", lambda x: x <= 2),
    ("enrich", "ids/s ÷ API ceiling (10 req/s × 100 ids)", r"\| ([\d.]+) × the \d+ ids/s ceiling", "≥ 0.9×",
     lambda x: x >= 0.9),
    ("hmac", "signature checks/s ÷ Python hmac (OpenSSL)", r"hooklake ÷ Python = ([\d.]+)×", "reference only",
     None),
]


def section(text, name):
    m = re.search(rf"<!-- {re.escape(name)}:begin -->(.*?)<!-- {re.escape(name)}:end -->", text, re.S)
    return m.group(1) if m else None


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "BENCHMARKS.md")
    text = open(path, encoding="utf-8").read()
    rows = []
    for name, what, pattern, target, met in HEADLINES:
        body = section(text, name)
        m = re.search(pattern, body or "")
        if not m:
            rows.append(f"| {what} | not measured | {target} | – | `{name}` |")
            continue
        if name == "soak":
            second, last = float(m.group(1)), float(m.group(2))
            value, ok = last / second, last <= second * 1.10
        else:
            value = float(m.group(1))
            ok = met(value) if met else None
        verdict = "–" if ok is None else ("**met**" if ok else "**not met**")
        commit = re.search(r"commit `([0-9a-f]+)`", body)
        rows.append(f"| {what} | {value:.3g} | {target} | {verdict} | `{name}`"
                    f"{' @ `' + commit.group(1) + '`' if commit else ''} |")
    summary = "\n".join([
        "## Summary: every target next to its latest figure",
        "",
        "Written by `benches/summary.py` from the sections below (each rewritten by its own script; "
        "`benches/run.sh` runs them all). These machines are noisy: compare ratios measured in the same run.",
        "",
        "| figure | latest | target | | section |",
        "|---|---:|---|---|---|",
        *rows,
    ])
    print(summary)
    write_section(path, "summary", summary)
    # The summary belongs at the top: move it there if write_section appended it.
    text = open(path, encoding="utf-8").read()
    block = re.search(r"<!-- summary:begin -->.*?<!-- summary:end -->\n", text, re.S).group(0)
    rest = text.replace(block, "")
    head_end = rest.find("<!-- ")
    text = rest[:head_end] + block + "\n" + rest[head_end:]
    open(path, "w", encoding="utf-8").write(re.sub(r"\n{3,}", "\n\n", text))


if __name__ == "__main__":
    main()
