#!/usr/bin/env python3
"""Sets the scale restart (LstmModel::scale_restart, `train --scale-restart`) of a trained LSTM
model file without retraining it, and records the edit in its provenance (docs/model.md, "Scale
restart"). The weights are untouched; only the header and the CRC-32 trailer change.

Why a script and not `foresight train`: this changes how inputs are computed at inference only,
and train has no zero-epoch mode; the file format (magic line, JSON header, float blob, CRC-32 of
everything before the trailer) is that of src/predict/lstm/model.cpp, whose loader checks it.

    python3 scripts/set_scale_restart.py IN.fsm OUT.fsm N [--note TEXT]
"""
import argparse
import json
import sys
import zlib

TRAILER = len(b"\nCRC32 xxxxxxxx\n")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("out")
    p.add_argument("n", type=int, help="steps in a row above the clip that restart the scale; 0: never")
    p.add_argument("--note", default="", help="why, recorded in the provenance")
    a = p.parse_args()
    if a.n < 0:
        sys.exit(f"{a.model}: N must be 0 or more, got {a.n}")
    b = open(a.model, "rb").read()
    start = b.find(b"{")
    eol = b.find(b"\n", start)
    if not b.startswith(b"FORESIGHT-LSTM\n") or start < 0 or eol < 0 or b[-TRAILER:-9] != b"\nCRC32 ":
        sys.exit(f"{a.model}: not a Foresight LSTM model file")
    body = b[:-TRAILER]
    if "%08x" % zlib.crc32(body) != b[-9:-1].decode():
        sys.exit(f"{a.model}: corrupt model file (CRC-32 mismatch)")
    h = json.loads(b[start:eol])
    if a.n > 0:
        h["scale_restart"] = a.n
    else:
        h.pop("scale_restart", None)
    # The lowest version that holds the file (formatVersionFor in model.cpp).
    h["format_version"] = 3 if a.n > 0 else 2 if h.get("fingerprint_window", 0) > 0 else 1
    h.setdefault("provenance", {}).setdefault("edits", []).append(
        {"scale_restart": a.n, "by": "scripts/set_scale_restart.py", "note": a.note})
    text = b[:start] + json.dumps(h, separators=(",", ":"), sort_keys=True).encode() + body[eol:]
    with open(a.out, "wb") as f:
        f.write(text + b"\nCRC32 " + ("%08x" % zlib.crc32(text)).encode() + b"\n")


if __name__ == "__main__":
    main()
