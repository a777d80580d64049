#!/usr/bin/env python3
"""Three one-series generic CSV traces for the LSTM's idle-start limit (docs/model.md).

10 days at 300 s from 2013-07-01. From day D on, cpu = 2 cores x (1 + 0.2 sin(2 pi t / day)) x
(1 + 5% noise) and memory = 4 GB x (1 + 2% noise); before it the workload idles (cpu 0, memory
200 MB). D = 0 (never idle), 1 and 3. The backtest scores days 5-10 (the second half).

    python3 scripts/idle_start_traces.py OUT_DIR    # writes OUT_DIR/idle{0,1,3}/a.csv
"""
import math
import os
import random
import sys

START, STEP, DAYS = 1372629600, 300, 10


def write(path, idle_days, rng):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("timestamp,cpu,memory\n")
        for i in range(DAYS * 86400 // STEP):
            t = START + i * STEP
            if i * STEP < idle_days * 86400:
                cpu, mem = 0.0, 200e6
            else:
                cpu = 2.0 * (1 + 0.2 * math.sin(2 * math.pi * (i * STEP) / 86400)) * (1 + 0.05 * rng.gauss(0, 1))
                mem = 4e9 * (1 + 0.02 * rng.gauss(0, 1))
            f.write(f"{t},{max(cpu, 0.0)!r},{mem!r}\n")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for d in (0, 1, 3):
        write(os.path.join(sys.argv[1], f"idle{d}", "a.csv"), d, random.Random(d))


if __name__ == "__main__":
    main()
