#!/usr/bin/env python3
"""Self-check of a hooklake plugin built for the raw core-module ABI, without the hooklake host.

Loads the module with wasmtime (PyPI `wasmtime`; `build.sh --check` installs it into plugins/.venv) and checks:
- it imports nothing and exports the raw ABI with the documented signatures;
- `hooklake_abi_version() == 1`; the describe document is well formed (names, routes, types);
- for the insightiq plugin: the README's table section matches describe;
- a batch of enriched events built from simulator records (fetched from a running simulator, or from one this script
  starts with `hooklake simulate` when the binary exists) gives one result per event, every row has exactly the
  declared columns, every value has its declared type, and every value equals its source field (an independent
  re-implementation of the mapping rules: flattening, int/float normalisation, undeclared struct fields dropped);
- wrong JSON types, non-object resources, skipped and empty events, bad batches give the documented answers;
- memory stays flat over many calls (the alloc/free protocol: the plugin frees the batch, the host frees results).

Usage: check_plugin.py [--wasm plugins/insightiq.wasm] [--api http://127.0.0.1:PORT | --hooklake PATH | --offline]
Prints "N passed, N failed" last; exits non-zero on any failure.
"""

import argparse
import base64
import json
import os
import random
import re
import subprocess
import sys
import time
import urllib.request

import wasmtime

HERE = os.path.dirname(os.path.abspath(__file__))
HOST_COLUMNS = {"_event_id", "_event_type", "_received_at", "_seq"}
SCALARS = {"string", "bool", "int64", "float64", "timestamp", "date", "json"}
I64_MIN, I64_MAX = -(2**63), 2**63 - 1

passed = 0
failed = 0


def check(ok, what):
    global passed, failed
    ok = bool(ok)
    if ok:
        passed += 1
    else:
        failed += 1
        print(f"FAIL: {what}")
    return ok


# ---------------------------------------------------------------------------------------------------------------
# The module, through the raw ABI


class RawPlugin:
    EXPORTS = {
        "hooklake_abi_version": ([], ["i32"]),
        "hooklake_alloc": (["i32"], ["i32"]),
        "hooklake_free": (["i32", "i32"], []),
        "hooklake_describe": ([], ["i64"]),
        "hooklake_transform": (["i32", "i32"], ["i64"]),
    }

    def __init__(self, path):
        self.engine = wasmtime.Engine()
        self.module = wasmtime.Module.from_file(self.engine, path)
        self.store = wasmtime.Store(self.engine)
        self.instance = wasmtime.Instance(self.store, self.module, [])
        self.x = self.instance.exports(self.store)

    def imports(self):
        return [(i.module, i.name) for i in self.module.imports]

    def export_types(self):
        out = {}
        for e in self.module.exports:
            t = e.type
            if isinstance(t, wasmtime.FuncType):
                out[e.name] = ([str(p) for p in t.params], [str(r) for r in t.results])
            else:
                out[e.name] = type(t).__name__
        return out

    def memory_bytes(self):
        return self.x["memory"].data_len(self.store)

    def _take(self, packed):
        """Reads the document at (ptr << 32) | len, frees it, parses it."""
        packed &= 0xFFFFFFFFFFFFFFFF
        ptr, length = packed >> 32, packed & 0xFFFFFFFF
        data = self.x["memory"].read(self.store, ptr, ptr + length)
        self.x["hooklake_free"](self.store, ptr, length)
        return json.loads(bytes(data).decode("utf-8"))

    def abi_version(self):
        return self.x["hooklake_abi_version"](self.store)

    def describe(self):
        return self._take(self.x["hooklake_describe"](self.store))

    def transform_bytes(self, data):
        ptr = self.x["hooklake_alloc"](self.store, len(data))
        if data:
            self.x["memory"].write(self.store, data, ptr)
        # The plugin takes the batch buffer over (and frees it): the host does not free it.
        return self._take(self.x["hooklake_transform"](self.store, ptr, len(data)))

    def transform(self, events):
        return self.transform_bytes(json.dumps(events).encode("utf-8"))


