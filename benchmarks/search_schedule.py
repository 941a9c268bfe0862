"""BD-rate of an encoder search schedule against another (non-normative tuning).

    .venv/bin/python benchmarks/search_schedule.py --images DIR|skimage \\
        --candidate "lr=0.025,lr_knee=28" [--reference ""] [--crop 512x384] \\
        [--qualities 0,7,...,63] [--iters 40]

Both schedules code the same pictures with the real encoder (CodingMode learned,
LatentRefine ITERS, refsw/encoder/latent_rdo.py); every stream is decoded by the
integer decoder with its picture hash checked.  Per picture it prints bpp and RGB
PSNR at each quality, then the BD-rate (RGB PSNR, pchip, as the CTC) and BD-PSNR of
the candidate against the reference, and their mean over the pictures.  A
schedule is written as ``field=value`` pairs changing the shipped one
(latent_rdo.SearchSchedule; "" is the shipped schedule).

Why BD-rate and not the RD cost J at each quality: a schedule that lowers J at
one lambda can move the points down the curve rather than below it
(docs/models/intra_v1.md, stop 17).  Tune on held-out pictures, not the CTC set.
Exit status 0 if the candidate's mean BD-rate is below 0, 3 otherwise.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import refsw.encoder  # noqa: E402,F401  (registers the coding modes)
from refsw.ctc.bd import BDError, bd_quality, bd_rate  # noqa: E402
from refsw.ctc.testsets import crop_picture as crop  # noqa: E402
from refsw.picture import Picture  # noqa: E402
from refsw.encoder.latent_rdo import SearchSchedule  # noqa: E402

from intra import QUALITIES, load_images, refsw_points  # noqa: E402


def centre_crop(pic: Picture, w: int, h: int) -> Picture:
    w, h = min(w, pic.width), min(h, pic.height)
    return crop(pic, ((pic.width - w) // 2, (pic.height - h) // 2, w, h))


def parse_schedule(text: str, what: str) -> SearchSchedule:
    try:
        return SearchSchedule.parse(text)
    except ValueError as e:
        raise SystemExit(f"--{what}: {e}") from None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", required=True, help="folder of PNG/JPEG pictures, or 'skimage'")
    ap.add_argument("--candidate", required=True, help="schedule to test, e.g. 'lr=0.025,lr_knee=28'")
    ap.add_argument("--reference", default="", help="schedule to compare with (default '': the shipped one)")
    ap.add_argument("--crop", default=None, help="centre crop WxH of each picture (faster)")
    ap.add_argument("--qualities", default=",".join(map(str, QUALITIES)))
    ap.add_argument("--iters", type=int, default=40, help="LatentRefine iterations (ctc/ai.cfg: 40)")
    ap.add_argument("--max-images", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    cand, ref = parse_schedule(a.candidate, "candidate"), parse_schedule(a.reference, "reference")
    try:
        qualities = [int(q) for q in a.qualities.split(",")]
    except ValueError:
        ap.error(f"--qualities {a.qualities!r}: not a comma-separated list of integers")
    if len(qualities) < 4 or any(not 0 <= q <= 63 for q in qualities):
        ap.error(f"--qualities {a.qualities!r}: need at least 4 values in 0..63 (pchip BD)")
    if a.iters < 1:
        ap.error("--iters must be >= 1 (0 codes g_a's latent: both schedules would give the same streams)")
    if not (a.images == "skimage" or os.path.isdir(a.images)):
        ap.error(f"--images {a.images!r}: not a folder (nor 'skimage')")
    pics = load_images(a.images, a.max_images)
    if not pics:
        ap.error(f"--images {a.images!r}: no PNG/JPEG pictures")
    if a.crop:
        try:
            cw, ch = (int(v) for v in a.crop.lower().split("x"))
        except ValueError:
            ap.error(f"--crop {a.crop!r}: expected WxH, e.g. 512x384")
        pics = [(n, centre_crop(p, cw, ch)) for n, p in pics]
    print(f"# reference: {ref.describe()}\n# candidate: {cand.describe()}\n"
          f"# {len(pics)} pictures, qualities {qualities}, LatentRefine {a.iters}")
    bds, bdq = [], []
    for name, pic in pics:
        r = refsw_points(name, pic, qualities, a.iters, ref)
        c = refsw_points(name, pic, qualities, a.iters, cand)
        for q, x, y in zip(qualities, r, c):
            print(f"{name:24s} q{q:2d}  ref {x['bpp']:.4f} bpp {x['psnr']:.3f} dB {x['enc']:5.1f} s   "
                  f"cand {y['bpp']:.4f} bpp {y['psnr']:.3f} dB {y['enc']:5.1f} s", flush=True)
        args = ([x["bpp"] for x in r], [x["psnr"] for x in r], [x["bpp"] for x in c], [x["psnr"] for x in c])
        try:
            v, d = bd_rate(*args), bd_quality(*args)
        except BDError as e:   # no overlap: say so, go on
            print(f"{name}: BD undefined ({e})")
            continue
        bds.append(v)
        bdq.append(d)
        print(f"{name}: BD-rate {v:+.2f} %, BD-PSNR {d:+.3f} dB", flush=True)
    if not bds:
        print("mean: BD undefined on every picture")
        return 3
    m = float(np.mean(bds))
    print(f"mean over {len(bds)} pictures: BD-rate {m:+.2f} %, BD-PSNR {float(np.mean(bdq)):+.3f} dB "
          f"(candidate against reference)")
    return 0 if m < 0 else 3


if __name__ == "__main__":
    sys.exit(main())
