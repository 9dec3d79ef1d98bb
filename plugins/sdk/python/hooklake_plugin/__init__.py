"""hooklake_plugin: write a hooklake plugin in Python, packaged as a component by componentize-py.

A plugin subclasses `Plugin`, says what it produces in `describe()` and maps one enriched event at a time in
`transform_event()`; `component()` turns it into the class componentize-py wants for the world
`hooklake:plugin@1.0.0` (`plugins/wit/plugin.wit`):

    import hooklake_plugin as hp

    class Example(hp.Plugin):
        def describe(self):
            return (hp.Describe("example", "0.1.0")
                    .route(["ACCOUNTS.*"], "accounts")
                    .table("accounts", [hp.col("id", hp.STRING, nullable=False), hp.col("status", hp.STRING)]))

        def transform_event(self, event):
            result = hp.EventResult()
            for i, r in event.objects():
                result.push("accounts", {"id": hp.get_str(r, "id", required=True), "status": hp.get_str(r, "status")})
            return result

    WitWorld = hp.component(Example)      # the name componentize-py >= 0.17 looks for in the app module

The contract (`plugins/README.md`): describe returns `{"name", "version", "routes", "tables"}`; transform takes a
JSON array of enriched events and returns `{"results": [...]}`, one `{"rows": {table: [row, ...]}}` or
`{"error": "..."}` per event, in order. A whole-batch failure is the WIT `err` (raise `BatchError`).

Pure Python, no dependencies, and nothing that needs WASI at run time: hooklake gives plugins no files, clock,
randomness, stdout or stderr (the component is built with `--stub-wasi`, so such a call traps). Use `log()`.
"""

import json

__all__ = [
    "STRING", "BOOL", "INT64", "FLOAT64", "TIMESTAMP", "DATE", "JSON", "SCALARS",
    "list_of", "struct", "col", "Describe", "DescribeError",
    "Event", "EventResult", "EventError", "BatchError",
    "get", "get_str", "get_int", "get_float", "get_bool",
    "results_document", "Plugin", "component", "log",
    "ERROR", "WARN", "INFO", "DEBUG", "TRACE",
]

ABI = "hooklake:plugin@1.0.0"

# ---------------------------------------------------------------------------------------------------------------
# Column types

STRING = "string"
BOOL = "bool"
INT64 = "int64"
FLOAT64 = "float64"
TIMESTAMP = "timestamp"  # the API's text as is (the host parses InsightIQ formats and RFC 3339), or µs as a number
DATE = "date"  # "YYYY-MM-DD"
JSON = "json"  # any value, stored as its JSON text
SCALARS = (STRING, BOOL, INT64, FLOAT64, TIMESTAMP, DATE, JSON)


def list_of(item_type):
    """`{"list": T}`."""
    return {"list": item_type}


def struct(*columns):
    """`{"struct": [columns]}`; takes columns (`col(...)`) as arguments or one list of them."""
    if len(columns) == 1 and isinstance(columns[0], (list, tuple)):
        columns = columns[0]
    return {"struct": list(columns)}


def col(name, type, nullable=True):
    """A column (or struct field). Columns are nullable unless `nullable=False`."""
    c = {"name": name, "type": type}
    if not nullable:
        c["nullable"] = False
    return c


class DescribeError(ValueError):
    """A describe document that hooklake would refuse."""


def _check_type(t, where):
    if isinstance(t, str):
        if t not in SCALARS:
            raise DescribeError(f"{where}: unknown type {t!r} (one of {', '.join(SCALARS)}, list, struct)")
    elif isinstance(t, dict) and len(t) == 1 and "list" in t:
        _check_type(t["list"], f"{where} (list item)")
    elif isinstance(t, dict) and len(t) == 1 and "struct" in t:
        _check_columns(t["struct"], f"{where} (struct)", host_names_ok=True)
    else:
        raise DescribeError(f"{where}: bad type {t!r}")