class ComponentPlugin:
    """The same calls through the WIT world (`wit/plugin.wit`): describe() -> string,
    transform(batch: string) -> result<string, string> (an err is reported here as {"error": message})."""

    def __init__(self, path):
        from wasmtime import component

        self.engine = wasmtime.Engine()
        self.component = component.Component.from_file(self.engine, path)
        self.store = wasmtime.Store(self.engine)
        self.instance = component.Linker(self.engine).instantiate(self.store, self.component)
        self._describe = self.instance.get_func(self.store, "describe")
        self._transform = self.instance.get_func(self.store, "transform")

    def imports(self):
        return sorted(self.component.type.imports(self.engine))

    def export_names(self):
        return sorted(self.component.type.exports(self.engine))

    def describe(self):
        doc = self._describe(self.store)
        self._describe.post_return(self.store)
        return json.loads(doc)

    def transform_bytes(self, data):
        result = self._transform(self.store, data.decode("utf-8"))
        self._transform.post_return(self.store)
        if result.tag == "ok":
            return json.loads(result.payload)
        check(result.tag == "err" and isinstance(result.payload, str), f"transform result {result!r}")
        return {"error": result.payload}

    def transform(self, events):
        return self.transform_bytes(json.dumps(events).encode("utf-8"))


# ---------------------------------------------------------------------------------------------------------------
# Describe


def type_label(t):
    if isinstance(t, str):
        return t
    if "list" in t:
        return f"list<{type_label(t['list'])}>"
    return "struct<" + ", ".join(f"{f['name']}: {type_label(f['type'])}" for f in t["struct"]) + ">"


def check_type(t, where):
    if isinstance(t, str):
        return check(t in SCALARS, f"{where}: unknown type {t!r}")
    if not check(isinstance(t, dict) and len(t) == 1, f"{where}: type {t!r} is not a scalar, list or struct"):
        return False
    if "list" in t:
        return check_type(t["list"], where + "[]")
    if check("struct" in t and isinstance(t["struct"], list) and t["struct"], f"{where}: bad struct {t!r}"):
        return check_fields(t["struct"], where)
    return False


def check_fields(fields, where, top=False):
    names = [f.get("name") for f in fields]
    ok = check(len(set(names)) == len(names), f"{where}: duplicate names")
    for f in fields:
        ok &= check(isinstance(f.get("name"), str) and f["name"] != "", f"{where}: field without a name: {f}")
        ok &= check(set(f) <= {"name", "type", "nullable"}, f"{where}.{f.get('name')}: unknown keys {sorted(f)}")
        ok &= check(isinstance(f.get("nullable", True), bool), f"{where}.{f.get('name')}: nullable is not a bool")
        if top:
            ok &= check(f["name"] not in HOST_COLUMNS, f"{where}: declares host column {f['name']}")
        ok &= check_type(f.get("type"), f"{where}.{f.get('name')}")
    return ok


def pattern_matches(pattern, event):
    if pattern.endswith(".*"):
        family = pattern[:-2]
        return event.startswith(family + ".") and len(event) > len(family) + 1
    return pattern == event


def check_describe(d):
    check(isinstance(d.get("name"), str) and d["name"] != "", "describe.name")
    check(isinstance(d.get("version"), str) and d["version"] != "", "describe.version")
    check(set(d) == {"name", "version", "routes", "tables"}, f"describe keys: {sorted(d)}")
    tables = d.get("tables", {})
    for name, columns in tables.items():
        check(re.fullmatch(r"[a-z][a-z0-9_]*", name) is not None, f"table name {name!r}")
        check_fields(columns, name, top=True)
    patterns = []
    for r in d.get("routes", []):
        check(r.get("table") in tables, f"route to undeclared table {r.get('table')}")
        for p in r.get("events", []):
            check(re.fullmatch(r"[A-Z0-9_\-]+(\.[A-Z0-9_\-]+|\.\*)", p) is not None, f"event pattern {p!r}")
            patterns.append(p)
    check(len(patterns) == len(set(patterns)), "an event pattern appears twice")
    routed = {r["table"] for r in d.get("routes", [])}
    check(routed == set(tables), f"tables without routes: {set(tables) - routed}")


