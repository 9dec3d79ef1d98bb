#!/usr/bin/env python3
"""Writes pre-signed webhook deliveries for the ingest benchmark, one file per wrk thread.

wrk's LuaJIT cannot compute HMAC-SHA256 at benchmark rates, so every request is signed here, ahead of time.
Each line is `<64 lowercase hex: HMAC-SHA256 of body>\t<body>\n`; bodies are InsightIQ-like envelopes
(varied event types, 1-20 content ids on the list events) with an `id` that is distinct across every file
written by one call, so no delivery repeats while a thread's file lasts.

    gen_requests.py --out DIR --prefix run --threads 2 --count 2000000 [--secret bench-secret] [--seed 1]

writes DIR/run.0.tsv … DIR/run.<threads-1>.tsv with count/threads lines each (rounded up), generated in
parallel (one process per file), and prints a one-line JSON summary (lines, bytes, body sizes, seconds).
Stdlib only.
"""
import argparse
import hashlib
import hmac
import json
import os
import random
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor

# (event, name, data fields, weight): the families of spec/samples/webhooks.json. The list events (with
# `items`) dominate real traffic, so they weigh the most.
EVENTS = [
    ("CONTENTS.ADDED", "contents added", ("account_id", "user_id", "last_updated_time", "items"), 30),
    ("CONTENTS.UPDATED", "contents updated", ("account_id", "user_id", "last_updated_time", "items"), 20),
    ("CONTENTS_COMMENTS.ADDED", "contents comments added", ("account_id", "user_id", "last_updated_time", "items"), 10),
    ("TRANSACTIONS.ADDED", "transactions added", ("account_id", "user_id", "last_updated_time", "items"), 5),
    ("PROFILES.ADDED", "profile added", ("account_id", "user_id", "profile_id", "last_updated_time"), 8),
    ("PROFILES.UPDATED", "profile updated", ("account_id", "user_id", "profile_id", "last_updated_time"), 8),
    ("PROFILES_AUDIENCE.ADDED", "profile audience added",
     ("account_id", "user_id", "profile_id", "last_updated_time"), 4),
    ("ACCOUNTS.CONNECTED", "account is connected", ("account_id", "user_id", "last_updated_time"), 5),
    ("ACCOUNTS.REMOVED", "account removed", ("account_id", "user_id", "last_updated_time"), 2),
    ("CONTENTS.PUBLISH_SUCCESS", "content publish success",
     ("account_id", "user_id", "last_updated_time", "publish_id"), 4),
    ("CONTENTS_FETCH.SUCCESS", "Contents fetch success.", ("job_id",), 4),
]
WEIGHTS = [e[3] for e in EVENTS]
# Item counts 1-20, mostly small (most deliveries carry a few ids): most bodies land within ~300-600 bytes,
# a twentieth of them above (20 ids make ~1 KB).
ITEM_COUNTS = list(range(1, 21))
ITEM_WEIGHTS = [3.0 if n <= 6 else 1.0 if n <= 12 else 0.25 for n in ITEM_COUNTS]


def hex128(rng):
    return f"{rng.getrandbits(128):032x}"


def timestamp(rng):
    # The sample's own format: "2021-10-25 16:45:26.761622".
    return (f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} "
            f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.{rng.randint(0, 999999):06d}")


def write_file(path, first_index, count, secret, seed):
    """Writes `count` deliveries whose ids encode first_index…first_index+count-1 (distinct by construction)."""
    rng = random.Random(seed)
    key = secret.encode()
    # A small pool of accounts and users, as in real traffic (many deliveries per account).
    accounts = [(hex128(rng), hex128(rng)) for _ in range(500)]
    sizes = []
    with open(path, "w", encoding="ascii", buffering=1 << 20) as f:
        for i in range(first_index, first_index + count):
            event, name, fields, _ = rng.choices(EVENTS, WEIGHTS)[0]
            # The index sits in the top 32 bits (time_low), which version/variant bits never touch.
            delivery_id = str(uuid.UUID(int=(i << 96) | rng.getrandbits(96), version=4))
            account_id, user_id = accounts[rng.randrange(len(accounts))]
            data = {}
            for field in fields:
                if field == "account_id":
                    data[field] = account_id
                elif field == "user_id":
                    data[field] = user_id
                elif field == "last_updated_time":
                    data[field] = timestamp(rng)
                elif field == "items":
                    data[field] = [hex128(rng) for _ in range(rng.choices(ITEM_COUNTS, ITEM_WEIGHTS)[0])]
                else:
                    data[field] = hex128(rng)
            body = json.dumps({"event": event, "name": name, "id": delivery_id, "data": data},
                              separators=(",", ":"))
            sig = hmac.digest(key, body.encode(), hashlib.sha256).hex()
            f.write(f"{sig}\t{body}\n")
            sizes.append(len(body))
    return sizes


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="directory for the files")
    p.add_argument("--prefix", required=True, help="file name prefix (e.g. warm, run)")
    p.add_argument("--threads", type=int, required=True, help="wrk threads = files")
    p.add_argument("--count", type=int, required=True, help="total deliveries over all files")
    p.add_argument("--first-index", type=int, default=0,
                   help="first id index; give each prefix a disjoint range so ids never repeat across sets")
    p.add_argument("--secret", default="bench-secret")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    if a.threads < 1 or a.count < 1 or a.first_index + a.count >= 1 << 32:
        sys.exit("gen_requests.py: need threads >= 1, count >= 1 and first-index + count < 2^32")
    os.makedirs(a.out, exist_ok=True)
    per = -(-a.count // a.threads)
    started = time.monotonic()
    jobs = []
    with ProcessPoolExecutor(max_workers=min(a.threads, os.cpu_count() or 1)) as pool:
        for t in range(a.threads):
            path = os.path.join(a.out, f"{a.prefix}.{t}.tsv")
            jobs.append(pool.submit(write_file, path, a.first_index + t * per, per, a.secret,
                                    a.seed * 1000 + t + a.first_index))
        sizes = sorted(s for j in jobs for s in j.result())
    took = time.monotonic() - started
    total_bytes = sum(os.path.getsize(os.path.join(a.out, f"{a.prefix}.{t}.tsv")) for t in range(a.threads))
    print(json.dumps({
        "prefix": a.prefix, "files": a.threads, "lines": len(sizes), "lines_per_file": per, "bytes": total_bytes,
        "body_bytes": {"min": sizes[0], "p50": sizes[len(sizes) // 2], "p95": sizes[int(len(sizes) * 0.95)],
                       "max": sizes[-1]},
        "seconds": round(took, 1),
    }))


if __name__ == "__main__":
    main()
