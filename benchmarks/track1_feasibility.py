"""Track 1 feasibility (issue #29, non-normative): does learned feature reduction beat remote inference?

Float experiment, not the normative feature codec. ppocr_det (limit_type none) is cut at its
neck outputs (4 x 24 channels, strides 4..32). A reduction network fuses them into C channels
at stride 8; a restoration network (3x3 convs, ReLU, pixel shuffle and unshuffle only, the
operations of the integer engine) rebuilds the four tensors. Both are trained by distillation
through part 2 (refsw.tasks.ppocr_head) on text_data pictures of seed 2 (240) and 60 crops of
the training photos, with uniform plus Gaussian noise on the 8-bit values in place of the
inner codec. Evaluation on the Track 1 text set (text_data seed 1, 24 pictures): the reduced
tensor clamped to [-8, 8], quantised to 8 bits, tiled into a grey frame and coded with x265
intra at each QP, restored, part 2 and post-processing, pooled F1; the anchor codes the
picture (x265 intra 4:2:0) and runs the whole network.

    python benchmarks/track1_feasibility.py prep
    C=8 RATE=0.1 python benchmarks/track1_feasibility.py train 1500 out/t1/c8r.npz   # RATE: rate-proxy weight
    C=8 python benchmarks/track1_feasibility.py eval out/t1/c8r.npz 27,32,37,42,47,51 27,32,37,42,47,51
"""

import glob
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from refsw.tasks.ppocr_head import CUT, build_head  # noqa: E402
from refsw.ffmpeg import find_ffmpeg  # noqa: E402
C = int(os.environ.get("C", "16")); A = 8.0; NB = 8
FF = None   # set in main (refsw.ffmpeg)

class Reduce(nn.Module):
    def __init__(s):
        super().__init__()
        s.d2 = nn.Conv2d(24, 48, 3, stride=2, padding=1)
        s.f = nn.Sequential(nn.Conv2d(48 + 72, 96, 3, padding=1), nn.ReLU(), nn.Conv2d(96, 96, 3, padding=1), nn.ReLU(),
                            nn.Conv2d(96, C, 3, padding=1))
    def forward(s, p2, p3, p4, p5):
        return s.f(torch.cat([F.relu(s.d2(p2)), p3, F.interpolate(p4, scale_factor=2), F.interpolate(p5, scale_factor=4)], 1))

class Restore(nn.Module):   # decoder: 3x3 convs, ReLU, pixel (un)shuffle only
    def __init__(s):
        super().__init__()
        s.t = nn.Sequential(nn.Conv2d(C, 96, 3, padding=1), nn.ReLU(), nn.Conv2d(96, 96, 3, padding=1), nn.ReLU())
        s.o3 = nn.Conv2d(96, 24, 3, padding=1)
        s.o2 = nn.Sequential(nn.Conv2d(96, 4 * 48, 3, padding=1), nn.PixelShuffle(2), nn.ReLU(), nn.Conv2d(48, 24, 3, padding=1))
        s.o4 = nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(384, 96, 3, padding=1), nn.ReLU(), nn.Conv2d(96, 24, 3, padding=1))
        s.o5 = nn.Sequential(nn.PixelUnshuffle(4), nn.Conv2d(1536, 96, 3, padding=1), nn.ReLU(), nn.Conv2d(96, 24, 3, padding=1))
    def forward(s, y):
        h = s.t(y)
        return s.o2(h), s.o3(h), s.o4(h), s.o5(h)

def prep(n_text=240, n_photo=60):
    """Cache the part-1 features of the training pictures in out/t1/feats."""
    from PIL import Image
    from refsw.tasks.split import get_split_network
    from refsw.tasks import text_data
    net = get_split_network("ppocr_det", limit_type="none")
    out = os.path.join(ROOT, "out", "t1", "feats")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(7)
    shared = os.path.join(ROOT, "..", "shared", "datasets")
    files = sorted(glob.glob(f"{shared}/train/*.png")) + sorted(glob.glob(f"{shared}/train2/*.png"))
    for kind, i in [("t", i) for i in range(n_text)] + [("p", i) for i in range(n_photo)]:
        fn = f"{out}/{kind}{i:04d}.npz"
        if kind == "t":
            rgb, _, _ = text_data.make_picture(2, i)
        else:
            im = np.asarray(Image.open(files[rng.integers(len(files))]).convert("RGB"))
            H, W = im.shape[:2]
            if H < 384 or W < 512:
                im = np.asarray(Image.fromarray(im).resize((max(512, W), max(384, H))))
            H, W = im.shape[:2]
            y, x = rng.integers(0, H - 383), rng.integers(0, W - 511)
            rgb = np.ascontiguousarray(im[y:y + 384, x:x + 512])
        if os.path.exists(fn):
            continue
        f = net.part1(rgb)
        np.savez(fn, **{k: f[k][0].astype(np.float16) for k in CUT})


