#!/usr/bin/env python3
"""Check of the Python example plugin as a component, without the hooklake host.

Loads content_daily_metrics.wasm with wasmtime-py's component API (an engine with fuel on, as the host's) and checks:
- it imports nothing but `log` (no WASI) and exports `describe` and `transform`;
- it instantiates within the host's default bounds (one 64 MiB memory, 4 tables); prints how many core
  instances it needs;
- describe returns the expected document;
- a batch of 3 enriched events (nested engagement; `skipped`; a resource that is a number) gives a row with the
  expected values, `{"rows": {}}` and an error naming `resources[0]`;
- more cases: no resources, absent engagement (nulls, total 0), a count of the wrong type (error naming the field),
  an integral float count, several resources; a batch that is not JSON or not an array is the WIT `err`;
- the component's output equals the same plugin run under CPython (app.py with the SDK);
- cost: a batch of 64 content events, median of 10 calls: time per event, fuel per batch (within the host's
  default budget of 2e9), and the smallest memory limit it works in.

Usage: check.py [--wasm content_daily_metrics.wasm] [--runs 10]
Prints "N passed, N failed" last; exits non-zero on any failure.
"""

import argparse
import json
import os
import statistics
import sys
import time

import wasmtime
from wasmtime import component

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "..", "sdk", "python")]

HOST_MEMORY = 64 << 20  # hooklake's default per-instance memory
HOST_FUEL = 2_000_000_000  # hooklake's default fuel per call
HOST_TABLES = 4

passed = 0
failed = 0


def check(ok, what, detail=None):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print(f"FAIL: {what}" + (f"\n      {detail}" if detail is not None else ""))
    return bool(ok)


class Component:
    def __init__(self, path):
        config = wasmtime.Config()
        config.consume_fuel = True
        self.engine = wasmtime.Engine(config)
        t = time.perf_counter()
        self.component = component.Component.from_file(self.engine, path)
        self.compile_s = time.perf_counter() - t
        self.logs = []

    def imports(self):
        return sorted(self.component.type.imports(self.engine))

    def exports(self):
        return sorted(self.component.type.exports(self.engine))

    def instantiate(self, instances=-1, memory=HOST_MEMORY):
        self.store = wasmtime.Store(self.engine)
        self.store.set_limits(memory_size=memory, tables=HOST_TABLES, memories=1, instances=instances)
        self.store.set_fuel(HOST_FUEL)
        linker = component.Linker(self.engine)
        with linker.root() as root:
            root.add_func("log", lambda store, level, message: self.logs.append((level, message)))
        self.instance = linker.instantiate(self.store, self.component)
        self._describe = self.instance.get_func(self.store, "describe")
        self._transform = self.instance.get_func(self.store, "transform")

    def describe(self):
        self.store.set_fuel(HOST_FUEL)
        text = self._describe(self.store)
        self._describe.post_return(self.store)
        return text

    def transform(self, batch):
        """(tag, payload): ("ok", results text) or ("err", message). Also sets self.fuel_used."""
        self.store.set_fuel(HOST_FUEL)
        result = self._transform(self.store, batch)
        self._transform.post_return(self.store)
        self.fuel_used = HOST_FUEL - self.store.get_fuel()
        return result.tag, result.payload


# ---------------------------------------------------------------------------------------------------------------
# Test data (enriched events, as plugins/README.md describes them)


def content(n, **over):
    r = {
        "id": f"0ccc{n:04d}-5f1e-4c7d-9f0a-1b2c3d4e5f60",
        "title": f"Post {n}",
        "format": "VIDEO",
        "type": "REELS",
        "url": f"https://example.com/p/{n}",
        "published_at": "2026-12-01T08:30:00",
        "work_platform": {"id": "9bb8913b-ddd9-430b-a66a-d74d846e6c66", "name": "Instagram"},
        "account": {"id": "acc-1", "platform_username": "someone"},
        "engagement": {
            "like_count": 100 + n,
            "comment_count": 7,
            "view_count": 1000 * n,
            "share_count": None,
            "save_count": 3,
            "watch_time_in_hours": 12.5,
            "additional_info": {"x": 1},
        },
        "hashtags": ["a", "b"],
    }
    r.update(over)
    return r


def event(seq, resources=None, name="CONTENTS.ADDED", **over):
    e = {
        "seq": seq,
        "id": f"674c{seq:020d}",
        "event": name,
        "name": "contents added",
        "source": "insightiq",
        "received_at": "2026-12-04T10:00:00.123456Z",
        "data": {"account_id": "acc-1", "items": [r["id"] for r in resources or [] if isinstance(r, dict)]},
        "resources": resources if resources is not None else [],
        "missing": [],
    }
    e.update(over)
    return e


