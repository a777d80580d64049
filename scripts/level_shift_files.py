#!/usr/bin/env python3
"""The Bitbrains VM files whose cpu or memory level shifts between the two halves of the trace.

A file shifts on a resource when the mean usage over its second half of rows differs from the
mean over its first half by a factor of at least FACTOR (default 2) either way, both means above
zero. The backtest warms up on the first half of each series and scores the second, so on these
files a policy must follow a level it did not see in its warm-up: a check, on the real trace, of
calibration after a workload changes behaviour (docs/results.md).

    python3 scripts/level_shift_files.py ../shared/data/bitbrains-rnd/2013-7 cpu OUT_DIR [FACTOR]

links each such file into OUT_DIR (created) and prints how many.
"""
import csv
import gzip
import os
import sys

COLUMNS = {"cpu": "CPU usage [MHZ]", "memory": "Memory usage [KB]"}


def means(path, column):
    with gzip.open(path, "rt") if path.endswith(".gz") else open(path) as f:
        rows = csv.reader(f, delimiter=";")
        header = [h.strip() for h in next(rows)]
        j = header.index(column)
        values = [float(r[j]) for r in rows if len(r) > j and r[j].strip()]
    half = len(values) // 2
    if half == 0:
        return None
    return sum(values[:half]) / half, sum(values[half:]) / (len(values) - half)


def main():
    if len(sys.argv) not in (4, 5) or sys.argv[2] not in COLUMNS:
        sys.exit(__doc__)
    trace, resource, out = sys.argv[1:4]
    factor = float(sys.argv[4]) if len(sys.argv) == 5 else 2.0
    os.makedirs(out, exist_ok=True)
    picked = 0
    for name in sorted(os.listdir(trace)):
        if not name.endswith((".csv", ".csv.gz")):
            continue
        m = means(os.path.join(trace, name), COLUMNS[resource])
        if not m or m[0] <= 0 or m[1] <= 0 or max(m) / min(m) < factor:
            continue
        link = os.path.join(out, name)
        if not os.path.lexists(link):
            os.symlink(os.path.abspath(os.path.join(trace, name)), link)
        picked += 1
    print(f"{picked} files with a {resource} level shift of {factor}x or more linked into {out}")


if __name__ == "__main__":
    main()