def _check_columns(columns, where, host_names_ok=False):
    if not isinstance(columns, list) or not columns:
        raise DescribeError(f"{where}: needs a non-empty list of columns")
    seen = set()
    for c in columns:
        if not isinstance(c, dict) or not isinstance(c.get("name"), str) or not c["name"]:
            raise DescribeError(f"{where}: column {c!r} has no name")
        name = c["name"]
        if name in seen:
            raise DescribeError(f"{where}: column {name!r} twice")
        if not host_names_ok and name.startswith("_"):
            raise DescribeError(f"{where}: column {name!r}: names starting with '_' are the host's")
        seen.add(name)
        if set(c) - {"name", "type", "nullable"}:
            raise DescribeError(f"{where}.{name}: unknown keys {sorted(set(c) - {'name', 'type', 'nullable'})}")
        if "nullable" in c and not isinstance(c["nullable"], bool):
            raise DescribeError(f"{where}.{name}: nullable must be true or false")
        _check_type(c.get("type"), f"{where}.{name}")


class Describe:
    """Builds the describe document: `Describe(name, version).route(events, table).table(name, columns)`."""

    def __init__(self, name, version):
        self.name = name
        self.version = version
        self.routes = []
        self.tables = {}

    def route(self, events, table):
        """Sends the events (exact names or `FAMILY.*`) to `table`'s plugin rows."""
        if isinstance(events, str):
            events = [events]
        self.routes.append({"events": list(events), "table": table})
        return self

    def table(self, name, columns):
        self.tables[name] = list(columns)
        return self

    def check(self):
        """Raises DescribeError for what the host would refuse (it checks again at load)."""
        if not isinstance(self.name, str) or not self.name:
            raise DescribeError("describe: name must be a non-empty string")
        if not isinstance(self.version, str) or not self.version:
            raise DescribeError("describe: version must be a non-empty string")
        if not self.routes:
            raise DescribeError("describe: no routes")
        claimed = {}
        for r in self.routes:
            if r["table"] not in self.tables:
                raise DescribeError(f"describe: a route goes to undeclared table {r['table']!r}")
            if not r["events"]:
                raise DescribeError(f"describe: the route to {r['table']!r} has no events")
            for e in r["events"]:
                if not isinstance(e, str) or not e:
                    raise DescribeError(f"describe: bad event pattern {e!r}")
                if e in claimed:
                    raise DescribeError(f"describe: {e} is routed twice ({claimed[e]!r}, {r['table']!r})")
                claimed[e] = r["table"]
        for name, columns in self.tables.items():
            if not name or name.startswith("_"):
                raise DescribeError(f"describe: bad table name {name!r}")
            _check_columns(columns, f"table {name}")
        return self

    def to_dict(self):
        return {"name": self.name, "version": self.version, "routes": self.routes, "tables": self.tables}

    def to_json(self):
        return json.dumps(self.check().to_dict(), separators=(",", ":"))


# ---------------------------------------------------------------------------------------------------------------
# Events in, results out


class EventError(Exception):
    """Raise from `transform_event` to give that event `{"error": message}` (it goes to the dead letters)."""


class BatchError(Exception):
    """Raise from `transform_batch` to fail the whole batch (the WIT `err`)."""


class Event:
    """One enriched event of the batch: the document `{"seq", "id", "event", "received_at", "data",
    "resources", "missing"}` (plus `"skipped"` when enrich passed it on without fetching)."""

    __slots__ = ("doc",)

    def __init__(self, doc):
        if not isinstance(doc, dict):
            raise EventError(f"the event is {_a(doc)}, not an object")
        self.doc = doc

    seq = property(lambda self: self.doc.get("seq"))
    id = property(lambda self: self.doc.get("id"))
    event = property(lambda self: self.doc.get("event"))
    received_at = property(lambda self: self.doc.get("received_at"))
    skipped = property(lambda self: self.doc.get("skipped"))
    missing = property(lambda self: self.doc.get("missing") or [])

    @property
    def data(self):
        d = self.doc.get("data")
        return d if isinstance(d, dict) else {}

    @property
    def resources(self):
        """The fetched records (a list, maybe empty)."""
        r = self.doc.get("resources")
        if r is None:
            return []
        if not isinstance(r, list):
            raise EventError(f"resources is {_a(r)}, not an array")
        return r

    def objects(self):
        """(index, record) for each resource; EventError naming the index if one is not a JSON object."""
        for i, r in enumerate(self.resources):
            if not isinstance(r, dict):
                raise EventError(f"resources[{i}] is {_a(r)}, not an object")
            yield i, r


