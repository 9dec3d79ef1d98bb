#!/usr/bin/env python3
"""Measures fdatasync latency on the filesystem of a directory: the floor under any durable acknowledgement.

    fsync_probe.py DIR [--count 200] [--size 4096]

Appends `size` bytes to a scratch file in DIR and fdatasyncs, `count` times (appending, as a journal does, so
each sync also persists the new file size), removes the file and prints one JSON line with the median, p90,
min and max in microseconds. A group-commit journal with C concurrent requests can acknowledge at most about
C / median durable writes per second, if every write needs one sync of its own batch.
"""
import argparse
import json
import os
import statistics
import tempfile
import time


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir")
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--size", type=int, default=4096)
    a = p.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    block = os.urandom(a.size)
    fd, path = tempfile.mkstemp(prefix="fsync-probe-", dir=a.dir)
    try:
        samples = []
        for _ in range(a.count):
            os.write(fd, block)
            t = time.perf_counter_ns()
            os.fdatasync(fd)
            samples.append((time.perf_counter_ns() - t) / 1000)
    finally:
        os.close(fd)
        os.unlink(path)
    samples.sort()
    print(json.dumps({
        "dir": os.path.abspath(a.dir), "count": a.count, "size": a.size,
        "median_us": round(statistics.median(samples), 1),
        "p90_us": round(samples[int(len(samples) * 0.9)], 1),
        "min_us": round(samples[0], 1), "max_us": round(samples[-1], 1),
    }))


if __name__ == "__main__":
    main()