def table_for(d, event):
    for r in d["routes"]:
        if any(pattern_matches(p, event) for p in r["events"]):
            return r["table"]
    return None


def readme_tables(d):
    """The README's generated section: one markdown table per lake table."""
    out = []
    for r in d["routes"]:
        name = r["table"]
        events = ", ".join(f"`{e}`" for e in r["events"])
        out.append(f"### `{name}`\n\nEvents: {events}\n\n| column | type |\n|---|---|")
        for c in d["tables"][name]:
            out.extend(readme_rows(c["name"], c["type"], c.get("nullable", True)))
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def readme_rows(name, t, nullable=True):
    """A column's rows: struct fields (also of lists of structs) get rows of their own, `a.b` / `a[].b`."""
    null = "" if nullable else " (not null)"
    inner, suffix = t, ""
    while isinstance(inner, dict) and "list" in inner:
        inner, suffix = inner["list"], suffix + "[]"
    if isinstance(inner, dict) and "struct" in inner:
        label = "list<struct>" if suffix else "struct"
        rows = [f"| `{name}` | {label}{null} |"]
        for f in inner["struct"]:
            rows.extend(readme_rows(f"{name}{suffix}.{f['name']}", f["type"], f.get("nullable", True)))
        return rows
    return [f"| `{name}` | `{type_label(t)}`{null} |"]


# ---------------------------------------------------------------------------------------------------------------
# Rows against declared types and against the source records


def value_error(v, t, path):
    """None when `v` is a valid value of declared type `t` as the host would read it, else why not."""
    if v is None:
        return None
    if t == "json":
        return None
    if t in ("string", "timestamp", "date"):
        if not isinstance(v, str):
            return f"{path}: {v!r} is not a string"
        if t == "timestamp" and not re.fullmatch(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)?", v):
            return f"{path}: {v!r} is not a timestamp the host parses"
        if t == "date" and not re.fullmatch(r"\d{4}-\d\d-\d\d", v):
            return f"{path}: {v!r} is not a date"
        return None
    if t == "bool":
        return None if isinstance(v, bool) else f"{path}: {v!r} is not a bool"
    if t == "int64":
        ok = isinstance(v, int) and not isinstance(v, bool) and I64_MIN <= v <= I64_MAX
        return None if ok else f"{path}: {v!r} is not an int64"
    if t == "float64":
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        return None if ok else f"{path}: {v!r} is not a float64"
    if "list" in t:
        if not isinstance(v, list):
            return f"{path}: {v!r} is not a list"
        for i, item in enumerate(v):
            e = value_error(item, t["list"], f"{path}[{i}]")
            if e:
                return e
        return None
    if not isinstance(v, dict):
        return f"{path}: {v!r} is not an object"
    declared = {f["name"]: f["type"] for f in t["struct"]}
    if set(v) != set(declared):
        return f"{path}: keys {sorted(v)} are not the declared fields {sorted(declared)}"
    for name, ft in declared.items():
        e = value_error(v[name], ft, f"{path}.{name}")
        if e:
            return e
    return None


def expected(v, t):
    """What the plugin should emit for source value `v` under type `t` (independent of the plugin's code)."""
    if v is None:
        return None
    if t == "int64" and isinstance(v, float):
        return int(v)
    if t == "float64":
        return float(v)
    if isinstance(t, dict) and "list" in t:
        return [expected(item, t["list"]) for item in v]
    if isinstance(t, dict) and "struct" in t:
        return {f["name"]: expected(v.get(f["name"]), f["type"]) for f in t["struct"]}
    return v


# Columns whose source is not the field of the same name.
SOURCE_PATHS = {
    "user_id": "user.id",
    "user_name": "user.name",
    "account_id": "account.id",
    "account_platform_username": "account.platform_username",
    "account_username": "account.username",
    "work_platform_id": "work_platform.id",
    "work_platform_name": "work_platform.name",
    "content_id": "content.id",
    "content_url": "content.url",
    "content_published_at": "content.published_at",
}


def source_value(resource, path):
    v = resource
    for step in path.split("."):
        if not isinstance(v, dict):
            return None
        v = v.get(step)
    return v