def load_feats(files):
    return [[torch.from_numpy(np.load(f)[k].astype(np.float32))[None] for k in CUT] for f in files]

def train(steps, out):
    files = sorted(glob.glob(os.path.join(ROOT, "out", "t1", "feats", "*.npz")))
    data = load_feats(files)
    head = build_head()
    var = [float(torch.cat([d[i].flatten() for d in data[:50]]).var()) for i in range(4)]
    with torch.no_grad():
        probs = [head(*d) for d in data]
    pv = float(torch.cat([p.flatten() for p in probs[:50]]).var())
    R, S = Reduce(), Restore()
    from refsw.models.entropy_models import FactorizedPrior
    prior = FactorizedPrior(C, init_scale=64.0)   # rate proxy of the 8-bit values (RATE > 0)
    lam_r = float(os.environ.get("RATE", "0"))
    opt = torch.optim.Adam(list(R.parameters()) + list(S.parameters()) + list(prior.parameters()), lr=3e-4)
    rng = np.random.default_rng(0); t0 = time.time(); acc = 0
    for step in range(steps):
        idx = rng.integers(len(data), size=4)
        p = [torch.cat([data[i][k] for i in idx]) for k in range(4)]
        tgt = torch.cat([probs[i] for i in idx])
        y = R(*p)
        yn = (y.clamp(-A, A) + A) / (2 * A) * (2 ** NB - 1)
        sig = torch.rand(4, 1, 1, 1) * 3.0
        yn = yn + (torch.rand_like(yn) - 0.5) + torch.randn_like(yn) * sig
        yh = yn / (2 ** NB - 1) * 2 * A - A
        r = S(yh)
        lp = F.mse_loss(head(*r), tgt) / pv
        lf = sum(F.mse_loss(a, b) / v for a, b, v in zip(r, p, var)) / 4
        loss = lp + 0.1 * lf + 1e-2 * F.relu(y.abs() - A).square().mean()
        if lam_r > 0:   # bits per picture sample of the noisy 8-bit values
            q8 = (y.clamp(-A, A) + A) / (2 * A) * (2 ** NB - 1)
            lik = prior.likelihood(q8 + torch.rand_like(q8) - 0.5 - 2 ** (NB - 1))
            loss = loss + lam_r * (-torch.log2(lik.clamp_min(1e-9)).sum() / (p[0].shape[0] * 384 * 512))
        opt.zero_grad(); loss.backward(); opt.step()
        acc += loss.item()
        if step == int(steps * 0.8):
            for g in opt.param_groups: g["lr"] = 1e-4
        if (step + 1) % 100 == 0:
            print(f"step {step+1} loss {acc/100:.4f} lp {lp.item():.4f} lf {lf.item():.4f} {time.time()-t0:.0f}s", flush=True); acc = 0
    np.savez(out, **{f"R.{k}": v.numpy() for k, v in R.state_dict().items()},
             **{f"S.{k}": v.numpy() for k, v in S.state_dict().items()})

def hevc_intra(samples, qp, pix_fmt, coded_fmt):
    """(bits, decoded samples) of an x265 intra coding of a grey (H, W) or RGB (H, W, 3) uint8 array."""
    h, w = samples.shape[:2]
    with tempfile.TemporaryDirectory() as d:
        samples.astype(np.uint8).tofile(f"{d}/i.raw")
        subprocess.run([FF, "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", f"{w}x{h}",
                        "-i", f"{d}/i.raw", "-c:v", "libx265", "-x265-params", f"qp={qp}:keyint=1:info=0:hash=0:log-level=error",
                        "-pix_fmt", coded_fmt, f"{d}/o.hevc"], check=True)
        nb = os.path.getsize(f"{d}/o.hevc")
        subprocess.run([FF, "-v", "error", "-y", "-i", f"{d}/o.hevc", "-f", "rawvideo", "-pix_fmt", pix_fmt,
                        f"{d}/o.raw"], check=True)
        out = np.fromfile(f"{d}/o.raw", np.uint8).reshape(samples.shape)
    return nb * 8, out


