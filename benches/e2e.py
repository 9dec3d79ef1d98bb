#!/usr/bin/env python3
"""End-to-end and soak benchmarks of the whole pipeline (release binary): webhook → verify → dedup → journal →
enrich (against the simulator, its rate limit lifted) → the insightiq plugin → Parquet (mapped tables and the
raw `events` table), on local disk.

    python3 benches/e2e.py [--duration 60] [--soak 600] [--no-soak]

Load: the simulator's own sender (`hooklake simulate --send-to`): the live-like mix of all 26 event types, signed,
64 connections. Every phase starts a fresh data dir and lake.

1. ack-only: the admission-only pipeline (webhook → verify → dedup → journal), sender unpaced, `--duration` s:
   acknowledgements per second. The reference.
2. pipeline: the full pipeline, same load, `--events` events (at most `--duration` s), then until the lake holds
   everything acknowledged. Landed events/s (an event is landed when every sink has passed it: all its rows are
   visible; events acknowledged ÷ the time until the last landed) ÷ the ack-only rate (target ≥ 0.6); ack →
   visible latency per event, from the acknowledged and landed counts polled every 0.25 s (the k-th
   acknowledged event is visible when k events have landed; events land in journal order), p50/p99.
3. soak: the full pipeline for `--soak` s at half the landed rate of phase 2, paced: RSS every 10 s (target:
   flat, the last quarter's median within 10 % of the second quarter's), journal bytes, the sender's p99
   answer latency.

Writes the sections `e2e` and `soak` of BENCHMARKS.md and JSON to benches/out/results/{e2e,soak}.json.
"""
import argparse
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
from procs import commit, first_line_addr, metrics  # noqa: E402

BIN = os.environ.get("HOOKLAKE_BIN", os.path.join(ROOT, "target/release/hooklake"))
PLUGIN = os.path.join(ROOT, "plugins/insightiq.wasm")
BENCHMARKS_MD = os.environ.get("BENCHMARKS_MD", os.path.join(ROOT, "BENCHMARKS.md"))
RESULTS = os.path.join(ROOT, "benches/out/results")
SECRET = "bench-secret"