EXPECTED_DESCRIBE = {
    "name": "content_daily_metrics",
    "version": "0.1.0",
    "routes": [{"events": ["CONTENTS.ADDED", "CONTENTS.UPDATED"], "table": "content_daily_metrics"}],
    "tables": {
        "content_daily_metrics": [
            {"name": "id", "type": "string", "nullable": False},
            {"name": "published_at", "type": "timestamp"},
            {"name": "platform", "type": "string"},
            {"name": "format", "type": "string"},
            {"name": "like_count", "type": "int64"},
            {"name": "comment_count", "type": "int64"},
            {"name": "view_count", "type": "int64"},
            {"name": "share_count", "type": "int64"},
            {"name": "save_count", "type": "int64"},
            {"name": "watch_time_in_hours", "type": "float64"},
            {"name": "engagement_total", "type": "int64"},
        ]
    },
}


def row(n, **over):
    r = {
        "id": f"0ccc{n:04d}-5f1e-4c7d-9f0a-1b2c3d4e5f60",
        "published_at": "2026-12-01T08:30:00",
        "platform": "Instagram",
        "format": "VIDEO",
        "like_count": 100 + n,
        "comment_count": 7,
        "view_count": 1000 * n,
        "share_count": None,
        "save_count": 3,
        "watch_time_in_hours": 12.5,
        "engagement_total": 100 + n + 7 + 1000 * n + 3,
    }
    r.update(over)
    return r


