#!/usr/bin/env python3
"""Converts a folder of GWA-T-12 (Bitbrains) files into Foresight's generic CSV trace format.

An independent reading of the same files, used to cross-check the `bitbrains` reader: a backtest
of the output with --format csv must match one of the input with --format bitbrains.
Usage: scripts/bitbrains_to_csv.py IN_DIR OUT_DIR
"""
import gzip
import os
import sys


def convert(src, dst):
    opener = gzip.open if src.endswith(".gz") else open
    with opener(src, "rt") as f, open(dst + ".tmp", "w") as out:
        out.write("timestamp,cpu,memory,disk_io,network\n")
        next(f)  # header
        for line in f:
            c = [x.strip() for x in line.split(";")]
            if len(c) < 11 or float(c[1]) == 0:  # ghost copies have 0 cores
                continue
            cores, cap, mhz = float(c[1]), float(c[2]), float(c[3])
            mem = float(c[6]) * 1024
            out.write("%s,%r,%s,%r,%r\n" % (
                c[0], mhz / (cap / cores), repr(mem) if mem > 0 else "",
                (float(c[7]) + float(c[8])) * 1024, (float(c[9]) + float(c[10])) * 1024))
    os.replace(dst + ".tmp", dst)


def main():
    src_dir, dst_dir = sys.argv[1], sys.argv[2]
    os.makedirs(dst_dir, exist_ok=True)
    for name in sorted(os.listdir(src_dir)):
        if name.endswith((".csv", ".csv.gz")):
            base = name[:-7] if name.endswith(".csv.gz") else name[:-4]
            convert(os.path.join(src_dir, name), os.path.join(dst_dir, base + ".csv"))


if __name__ == "__main__":
    main()
