"""Helpers the benchmark scripts share for the processes they drive: the address a hooklake process announces,
its /metrics, and the commit being measured."""
import subprocess
import urllib.request


def first_line_addr(proc):
    """`host:port[/path]` from the first stdout line of `hooklake run` or `hooklake simulate --api-listen`."""
    line = proc.stdout.readline()
    line = line.decode() if isinstance(line, bytes) else line
    if "http://" not in line:
        raise SystemExit(f"unexpected first line: {line!r}")
    return line.strip().rsplit("http://", 1)[1]


def metrics(addr):
    """Every sample of `http://addr/metrics`, by its full name with labels."""
    out = {}
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
    return out


def commit(root):
    """The short hash of HEAD in `root`."""
    return subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