def check_rows(d, events, out, stats):
    results = out.get("results")
    if not check(isinstance(results, list) and len(results) == len(events), f"one result per event: {str(out)[:300]}"):
        return
    for ev, res in zip(events, results):
        table = table_for(d, ev["event"])
        rows = res.get("rows")
        if not check(rows is not None and "error" not in res, f"{ev['event']}: unexpected error {res.get('error')}"):
            continue
        resources = [] if ev.get("skipped") else ev.get("resources") or []
        want_tables = {table} if (table and resources) else set()
        check(set(rows) == want_tables, f"{ev['event']}: tables {sorted(rows)}, expected {sorted(want_tables)}")
        if not table or table not in rows:
            continue
        check(len(rows[table]) == len(resources), f"{ev['event']}: {len(rows[table])} rows for {len(resources)} resources")
        columns = {c["name"]: c for c in d["tables"][table]}
        for row, resource in zip(rows[table], resources):
            if not check(set(row) == set(columns), f"{table}: row keys differ: extra {set(row) - set(columns)}, "
                         f"missing {set(columns) - set(row)}"):
                continue
            for name, col in columns.items():
                v = row[name]
                err = value_error(v, col["type"], f"{table}.{name}")
                if err is None and v is None and not col.get("nullable", True):
                    err = f"{table}.{name} is null but not nullable"
                check(err is None, err)
                path = SOURCE_PATHS.get(name, name)
                src = source_value(resource, path)
                if table == "audience" and name == "account_id" and ev["data"].get("account_id"):
                    src = ev["data"]["account_id"]
                want = expected(src, col["type"])
                check(v == want, f"{table}.{name}: emitted {json.dumps(v)[:200]}, source {path} gives {json.dumps(want)[:200]}")
                s = stats.setdefault(table, {}).setdefault(name, [0, 0])
                s[0] += 1
                s[1] += v is not None and v != []
            stats.setdefault(table, {}).setdefault("", [0, 0])[0] += 1


# ---------------------------------------------------------------------------------------------------------------
# Enriched events from simulator records


class Api:
    def __init__(self, base, user="demo-client", secret="example-secret"):
        self.base = base.rstrip("/")
        self.auth = "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        for attempt in range(20):
            req = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Authorization": self.auth, "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return json.loads(r.read())
            except urllib.error.HTTPError as e:
                if e.code == 429:
                    time.sleep(float(e.headers.get("Retry-After") or 1))
                    continue
                if e.code == 404:
                    return None
                raise
        raise RuntimeError(f"{method} {path}: still throttled")

    def search(self, path, ids):
        return self.call("POST", path, {"ids": ids})["data"]


def hex_id(rng):
    return "%032x" % rng.getrandbits(128)


def enriched(seq, event, data, resources, missing=(), skipped=None):
    doc = {"seq": seq, "id": f"evt-{seq:06d}", "event": event, "name": event.lower(), "source": "insightiq",
           "received_at": "2026-12-04T10:00:00.123456Z", "data": data, "resources": resources, "missing": list(missing)}
    if skipped:
        doc["skipped"] = skipped
    return doc


