#!/usr/bin/env python3
"""Reads a hooklake lake back with independent readers (DuckDB and pyarrow) and prints a JSON summary.

    lake_read.py local DIR                         a lake on disk
    lake_read.py s3 ENDPOINT BUCKET PREFIX         a lake on an S3-compatible server (downloaded with boto3)
    lake_read.py mkbucket ENDPOINT BUCKET          create a bucket (test setup)

Output: {"rows": n, "ids": {id: count}, "files": [...], "other_objects": [...], "types": {col: duckdb type},
         "arrow": {col: [arrow type, nullable]}, "latest": n}
Used by the end-to-end tests; needs `pip install duckdb pyarrow boto3`.
"""
import json
import os
import sys
import tempfile


def s3_client(endpoint):
    import boto3
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                        region_name="us-east-1")


def download(endpoint, bucket, prefix, dest):
    s3 = s3_client(endpoint)
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            keys.append(obj["Key"])
    for key in keys:
        rel = key[len(prefix):].lstrip("/")
        path = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        s3.download_file(bucket, key, path)
    return dest


def summarise(root):
    import duckdb
    import pyarrow.parquet as pq

    files, other = [], []
    for d, _, names in os.walk(root):
        for n in names:
            rel = os.path.relpath(os.path.join(d, n), root)
            (files if n.endswith(".parquet") else other).append(rel)
    files.sort()
    sizes = {f: os.path.getsize(os.path.join(root, f)) for f in files}
    out = {"files": files, "sizes": sizes, "other_objects": sorted(other), "rows": 0, "ids": {}, "types": {}, "arrow": {}}
    if not files:
        print(json.dumps(out))
        return
    glob = os.path.join(root, "events", "**", "*.parquet")
    con = duckdb.connect()
    lake = f"read_parquet('{glob}', hive_partitioning=true, union_by_name=true)"
    described = con.execute(f"describe select * from {lake}").fetchall()
    out["types"] = {row[0]: str(row[1]) for row in described}
    ids = con.execute(f"select _event_id, count(*) from {lake} group by 1").fetchall()
    out["ids"] = {i: c for i, c in ids}
    out["rows"] = sum(out["ids"].values())
    # The README's "latest state per id" query shape must run.
    out["latest"] = con.execute(
        f"select count(*) from (select * from {lake} "
        f"qualify row_number() over (partition by _event_id order by _seq desc) = 1)").fetchall()[0][0]
    schema = pq.read_schema(os.path.join(root, files[0]))
    out["arrow"] = {f.name: [str(f.type), f.nullable] for f in schema}
    print(json.dumps(out))


def main():
    cmd = sys.argv[1]
    if cmd == "local":
        summarise(sys.argv[2])
    elif cmd == "s3":
        with tempfile.TemporaryDirectory() as tmp:
            summarise(download(sys.argv[2], sys.argv[3], sys.argv[4], tmp))
    elif cmd == "mkbucket":
        s3_client(sys.argv[2]).create_bucket(Bucket=sys.argv[3])
        print("{}")
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