def log(msg):
    print(f"[e2e {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def config(api, full):
    text = f"""data_dir = "data"
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
"""
    if full:
        text += f"""
[api.insightiq]
base_url = "http://{api}"
client_id = "bench"
client_secret = "bench-api"
rate_limit = 10000
[transforms.enrich]
type = "enrich"
inputs = ["dedup"]
max_wait = "200ms"
[transforms.map]
type = "wasm"
inputs = ["enrich"]
plugins = ["{PLUGIN}"]
[sinks.lake]
type = "parquet"
inputs = ["map"]
url = "file://lake"
roll_interval = "2s"
[sinks.raw]
type = "parquet"
inputs = ["dedup"]
url = "file://lake"
roll_interval = "2s"
"""
    return text


class Pipeline:
    def __init__(self, tmp, full):
        self.tmp = tmp
        self.sim = subprocess.Popen(
            [BIN, "simulate", "--api-listen", "127.0.0.1:0", "--rate-limit", "0", "--max-concurrent", "0",
             "--client-id", "bench", "--client-secret", "bench-api"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        api = first_line_addr(self.sim)
        path = os.path.join(tmp, "config.toml")
        with open(path, "w") as f:
            f.write(config(api, full))
        self.proc = subprocess.Popen([BIN, "run", "-c", path], stdout=subprocess.PIPE,
                                     stderr=open(os.path.join(tmp, "hooklake.log"), "w"),
                                     env={**os.environ, "RUST_LOG": "warn"})
        self.url = "http://" + first_line_addr(self.proc)
        self.addr = self.url.split("//", 1)[1].split("/", 1)[0]

    def counts(self):
        m = metrics(self.addr)
        acked = m.get('hooklake_events_accepted_total{source="insightiq"}', 0.0)
        sinks = [v for k, v in m.items() if k.startswith("hooklake_sink_checkpoint_lag{")]
        # A sink's lag is what the journal holds that it has not written: landed = stored − the largest lag.
        landed = m.get("hooklake_journal_next_seq", 0.0) - (max(sinks) if sinks else 0.0)
        return acked, landed, m

    def rss_mib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def cpu_secs(self):
        """CPU seconds (user + system) of hooklake and of the simulator so far."""
        def of(pid):
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return of(self.proc.pid), of(self.sim.pid)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(120)
        self.sim.terminate()
        self.sim.wait(30)


def sender(url, events, rate, report, seed):
    return subprocess.Popen(
        [BIN, "simulate", "--send-to", url, "--client-secret", SECRET, "--events", str(events), "--rate", str(rate),
         "--concurrency", "64", "--retry-scale", "0.001", "--seed", str(seed), "--report", report],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def unpaced(full, duration, seed, events=10_000_000):
    """Unpaced load for `duration` s or until `events` are sent; returns the polled (t, acked, landed) samples,
    the time everything acknowledged had landed (full pipeline) and the rows landed."""
    with tempfile.TemporaryDirectory() as tmp:
        p = Pipeline(tmp, full)
        s = sender(p.url, events, 0, os.path.join(tmp, "report.json"), seed)
        t0 = time.monotonic()
        samples = []
        while time.monotonic() - t0 < duration and s.poll() is None:
            time.sleep(0.25)
            acked, landed, _ = p.counts()
            samples.append((time.monotonic() - t0, acked, landed))
        s.kill()
        s.wait()
        drained = None
        rows = 0.0
        if full:
            deadline = time.monotonic() + 900
            while time.monotonic() < deadline:
                acked, landed, _ = p.counts()
                samples.append((time.monotonic() - t0, acked, landed))
                if landed >= acked:
                    drained = time.monotonic() - t0
                    break
                time.sleep(0.25)
            m = p.counts()[2]
            rows = sum(v for k, v in m.items() if k.startswith("hooklake_sink_rows_total{"))
            plugin = {name: sum(v for k, v in m.items() if k.startswith(name + "{"))
                      for name in ("hooklake_plugin_events_total", "hooklake_plugin_calls_total",
                                   "hooklake_plugin_call_seconds_sum")}
        cpu = p.cpu_secs()
        p.stop()
        return samples, drained, (rows, plugin if full else {}), cpu


def latencies(samples):
    """Ack → visible per event from the cumulative curves (events land in journal order)."""
    out = []
    j = 0
    prev = 0
    for t, acked, _ in samples:
        for k in range(int(prev) + 1, int(acked) + 1):
            while j < len(samples) and samples[j][2] < k:
                j += 1
            if j == len(samples):
                return out
            out.append(max(0.0, samples[j][0] - t))
        prev = max(prev, acked)
    return out


def pct(values, q):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(len(v) * q + 0.999999) - 1))]


def soak(rate, secs):
    with tempfile.TemporaryDirectory() as tmp:
        p = Pipeline(tmp, True)
        report = os.path.join(tmp, "report.json")
        s = sender(p.url, int(rate * secs), rate, report, 99)
        t0 = time.monotonic()
        samples = []
        while s.poll() is None:
            time.sleep(10)
            acked, landed, m = p.counts()
            samples.append({"t": round(time.monotonic() - t0), "rss_mib": round(p.rss_mib(), 1),
                            "journal_mib": round(m.get("hooklake_journal_bytes", 0) / 2**20, 2),
                            "depth": int(m.get("hooklake_journal_depth", 0)), "acked": int(acked),
                            "lag": int(acked - landed)})
            log(json.dumps(samples[-1]))
        r = json.load(open(report))
        p.stop()
        return samples, r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=60)
    ap.add_argument("--events", type=int, default=20_000,
                    help="events sent to the full pipeline (each becomes many rows and API calls: its backlog "
                         "must drain in minutes)")
    ap.add_argument("--soak", type=int, default=600)
    ap.add_argument("--no-soak", action="store_true")
    args = ap.parse_args()
    for need in (BIN, PLUGIN):
        if not os.path.exists(need):
            raise SystemExit(f"{need} is missing: cargo build --release; plugins/build.sh")
    os.makedirs(RESULTS, exist_ok=True)

    log(f"ack-only, {args.duration} s")
    ack_samples, _, _, _ = unpaced(False, args.duration, 1)
    ack_rate = ack_samples[-1][1] / ack_samples[-1][0]
    log(f"ack-only: {ack_rate:.0f}/s")
    log(f"full pipeline, {args.events} events (at most {args.duration} s), then drain")
    samples, drained, (rows, plugin), (cpu_hook, cpu_sim) = unpaced(True, args.duration, 2, args.events)
    plugin_events = plugin.get("hooklake_plugin_events_total", 0.0)
    # Wall time inside the mapping step (all its workers at once), per event mapped.
    plugin_us = 1e6 * plugin.get("hooklake_plugin_call_seconds_sum", 0.0) / max(plugin_events, 1.0)
    sent = next((x for x in samples if x[1] >= samples[-1][1]), samples[-1])
    acked_rate = sent[1] / sent[0]
    # The pipeline's throughput: everything acknowledged during the load, landed, over the time it took
    # (the load itself, then the drain).
    end = drained or samples[-1][0]
    landed_rate = samples[-1][2] / end
    rows_rate = rows / end
    lat = latencies(samples)
    e2e = {"ack_only_per_s": ack_rate, "acked_per_s": acked_rate, "landed_per_s": landed_rate,
           "rows_per_s": rows_rate,
           "ratio": landed_rate / ack_rate, "p50_s": pct(lat, 0.5), "p99_s": pct(lat, 0.99),
           "events": int(samples[-1][1]), "drained_s": drained, "duration_s": args.duration,
           "plugin_events": plugin_events, "plugin_wall_us_per_event": plugin_us,
           "cpu_ms_per_event": 1e3 * cpu_hook / max(samples[-1][1], 1)}
    log(json.dumps(e2e))
    json.dump(e2e, open(os.path.join(RESULTS, "e2e.json"), "w"), indent=1)
    met = "met" if e2e["ratio"] >= 0.6 else "not met"
    section = "\n".join([
        "## End to end: webhook → enrich → plugin → Parquet",
        "",
        f"- Command: `python3 benches/e2e.py --duration {args.duration} --events {args.events}`; commit `{commit(ROOT)}`, "
        f"{time.strftime('%Y-%m-%d %H:%M')} UTC, release build, `nproc` = {os.cpu_count()}.",
        f"- Load: `hooklake simulate --send-to` (the live-like mix of 26 event types, signed, 64 connections, "
        f"unpaced): {args.duration} s for the admission-only reference, {args.events:,} events (or {args.duration} s) "
        "for the full pipeline; the simulator's API on the same machine with its rate limit lifted; the plugin "
        "`plugins/insightiq.wasm`; mapped tables and the raw `events` table on local disk, `roll_interval = 2s`.",
        "- Landed = every sink has written the event (all its rows are visible); landed/s = events acknowledged "
        "during the load ÷ the time until the last of them landed. Latency = from the k-th acknowledgement to the "
        "k-th landed event, counts polled every 0.25 s, so it includes the backlog the unpaced load builds.",
        "",
        "| figure | value | reference / target |",
        "|---|---:|---|",
        f"| acknowledged/s, admission only | {ack_rate:,.0f} | the reference |",
        f"| acknowledged/s, full pipeline | {acked_rate:,.0f} | |",
        f"| landed/s, full pipeline | {landed_rate:,.0f} | **{e2e['ratio']:.3f}× the ack-only rate** "
        f"(target ≥ 0.6×: **{met}**) |",
        f"| rows landed/s, all tables | {rows_rate:,.0f} | each event of the mix becomes many rows |",
        f"| ack → visible p50 | {e2e['p50_s']:.1f} s | backlog included |",
        f"| ack → visible p99 | {e2e['p99_s']:.1f} s | |",
        f"| drained after the load stopped | {drained - sent[0]:.1f} s | {e2e['events']:,} events |"
        if drained else "| drained | no (15 min limit) | |",
        f"| CPU, hooklake / simulator | {cpu_hook:.0f} s / {cpu_sim:.0f} s | over {end:.0f} s on "
        f"{os.cpu_count()} cores: the simulator serving the records competes for them |",
        f"| hooklake CPU per event | {e2e['cpu_ms_per_event']:.2f} ms | admission, enrich, plugin, Parquet |",
        f"| mapping step, wall time per event | {plugin_us:.0f} µs | {plugin_events:,.0f} events through the "
        f"plugin, on the stage's workers |",
    ])
    print(section)
    if BENCHMARKS_MD:
        write_section(BENCHMARKS_MD, "e2e", section)

    if args.no_soak:
        return
    rate = max(1, int(landed_rate / 2))
    log(f"soak: {args.soak} s at {rate}/s")
    s, report = soak(rate, args.soak)
    rss = [x["rss_mib"] for x in s]
    q = max(1, len(rss) // 4)
    second, last = statistics.median(rss[q:2 * q] or rss), statistics.median(rss[-q:])
    flat = last <= second * 1.10
    res = {"rate": rate, "secs": args.soak, "samples": s, "rss_second_quarter_mib": second,
           "rss_last_quarter_mib": last, "flat": flat, "p99_ack_ms": report.get("latency_p99_ms") or 0.0,
           "p50_ack_ms": report.get("latency_p50_ms") or 0.0, "journal_max_mib": max(x["journal_mib"] for x in s),
           "acknowledged": len(report["acknowledged"]), "failed": len(report["failed"])}
    json.dump(res, open(os.path.join(RESULTS, "soak.json"), "w"), indent=1)
    rows = " ".join(f"{x['rss_mib']:.0f}" for x in s)
    section = "\n".join([
        "## Soak: the full pipeline at half its landed rate",
        "",
        f"- Command: `python3 benches/e2e.py --soak {args.soak}`; commit `{commit(ROOT)}`, "
        f"{time.strftime('%Y-%m-%d %H:%M')} UTC; {rate}/s paced for {args.soak} s (half the landed rate above).",
        "",
        "| figure | value | target |",
        "|---|---:|---|",
        f"| RSS, median of the 2nd / last quarter | {second:.0f} / {last:.0f} MiB | flat (≤ +10 %): "
        f"**{'met' if flat else 'not met'}** |",
        f"| ack latency p50 / p99 (sender) | {res['p50_ack_ms']:.1f} / {res['p99_ack_ms']:.1f} ms | |",
        f"| journal size, max | {res['journal_max_mib']:.1f} MiB | bounded (trimmed behind the sinks) |",
        f"| acknowledged / failed | {res['acknowledged']:,} / {res['failed']} | |",
        "",
        f"RSS every 10 s (MiB): {rows}.",
    ])
    print(section)
    if BENCHMARKS_MD:
        write_section(BENCHMARKS_MD, "soak", section)


if __name__ == "__main__":
    main()
