"""Learned intra codec benchmark (issue 4): RD, timing, anchors, integer cost.

    .venv/bin/python benchmarks/intra.py [--images DIR|skimage] [--anchors jpeg,hevc,vvc] [--quick]

1. RD points of refsw (CodingMode learned) at the trained operating points
   (Quality 0, 7, ..., 63 for the 10 points of intra_v1) on each image: bpp, PSNR (RGB), encode/decode
   wall time; decoded-picture hash checked.
2. The same images through the anchors of refsw.ctc (JPEG via Pillow, HEVC
   intra via x265, VVC intra via vvenc), BD-rate (PSNR RGB, pchip).
3. The BD-rate cost of the integer decoder against the float model: the
   float model's rate is -sum log2 of its own continuous likelihoods and its
   distortion that of its float synthesis; the integer codec's rate is the
   actual bitstream size, with and without the DPH (hash) units.  Both sides
   code g_a's latent (LatentRefine 0); the anchor runs of item 2 use
   ctc/ai.cfg, i.e. its LatentRefine.
4. Decode time of a 768x512 picture with the bit-exact decoder.
"""
from __future__ import annotations

import argparse
import subprocess
import math
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import refsw.encoder  # noqa: E402,F401  (registers the coding modes)
from refsw.cfg import parse  # noqa: E402
from refsw.ctc.bd import bd_rate  # noqa: E402
from refsw.decoder import Decoder  # noqa: E402
from refsw.encoder import Encoder  # noqa: E402
from refsw.metrics import psnr  # noqa: E402
from refsw.options import ENCODER_OPTIONS  # noqa: E402
from refsw.picture import Picture, read_png  # noqa: E402
from syntax.units import parse_units  # noqa: E402

from refsw.models.registry import get_entry  # noqa: E402

_CFG = get_entry(1).config
QUALITIES = [round(_CFG.point_quality(i)) for i in range(_CFG.num_points)]   # trained operating points
# anchor rate points whose PSNR range overlaps the learned codec's (BD needs overlap)
LOW_ANCHOR_POINTS = {"JpegQualities": "1,2,5,10,15,20", "HevcQPs": "37,40,43,46,50",
                     "VvcQPs": "42,45,48,51,54,57"}
# anchor rate points over the whole JPEG AI range (0.06 .. 2 bpp on photos)
FULL_ANCHOR_POINTS = {"JpegQualities": "2,5,10,20,30,50,70,85,92", "HevcQPs": "22,27,32,37,42,47,51",
                      "VvcQPs": "22,27,32,37,42,47,52,57"}


def load_images(spec: str, max_images: int):
    if spec == "skimage":
        import skimage
        d = os.path.join(os.path.dirname(skimage.__file__), "data")
        names = ["astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg",
                 "hubble_deep_field.jpg"]
        paths = [os.path.join(d, n) for n in names]
    else:
        paths = sorted(os.path.join(spec, f) for f in os.listdir(spec) if f.lower().endswith((".png", ".jpg")))
    from PIL import Image
    out = []
    for p in paths[:max_images]:
        im = np.asarray(Image.open(p).convert("RGB"), dtype=np.uint16)
        out.append((os.path.basename(p), Picture([im[..., c].copy() for c in range(3)], "444", 8, "rgb")))
    return out


def refsw_points(name, pic, qualities, refine=0, search_schedule=None):
    """Code and decode pic at each quality (LatentRefine refine, latent_rdo.SearchSchedule
    search_schedule, None: the shipped one); the decoded-picture hash must match."""
    rows = []
    for q in qualities:
        c, _ = parse(["--CodingMode", "learned", "-q", str(q), "--LatentRefine", str(refine)], ENCODER_OPTIONS)
        t0 = time.perf_counter()
        data = Encoder(c, search_schedule=search_schedule).encode([pic])
        te = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = Decoder().decode(data)
        td = time.perf_counter() - t0
        if out[0].hash_status != "match":
            raise SystemExit(f"{name} q {q}: decoded picture hash {out[0].hash_status}")
        p = psnr(pic, out[0].picture)[-1]
        units = parse_units(data)
        dph = sum(u.size for u in units if u.type_name == "DPH")
        # the entropy-coded symbols alone: lane and escape data less the 32-bit state of each lane (9.4)
        coded = sum(es.es_lane_data_size + es.es_escape_data_size - 4 * (es.es_num_lanes_minus1 + 1)
                    for es in (u.payload.get("hyp_substream") or u.payload.get("lat_substream")
                               for u in units if u.type_name in ("HYPER", "LATENT")))
        npx = pic.width * pic.height
        rows.append(dict(name=name, q=q, bpp=8 * len(data) / npx, bpp_nohash=8 * (len(data) - dph) / npx,
                         bpp_coded=8 * coded / npx, psnr=p, enc=te, dec=td))
    return rows