def simulator_events(api, rng, per_kind=40):
    """Enriched events for every claimed family, built from the simulator's records."""
    events = []
    seq = [0]

    def add(event, data, resources, missing=()):
        seq[0] += 1
        events.append(enriched(seq[0], event, data, resources, missing))

    bulk = [
        ("CONTENTS.ADDED", "/v1/social/contents/search"),
        ("CONTENTS.UPDATED", "/v1/social/contents/search"),
        ("CONTENT-GROUPS.ADDED", "/v1/social/content-groups/search"),
        ("TRANSACTIONS.ADDED", "/v1/social/income/transactions/search"),
        ("TRANSACTIONS.UPDATED", "/v1/commerce/income/transactions/search"),
        ("PAYOUTS.ADDED", "/v1/social/income/payouts/search"),
        ("PAYOUTS.UPDATED", "/v1/commerce/income/payouts/search"),
        ("BALANCES.ADDED", "/v1/commerce/income/balances/search"),
        ("ACTIVITY-ARTISTS.ADDED", "/v1/media/activity/artists/search"),
        ("ACTIVITY-CONTENTS.ADDED", "/v1/media/activity/contents/search"),
    ]
    accounts = set()
    contents = []
    for event, path in bulk:
        ids = [hex_id(rng) for _ in range(per_kind)]
        records = api.search(path, ids)
        for r in records:
            accounts.add(r["account"]["id"])
            if event.startswith("CONTENTS."):
                contents.append((r["id"], r["account"]["id"]))
        # A few events of several records each, like webhooks carrying `items`.
        for i in range(0, len(records), 7):
            chunk = records[i:i + 7]
            add(event, {"account_id": chunk[0]["account"]["id"], "items": [r["id"] for r in chunk]}, chunk)
    for account in sorted(accounts):
        acc = api.call("GET", f"/v1/accounts/{account}")
        for event in ("ACCOUNTS.CONNECTED", "SESSION.EXPIRED"):
            add(event, {"account_id": account, "user_id": acc["user"]["id"]}, [acc])
        audience = api.call("GET", f"/v1/audience?account_id={account}")
        add("PROFILES_AUDIENCE.UPDATED", {"account_id": account}, [audience])
    for _ in range(per_kind):
        pid = hex_id(rng)
        profile = api.call("GET", f"/v1/profiles/{pid}")
        add("PROFILES.UPDATED", {"account_id": profile["account"]["id"], "profile_id": pid}, [profile])
    for content_id, account in contents[:10]:
        comments = api.call("GET", f"/v1/social/comments?account_id={account}&content_id={content_id}&limit=100&offset=0")
        add("CONTENTS_COMMENTS.ADDED", {"account_id": account, "items": [content_id]}, comments["data"], ["gone1"])
    return events


def offline_events():
    """Events from records shaped like the simulator's, for a run without it."""
    common = {"created_at": "2026-06-05T11:16:40.495041", "updated_at": "2026-06-05T11:16:40.495041",
              "user": {"id": "u1", "name": "ada rivers"},
              "account": {"id": "acc1", "platform_username": "ada.rivers1", "username": "ada.rivers1"},
              "work_platform": {"id": "wp", "name": "YouTube", "logo_url": "https://x/logo.png"}}
    content = json.load(open(os.path.join(HERE, "..", "..", "shared", "spec", "samples", "content.json"))) \
        if os.path.exists(os.path.join(HERE, "..", "..", "shared", "spec", "samples", "content.json")) \
        else dict(common, id="c1", engagement={"like_count": 1, "additional_info": {"x": 1}}, hashtags=["#a"])
    profile = dict(common, id="p1", platform_username="ada", is_verified=False, date_of_birth=None,
                   reputation={"follower_count": 10, "watch_time_in_hours": 1.5},
                   emails=[{"type": "WORK", "email_id": "a@example.com"}], phone_numbers=[], addresses=[])
    account = dict(common, id="acc1", status="CONNECTED",
                   data={"identity": {"status": "SYNCED", "last_sync_at": "2026-06-05T11:16:40.495041",
                                      "monitor_type": "WEBHOOK"}, "income": None})
    audience = dict(common, id="acc1", countries=[{"code": "US", "value": 50.5}], cities=[],
                    gender_age_distribution=[{"gender": "MALE", "age_range": "18-24", "value": 3}])
    tx = dict(common, id="t1", amount=12.5, type="AD", cpm=3, currency="USD", transaction_at="2026-06-05T11:16:40.495041")
    return [
        enriched(1, "CONTENTS.ADDED", {"items": [content["id"]]}, [content]),
        enriched(2, "PROFILES.ADDED", {"profile_id": "p1"}, [profile]),
        enriched(3, "ACCOUNTS.CONNECTED", {"account_id": "acc1"}, [account]),
        enriched(4, "PROFILES_AUDIENCE.ADDED", {"account_id": "acc-data"}, [audience]),
        enriched(5, "TRANSACTIONS.ADDED", {"items": ["t1"]}, [tx]),
    ]


