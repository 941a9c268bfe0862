"""Time of the synthesis g_s of a 768x512 picture in the two executions of the
integer layers (clause 10.2): numpy (the CPU decoder:
``refsw.decoder.intnet.conv2d_taps``, one matrix product per kernel row) and
torch (``refsw.decoder.intnet_torch``, the form a GPU decoder runs; timed here
on the CPU).  Both give the same integers, checked on every run.

    .venv/bin/python benchmarks/conv_paths.py [--rounds 2] [--threads 1,2]
"""
import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from refsw.decoder import intnet, intnet_torch  # noqa: E402
from refsw.decoder.learned_intra import int_model  # noqa: E402
from refsw.threads import set_threads  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--model-id", type=int, default=1)
    a = ap.parse_args(argv)
    m = int_model(a.model_id)
    rng = np.random.default_rng(0)
    y = rng.integers(-3, 4, (1, m.M, 512 // m.stride, 768 // m.stride)).astype(np.int64)
    x = intnet.requant(y, m.gd_mult[40], None, m.gd_shift, -(1 << 15), (1 << 15) - 1)
    for r in range(a.rounds):
        for n in (int(v) for v in a.threads.split(",")):
            set_threads(n)
            torch.set_num_threads(n)
            t0 = time.perf_counter()
            ref = intnet.run(m.gs, x, "float64", cache={})
            t1 = time.perf_counter()
            got = intnet_torch.run(m.gs, torch.from_numpy(x), "float64", cache={}).numpy()
            t2 = time.perf_counter()
            same = np.array_equal(ref, got)
            print(f"round {r} threads {n}: numpy {t1 - t0:.3f} s, torch {t2 - t1:.3f} s, identical {same}",
                  flush=True)
            if not same:
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