def float_points(name, pic, qualities):
    """The float model (no integerisation, continuous scales): estimated rate."""
    from refsw.models.intra import pad_to_multiple
    from refsw.encoder.learned_intra import float_model
    m = float_model(1)
    x = torch.from_numpy(np.stack(pic.planes).astype(np.float32) / 255.0)[None]
    H, W = x.shape[-2:]
    xp = pad_to_multiple(x, m.cfg.total_stride)
    rows = []
    with torch.no_grad():
        for q in qualities:
            out = m(xp, torch.tensor([float(q)]))
            bits = -(torch.log2(out["y_lik"]).sum() + torch.log2(out["z_lik"]).sum()).item()
            xh = (out["x_hat"][..., :H, :W].clamp(0, 1) * 255).round()
            mse = float(((xh - x * 255) ** 2).mean())
            rows.append(dict(name=name, q=q, bpp=bits / (H * W), psnr=10 * math.log10(255 ** 2 / mse)))
    return rows


def bd_mean(anchor_rows, test_rows):
    names = sorted({r["name"] for r in test_rows})
    vals = []
    for n in names:
        a = [r for r in anchor_rows if r["name"] == n]
        t = [r for r in test_rows if r["name"] == n]
        try:
            v = bd_rate([r["bpp"] for r in a], [r["psnr"] for r in a], [r["bpp"] for r in t], [r["psnr"] for r in t])
            v = v if isinstance(v, float) else v[0]
        except Exception as e:  # undefined BD (no overlap)
            print(f"#   {n}: BD undefined ({e})")
            continue
        if v is not None and math.isfinite(v):
            vals.append(v)
    return (sum(vals) / len(vals) if vals else float("nan")), len(vals)


