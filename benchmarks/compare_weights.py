"""Compare two intra_v1 weight files before shipping one (non-normative).

BD-rate (RGB PSNR, estimated rate of the float model, as in the model card)
of CANDIDATE against REFERENCE (default: the shipped weights) on a folder of
held-out images, at the trained operating points.  Exit status 0 if the
candidate is better (BD < 0), 3 otherwise.

    .venv/bin/python benchmarks/compare_weights.py out/train_intra/intra_v1_next.npz \\
        --images ../shared/datasets/dev
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from refsw.models.io import load_npz  # noqa: E402
from refsw.models.registry import get_entry  # noqa: E402
from refsw.train.eval_intra import bd_rate, evaluate, list_images, load_image  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("candidate")
    ap.add_argument("--reference", default=None, help="default: the shipped intra_v1 weights")
    ap.add_argument("--images", required=True, help="folder of held-out PNG pictures")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    imgs = [load_image(p) for p in list_images(a.images)]
    if not imgs:
        ap.error(f"no pictures in {a.images}")
    rows = {}
    for tag, path in (("reference", a.reference or get_entry(1).weights_path), ("candidate", a.candidate)):
        m = load_npz(path)
        m.eval()
        with torch.no_grad():
            rows[tag] = evaluate(m, imgs)
        print(f"{tag:9s} {path}: " + " ".join(f"q{r['q']:g}:{r['bpp']:.3f}/{r['psnr']:.2f}" for r in rows[tag]))
    bd = bd_rate(rows["reference"], rows["candidate"])
    print(f"BD-rate candidate vs reference ({len(imgs)} pictures, estimated rate): {bd:+.2f} %")
    return 0 if bd < 0 else 3


if __name__ == "__main__":
    sys.exit(main())
