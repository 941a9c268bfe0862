"""Initial weights of learned intra model 2 from model 1 (training aid).

    python -m refsw.train.make_intra2 refsw/data/models/intra_v1.npz out/intra_v2_init.npz

Model 2 (sps_model_id 2) = model 1's transforms with a wider g_s (the widening
of :mod:`refsw.train.widen`: new units with zero outgoing weights), a checkerboard
context model whose last layer starts at zero (so the entropy model starts as
model 1's hyperprior) and a set of operating points reaching higher rates
(gain tables remapped from model 1's trained points, extrapolated at the top).
The result decodes like model 1 until training moves it.
"""
from __future__ import annotations

import argparse
import sys

import torch

from refsw.models.intra import IntraCodec, IntraConfig, check_lambdas, remap_point_tables
from refsw.models.io import export_npz, read_npz
from refsw.models.registry import INTRA_V2
from refsw.train.train_intra import init_from_npz
from refsw.train.widen import widen_model

# model 2 as registered (refsw.models.registry.INTRA_V2, docs/models/intra_v2.md)
GS_CHANNELS = INTRA_V2.gs_channels
CTX_CHANNELS, CTX_BASE_CHANNELS = INTRA_V2.ctx_channels, INTRA_V2.ctx_base_channels
LAMBDAS = INTRA_V2.lambdas


@torch.no_grad()
def make_intra2(path: str, gs_channels=GS_CHANNELS, lambdas=LAMBDAS, ctx=(CTX_CHANNELS, CTX_BASE_CHANNELS),
                seed=0) -> IntraCodec:
    """Model 2 from the model-1 weights in ``path``, taken at the points model 1 was
    trained at (its ``trained.*`` tables) when the file has them."""
    arrays = read_npz(path)
    trained = tuple(arrays["meta.trained_lambdas"].tolist()) if "meta.trained_lambdas" in arrays else None
    m1 = init_from_npz(path, trained)[0]
    g = torch.Generator().manual_seed(seed)
    wide = widen_model(m1, gs_channels, None, g)
    d = wide.cfg.to_dict()
    d.update(name="intra_v2", model_id=2, context="checkerboard", ctx_channels=ctx[0], ctx_base_channels=ctx[1],
             num_points=len(lambdas), lambdas=list(check_lambdas(lambdas)))
    torch.manual_seed(seed)
    m2 = IntraCodec(IntraConfig.from_dict(d))
    sd = remap_point_tables(wide.state_dict(), wide.cfg.lambdas, lambdas)
    missing, unexpected = m2.load_state_dict(sd, strict=False)
    if unexpected or any(not k.startswith("ctx.") for k in missing):
        raise ValueError(f"model 1 -> 2: unexpected {unexpected}, missing {missing}")
    m2.eval()
    return m2


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    arrays = read_npz(a.input)
    m2 = make_intra2(a.input, seed=a.seed)
    meta = {"step": 0, "train_seconds": 0.0, "init_from_step": int(arrays["meta.step"])}
    export_npz(m2, a.output, meta)
    print(f"{a.output}: {m2.cfg.name}, decoder kMAC/px {m2.decoder_kmac_per_pixel()}, "
          f"lambdas {m2.cfg.lambdas}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
