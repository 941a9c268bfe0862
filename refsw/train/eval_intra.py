"""Evaluate an intra model (.npz) on a folder of images: bpp / PSNR per operating point.

The rate is the *estimated actual* rate of the normative entropy coding model:

* y: symbol s = round(y*gE) - mu_r, mu_r the mean rounded from its quarter-sample
  value, coded with the Gaussian of mean d (the quarter position, 9.3.2.1) and
  the quantised scale index k (nearest of the 64 normative scales); the
  probability of s is floored at 2**-16 (table precision).
* z: round(z*zE) clamped to [-S, S], coded with the integer CDF table
  ``derived.z_cdf``.

PSNR is RGB PSNR on the 8-bit rounded reconstruction, cropped to the picture size.

    python -m refsw.train.eval_intra --weights refsw/data/models/intra_v1.npz \
        --data ../shared/datasets/dev
"""
from __future__ import annotations

import argparse
import glob
import math
import os
import time

import numpy as np
import torch
from PIL import Image

from refsw.models.entropy_models import index_to_scale, scale_index
from refsw.models.intra import pad_to_multiple
from refsw.decoder.learned_intra import split_mean


def list_images(folder: str):
    exts = ("*.png", "*.jpg", "*.jpeg", "*.ppm", "*.bmp")
    files = []
    for e in exts:
        files += glob.glob(os.path.join(folder, e))
    return sorted(files)


