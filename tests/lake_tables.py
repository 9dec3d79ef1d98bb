#!/usr/bin/env python3
"""Reads every table of a local lake back with pyarrow (schema) and DuckDB (rows), for the mapped-table tests.

    lake_tables.py LAKE_DIR

Prints JSON: {"tables": {name: {"schema": [[column, arrow type], ...], "rows": n,
                                 "rows_by_event": {event_id: n}, "sample": {column: value of the first row}}},
              "events": [{"id", "event", "items"}]}   (the raw `events` table, when present)
"""
import glob
import json
import os
import sys

import duckdb
import pyarrow.dataset as ds


def main():
    lake = sys.argv[1]
    out = {"tables": {}, "events": []}
    con = duckdb.connect()
    for table in sorted(os.listdir(lake)):
        files = glob.glob(os.path.join(lake, table, "**", "*.parquet"), recursive=True)
        if not files:
            continue
        schema = ds.dataset(files[0], format="parquet").schema
        pattern = os.path.join(lake, table, "**", "*.parquet")
        src = f"read_parquet('{pattern}', hive_partitioning=true, union_by_name=true)"
        if table == "events":
            rows = con.execute(f"SELECT _event_id, _event_type, items FROM {src} ORDER BY _seq").fetchall()
            out["events"] = [{"id": r[0], "event": r[1], "items": r[2] or []} for r in rows]
            continue
        counts = con.execute(f"SELECT _event_id, count(*) FROM {src} GROUP BY 1").fetchall()
        cur = con.execute(f"SELECT * EXCLUDE (date) FROM {src} ORDER BY _seq LIMIT 1")
        names = [d[0] for d in cur.description]
        first = cur.fetchone()
        sample = dict(zip(names, first)) if first else {}
        out["tables"][table] = {
            "schema": [[f.name, str(f.type)] for f in schema],
            "rows": sum(n for _, n in counts),
            "rows_by_event": {e: n for e, n in counts},
            "sample": sample,
        }
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
