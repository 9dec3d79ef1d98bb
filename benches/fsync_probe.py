#!/usr/bin/env python3
"""Measures fdatasync latency on the filesystem of a directory: the floor under any durable acknowledgement.

    fsync_probe.py DIR [--count 200] [--size 4096]

Two ways, `count` times each, on a scratch file in DIR (removed afterwards):
- overwrite: rewrite `size` bytes inside an already written file, then fdatasync. Only data reaches the disk;
  this is what a journal that writes into preallocated pages pays, and the fastest durable write available.
- append: append `size` bytes, then fdatasync, which must also persist the new file size (a filesystem
  journal commit on ext4): what an appending log pays.
Prints one JSON line with each way's median, p90, min and max in microseconds; `median_us` is the overwrite
median. A group-commit journal serving C concurrent requests, each waiting for its batch's sync, acknowledges
at most about C / median_us * 1e6 requests per second.
"""
import argparse
import json
import os
import statistics
import tempfile
import time


def measure(fd, block, count, append):
    samples = []
    for i in range(count):
        if append:
            os.write(fd, block)
        else:
            os.pwrite(fd, block, i * len(block))
        t = time.perf_counter_ns()
        os.fdatasync(fd)
        samples.append((time.perf_counter_ns() - t) / 1000)
    samples.sort()
    return {
        "median_us": round(statistics.median(samples), 1), "p90_us": round(samples[int(len(samples) * 0.9)], 1),
        "min_us": round(samples[0], 1), "max_us": round(samples[-1], 1),
    }


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
        # Lay the file down and make it durable first, so overwrites change no metadata.
        os.write(fd, block * a.count)
        os.fsync(fd)
        overwrite = measure(fd, block, a.count, append=False)
        append = measure(fd, block, a.count, append=True)
    finally:
        os.close(fd)
        os.unlink(path)
    print(json.dumps({
        "dir": os.path.abspath(a.dir), "count": a.count, "size": a.size,
        "median_us": overwrite["median_us"], "p90_us": overwrite["p90_us"],
        "overwrite": overwrite, "append": append,
    }))


if __name__ == "__main__":
    main()