def decode_time_768x512(reps=3):
    from refsw.content import default_image_path
    pic = read_png(default_image_path())
    # 768x512 test picture: the default content tiled (deterministic)
    planes = [np.tile(p, (2, 2))[:512, :768].copy() for p in pic.planes]
    big = Picture(planes, "444", 8, "rgb")
    c, _ = parse(["--CodingMode", "learned", "-q", "36"], ENCODER_OPTIONS)
    data = Encoder(c).encode([big])
    Decoder().decode(data)   # warm-up (model load, tables)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = Decoder().decode(data)
        ts.append(time.perf_counter() - t0)
    assert out[0].hash_status == "match"
    return min(ts), 8 * len(data) / (768 * 512)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", default="skimage")
    ap.add_argument("--max-images", type=int, default=6)
    ap.add_argument("--anchors", default="jpeg,hevc,vvc")
    ap.add_argument("--quick", action="store_true", help="2 images, 4 quality points")
    ap.add_argument("--out", default=os.path.join(ROOT, "out", "bench_intra"), help="CTC output folder")
    ap.add_argument("--anchor-points", choices=("low", "full", "ctc"), default="low",
                    help="low: anchor rate points lowered so that their PSNR range overlaps the learned "
                         "codec's (%(default)s); full: points over the JPEG AI rates 0.06..2 bpp; ctc: the "
                         "rate points of ctc/ai.cfg")
    ap.add_argument("--model-id", type=int, default=1, help="learned model (ModelId) of the CTC runs")
    a = ap.parse_args(argv)
    qs = sorted(set(QUALITIES[::3] + [63])) if a.quick else QUALITIES
    imgs = load_images(a.images, 2 if a.quick else a.max_images)
    rows, frows = [], []
    for name, pic in imgs:
        r = refsw_points(name, pic, qs)
        rows += r
        frows += float_points(name, pic, qs)
        for x in r:
            print(f"{name:24s} q={x['q']:2d} bpp={x['bpp']:.4f} psnr_rgb={x['psnr']:.2f} "
                  f"enc={x['enc']:.2f}s dec={x['dec']:.2f}s")
    print("# mean over images per quality index:")
    for q in qs:
        s = [x for x in rows if x["q"] == q]
        print(f"  q={q:2d} bpp={np.mean([x['bpp'] for x in s]):.4f} psnr_rgb={np.mean([x['psnr'] for x in s]):.2f} "
              f"dec={np.mean([x['dec'] for x in s]):.2f}s")
    v, n = bd_mean(frows, rows)
    print(f"integer codec vs float model: BD-rate {v:+.2f}% over {n} images (whole stream)")
    v, n = bd_mean(frows, [dict(r, bpp=r["bpp_nohash"]) for r in rows])
    print(f"integer codec vs float model: BD-rate {v:+.2f}% over {n} images (stream without the DPH units)")
    v, n = bd_mean(frows, [dict(r, bpp=r["bpp_coded"]) for r in rows])
    print(f"integer codec vs float model: BD-rate {v:+.2f}% over {n} images (entropy-coded symbols only: "
          "without unit headers, hashes and the 4-byte lane states)")
    summary = {}
    exe = os.path.join(os.path.dirname(sys.executable), "refsw-ctc")
    for anc in [x for x in a.anchors.split(",") if x]:
        out = os.path.join(a.out, os.path.basename(a.images.rstrip("/")) or "set")
        cmd = [exe, "run", "--cfg", os.path.join(ROOT, "ctc", "ai.cfg"), "--anchor", anc, "--CodingMode", "learned",
               "--out", out, "--no-progress", "--MsSsim", "0"]
        if a.images != "skimage":
            cmd += ["--TestSet", a.images]
        points = {"low": LOW_ANCHOR_POINTS, "full": FULL_ANCHOR_POINTS}.get(a.anchor_points, {})
        for k, v in points.items():
            cmd += [f"--{k}", v]
        cmd += ["--ModelId", str(a.model_id)]
        if a.quick:
            cmd += ["--QualityPoints", ",".join(map(str, qs))]
        r = subprocess.run(cmd, capture_output=True, text=True)
        line = next((x for x in r.stdout.splitlines() if x.startswith("Overall BD-rate")), None)
        pts = {"jpeg": "JpegQualities", "hevc": "HevcQPs", "vvc": "VvcQPs"}.get(anc)
        where = f" (anchor points {points[pts]})" if pts in points else ""
        print(f"vs {anc}{where}: {line or 'failed: ' + (r.stderr.strip().splitlines() or ['?'])[-1]}")
        summary[anc] = line
        # the report's rate-point table and the range of each BD-rate (refsw/ctc/report.py)
        rep = next((x.split(": ", 1)[1] for x in r.stdout.splitlines()
                    if x.startswith("report: ") and x.endswith(".md")), None)
        if rep and os.path.isfile(rep):
            text = open(rep, encoding="utf-8").read()
            sec = text.split("## Quality at the JPEG AI rate points", 1)
            if len(sec) == 2:
                print("  quality at the JPEG AI rate points:")
                print("\n".join("  " + ln for ln in sec[1].split("\n## ", 1)[0].strip().splitlines()
                                if ln.startswith("|")))
            for ln in text.split("## Per sequence", 1)[-1].split("## Rate points", 1)[0].splitlines():
                if ln.startswith("| ") and "range" in ln:
                    print("  " + ln)
    t, bpp = decode_time_768x512()
    print(f"decode 768x512 (bit-exact, float64 path, {torch.get_num_threads()} threads): {t:.3f} s at {bpp:.3f} bpp")
    print(f"intra: dec768x512_s={t:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
