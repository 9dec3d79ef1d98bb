#!/usr/bin/env python3
"""Turns the raw data of one benches/ingest.sh invocation into a Markdown report.

    ingest_report.py RESULTS_DIR [--write BENCHMARKS.md]

RESULTS_DIR (written by ingest.sh) holds params.json, fsync.json, gen.json and one directory per measured run,
`<round>-<server>/`, with: wrk.txt (wrk's output, whose `BENCH_JSON {...}` line comes from wrk/signed.lua),
stat.json (server CPU ticks, machine /proc/stat lines and wrk's own CPU before/after the run) and, for
hooklake, metrics-before.txt / metrics-after.txt (GET /metrics). Prints the report; with --write, replaces the
part of the file between `<!-- ingest:begin -->` and `<!-- ingest:end -->` (creating the file or the markers
if missing). Also writes RESULTS_DIR/summary.json.
"""
import argparse
import json
import os
import re
import statistics
import sys

from benchmarks_md import write_section

TARGET_RATIO = 8.0
OTHER_LOAD_CORES = 0.25  # busy CPU outside server + wrk above which a run is flagged as disturbed

def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def wrk_json(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("BENCH_JSON "):
                return json.loads(line[len("BENCH_JSON "):])
    sys.exit(f"ingest_report.py: no BENCH_JSON line in {path} (did wrk fail?)")


def prom(path):
    """Prometheus text → {metric name: sum over its label sets}, plus 'name{status="200"}' style keys for
    the by-status counter."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$', line.strip())
            if not m:
                continue
            name, labels, value = m.group(1), m.group(2) or "", float(m.group(3))
            out[name] = out.get(name, 0.0) + value
            status = re.search(r'status="(\d+)"', labels)
            if status:
                key = f"{name}:{status.group(1)}"
                out[key] = out.get(key, 0.0) + value
    return out


def cpu_busy(before, after):
    """Machine-wide busy share (0-1 per core, summed over cores) between two `cpu ...` lines of /proc/stat."""
    b = [int(x) for x in before.split()[1:]]
    a = [int(x) for x in after.split()[1:]]
    d = [y - x for x, y in zip(b, a)]
    total = sum(d[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    idle = d[3] + d[4]
    return (total - idle) / total if total else 0.0


def one_run(run_dir, params, fsync):
    w = wrk_json(os.path.join(run_dir, "wrk.txt"))
    st = load_json(os.path.join(run_dir, "stat.json"))
    secs = w["duration_us"] / 1e6
    errors = w["errors"]
    ok = w["requests"] - errors["status"]  # wrk counts statuses >= 400 as errors.status
    tck = st["clk_tck"]
    server_cpu_s = (st["server_ticks_after"] - st["server_ticks_before"]) / tck
    r = {
        "server": st["server"], "round": st["round"], "seconds": round(secs, 2),
        "requests": w["requests"], "ok": ok, "non_2xx": errors["status"],
        "socket_errors": errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        "req_per_s": ok / secs if secs else 0.0,
        "p50_ms": w["latency_us"]["p50"] / 1000, "p99_ms": w["latency_us"]["p99"] / 1000,
        "p999_ms": w["latency_us"]["p999"] / 1000,
        "cpu_us_per_req": server_cpu_s * 1e6 / w["requests"] if w["requests"] else None,
        "server_cores": server_cpu_s / secs if secs else 0.0,
        "wrk_cores": st.get("wrk_cpu_seconds", 0.0) / secs if secs else 0.0,
        "machine_cores": cpu_busy(st["proc_stat_before"], st["proc_stat_after"]) * params["nproc"],
        "wraps": w["wraps"],
    }
    before = os.path.join(run_dir, "metrics-before.txt")
    if os.path.exists(before):
        m0, m1 = prom(before), prom(os.path.join(run_dir, "metrics-after.txt"))

        def delta(k):
            return m1.get(k, 0.0) - m0.get(k, 0.0)

        commits = delta("hooklake_journal_commits_total")
        appends = delta("hooklake_journal_committed_appends_total")
        stored = delta("hooklake_events_accepted_total")
        http_200 = delta("hooklake_http_requests_total:200")
        # Server-side counts include requests still in flight when wrk stopped, so scale wrk's 200 rate by the
        # stored share of hooklake's own 200s rather than dividing the raw count by wrk's duration.
        stored_share = stored / http_200 if http_200 else 0.0
        bound = params["connections"] / (fsync["median_us"] / 1e6)
        commit_n = delta("hooklake_journal_commit_seconds_count")
        r.update({
            "http_200": http_200,
            "stored": stored,
            "duplicates": delta("hooklake_events_duplicate_total"),
            "stored_per_s": (ok / secs) * stored_share if secs else 0.0,
            "commits": commits,
            "batch": appends / commits if commits else None,
            "commit_ms": delta("hooklake_journal_commit_seconds_sum") / commit_n * 1000 if commit_n else None,
            "bound_per_s": bound,
            "of_bound": (ok / secs) / bound if secs else 0.0,
        })
    return r


def med(runs, key):
    vals = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def fmt(v, digits=0, unit=""):
    if v is None:
        return "–"
    return f"{v:,.{digits}f}{unit}"


def render(params, fsync, gen, runs):
    by = {s: [r for r in runs if r["server"] == s] for s in ("hooklake", "express")}
    h, e = by["hooklake"], by["express"]
    lines = []
    lines.append("## Ingest: hooklake vs. the reference Express handler")
    lines.append("")
    lines.append(f"- Command: `{params['command']}`")
    lines.append(f"- Date: {params['date']}; commit `{params['commit']}`; `nproc` = {params['nproc']} "
                 f"({params['cpu_model']}); wrk {params['wrk_version']}, node {params['node_version']}, "
                 f"express {params['express_version']}")
    lines.append(f"- Load: wrk `-t{params['threads']} -c{params['connections']} -d{params['duration']} "
                 f"--latency --timeout 10s`, {params['warmup']} warm-up per server start, {params['runs']} round(s) "
                 "alternating which server goes first; each run starts a fresh server (hooklake: empty data dir). "
                 "Client and server share the machine, on 127.0.0.1.")
    bb = gen.get("run", {}).get("body_bytes", {})
    lines.append(f"- Requests: {gen.get('run', {}).get('lines', 0):,} distinct pre-signed deliveries "
                 f"(body bytes p50 {bb.get('p50', '?')}, p95 {bb.get('p95', '?')}, max {bb.get('max', '?')}); "
                 "one file per wrk thread, so no id repeats unless a thread runs past its file (wraps).")
    lines.append(f"- fdatasync on the data dir's filesystem ({fsync['count']} × {fsync['size']} B each, before the "
                 f"runs): median {fsync['median_us']:.0f} µs overwriting in place (p90 {fsync['p90_us']:.0f} µs), "
                 f"{fsync['append']['median_us']:.0f} µs appending. Group-commit bound = connections ÷ median "
                 f"fdatasync (in place) = {params['connections']} ÷ {fsync['median_us']:.0f} µs "
                 f"= {params['connections'] / (fsync['median_us'] / 1e6):,.0f} acks/s.")
    lines.append("")
    lines.append("Medians over the runs (req/s counts 2xx answers; CPU is the server process's user+system time):")
    lines.append("")
    lines.append("| server | req/s | p50 | p99 | CPU µs/req | server cores | non-2xx | socket errors | durable 200 |")
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, rs, durable in (("hooklake", h, "yes: fsynced journal"), ("express", e, "no: stores nothing")):
        if not rs:
            lines.append(f"| {name} | not run | | | | | | | |")
            continue
        lines.append(
            f"| {name} | {fmt(med(rs, 'req_per_s'))} | {fmt(med(rs, 'p50_ms'), 2, ' ms')} | "
            f"{fmt(med(rs, 'p99_ms'), 2, ' ms')} | {fmt(med(rs, 'cpu_us_per_req'), 1)} | "
            f"{fmt(med(rs, 'server_cores'), 2)} | {sum(r['non_2xx'] for r in rs)} | "
            f"{sum(r['socket_errors'] for r in rs)} | {durable} |")
    lines.append("")

    verdict = {"ratio": None, "ratio_stored": None, "met": None, "reasons": []}
    if h and e:
        express_rps = med(e, "req_per_s")
        verdict["ratio"] = med(h, "req_per_s") / express_rps if express_rps else None
        verdict["ratio_stored"] = med(h, "stored_per_s") / express_rps if express_rps else None
        dups = sum(r["duplicates"] for r in h)
        non2xx = sum(r["non_2xx"] for r in h)
        reasons = []
        if verdict["ratio_stored"] is None or verdict["ratio_stored"] < TARGET_RATIO:
            reasons.append(f"stored/s is {fmt(verdict['ratio_stored'], 2)}× Express, under {TARGET_RATIO:g}×")
        if dups:
            reasons.append(f"{dups:,.0f} of hooklake's 200s were duplicates (request files wrapped: raise MAX_RATE)")
        if non2xx:
            reasons.append(f"hooklake answered {non2xx:,} non-2xx")
        verdict["met"] = not reasons
        verdict["reasons"] = reasons
        lines.append(f"**Headline: hooklake ÷ Express = {fmt(verdict['ratio'], 2)}× req/s** "
                     f"({fmt(verdict['ratio_stored'], 2)}× counting only 200s that stored a new event). "
                     f"Target ≥ {TARGET_RATIO:g}× with every 200 fsynced: "
                     + ("**met**." if verdict["met"] else "**not met**: " + "; ".join(reasons) + "."))
    else:
        lines.append("**Headline: not computed**: this invocation ran only "
                     + ("hooklake" if h else "Express") + " (ONLY=…); no ratio.")
    lines.append("")

    if h:
        lines.append("hooklake durability (medians): "
                     f"stored {fmt(med(h, 'stored_per_s'))}/s of {fmt(med(h, 'req_per_s'))} 200s/s; "
                     f"duplicates {sum(r['duplicates'] for r in h):,.0f} in total; "
                     f"group commit {fmt(med(h, 'batch'), 1)} appends/commit at "
                     f"{fmt(med(h, 'commit_ms'), 2, ' ms')} per commit; "
                     f"acks/s ÷ group-commit bound = {fmt((med(h, 'of_bound') or 0) * 100, 1, ' %')}.")
        lines.append("")

    # CPU the machine spent outside the server and wrk during a run: another process competing for the cores.
    noisy = [r for r in runs if r["machine_cores"] - r["server_cores"] - r["wrk_cores"] > OTHER_LOAD_CORES]
    if noisy:
        lines.append("⚠ Other load: in " + ", ".join(f"round {r['round']} {r['server']}" for r in noisy)
                     + f", processes other than the server and wrk used more than {OTHER_LOAD_CORES} core "
                     "(see the per-run table); those figures are understated. Rerun on a quiet machine.")
        lines.append("")
    lines.append("Per run (machine cores = busy CPU of the whole machine, of which server and wrk as shown; "
                 "the rest is other load):")
    lines.append("")
    lines.append("| round | server | req/s | p50 ms | p99 ms | p99.9 ms | CPU µs/req | server / wrk / machine cores "
                 "| non-2xx | wraps | stored | dup | batch |")
    lines.append("| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in sorted(runs, key=lambda r: (r["round"], r["server"])):
        lines.append(
            f"| {r['round']} | {r['server']} | {fmt(r['req_per_s'])} | {fmt(r['p50_ms'], 2)} | {fmt(r['p99_ms'], 2)} | "
            f"{fmt(r['p999_ms'], 2)} | {fmt(r['cpu_us_per_req'], 1)} | "
            f"{r['server_cores']:.2f} / {r['wrk_cores']:.2f} / {r['machine_cores']:.2f} | {r['non_2xx']} | "
            f"{r['wraps']} | {fmt(r.get('stored'))} | {fmt(r.get('duplicates'))} | {fmt(r.get('batch'), 1)} |")
    return "\n".join(lines) + "\n", verdict


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results")
    p.add_argument("--write", metavar="BENCHMARKS.md")
    a = p.parse_args()
    params = load_json(os.path.join(a.results, "params.json"))
    fsync = load_json(os.path.join(a.results, "fsync.json"))
    gen = load_json(os.path.join(a.results, "gen.json"))
    run_dirs = sorted(d for d in os.listdir(a.results) if os.path.isdir(os.path.join(a.results, d)))
    runs = [one_run(os.path.join(a.results, d), params, fsync) for d in run_dirs]
    if not runs:
        sys.exit(f"ingest_report.py: no runs in {a.results}")
    section, verdict = render(params, fsync, gen, runs)
    sys.stdout.write(section)
    with open(os.path.join(a.results, "summary.json"), "w", encoding="utf-8") as f:
        json.dump({"params": params, "fsync": fsync, "gen": gen, "runs": runs, "verdict": verdict}, f, indent=1)
    if a.write:
        write_section(a.write, "ingest", section)


if __name__ == "__main__":
    main()