def evaluate(ckpt, qps, anchor_qps):
    from refsw.tasks.split import get_split_network
    from refsw.tasks import text_data
    from refsw.ctc.text_metric import text_prf
    net = get_split_network("ppocr_det", limit_type="none")
    st = np.load(ckpt)
    R, S = Reduce(), Restore()
    R.load_state_dict({k[2:]: torch.from_numpy(st[k]) for k in st.files if k.startswith("R.")})
    S.load_state_dict({k[2:]: torch.from_numpy(st[k]) for k in st.files if k.startswith("S.")})
    pics = [text_data.make_picture(1, i) for i in range(24)]
    gts = [b for _, b, _ in pics]
    res = {"feature": [], "anchor": []}
    npx = 24 * 384 * 512
    base = [net.run(rgb) for rgb, _, _ in pics]
    print("uncompressed F1", text_prf(gts, base)["F1"], flush=True)
    for qp in qps:
        bits, dets = 0, []
        for rgb, _, _ in pics:
            f = net.part1(rgb)
            with torch.no_grad():
                y = R(*[torch.from_numpy(f[k]) for k in CUT])[0].numpy()
            y = np.clip(y, -A, A); lo, hi = -A, A
            q = np.round((y - lo) / (hi - lo) * 255).astype(np.uint8)
            c, h, w = q.shape; cols = int(math.ceil(math.sqrt(c))); rows = int(math.ceil(c / cols))
            fr = np.zeros((rows * h, cols * w), np.uint8)
            for i in range(c): fr[(i // cols) * h:(i // cols + 1) * h, (i % cols) * w:(i % cols + 1) * w] = q[i]
            b, dec = hevc_intra(fr, qp, "gray", "gray"); bits += b + 64
            qd = np.stack([dec[(i // cols) * h:(i // cols + 1) * h, (i % cols) * w:(i % cols + 1) * w] for i in range(c)])
            yh = torch.from_numpy(qd.astype(np.float32) / 255 * (hi - lo) + lo)[None]
            with torch.no_grad():
                r = S(yh)
            out = net.part2({k: v.numpy() for k, v in zip(CUT, r)})
            dets.append(net.postprocess(out, rgb.shape[:2]))
        m = text_prf(gts, dets)
        res["feature"].append((bits / npx, m["F1"])); print("feature qp", qp, f"bpp {bits/npx:.4f} F1 {m['F1']:.3f}", flush=True)
    for qp in anchor_qps:
        bits, dets = 0, []
        for rgb, _, _ in pics:
            b, dec = hevc_intra(rgb, qp, "rgb24", "yuv420p"); bits += b
            dets.append(net.run(dec))
        m = text_prf(gts, dets)
        res["anchor"].append((bits / npx, m["F1"])); print("anchor qp", qp, f"bpp {bits/npx:.4f} F1 {m['F1']:.3f}", flush=True)
    from refsw.ctc.bd import bd
    a, t = res["anchor"], res["feature"]
    try:
        r = bd([x[0] for x in a], [x[1] for x in a], [x[0] for x in t], [x[1] for x in t], pareto=True)
        print("BD-rate F1 (Pareto) feature vs HEVC remote inference:", f"{r.value:+.2f}%", r.notes if hasattr(r, "notes") else "")
    except Exception as e:
        print("BD failed:", e)
    json.dump(res, open(ckpt + ".json", "w"))

if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("T", "2")))
    torch.manual_seed(0)
    FF = find_ffmpeg()
    if sys.argv[1] == "prep":
        prep()
    elif sys.argv[1] == "train":
        train(int(sys.argv[2]), sys.argv[3])
    else:
        evaluate(sys.argv[2], [int(v) for v in sys.argv[3].split(",")], [int(v) for v in sys.argv[4].split(",")])