def load_image(path: str) -> torch.Tensor:
    a = np.asarray(Image.open(path).convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(a.copy()).permute(2, 0, 1).contiguous()  # (3,H,W) uint8


def _std_cdf(x):
    return 0.5 * torch.erfc(-x / math.sqrt(2.0))


@torch.no_grad()
def code_estimate(model, x_u8: torch.Tensor, q: float, z_cdf: np.ndarray | None = None, base_only=False, y=None):
    """Return (bits_y, bits_z, x_rec_u8, extra) for one picture at quality q.

    ``y`` may be a precomputed ``model.analysis`` output of the padded picture."""
    cfg = model.cfg
    H, W = x_u8.shape[-2:]
    x = pad_to_multiple(x_u8.float().unsqueeze(0) / 255.0, cfg.total_stride)
    qq = torch.tensor([float(q)])
    gE, gD, zE, zD, lgE = model.gains(qq)
    if y is None:
        y = model.analysis(x)
    S = cfg.z_support
    z_hat = torch.round(model.h_a(y) * zE).clamp(-S, S)
    if z_cdf is None:
        z_cdf = model.z_prior.integer_cdf(S, cfg.z_cdf_precision)
    zc = torch.from_numpy(z_cdf.astype(np.int64))
    idx = (z_hat[0].long() + S).reshape(z_hat.shape[1], -1)  # (Z, n)
    freq = torch.gather(zc[:, 1:], 1, idx) - torch.gather(zc[:, :-1], 1, idx)
    bits_z = float((cfg.z_cdf_precision - torch.log2(freq.double())).sum())

    p_h = model.hyper_params(z_hat, zD)
    y_hat = torch.round(y * gE)
    mu, log_sigma = model.split_params(model.context_params(p_h, y_hat, gD), gE, lgE)
    mu_r, f = split_mean(torch.round(mu * 4).long(), 2)   # quarter-sample mean (10.3 step 4)
    d = (f - 2).double() / 4                               # mean position, table set 9.3.2.1
    k = scale_index(log_sigma)
    sig = index_to_scale(k)
    s = (y_hat - mu_r).double() - d
    p = _std_cdf((s.abs() * -1 + 0.5) / sig) - _std_cdf((-s.abs() - 0.5) / sig)
    p = p.clamp_min(2.0 ** -16)
    bits = -torch.log2(p)
    b = cfg.base_channels
    bits_y = float(bits.sum())
    bits_y_base = float(bits[:, :b].sum())
    if base_only:
        y_hat = model.fill_enhancement(y_hat, model.split_params(p_h, gE, lgE)[0])
    x_hat = model.synthesize(y_hat, gD)[..., :H, :W]
    x_rec = torch.round(x_hat.clamp(0, 1) * 255.0).to(torch.uint8)[0]
    return bits_y, bits_z, x_rec, {"bits_y_base": bits_y_base, "k_mean": float(k.float().mean())}


def psnr_u8(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.double() - b.double()).square().mean().item()
    return 99.0 if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


@torch.no_grad()
def evaluate(model, images, qualities=None, base_only=False):
    """Mean bpp / PSNR over images for each quality. Returns list of dicts."""
    model.eval()
    cfg = model.cfg
    if qualities is None:
        qualities = [cfg.point_quality(i) for i in range(cfg.num_points)]
    z_cdf = model.z_prior.integer_cdf(cfg.z_support, cfg.z_cdf_precision)
    rows = []
    ys = [model.analysis(pad_to_multiple(x.float().unsqueeze(0) / 255.0, cfg.total_stride)) for x in images]
    for q in qualities:
        bpp, ps, zf, bf = [], [], [], []
        for x, y in zip(images, ys):
            H, W = x.shape[-2:]
            by, bz, rec, ex = code_estimate(model, x, q, z_cdf, base_only=base_only, y=y)
            bpp.append((by + bz) / (H * W))
            zf.append(bz / (by + bz))
            bf.append(ex["bits_y_base"] / by if by > 0 else 0.0)
            ps.append(psnr_u8(rec, x))
        rows.append({"q": q, "bpp": float(np.mean(bpp)), "psnr": float(np.mean(ps)),
                     "z_frac": float(np.mean(zf)), "base_frac": float(np.mean(bf))})
    return rows


def format_rows(rows) -> str:
    lines = ["| q | bpp | PSNR RGB (dB) | z share of rate | base share of y rate |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['q']:g} | {r['bpp']:.4f} | {r['psnr']:.2f} | {r['z_frac']:.3f} | {r['base_frac']:.3f} |")
    return "\n".join(lines)


def measure_dev(model, images):
    """What the model card reports on held-out pictures: RD rows, base-only RD rows and
    the y channel use at q 63 (:func:`refsw.train.recycle.latent_use`)."""
    from refsw.train.recycle import latent_use
    with torch.no_grad():
        latent = latent_use(model, [pad_to_multiple(x.float().unsqueeze(0) / 255.0, model.cfg.total_stride)
                                    for x in images])
        return evaluate(model, images), evaluate(model, images, base_only=True), latent


def card_rd_section(files, rows, base_rows, latent, base_channels, note: str = ""):
    """Lines of the model card's "RD on held-out images" section (``note``: a paragraph after its title)."""
    from refsw.train.recycle import channels_in_use
    L = [f"## RD on held-out images ({', '.join(os.path.basename(f) for f in files)})\n"]
    if note:
        L.append(note + "\n")
    L.append("Estimated actual rate (quantised scale indices, quarter-sample means with the mean-offset "
             "tables of 9.3.2.1, integer z CDF; no container or hash bits), "
             "float decoder, RGB PSNR of the 8-bit output; mean over the images.\n")
    L.append(format_rows(rows))
    if base_rows:
        L.append("\nBase layer only (enhancement channels = rounded predicted means); bpp is still the full rate:\n")
        L.append(format_rows(base_rows))
    if latent is not None:
        L.append(f"\ny channels in use at q 63 on these images (coded values non-zero on >= 0.5 % of "
                 f"positions): {channels_in_use(latent, base_channels)}.")
    return L


def jpeg_rd(images, qualities=(5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)):
    """Pillow (libjpeg) baseline JPEG, 4:2:0, optimised Huffman: mean bpp/PSNR per quality."""
    import io as _io

    rows = []
    for jq in qualities:
        bpp, ps = [], []
        for x in images:
            H, W = x.shape[-2:]
            im = Image.fromarray(x.permute(1, 2, 0).numpy())
            buf = _io.BytesIO()
            im.save(buf, format="JPEG", quality=int(jq), optimize=True, subsampling=2)
            rec = np.asarray(Image.open(_io.BytesIO(buf.getvalue())).convert("RGB"))
            bpp.append(8 * len(buf.getvalue()) / (H * W))
            ps.append(psnr_u8(torch.from_numpy(rec.copy()).permute(2, 0, 1), x))
        rows.append({"q": jq, "bpp": float(np.mean(bpp)), "psnr": float(np.mean(ps))})
    return rows


def bd_rate(anchor, test):
    """Bjontegaard delta rate (%) of test vs anchor (lists of dicts with bpp, psnr).

    Cubic fit of log-rate over PSNR, integrated over the overlapping PSNR range.
    Negative = test needs fewer bits.  Returns nan if the ranges do not overlap."""
    def fit(rows):
        r = sorted(rows, key=lambda d: d["psnr"])
        p = np.array([d["psnr"] for d in r])
        lr = np.log(np.array([d["bpp"] for d in r]))
        return p, np.polyfit(p, lr, min(3, len(r) - 1))
    pa, ca = fit(anchor)
    pt, ct = fit(test)
    lo, hi = max(pa.min(), pt.min()), min(pa.max(), pt.max())
    if hi <= lo:
        return float("nan")
    ia, it = np.polyint(ca), np.polyint(ct)
    da = (np.polyval(ia, hi) - np.polyval(ia, lo)) / (hi - lo)
    dt = (np.polyval(it, hi) - np.polyval(it, lo)) / (hi - lo)
    return float((np.exp(dt - da) - 1) * 100)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=None, help=".npz (default: packaged weights of --model-id)")
    ap.add_argument("--model-id", type=int, default=1)
    ap.add_argument("--data", default="../shared/datasets/dev")
    ap.add_argument("--q", type=float, nargs="*", default=None, help="quality indices (default: trained points)")
    ap.add_argument("--base-only", action="store_true", help="decode base layer only")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--jpeg", action="store_true", help="also Pillow JPEG anchor and BD-rate vs it")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    from refsw.models.registry import load_model
    model = load_model(a.model_id, a.weights)
    files = list_images(a.data)
    imgs = [load_image(f) for f in files]
    t = time.time()
    rows = evaluate(model, imgs, a.q, base_only=a.base_only)
    print(f"{len(files)} images from {a.data}; {time.time() - t:.1f}s")
    print(format_rows(rows))
    if a.jpeg:
        jr = jpeg_rd(imgs)
        print("JPEG (Pillow, 4:2:0, optimize):")
        print("\n".join(f"  Q{r['q']}: {r['bpp']:.4f} bpp {r['psnr']:.2f} dB" for r in jr))
        print(f"BD-rate vs JPEG (RGB PSNR, overlapping range): {bd_rate(jr, rows):+.1f} %")


if __name__ == "__main__":
    main()
