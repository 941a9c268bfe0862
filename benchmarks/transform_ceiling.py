"""Where the learned intra codec's quality ceiling is (issue 4 diagnostics).

For each picture and quality index: RGB PSNR of g_s(g_a(x)*gE*gD) without
quantisation ("unquantised") and with the latent rounded as coded
("rounded"), float model.  If the two are close, the transforms, not the
quantisation, limit quality.  Also the share of zero activations of each
clipped ReLU of g_s at q 63, and how many y channels code a non-zero value
on at least 0.5 % of positions at q 63 (base / enhancement layer).

    .venv/bin/python benchmarks/transform_ceiling.py [--weights refsw/data/models/intra_v1.npz]
"""
from __future__ import annotations

import argparse
import math
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from refsw.models.intra import ClippedReLU, pad_to_multiple  # noqa: E402
from refsw.models.io import load_npz  # noqa: E402
from refsw.models.registry import get_entry  # noqa: E402
from refsw.train.recycle import channels_in_use, nonzero_share  # noqa: E402


def psnr(a, b):
    return 10 * math.log10(1.0 / float(((a - b) ** 2).mean()))


@torch.no_grad()
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default=None)
    ap.add_argument("--images", default="astronaut,chelsea,coffee", help="scikit-image picture names")
    ap.add_argument("--qualities", default="0,36,63")
    a = ap.parse_args(argv)
    from skimage import data
    m = load_npz(a.weights or get_entry(1).weights_path)
    m.eval()
    for name in a.images.split(","):
        x = torch.from_numpy(getattr(data, name)()).permute(2, 0, 1).float().unsqueeze(0) / 255
        H, W = x.shape[-2:]
        y = m.analysis(pad_to_multiple(x, m.cfg.total_stride))
        for q in (int(v) for v in a.qualities.split(",")):
            gE, gD = m.gains(torch.tensor([float(q)]))[:2]
            xc = m.synthesize(y * gE, gD).clamp(0, 1)[..., :H, :W]
            xq = m.synthesize(torch.round(y * gE), gD).clamp(0, 1)[..., :H, :W]
            print(f"{name:10s} q={q:2d} unquantised {psnr(xc, x):6.2f} dB  rounded {psnr(xq, x):6.2f} dB")
        gE, gD = m.gains(torch.tensor([63.0]))[:2]
        h = torch.round(y * gE) * gD
        zeros = []
        for layer in m.g_s:
            h = layer(h)
            if isinstance(layer, ClippedReLU):
                zeros.append(f"{float((h <= 0).float().mean()):.2f}")
        print(f"{name:10s} q=63 g_s clipped-ReLU zero share per layer: {' '.join(zeros)}")
        use = nonzero_share(y * gE)
        print(f"{name:10s} q=63 y channels in use: {channels_in_use(use, m.cfg.base_channels)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
