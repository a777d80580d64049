#!/usr/bin/env python3
"""Where a resource's unused allocation sits, from `foresight backtest --per-series FILE`.

Groups the series by how far their usage reaches above its mean (usage_p99_to_mean: the 99th
percentile of the scored usage over its mean, the same for every policy), and prints per policy
each group's share of the usage and of the policy's unused allocation, the group's pooled slack
and violation rate. Each policy is read at its calibrated knob, so the pooled violation rates
differ between policies; compare them with that in mind.

    foresight backtest --trace ../shared/data/bitbrains-rnd/2013-7 --format bitbrains \\
        --policies lstm,vpa,reactive --per-series series.csv
    python3 scripts/per_series_groups.py series.csv memory
"""
import collections
import csv
import math
import sys

EDGES = [1, 1.25, 1.5, 2, 3, math.inf]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    path, resource = sys.argv[1:]
    by = collections.defaultdict(list)
    with open(path) as f:
        for r in csv.DictReader(f):
            if r["resource"] == resource and r["usage_p99_to_mean"] != "nan":
                by[r["policy"]].append(r)
    if not by:
        sys.exit(f"{path}: no {resource} rows")

    def sums(rows):
        steps = sum(int(r["steps"]) for r in rows)
        usage = sum(float(r["mean_usage"]) * int(r["steps"]) for r in rows)
        alloc = sum(float(r["mean_allocation"]) * int(r["steps"]) for r in rows)
        unused = sum(float(r["slack"]) * float(r["mean_allocation"]) * int(r["steps"]) for r in rows)
        return steps, usage, alloc, unused, sum(int(r["violations"]) for r in rows)

    for policy, rows in by.items():
        steps, usage, alloc, unused, v = sums(rows)
        print(f"{policy}: knob {rows[0]['knob']}, {len(rows)} series, pooled slack {unused / alloc:.3f}, "
              f"violations {v / steps:.4f}")
        for lo, hi in zip(EDGES, EDGES[1:]):
            group = [r for r in rows if lo <= float(r["usage_p99_to_mean"]) < hi]
            if not group:
                continue
            s, u, a, un, gv = sums(group)
            print(f"  p99/mean [{lo}, {hi}): {len(group):5d} series, {u / usage:.3f} of usage, "
                  f"{un / unused:.3f} of unused, slack {un / a:.3f}, violations {gv / s:.4f}")


if __name__ == "__main__":
    main()
