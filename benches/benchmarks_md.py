"""One home for writing a benchmark's section into BENCHMARKS.md: each script owns the text between
`<!-- NAME:begin -->` and `<!-- NAME:end -->` and rewrites only that, creating the file or the markers."""
import os

FILE_HEADER = (
    "# hooklake benchmarks\n\n"
    "Latest figures of the benchmarks under `benches/`. Each section is rewritten by the script named in it; "
    "rerun that script rather than editing figures by hand.\n\n"
)


def write_section(path, name, section):
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{section.rstrip()}\n{end}\n"
    text = open(path, encoding="utf-8").read() if os.path.exists(path) else FILE_HEADER
    start, stop = text.find(begin), text.find(end)
    if start != -1 and stop > start:
        rest = text[stop + len(end):].lstrip("\n")
        text = text[:start] + block + ("\n" + rest if rest else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