class EventResult:
    """The rows one event produces, by table; `EventResult.error(msg)` for a failed event."""

    __slots__ = ("rows", "message")

    def __init__(self, rows=None):
        self.rows = rows if rows is not None else {}
        self.message = None

    @classmethod
    def error(cls, message):
        r = cls()
        r.message = str(message)
        return r

    def push(self, table, row):
        self.rows.setdefault(table, []).append(row)
        return self

    def to_dict(self):
        if self.message is not None:
            return {"error": self.message}
        return {"rows": self.rows}


def _json_kind(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def _a(v):
    """"an object", "a number", "null": the JSON kind of v with its article."""
    kind = _json_kind(v)
    return kind if kind == "null" else ("an " if kind[0] in "aeiou" else "a ") + kind


def _describe_value(v):
    text = json.dumps(v)
    return f"{_a(v)} ({text if len(text) <= 40 else text[:37] + '...'})"


_MISSING = object()


def get(obj, path, default=None):
    """`obj["a"]["b"]` for path "a.b"; `default` when a step is absent, null or not an object."""
    for key in path.split("."):
        if not isinstance(obj, dict):
            return default
        obj = obj.get(key, _MISSING)
        if obj is _MISSING or obj is None:
            return default
    return obj


def _required(v, path, required):
    if v is None and required:
        raise EventError(f"{path} is missing")
    return v


def get_str(obj, path, required=False):
    """A string field (None when absent; EventError naming the path for another JSON type)."""
    v = _required(get(obj, path), path, required)
    if v is None or isinstance(v, str):
        return v
    raise EventError(f"{path} is {_describe_value(v)}, not string")


def get_int(obj, path, required=False):
    """An int64 field; an integral float such as 3.0 is accepted. EventError for other types or out of range."""
    v = _required(get(obj, path), path, required)
    if v is None:
        return None
    if isinstance(v, float) and not isinstance(v, bool) and v.is_integer():
        v = int(v)
    if isinstance(v, int) and not isinstance(v, bool):
        if -(2**63) <= v < 2**63:
            return v
        raise EventError(f"{path} is {v}, out of int64 range")
    raise EventError(f"{path} is {_describe_value(v)}, not int64")


def get_float(obj, path, required=False):
    """A float64 field (ints are accepted and converted)."""
    v = _required(get(obj, path), path, required)
    if v is None:
        return None
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    raise EventError(f"{path} is {_describe_value(v)}, not float64")


def get_bool(obj, path, required=False):
    v = _required(get(obj, path), path, required)
    if v is None or isinstance(v, bool):
        return v
    raise EventError(f"{path} is {_describe_value(v)}, not bool")


def _result_json(result):
    if isinstance(result, EventResult):
        d = result.to_dict()
    elif result is None:
        d = {"rows": {}}
    elif isinstance(result, dict) and ("rows" in result or "error" in result):
        d = result
    elif isinstance(result, dict):
        d = {"rows": result}  # a bare {table: [rows]}
    else:
        d = {"error": f"plugin bug: transform_event returned a {type(result).__name__}"}
    try:
        return json.dumps(d, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:  # NaN/inf, or a value JSON cannot hold
        return json.dumps({"error": f"row is not JSON: {e}"})


def results_document(results):
    """The transform output `{"results": [...]}` from per-event results (EventResult, a `{"rows"|"error"}`
    dict, a bare `{table: rows}` dict, or None for no rows). Encoded per event so one bad value fails one event."""
    return '{"results":[' + ",".join(_result_json(r) for r in results) + "]}"


# ---------------------------------------------------------------------------------------------------------------
# The plugin and the component glue


class Plugin:
    """Subclass and implement `describe()` (a Describe or a dict) and `transform_event(event)` (an EventResult,
    `{table: [rows]}` or None; raise EventError for a failed event). Override `transform_batch(docs)` instead to
    see the whole batch (a list of event documents; return one result per event)."""

    def describe(self):
        raise NotImplementedError

    def transform_event(self, event):
        raise NotImplementedError

    def transform_batch(self, docs):
        out = []
        for doc in docs:
            try:
                out.append(self.transform_event(Event(doc)))
            except EventError as e:
                out.append(EventResult.error(e))
            except Exception as e:  # a bug in the plugin fails the event, not the instance
                out.append(EventResult.error(f"plugin raised {type(e).__name__}: {e}"))
        return out

    # The two WIT exports, as strings. `component()` wires these to componentize-py.

    def describe_json(self):
        d = self.describe()
        if isinstance(d, Describe):
            return d.to_json()
        return json.dumps(d, separators=(",", ":"))

    def transform_json(self, batch):
        """Returns the results document; raises BatchError for a failure of the whole batch."""
        try:
            docs = json.loads(batch)
        except ValueError as e:
            raise BatchError(f"the batch is not JSON: {e}")
        if not isinstance(docs, list):
            raise BatchError(f"the batch is {_a(docs)}, not an array")
        results = self.transform_batch(docs)
        if len(results) != len(docs):
            raise BatchError(f"plugin bug: {len(results)} results for {len(docs)} events")
        return results_document(results)


def _err_class():
    """componentize-py's Err (the WIT result's err case), wherever this version puts it."""
    for module in ("componentize_py_types", "wit_world.types", "plugin.types"):
        try:
            m = __import__(module, fromlist=["Err"])
            return m.Err
        except ImportError:
            continue
    return None


def component(plugin):
    """The class componentize-py instantiates for the world's exports (name it `WitWorld` in the app module).
    `plugin` is a Plugin subclass or instance; it is made once, at build time (componentize-py pre-initialises
    the app), so do expensive setup in its __init__."""
    instance = plugin() if isinstance(plugin, type) else plugin
    Err = _err_class()

    class WitWorld:
        def describe(self):
            return instance.describe_json()

        def transform(self, batch):
            try:
                return instance.transform_json(batch)
            except BatchError as e:
                if Err is None:
                    raise
                raise Err(str(e))

    WitWorld.plugin = instance
    return WitWorld


# ---------------------------------------------------------------------------------------------------------------
# Logging (the world's optional `log` import; rate-limited by the host and tagged with the plugin name)

ERROR, WARN, INFO, DEBUG, TRACE = range(5)
_log_import = _MISSING


def log(level, message):
    """Logs through the host. Outside a component (tests under CPython) it is a no-op."""
    global _log_import
    if _log_import is _MISSING:
        try:
            import wit_world

            _log_import = (wit_world.log, wit_world.Level)
        except ImportError:
            _log_import = None
    if _log_import is not None:
        fn, Level = _log_import
        fn(Level(level), str(message))


class _LogWriter:
    """sys.stdout / sys.stderr inside the component: the host gives no WASI, so a plain write would trap; lines go
    to `log` instead (stdout at info, stderr at warn)."""

    def __init__(self, level):
        self.level = level
        self.buffer = ""

    def write(self, text):
        self.buffer += text
        while "\n" in self.buffer:
            line, self.buffer = self.buffer.split("\n", 1)
            log(self.level, line)
        if len(self.buffer) > 4096:
            self.flush()
        return len(text)

    def flush(self):
        if self.buffer:
            line, self.buffer = self.buffer, ""
            log(self.level, line)

    def isatty(self):
        return False


if __import__("sys").platform == "wasi":
    import sys as _sys

    _sys.stdout = _LogWriter(INFO)
    _sys.stderr = _LogWriter(WARN)
