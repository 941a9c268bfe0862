"""Decode time of a 768x512 picture with the two float64 executions of the
integer layers (clause 10.2 NOTE): the k*k tap products of
``refsw.nn.intnet.conv2d_taps`` (the decoder's path) and ``torch.conv2d``.

    .venv/bin/python benchmarks/conv_paths.py [--rounds 2] [--threads 1,2]

Both paths give the same integers; the picture hash is checked on every decode.
"""
import argparse
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import intra  # noqa: E402
from refsw.nn import intnet  # noqa: E402


def conv2d_acc(x, L, path, cache, shuffle=0):
    """The previous execution: torch.conv2d in float64 (int64 for the int64 path)."""
    w, b = intnet._weights(L, path, x.device, cache)
    if shuffle:
        x = F.pixel_shuffle(x, shuffle)
    dt = torch.float64 if path == "float64" else torch.int64
    return F.conv2d(x.to(dt), w, b, padding=L.weight.shape[2] // 2)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", default="1,2")
    a = ap.parse_args(argv)
    taps = intnet._conv_acc
    try:
        for r in range(a.rounds):
            for n in (int(v) for v in a.threads.split(",")):
                torch.set_num_threads(n)
                for name, fn in (("taps", taps), ("conv2d", conv2d_acc)):
                    intnet._conv_acc = fn
                    t, bpp = intra.decode_time_768x512(reps=5)
                    print(f"round {r} threads {n} {name:7s} {t:.3f} s ({bpp:.4f} bpp)", flush=True)
    finally:
        intnet._conv_acc = taps
    return 0


if __name__ == "__main__":
    sys.exit(main())
