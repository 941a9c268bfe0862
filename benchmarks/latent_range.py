"""Range use of the learned intra latents (issue 27 diagnosis): the largest
|z_hat| against the z support, |y_hat| against the 2^20 clip, and the largest
synthesis input |a| against its 2^15 range, over the dev pictures at every
trained quality index.

    .venv/bin/python benchmarks/latent_range.py [--data ../shared/datasets/dev] [--model-id 1]
"""
import argparse
import glob
import os
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from refsw.decoder.learned_intra import int_model  # noqa: E402
from refsw.models.intra import pad_to_multiple  # noqa: E402
from refsw.models.registry import load_model  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/datasets/dev")
    ap.add_argument("--model-id", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    m, im = load_model(a.model_id), int_model(a.model_id)
    S = m.cfg.z_support
    zmax = amax = ymax = zclip = n = 0
    for f in sorted(glob.glob(os.path.join(a.data, "*.png"))):
        x = torch.from_numpy(np.asarray(Image.open(f).convert("RGB")).copy()).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            y = m.analysis(pad_to_multiple(x, m.cfg.total_stride))
            for q in range(0, 64, 7):
                gE, gD, zE, zD, lgE = m.gains(torch.tensor([float(q)]))
                z = torch.round(m.h_a(y) * zE)
                zmax = max(zmax, int(z.abs().max()))
                zclip += int((z.abs() > S).sum())
                n += z.numel()
                yh = torch.round(y * gE).long().numpy()
                ymax = max(ymax, int(np.abs(yh).max()))
                amax = max(amax, int(np.abs(im.synthesis_input(yh, q)).max()))
    print(f"max |z_hat| {zmax} (support {S}), elements beyond: {zclip} of {n}; max |y_hat| {ymax} (clip 2^20); "
          f"max |a| {amax} of 32767 ({amax / 32767:.3f} of the range)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
