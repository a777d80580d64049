#!/usr/bin/env python3
"""The Bitbrains VM files whose cpu or memory level shifts between the two halves of the trace.

A file shifts on a resource when the mean usage over its second half of rows differs from the
mean over its first half by a factor of at least --factor (default 2), either way or only up or
down (--direction), both means above zero. The backtest warms up on the first half of each series and scores the second, so on these
files a policy must follow a level it did not see in its warm-up: a check, on the real trace, of
calibration after a workload changes behaviour (docs/results.md).

    python3 scripts/level_shift_files.py ../shared/data/bitbrains-rnd/2013-7 cpu OUT_DIR \
        [--factor 2] [--direction any|up|down]

links each such file into OUT_DIR (created) and prints how many, and which share of their
second halves' values are exactly 0 against the share over every file of the trace.
"""
import argparse
import csv
import gzip
import os

COLUMNS = {"cpu": "CPU usage [MHZ]", "memory": "Memory usage [KB]"}


def halves(path, column):
    """(mean of the first half, mean of the second half, the second half), or None."""
    with gzip.open(path, "rt") if path.endswith(".gz") else open(path) as f:
        rows = csv.reader(f, delimiter=";")
        header = [h.strip() for h in next(rows)]
        j = header.index(column)
        values = [float(r[j]) for r in rows if len(r) > j and r[j].strip()]
    half = len(values) // 2
    if half == 0:
        return None
    return sum(values[:half]) / half, sum(values[half:]) / (len(values) - half), values[half:]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace")
    ap.add_argument("resource", choices=sorted(COLUMNS))
    ap.add_argument("out")
    ap.add_argument("--factor", type=float, default=2.0)
    ap.add_argument("--direction", choices=["any", "up", "down"], default="any")
    args = ap.parse_args()
    trace, resource, out, factor = args.trace, args.resource, args.out, args.factor
    os.makedirs(out, exist_ok=True)
    picked = 0
    zeros = {"picked": [0, 0], "all": [0, 0]}  # values exactly 0, values, in the second halves
    for name in sorted(os.listdir(trace)):
        if not name.endswith((".csv", ".csv.gz")):
            continue
        h = halves(os.path.join(trace, name), COLUMNS[resource])
        if not h:
            continue
        first, second, later = h
        zeros["all"][0] += sum(v == 0 for v in later)
        zeros["all"][1] += len(later)
        if first <= 0 or second <= 0 or max(first, second) / min(first, second) < factor:
            continue
        if args.direction != "any" and (second > first) != (args.direction == "up"):
            continue
        zeros["picked"][0] += sum(v == 0 for v in later)
        zeros["picked"][1] += len(later)
        link = os.path.join(out, name)
        if not os.path.lexists(link):
            os.symlink(os.path.abspath(os.path.join(trace, name)), link)
        picked += 1
    way = "" if args.direction == "any" else f" ({args.direction})"
    print(f"{picked} files with a {resource} level shift of {factor}x or more{way} linked into {out}")
    share = {k: z / n if n else float("nan") for k, (z, n) in zeros.items()}
    print(f"second halves: {share['picked']:.3f} of their values are exactly 0 "
          f"({share['all']:.3f} over every file)")


if __name__ == "__main__":
    main()
