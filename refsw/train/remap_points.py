"""Move intra weights to another set of operating points (non-normative training aid).

    python -m refsw.train.remap_points IN.npz OUT.npz [--lambdas L0,L1,...] [--card CARD.md --dev DIR]

Each per-point gain table (y and z, encoder and decoder) is mapped to the new
lambdas piecewise linearly in ln(lambda) (:func:`refsw.models.intra.remap_point_table`);
points outside the trained lambda range are extrapolated from the end segments,
i.e. not trained.  All other weights are copied.  The default target is the
operating-point set of the registered model (``IntraConfig()``).

The output keeps the tables at the trained points (``trained.<table>``, with
``meta.trained_lambdas``; carried over unchanged if the input already has them),
so that ``train_intra --init-npz OUT.npz --lambdas <trained>`` resumes training
from the shipped file exactly at the trained points.

With ``--card`` the model card's RD section is measured again on ``--dev`` at the
new points (its q values change) and says which points are extrapolated.
"""
from __future__ import annotations

import argparse
import re
import sys

import torch

from refsw.models.intra import POINT_TABLES, IntraCodec, IntraConfig, check_lambdas, remap_point_tables
from refsw.models.io import carried_over, export_npz, model_from_arrays, read_npz


def remap_model(model: IntraCodec, lambdas) -> IntraCodec:
    """A copy of ``model`` whose trained points are ``lambdas`` (gain tables remapped)."""
    old = model.cfg
    d = old.to_dict()
    d.update(num_points=len(lambdas), lambdas=list(lambdas))
    new = IntraCodec(IntraConfig.from_dict(d))
    new.load_state_dict(remap_point_tables(model.state_dict(), old.lambdas, lambdas), strict=True)
    new.eval()
    return new


def _card_section(model, old_lambdas, dev):
    """The card's RD section, measured on ``dev`` at the model's points, and its RD rows."""
    from refsw.train.eval_intra import card_rd_section, list_images, load_image, measure_dev
    files = list_images(dev)
    cfg = model.cfg
    lo, hi = min(old_lambdas), max(old_lambdas)
    extra = [f"q {cfg.point_quality(i):g} (λ {lam:g})" for i, lam in enumerate(cfg.lambdas)
             if not lo * (1 - 1e-9) <= lam <= hi * (1 + 1e-9)]
    note = (f"Operating points: the model was trained at lambdas {', '.join(f'{v:g}' for v in old_lambdas)}; "
            f"its gain tables were remapped to lambdas {', '.join(f'{v:g}' for v in cfg.lambdas)} "
            f"(q = {', '.join(f'{cfg.point_quality(i):g}' for i in range(cfg.num_points))}) by "
            "`python -m refsw.train.remap_points` (piecewise linear in ln lambda). "
            + (f"Extrapolated beyond the trained range, not trained: {', '.join(extra)}." if extra else ""))
    rows, base_rows, latent = measure_dev(model, [load_image(f) for f in files])
    return "\n".join(card_rd_section(files, rows, base_rows, latent, cfg.base_channels, note)) + "\n\n", rows


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
    try:
        lambdas = check_lambdas(a.lambdas.split(",") if a.lambdas else IntraConfig().lambdas)
    except ValueError as e:
        ap.error(f"--lambdas: {e}")
    try:
        arrays = read_npz(a.input)
        model = model_from_arrays(arrays)
    except (OSError, KeyError, ValueError) as e:
        ap.error(f"{a.input}: not an intra weight file ({e})")
    meta, extra = carried_over(arrays)
    new = remap_model(model, lambdas)
    if not extra:
        sd = model.state_dict()
        extra = {"trained." + n: sd[n].to(torch.float16) for n in POINT_TABLES}
        meta["trained_lambdas"] = model.cfg.lambdas
    export_npz(new, a.output, meta, extra)
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