def unenriched_events(start):
    """Events the plugin must answer with no rows."""
    return [
        enriched(start, "CONTENTS.ADDED", {}, [], skipped="data.items is missing"),
        enriched(start + 1, "PROFILES.ADDED", {"profile_id": "gone"}, [], missing=["gone"]),
        enriched(start + 2, "CONTENTS.PUBLISH_SUCCESS", {"publish_id": "p"}, [], skipped="publish event"),
        enriched(start + 3, "CONTENTS_FETCH.SUCCESS", {"job_id": "j"}, [], skipped="job event"),
    ]


def start_simulator(binary):
    proc = subprocess.Popen([binary, "simulate", "--api-listen", "127.0.0.1:0", "--rate-limit", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    m = re.search(r"http://\S+", line)
    if not m:
        proc.kill()
        raise RuntimeError(f"the simulator did not say where it listens: {line!r}")
    return proc, m.group(0)


# ---------------------------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wasm", default=os.path.join(HERE, "insightiq.wasm"), help="the raw core module")
    ap.add_argument("--component", help="check this component (the WIT world) instead of the raw core module")
    ap.add_argument("--api", help="base URL of a running simulator (Basic auth demo-client:example-secret)")
    ap.add_argument("--hooklake", default=os.path.join(HERE, "..", "target", "debug", "hooklake"),
                    help="hooklake binary to start `simulate` with, when --api is not given")
    ap.add_argument("--offline", action="store_true", help="use built-in records only")
    ap.add_argument("--print-readme-tables", action="store_true", help="print the README's table section and exit")
    args = ap.parse_args()

    path = args.component or args.wasm
    plugin = ComponentPlugin(path) if args.component else RawPlugin(path)
    raw = isinstance(plugin, RawPlugin)
    if args.print_readme_tables:
        sys.stdout.write(readme_tables(plugin.describe()))
        return 0
    size = os.path.getsize(path)
    print(f"{'module' if raw else 'component'}: {path} ({size} bytes)")

    # Imports and exports
    imports = plugin.imports()
    print(f"imports: {imports}")
    check(imports == [], f"the module imports {imports}")
    if raw:
        exports = plugin.export_types()
        print("exports: " + ", ".join(sorted(exports)))
        check(exports.get("memory") == "MemoryType", "exports memory")
        for name, sig in RawPlugin.EXPORTS.items():
            check(exports.get(name) == sig, f"export {name}: {exports.get(name)}, expected {sig}")
        check(plugin.abi_version() == 1, "hooklake_abi_version() == 1")
    else:
        print("exports: " + ", ".join(plugin.export_names()))
        check(plugin.export_names() == ["describe", "transform"], "the component exports describe and transform")

    # Describe
    d = plugin.describe()
    check_describe(d)
    check(plugin.describe() == d, "describe is stable across calls")
    for name, columns in d["tables"].items():
        print(f"  table {name}: {len(columns)} columns")
    if d["name"] == "insightiq":
        for event, table in [("CONTENTS.ADDED", "contents"), ("CONTENTS.PUBLISH_SUCCESS", None),
                             ("CONTENTS_FETCH.SUCCESS", None), ("SESSION.EXPIRED", "accounts"),
                             ("PROFILES_AUDIENCE.ADDED", "audience"), ("ACTIVITY-CONTENTS.ADDED", "activity_contents")]:
            check(table_for(d, event) == table, f"{event} routed to {table_for(d, event)}, expected {table}")
        readme = os.path.join(HERE, "insightiq", "README.md")
        text = open(readme, encoding="utf-8").read()
        section = text.split("<!-- tables: generated -->\n", 1)[-1].split("<!-- end tables -->", 1)[0]
        check(section == readme_tables(d), "insightiq/README.md tables match describe "
              "(regenerate with: check_plugin.py --print-readme-tables)")

    # Events
    proc = None
    api_url = args.api
    if not api_url and not args.offline and os.access(args.hooklake, os.X_OK):
        proc, api_url = start_simulator(args.hooklake)
    try:
        if api_url:
            print(f"records from the simulator at {api_url}")
            events = simulator_events(Api(api_url), random.Random(7))
        else:
            print("records: built-in (no simulator)")
            events = offline_events()
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=10)
    events += unenriched_events(len(events) + 1)
    by_type = {}
    for e in events:
        by_type[e["event"]] = by_type.get(e["event"], 0) + 1
    print(f"batch: {len(events)} events, {sum(len(e['resources']) for e in events)} resources: "
          + ", ".join(f"{k} {v}" for k, v in sorted(by_type.items())))

    t0 = time.perf_counter()
    out = plugin.transform(events)
    elapsed = time.perf_counter() - t0
    print(f"transform: {elapsed * 1000:.1f} ms for the batch ({len(json.dumps(events)) // 1024} KiB in)")
    stats = {}
    check_rows(d, events, out, stats)
    for table in sorted(stats):
        cols = stats[table]
        rows = cols.pop("")[0]
        never = sorted(c for c, (n, nonnull) in cols.items() if nonnull == 0)
        print(f"  {table}: {rows} rows; columns never filled: {', '.join(never) or '-'}")
    check(set(stats) == set(d["tables"]) or not api_url, f"tables without rows: {set(d['tables']) - set(stats)}")

    # One event at a time gives the same results.
    singles = [plugin.transform([e])["results"][0] for e in events[:50]]
    check(singles == out["results"][:50], "an event maps the same alone as in a batch")

    # Bad input: per-event errors name the field; whole-batch errors are {"error"}.
    if d["name"] == "insightiq":
        content = next((e for e in events if e["event"] == "CONTENTS.ADDED" and e["resources"]), None)
        if content:
            bad = json.loads(json.dumps(content))
            bad["resources"][-1]["engagement"] = dict(bad["resources"][-1]["engagement"] or {}, like_count="12")
            bad_ts = json.loads(json.dumps(content))
            bad_ts["resources"][0]["published_at"] = 1700000000
            not_obj = json.loads(json.dumps(content))
            not_obj["resources"][0] = "abc"
            user_str = json.loads(json.dumps(content))
            user_str["resources"][0]["user"] = "someone"
            res = plugin.transform([bad, bad_ts, not_obj, user_str, content, 7])["results"]
            errors = [r.get("error", "") for r in res]
            check("engagement.like_count" in errors[0] and "not int64" in errors[0], f"wrong int: {errors[0]!r}")
            check("published_at" in errors[1] and "not timestamp" in errors[1], f"wrong timestamp: {errors[1]!r}")
            check("not an object" in errors[2], f"non-object resource: {errors[2]!r}")
            check("user is a string" in errors[3], f"user not an object: {errors[3]!r}")
            check("rows" in res[4], "a good event next to bad ones still maps")
            check("not an object" in errors[5], f"non-object event: {errors[5]!r}")
            print("  errors: " + " | ".join(e for e in errors if e))
    check(plugin.transform([]) == {"results": []}, "empty batch")
    bad_batches = [(b"", "empty input"), (b"[1,", "invalid JSON"), (b'{"a": 1}', "not an array")]
    if raw:
        bad_batches.append((b"\xff\xfe", "not UTF-8"))  # a component's string cannot be invalid UTF-8
    for data, what in bad_batches:
        res = plugin.transform_bytes(data)
        check(set(res) == {"error"} and isinstance(res["error"], str), f"{what}: {res}")

    if not raw:
        if os.path.exists(args.wasm):
            core = RawPlugin(args.wasm)
            check(core.describe() == d, "the component describes itself as the core module does")
            check(core.transform(events) == out, "the component maps the batch as the core module does")
        print(f"{passed} passed, {failed} failed")
        return 1 if failed else 0

    # Memory stays flat: the plugin frees each batch, the checker frees each result.
    plugin.transform(events)
    before = plugin.memory_bytes()
    t0 = time.perf_counter()
    rounds = 100
    for _ in range(rounds):
        plugin.transform(events)
        plugin.describe()
    per = (time.perf_counter() - t0) / rounds
    after = plugin.memory_bytes()
    print(f"memory: {before // 1024} KiB before, {after // 1024} KiB after {rounds} more batches "
          f"({per * 1000:.1f} ms per batch)")
    check(after <= before, f"memory grew from {before} to {after} bytes over {rounds} batches")

    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