def parse_results(what, tag, payload, count):
    if not check(tag == "ok", f"{what}: transform ok", (tag, payload)):
        return None
    try:
        doc = json.loads(payload)
    except ValueError as e:
        check(False, f"{what}: results are JSON", e)
        return None
    ok = isinstance(doc, dict) and set(doc) == {"results"} and isinstance(doc["results"], list)
    if not check(ok and len(doc["results"]) == count, f"{what}: {count} results", payload[:300]):
        return None
    return doc["results"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wasm", default=os.path.join(HERE, "content_daily_metrics.wasm"))
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()

    if not os.path.exists(args.wasm):
        print(f"{args.wasm} does not exist: build it first (./build.sh)")
        return 2
    size = os.path.getsize(args.wasm)
    c = Component(args.wasm)
    print(f"{os.path.basename(args.wasm)}: {size / 1e6:.1f} MB, compiled in {c.compile_s:.1f} s")

    # Imports and exports
    imports = c.imports()
    check(set(imports) <= {"log"}, "imports nothing but `log` (no WASI)", imports)
    print(f"imports: {imports}")
    exports = c.exports()
    check({"describe", "transform"} <= set(exports), "exports describe and transform", exports)
    print(f"exports: {exports}")

    # Instantiation within the host's bounds; how many core instances it takes
    try:
        c.instantiate()
    except wasmtime.WasmtimeError as e:
        check(False, "instantiates with only `log` provided, in 64 MiB", str(e).splitlines()[0])
        print(f"{passed} passed, {failed} failed")
        return 1
    needed = None
    for n in range(1, 257):
        try:
            Component.instantiate(c, instances=n)
            needed = n
            break
        except wasmtime.WasmtimeError:
            continue
    print(f"core instances: needs a store that allows {needed} instances (with memory {HOST_MEMORY >> 20} MiB, "
          f"{HOST_TABLES} tables, 1 memory)")
    check(needed is not None, "instantiates within 256 instances")

    # describe
    text = c.describe()
    try:
        d = json.loads(text)
    except ValueError as e:
        d = None
        check(False, "describe is JSON", e)
    check(d == EXPECTED_DESCRIBE, "describe document", text)

    # The batch of 3: nested engagement, skipped, a resource that is a number
    batch3 = [
        event(1, [content(1)]),
        event(2, [], name="CONTENTS.UPDATED", skipped="job event"),
        event(3, [42]),
    ]
    res = parse_results("batch of 3", *c.transform(json.dumps(batch3)), 3)
    if res:
        check(res[0] == {"rows": {"content_daily_metrics": [row(1)]}}, "event 1: one row, flattened", res[0])
        check(res[1] == {"rows": {}}, "event 2 (skipped): no rows", res[1])
        check(set(res[2]) == {"error"} and "resources[0]" in res[2]["error"] and "number" in res[2]["error"],
              "event 3 (resource is a number): an error naming resources[0]", res[2])
        print(f"event 3's error: {res[2].get('error')!r}")

    # More cases
    more = [
        event(10, []),  # no resources
        dict(event(11, []), resources=None),  # resources null
        event(12, [content(12, engagement=None, work_platform=None, format=None)]),
        event(13, [content(13, engagement={"like_count": "12"})]),
        event(14, [content(14, engagement={"like_count": 5.0, "view_count": 2, "watch_time_in_hours": 3})]),
        event(15, [content(15), content(16, id="x-16")], name="CONTENTS.UPDATED"),
        event(16, [content(17, id=None)]),
        event(17, [content(18, engagement={"like_count": True})]),
    ]
    res = parse_results("more cases", *c.transform(json.dumps(more)), len(more))
    if res:
        check(res[0] == {"rows": {}}, "no resources: no rows", res[0])
        check(res[1] == {"rows": {}}, "resources null: no rows", res[1])
        nulls = dict(row(12), platform=None, format=None, like_count=None, comment_count=None, view_count=None,
                     share_count=None, save_count=None, watch_time_in_hours=None, engagement_total=0)
        check(res[2] == {"rows": {"content_daily_metrics": [nulls]}}, "absent engagement: nulls, total 0", res[2])
        err = res[3].get("error", "")
        check("engagement.like_count" in err and "string" in err and "resources[0]" in err,
              "a count of the wrong type: an error naming the field", res[3])
        r14 = dict(row(14), like_count=5, comment_count=None, view_count=2, save_count=None,
                   watch_time_in_hours=3.0, engagement_total=7)
        got = res[4].get("rows", {}).get("content_daily_metrics", [{}])[0]
        check(res[4] == {"rows": {"content_daily_metrics": [r14]}} and type(got.get("like_count")) is int
              and type(got.get("watch_time_in_hours")) is float, "integral float count to int, int hours to float",
              res[4])
        check(res[5] == {"rows": {"content_daily_metrics": [row(15), row(16, id="x-16")]}},
              "two resources: two rows in order", res[5])
        check("id is missing" in res[6].get("error", ""), "no id: an error (id is not nullable)", res[6])
        check("bool" in res[7].get("error", ""), "a bool count: an error", res[7])

    # Whole-batch failures are the WIT err
    for bad, what in (("not json", "a batch that is not JSON"), ('{"a": 1}', "a batch that is not an array")):
        tag, payload = c.transform(bad)
        check(tag == "err" and isinstance(payload, str) and payload, f"{what}: err", (tag, payload))
    tag, payload = c.transform("[]")
    check((tag, payload) == ("ok", '{"results":[]}'), "an empty batch: no results", (tag, payload))
    check(c.logs == [], "logged nothing", c.logs)

    # The same plugin under CPython gives the same output (the SDK is pure Python)
    try:
        import app

        native = app.WitWorld()
        check(native.describe() == text, "describe equals CPython's")
        check(native.transform(json.dumps(batch3 + more)) == c.transform(json.dumps(batch3 + more))[1],
              "transform output equals CPython's")
    except Exception as e:  # noqa: BLE001
        check(False, "run app.py under CPython", repr(e))

    # Cost: 64 content events per batch, median of N calls
    batch64 = json.dumps([event(100 + i, [content(i)], name="CONTENTS.UPDATED" if i % 2 else "CONTENTS.ADDED")
                          for i in range(64)])
    c.instantiate()
    c.describe()
    times, fuels = [], []
    for _ in range(args.runs):
        t = time.perf_counter()
        tag, payload = c.transform(batch64)
        times.append(time.perf_counter() - t)
        fuels.append(c.fuel_used)
    res = parse_results("batch of 64", tag, payload, 64)
    if res:
        check(all(len(r.get("rows", {}).get("content_daily_metrics", [])) == 1 for r in res), "64 rows")
    med = statistics.median(times)
    fuel = statistics.median(fuels)
    print(f"batch of 64 ({len(batch64)} bytes): median {med * 1e3:.2f} ms over {args.runs} calls "
          f"= {med / 64 * 1e6:.0f} µs per event; fuel {fuel:,.0f} per batch ({fuel / 64:,.0f} per event)")
    check(fuel < HOST_FUEL, "a batch of 64 fits the host's default fuel")
    # wasmtime-py does not show a component's core memories: find the smallest memory limit that still works
    memory = None
    for mib in (8, 16, 24, 32, 48, 64):
        try:
            c.instantiate(memory=mib << 20)
            c.describe()
            if all(_all_rows(c.transform(batch64)) for _ in range(3)):
                memory = mib
                break
        except wasmtime.WasmtimeError:
            continue
    print(f"memory: instantiates and maps batches of 64 with the store's memory limited to {memory} MiB")
    check(memory is not None, "works within the host's default 64 MiB of memory")

    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def _all_rows(result):
    tag, payload = result
    return tag == "ok" and all("rows" in r for r in json.loads(payload)["results"])


if __name__ == "__main__":
    sys.exit(main())
