"""Move intra weights to another set of operating points (non-normative training aid).

    python -m refsw.train.remap_points IN.npz OUT.npz [--lambdas L0,L1,...] [--card CARD.md --dev DIR]

Each per-point gain table (y and z, encoder and decoder) is mapped to the new
lambdas piecewise linearly in ln(lambda) (:func:`refsw.models.intra.remap_point_table`);
points outside the trained lambda range are extrapolated from the end segments,
i.e. not trained.  All other weights are copied.  The default target is the
operating-point set of the registered model (``IntraConfig()``).

With ``--card`` the model card's RD section is measured again on ``--dev`` at the
new points (its q values change) and says which points are extrapolated.
"""
from __future__ import annotations

import argparse
import os
import re
import sys

import torch

from refsw.models.intra import POINT_TABLES, IntraCodec, IntraConfig, pad_to_multiple, remap_point_table
from refsw.models.io import export_npz, load_npz


def remap_model(model: IntraCodec, lambdas) -> IntraCodec:
    """A copy of ``model`` whose trained points are ``lambdas`` (gain tables remapped)."""
    old = model.cfg
    d = old.to_dict()
    d.update(num_points=len(lambdas), lambdas=list(lambdas))
    new = IntraCodec(IntraConfig.from_dict(d))
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for n in POINT_TABLES:
        sd[n] = remap_point_table(sd[n], old.lambdas, lambdas)
    new.load_state_dict(sd, strict=True)
    new.eval()
    return new


def _card_section(model, old_lambdas, dev):
    from refsw.train.eval_intra import evaluate, format_rows, list_images, load_image
    from refsw.train.recycle import channels_in_use, latent_use
    files = list_images(dev)
    imgs = [load_image(f) for f in files]
    cfg = model.cfg
    lo, hi = min(old_lambdas), max(old_lambdas)
    extra = [f"q {cfg.point_quality(i):g} (λ {lam:g})" for i, lam in enumerate(cfg.lambdas)
             if not lo * (1 - 1e-9) <= lam <= hi * (1 + 1e-9)]
    L = [f"## RD on held-out images ({', '.join(os.path.basename(f) for f in files)})\n",
         f"Operating points: the model was trained at lambdas {', '.join(f'{v:g}' for v in old_lambdas)}; "
         f"its gain tables were remapped to lambdas {', '.join(f'{v:g}' for v in cfg.lambdas)} "
         f"(q = {', '.join(f'{cfg.point_quality(i):g}' for i in range(cfg.num_points))}) by "
         "`python -m refsw.train.remap_points` (piecewise linear in ln lambda). "
         + (f"Extrapolated beyond the trained range, not trained: {', '.join(extra)}.\n" if extra else "\n"),
         "Estimated actual rate (quantised scale indices, quarter-sample means with the mean-offset "
         "tables of 9.3.2.1, integer z CDF; no container or hash bits), "
         "float decoder, RGB PSNR of the 8-bit output; mean over the images.\n"]
    with torch.no_grad():
        rows = evaluate(model, imgs)
        base_rows = evaluate(model, imgs, base_only=True)
        use = latent_use(model, [pad_to_multiple(x.float().unsqueeze(0) / 255.0, cfg.total_stride) for x in imgs])
    L.append(format_rows(rows))
    L.append("\nBase layer only (enhancement channels = rounded predicted means); bpp is still the full rate:\n")
    L.append(format_rows(base_rows))
    L.append(f"\ny channels in use at q 63 on these images (coded values non-zero on >= 0.5 % of "
             f"positions): {channels_in_use(use, cfg.base_channels)}.\n")
    return "\n".join(L) + "\n", rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--lambdas", default=None, help="comma-separated (default: IntraConfig's)")
    ap.add_argument("--card", default=None, help="model card (markdown) whose RD section is rewritten")
    ap.add_argument("--dev", default="../shared/datasets/dev", help="held-out pictures for the card")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    lambdas = tuple(float(v) for v in a.lambdas.split(",")) if a.lambdas else IntraConfig().lambdas
    if len(lambdas) < 2 or any(y <= x for x, y in zip(lambdas, lambdas[1:])) or lambdas[0] <= 0:
        ap.error(f"--lambdas: need at least two positive increasing values, got {lambdas}")
    import numpy as np
    with np.load(a.input, allow_pickle=False) as z:
        meta = {k[5:]: z[k] for k in z.files if k.startswith("meta.")}
    model = load_npz(a.input)
    new = remap_model(model, lambdas)
    export_npz(new, a.output, meta)
    print(f"{a.output}: lambdas {model.cfg.lambdas} -> {new.cfg.lambdas}")
    if a.card:
        text = open(a.card, encoding="utf-8").read()
        m = re.search(r"^## RD on held-out images.*?(?=^## Training data provenance)", text, re.S | re.M)
        if not m:
            print(f"error: {a.card}: no '## RD on held-out images' section before '## Training data provenance'",
                  file=sys.stderr)
            return 2
        section, rows = _card_section(new, model.cfg.lambdas, a.dev)
        with open(a.card, "w", encoding="utf-8") as f:
            f.write(text[:m.start()] + section + text[m.end():])
        print("dev RD " + " ".join(f"q{r['q']:g}:{r['bpp']:.3f}bpp/{r['psnr']:.2f}dB" for r in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
