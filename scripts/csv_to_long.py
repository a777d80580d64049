#!/usr/bin/env python3
"""Joins a folder of per-series generic CSV files (one header for all) into one table with an id
column, rows ordered by time across series, as public traces list their workloads. Used to check
that Foresight reads both layouts alike (docs/results.md).

    python3 scripts/csv_to_long.py FOLDER OUT.csv
"""
import heapq
import os
import sys

src, out = sys.argv[1], sys.argv[2]
files = sorted(f for f in os.listdir(src) if f.endswith('.csv'))
header = None
def rows(f):
    global header
    with open(os.path.join(src, f)) as fh:
        h = fh.readline().strip()
        header = header or h
        assert h == header, (f, h)
        for line in fh:
            t, rest = line.rstrip('\n').split(',', 1)
            yield (float(t), f[:-4], t, rest)
with open(out, 'w') as o:
    its = [rows(f) for f in files]
    first = True
    for t, i, ts, rest in heapq.merge(*its):
        if first:
            o.write('id,' + header + '\n'); first = False
        o.write(f'{i},{ts},{rest}\n')
