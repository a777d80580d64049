#!/usr/bin/env python3
"""Why one quantile level per workload loses at equal pooled risk (docs/model.md).

On the cpu of a Bitbrains folder, the hour-max predictor (max of the last 12 steps) at lead 1,
scored on each series' second half: one margin for all series, against a margin fitted per series
on its first half to cover 99% of that series' steps. Prints pooled slack and violation rate.
Reads rows as they are (no resampling, series shorter than 2 days dropped), so the figures are
close to, not equal to, the backtest's. Needs numpy (Debian: /usr/bin/python3, python3-numpy).

    /usr/bin/python3 scripts/margin_vs_per_series.py ../shared/data/bitbrains-rnd/2013-7
"""
import glob
import gzip
import os
import sys

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def cpu_series(folder):
    for f in sorted(glob.glob(os.path.join(folder, "*.csv*"))):
        opener = gzip.open if f.endswith(".gz") else open
        rows = []
        with opener(f, "rt") as fh:
            next(fh)
            for line in fh:
                p = line.split(";")
                try:
                    cores, cap, mhz = float(p[1]), float(p[2]), float(p[3])
                except (ValueError, IndexError):
                    continue
                if cores > 0:  # ghost rows
                    rows.append(mhz / (cap / cores))
        if len(rows) > 576:
            yield np.array(rows)


def pooled(pairs):
    a = np.concatenate([p[0] for p in pairs])
    u = np.concatenate([p[1] for p in pairs])
    return np.maximum(a - u, 0).sum() / a.sum(), (u > a).mean()


def main(folder):
    series = list(cpu_series(folder))
    for m in (0.3, 0.5, 0.7):
        pairs = []
        for u in series:
            n, w = len(u), len(u) // 2
            hm = sliding_window_view(u, 12).max(axis=1)
            t = np.arange(w, n - 1)
            pairs.append((hm[t - 11] * (1 + m), u[t + 1]))
        print("one margin %.1f: slack %.3f, violation %.4f" % ((m,) + pooled(pairs)))
    pairs = []
    for u in series:
        n, w = len(u), len(u) // 2
        hm = np.maximum(sliding_window_view(u, 12).max(axis=1), 1e-3)
        t = np.arange(11, n - 1)
        k = np.quantile((u[t + 1] / hm[t - 11])[: w - 11], 0.99)
        te = np.arange(w, n - 1)
        pairs.append((hm[te - 11] * k, u[te + 1]))
    print("margin per series (99%% of its first half): slack %.3f, violation %.4f" % pooled(pairs))


if __name__ == "__main__":
    main(sys.argv[1])
