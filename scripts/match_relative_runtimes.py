#!/usr/bin/env python3
"""Each workload's runtime on each environment relative to its fastest completed run, from a
data folder in the matcher's generic format (runs.csv, environments.csv), beside the fingerprint
columns named on the command line. A table to read, not an evaluation: it shows which
environments a workload prefers and whether its fingerprint orders workloads the same way.

    foresight match convert-flora --flora ../shared/data/envmatch/flora --out flora-generic
    python3 scripts/match_relative_runtimes.py flora-generic memory_peak_mb
"""
import csv
import os
import sys


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    folder, columns = sys.argv[1], sys.argv[2:]
    with open(os.path.join(folder, "environments.csv")) as f:
        envs = [r["env"] for r in csv.DictReader(f)]
    runtime = {}
    with open(os.path.join(folder, "runs.csv")) as f:
        for r in csv.DictReader(f):
            if r["completed"] == "1" and float(r["runtime_s"]) > 0:
                runtime.setdefault(r["workload"], {})[r["env"]] = float(r["runtime_s"])
    fps = {}
    if columns:
        with open(os.path.join(folder, "fingerprints.csv")) as f:
            fps = {r["workload"]: r for r in csv.DictReader(f)}
    print("workload".ljust(32) + "".join(c[:14].rjust(15) for c in columns)
          + "".join(e[:13].rjust(14) for e in envs))
    for w in sorted(runtime):
        best = min(runtime[w].values())
        cells = "".join(f"{float(fps[w][c]):15.6g}" if w in fps else " " * 14 + "-" for c in columns)
        rel = "".join(f"{runtime[w][e] / best:14.2f}" if e in runtime[w] else " " * 13 + "-"
                      for e in envs)
        print(w[:32].ljust(32) + cells + rel)


if __name__ == "__main__":
    main()
