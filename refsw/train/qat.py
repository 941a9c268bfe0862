"""Quantisation-aware fine-tuning of the integer decoder (non-normative training aid).

The integer decoder (clause 10, data from ``refsw.nn.convert``) differs from the
float model in three places, all of which :class:`FakeQuant` reproduces in the
float forward pass of h_s and g_s, with straight-through gradients:

* the input latents are requantised to the calibrated input unit (``s_in``,
  ``convert.calibrate``) and clipped to +-2^15;
* each convolution has per-output-channel integer weights, |w| <= 2^14 - 1, and
  integer biases in units of its accumulator;
* each clipped ReLU output is an integer in [0, 2^15 - 1] in units of
  ``act_max / (2^15 - 1)``.

Not modelled: the rounding of the requantisation multipliers (relative error
below 2^-13 per channel) and the quantisation of h_s's outputs (quarter-sample
means, 64 scale indices), which only move the rate.

    python -m refsw.train.qat --images ../shared/datasets/dev [--weights W.npz --int W_int.npz]

prints the synthesis gap: PSNR of the integer g_s against the float g_s on the
same coded latent (round(y * gE), q = 0, 7, ..., 63), per picture and mean.
``train_intra --qat`` fine-tunes with the fake quantisation switched on.
"""
from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F

from refsw.models.intra import ClippedReLU, DecConv
from refsw.nn.convert import ACT_MAX, LAT_MAX, WEIGHT_MAX


def _ste(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Forward value q, gradient of x."""
    return x + (q - x).detach()


class FakeQuant:
    """Fake quantisation of h_s and g_s of an IntraCodec, as ``refsw.nn.convert`` integerises them."""

    def __init__(self, model, s_gin: float, s_hin: float):
        if not (s_gin > 0 and s_hin > 0):
            raise ValueError(f"input units must be positive, got s_gin {s_gin}, s_hin {s_hin}")
        self.model = model
        self.s_act = model.cfg.act_max / ACT_MAX
        self.s_in = {}      # input unit of each convolution
        self.first = set()  # the first convolution of h_s and of g_s: input requantisation
        for seq, s in ((model.h_s, s_hin), (model.g_s, s_gin)):
            convs = [m for m in seq if isinstance(m, DecConv)]
            self.first.add(id(convs[0]))
            unit = s
            for m in convs:
                self.s_in[id(m)] = unit
                unit = self.s_act

    def conv(self, m: DecConv, x: torch.Tensor) -> torch.Tensor:
        s_in = self.s_in[id(m)]
        if id(m) in self.first:
            x = _ste(x, torch.round(x / s_in).clamp(-LAT_MAX, LAT_MAX - 1) * s_in)
        W = m.weight
        s_w = (W.detach().abs().flatten(1).amax(1) / WEIGHT_MAX).clamp_min(1e-30)
        Wq = _ste(W, torch.round(W / s_w.view(-1, 1, 1, 1)) * s_w.view(-1, 1, 1, 1))
        unit = s_w * s_in
        bq = _ste(m.bias, torch.round(m.bias / unit) * unit)
        return F.conv2d(x, Wq, bq, m.stride, m.padding)

    def relu(self, m: ClippedReLU, x: torch.Tensor) -> torch.Tensor:
        y = torch.clamp(x, 0.0, m.max_value)
        return _ste(y, torch.round(y / self.s_act).clamp(0, ACT_MAX) * self.s_act)

    def modules(self):
        for seq in (self.model.h_s, self.model.g_s):
            for m in seq:
                if isinstance(m, (DecConv, ClippedReLU)):
                    yield m

    def attach(self) -> "FakeQuant":
        for m in self.modules():
            m.fake_quant = self.conv if isinstance(m, DecConv) else self.relu
        return self

    def detach(self) -> None:
        for m in self.modules():
            m.fake_quant = None


def synthesis_gap(model, int_model, pictures, qualities=range(0, 64, 7)):
    """Rows (picture index, q, PSNR float, PSNR integer, PSNR integer against float) of g_s
    on the same coded latent round(y * gE); pictures are (1, 3, H, W) tensors in [0, 1]."""
    from refsw.metrics import plane_psnr
    from refsw.models.intra import pad_to_multiple

    def _p(a, b):
        return plane_psnr(a.numpy(), b.numpy(), 8)

    rows = []
    model.eval()
    with torch.no_grad():
        for i, x in enumerate(pictures):
            H, W = x.shape[-2:]
            xp = pad_to_multiple(x, model.cfg.total_stride)
            y = model.analysis(xp)
            ref = torch.round(x * 255).double()
            for q in qualities:
                gE, gD = model.gains(torch.tensor([float(q)]))[:2]
                y_hat = torch.round(y * gE)
                xf = torch.round(model.synthesize(y_hat, gD).clamp(0, 1) * 255)[..., :H, :W].double()
                xi = torch.from_numpy(int_model.synthesis(y_hat.to(torch.int64).numpy(), int(q)))[..., :H, :W].double()
                rows.append((i, int(q), _p(xf, ref), _p(xi, ref), _p(xi, xf)))
    return rows


def main(argv=None):
    from refsw.models.io import load_npz
    from refsw.models.registry import get_entry
    from refsw.decoder.learned_intra import IntModel
    from refsw.train.eval_intra import list_images, load_image
    ap = argparse.ArgumentParser(prog="python -m refsw.train.qat", description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", required=True, help="folder of PNG pictures")
    ap.add_argument("--weights", default=None, help="float weights (default: shipped intra_v1)")
    ap.add_argument("--int", dest="int_path", default=None, help="integer data (default: <weights>_int.npz)")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    w = a.weights or get_entry(1).weights_path
    files = list_images(a.images)
    if not files:
        ap.error(f"no pictures in {a.images}")
    model = load_npz(w)
    im = IntModel(a.int_path or w.replace(".npz", "_int.npz"), 1)
    pics = [load_image(f)[None].float() / 255.0 for f in files]
    rows = synthesis_gap(model, im, pics)
    print("picture q PSNR_float PSNR_int int_vs_float")
    for i, q, pf, pi, pd in rows:
        print(f"{files[i].split('/')[-1]} {q} {pf:.3f} {pi:.3f} {pd:.2f}")
    n = len(rows)
    mf, mi = sum(r[2] for r in rows) / n, sum(r[3] for r in rows) / n
    print(f"mean over {len(files)} pictures x {n // len(files)} q: float {mf:.3f} dB, integer {mi:.3f} dB, "
          f"gap {mi - mf:+.4f} dB; worst {min(r[3] - r[2] for r in rows):+.4f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
