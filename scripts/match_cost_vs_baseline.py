#!/usr/bin/env python3
"""The matcher's choices against best-on-average's, in cost (runtime under --objective runtime),
from `foresight match --evaluate --json FILE`: per held-out workload, (1 + regret) / (1 + best-on-average's regret) is the cost of
the matcher's choice over the cost of best-on-average's choice (both against the same best run).
Prints its geometric mean and median, how often the matcher's choice is cheaper, and the same
with the matcher's probe runs added to its side (one run of the workload, no reuse).

    foresight match --data ../shared/data/envmatch/scout --evaluate --group-by app --probes 3 --json scout.json
    python3 scripts/match_cost_vs_baseline.py scout.json
"""
import json
import math
import statistics
import sys


def summary(ratios):
    geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    return f"geometric mean {geo:.3f}, median {statistics.median(ratios):.3f}, " \
           f"lower for {sum(r < 1 - 1e-9 for r in ratios)}/{len(ratios)}, " \
           f"equal for {sum(abs(r - 1) <= 1e-9 for r in ratios)}"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        workloads = json.load(f)["workloads"]
    choice = [(1 + w["regret"]) / (1 + w["best_on_average_regret"]) for w in workloads]
    with_probes = [(1 + w["regret"] + w["probe_cost_vs_best"]) / (1 + w["best_on_average_regret"])
                   for w in workloads]
    print(f"choice / best-on-average's choice: {summary(choice)}")
    print(f"(choice + probe runs) / best-on-average's choice: {summary(with_probes)}")


if __name__ == "__main__":
    main()
