"""Widen the decoder of intra weights without changing what they decode (training aid).

    python -m refsw.train.widen IN.npz OUT.npz --gs-channels 128,128,64,64,64 [--hs-channels 64,96]

The hidden layers of g_s / h_s get more clipped-ReLU units.  Every trained
weight is copied; each new unit gets incoming weights in a random direction
with the mean norm and bias of its layer's existing units, and zero outgoing
weights (:func:`refsw.train.recycle.reinit_units`), so the widened model's
output is the same as the input model's and training (``train_intra
--init-npz OUT.npz``) decides what the new units carry.  Units are appended
after the existing ones (for a pixel-shuffled layer: its convolution's outputs
4c .. 4c+3 of each new unit c), so the existing ones keep their indices.

Meta (step, training time) and the trained gain tables (``trained.*``) are
carried over.  Widths can only grow.
"""
from __future__ import annotations

import argparse
import sys

import torch

from refsw.models.intra import IntraCodec, IntraConfig
from refsw.models.io import carried_over, export_npz, model_from_arrays, read_npz
from refsw.train.recycle import decoder_units, reinit_units


def _parse_widths(text: str, n: int, name: str):
    try:
        v = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise ValueError(f"{name}: {text!r} is not a comma-separated list of integers") from None
    if len(v) != n or min(v) <= 0:
        raise ValueError(f"{name}: need {n} positive widths, got {text!r}")
    return v


@torch.no_grad()
def widen_model(model: IntraCodec, gs_channels=None, hs_channels=None, generator=None) -> IntraCodec:
    """A copy of ``model`` with the given g_s / h_s hidden widths (None: unchanged)."""
    old = model.cfg
    gs = tuple(gs_channels or old.gs_channels)
    hs = tuple(hs_channels or old.hs_channels)
    for name, a, b in (("gs_channels", old.gs_channels, gs), ("hs_channels", old.hs_channels, hs)):
        if len(a) != len(b) or any(y < x for x, y in zip(a, b)):
            raise ValueError(f"{name}: {tuple(b)} does not contain {tuple(a)} (widths can only grow)")
    d = old.to_dict()
    d.update(gs_channels=list(gs), hs_channels=list(hs))
    new = IntraCodec(IntraConfig.from_dict(d))
    sd_old, sd_new = model.state_dict(), new.state_dict()
    for k, t in sd_new.items():
        o = sd_old[k]
        if o.shape != t.shape:
            t.zero_()
            t[tuple(slice(0, n) for n in o.shape)] = o
        else:
            t.copy_(o)
    for seq_old, seq_new in ((model.h_s, new.h_s), (model.g_s, new.g_s)):
        for (_, prod_o, r, _), (_, prod, _, cons) in zip(decoder_units(seq_old), decoder_units(seq_new)):
            n_old, n_new = prod_o.out_channels // (r * r), prod.out_channels // (r * r)
            if n_new > n_old:
                reinit_units(prod, cons, r, range(n_old, n_new), torch.arange(n_old), generator)
    new.eval()
    return new


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--gs-channels", default=None, help="g_s hidden widths, e.g. 128,128,64,64,64")
    ap.add_argument("--hs-channels", default=None, help="h_s hidden widths, e.g. 64,96")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    try:
        arrays = read_npz(a.input)
        model = model_from_arrays(arrays)
    except (OSError, KeyError, ValueError) as e:
        ap.error(f"{a.input}: not an intra weight file ({e})")
    try:
        gs = _parse_widths(a.gs_channels, len(model.cfg.gs_channels), "--gs-channels") if a.gs_channels else None
        hs = _parse_widths(a.hs_channels, len(model.cfg.hs_channels), "--hs-channels") if a.hs_channels else None
        new = widen_model(model, gs, hs, torch.Generator().manual_seed(a.seed))
    except ValueError as e:
        ap.error(str(e))
    meta, extra = carried_over(arrays)
    export_npz(new, a.output, meta, extra)
    k_old, k_new = model.decoder_kmac_per_pixel(), new.decoder_kmac_per_pixel()
    print(f"{a.output}: g_s {model.cfg.gs_channels} -> {new.cfg.gs_channels}, h_s {model.cfg.hs_channels} -> "
          f"{new.cfg.hs_channels}; decoder kMAC/pixel h_s {k_old['h_s']:.2f} -> {k_new['h_s']:.2f}, "
          f"g_s {k_old['g_s']:.2f} -> {k_new['g_s']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
