"""Float training of the learned intra codec (non-normative).

    nice -n 10 python -m refsw.train.train_intra --data ../shared/datasets/train \
        --out out/train_intra --dev ../shared/datasets/dev --time-budget 7000 [--resume]

* Random crops (default 256 px, batch 4; flips) from images held in memory as uint8;
  pictures smaller than the crop are named in the log and the model card and not used.
* Each sample of a batch gets its own quality q (half the samples at a trained
  operating point q = 9*i, half uniform in [0, 63]); its gain vectors and lambda
  are interpolated from the operating-point tables (log-linear).
* Loss = mean_b [bpp_b + lambda_b * 255^2 * MSE_b]
         + base_weight * mean_{b<base_aux} [lambda_b * 255^2 * MSE(base-only recon)].
* Adam; lr schedule on the training *time* budget: warm-up, constant, cosine
  decay to lr*lr_final_frac from decay_start*budget to the end of the budget.
* Checkpoint (dict of tensors only, torch.save / torch.load(weights_only=True))
  every --ckpt-every seconds to OUT/ckpt.pt; periodic export of the weights to
  --export (npz) + model card (--card) with RD on --dev.
* --recycle F [--recycle-every S]: re-initialise decoder units that fire on
  fewer than a fraction F of positions (refsw/train/recycle.py).
* --revive-latent F [--revive-every S]: re-initialise y channels whose coded
  values at q 63 are non-zero on fewer than a fraction F of positions (same
  file); the log reports the channels in use at start and at each export.
  --revive-ramp T: a revived channel's rate term is weighted 0 at revival,
  rising linearly to 1 over T seconds of training, so g_s can learn to use the
  channel before its rate cost pushes it back to zero.
* --init-npz W starts from exported weights, e.g. the shipped file: step and
  training time continue from its meta; with --lambdas at the points it was
  trained at, its trained gain tables (``trained.*``, kept by remap_points) are
  restored, or else its tables are remapped.  Adam starts afresh, so the lr
  ramps up over --rewarm-steps.  A later --resume from OUT/ckpt.pt wins over it.
* --qat: quantisation-aware fine-tuning: h_s and g_s run with the fake
  quantisation of the integer decoder (refsw/train/qat.py; input units
  calibrated on the first 6 PNGs of --data, as `refsw.nn.convert --calib`).
  --freeze-encoder trains only h_s, g_s, gains and priors.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch

from refsw.models.intra import (POINT_TABLES, ClippedReLU, IntraCodec, IntraConfig, check_lambdas,
                                remap_point_tables)
from refsw.filehash import file_sha256
from refsw.models.io import export_npz, model_from_arrays, read_npz
from refsw.train.eval_intra import card_rd_section, list_images, load_image, measure_dev
from refsw.train.remap_points import remap_model
from refsw.train.recycle import channels_in_use, latent_use, recycle_dormant, revive_latent

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ---------------------------------------------------------------- checkpoint (tensors only)
# operating points of checkpoints written before meta.lambdas was stored (up to step 72 825)
LEGACY_LAMBDAS = (0.0018, 0.0033, 0.0061, 0.0112, 0.0207, 0.0380, 0.0700, 0.1290)


def same_points(a, b) -> bool:
    """Whether two lambda sets are the same operating points."""
    return len(a) == len(b) and np.allclose(a, b, rtol=1e-9, atol=0)


def save_ckpt(path, model, opt, step, train_seconds, lr_scale=1.0):
    d = {"meta.lr_scale": torch.tensor(lr_scale, dtype=torch.float64),
         "meta.lambdas": torch.tensor(model.cfg.lambdas, dtype=torch.float64)}
    for k, v in model.state_dict().items():
        d["model." + k] = v.detach().clone()
    names = {id(p): n for n, p in model.named_parameters()}
    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state.get(p)
            if not st:
                continue
            n = names[id(p)]
            d["optim.exp_avg." + n] = st["exp_avg"]
            d["optim.exp_avg_sq." + n] = st["exp_avg_sq"]
            d["optim.step." + n] = torch.as_tensor(st["step"]).float().clone()
    d["meta.step"] = torch.tensor(step, dtype=torch.int64)
    d["meta.train_seconds"] = torch.tensor(train_seconds, dtype=torch.float64)
    d["meta.torch_rng"] = torch.get_rng_state()
    tmp = path + ".tmp"
    torch.save(d, tmp)
    os.replace(tmp, path)


def load_ckpt(path, model, opt):
    """Load a checkpoint.  If it was trained at other operating points (lambdas), its
    per-point gain tables are remapped to the model's (:func:`remap_point_table`)
    and their optimiser state is dropped."""
    d = torch.load(path, map_location="cpu", weights_only=True)
    sd = {k[6:]: v for k, v in d.items() if k.startswith("model.")}
    old = tuple(d["meta.lambdas"].tolist()) if "meta.lambdas" in d else LEGACY_LAMBDAS
    new = model.cfg.lambdas
    remapped = not same_points(old, new)
    if remapped:
        sd = remap_point_tables(sd, old, new)
    model.load_state_dict(sd, strict=True)
    load_ckpt.remapped = old if remapped else None
    for n, p in model.named_parameters():
        if remapped and n in POINT_TABLES:
            opt.state.pop(p, None)
            continue
        if "optim.exp_avg." + n in d:
            opt.state[p] = {
                "step": d["optim.step." + n].clone(),
                "exp_avg": d["optim.exp_avg." + n].clone(),
                "exp_avg_sq": d["optim.exp_avg_sq." + n].clone(),
            }
    if "meta.torch_rng" in d:
        torch.set_rng_state(d["meta.torch_rng"])
    load_ckpt.lr_scale = float(d.get("meta.lr_scale", torch.tensor(1.0)))
    return int(d["meta.step"]), float(d["meta.train_seconds"])


def init_from_npz(path, lambdas=None):
    """(model, step, train_seconds, how) to start training from an exported weight file.

    With ``lambdas`` other than the file's points, the gain tables at ``lambdas``
    are the file's ``trained.*`` tables if it was trained there (exact), else the
    file's tables remapped (piecewise linear in ln lambda, approximate)."""
    arrays = read_npz(path)
    model = model_from_arrays(arrays)
    step = int(arrays["meta.step"]) if "meta.step" in arrays else 0
    secs = float(arrays["meta.train_seconds"]) if "meta.train_seconds" in arrays else 0.0
    have = model.cfg.lambdas
    if lambdas is None or same_points(lambdas, have):
        return model, step, secs, f"operating points as in the file ({len(have)})"
    new = remap_model(model, lambdas)
    trained = tuple(arrays["meta.trained_lambdas"].tolist()) if "meta.trained_lambdas" in arrays else None
    if trained is not None and same_points(trained, lambdas):
        missing = [n for n in POINT_TABLES if "trained." + n not in arrays]
        if missing:
            raise ValueError(f"{path}: meta.trained_lambdas present but no trained.{missing[0]}")
        with torch.no_grad():
            for n in POINT_TABLES:
                getattr(new, n).copy_(torch.from_numpy(arrays["trained." + n].astype(np.float32)))
        how = f"trained gain tables restored at {len(lambdas)} points"
    else:
        how = f"gain tables remapped from the file's {len(have)} points (not trained there)"
    return new, step, secs, how


# ---------------------------------------------------------------- data
def data_folders(text: str) -> list:
    """The training folders of --data (comma-separated)."""
    return [f for f in text.split(",") if f]


def read_manifests(folders) -> dict:
    """file name -> MANIFEST.json entry over the folders."""
    man = {}
    for d in folders:
        mp = os.path.join(d, "MANIFEST.json")
        if os.path.exists(mp):
            with open(mp) as f:
                for e in json.load(f):
                    man[e["file"]] = e
    return man


def jpeg_sourced(entry: dict) -> bool:
    """Whether a manifest entry's picture was a JPEG at its source."""
    return str(entry.get("source_path", "")).lower().endswith((".jpg", ".jpeg"))


class CropSampler:
    def __init__(self, folder, crop, seed=0, jpeg_downscale=1):
        folders = data_folders(folder)
        self.files = [f for d in folders for f in list_images(d)]
        if not self.files:
            raise SystemExit(f"no images in {folder}")
        imgs = [load_image(f) for f in self.files]
        # pictures that were JPEGs at their source: downscaled (box filter) by
        # jpeg_downscale where the result still holds a crop, to wash out JPEG artefacts
        self.downscaled = []
        if jpeg_downscale > 1:
            from PIL import Image
            man = read_manifests(folders)
            for i, f in enumerate(self.files):
                r = jpeg_downscale
                if jpeg_sourced(man.get(os.path.basename(f), {})) and min(imgs[i].shape[1:]) // r >= crop:
                    im = Image.fromarray(imgs[i].permute(1, 2, 0).numpy()).reduce(r)
                    imgs[i] = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).contiguous()
                    self.downscaled.append(f)
        fits = [im.shape[1] >= crop and im.shape[2] >= crop for im in imgs]
        self.skipped = [f for f, ok in zip(self.files, fits) if not ok]   # smaller than the crop
        self.imgs = [im for im, ok in zip(imgs, fits) if ok]
        if not self.imgs:
            raise SystemExit(f"no image in {folder} is at least {crop}x{crop}")
        # sample images proportionally to sqrt(area): big pictures give more crops
        w = np.array([math.sqrt(im.shape[1] * im.shape[2]) for im in self.imgs])
        self.p = w / w.sum()
        self.crop = crop
        self.rng = np.random.default_rng(seed)

    def batch(self, n):
        c = self.crop
        out = torch.empty(n, 3, c, c, dtype=torch.uint8)
        for b in range(n):
            im = self.imgs[self.rng.choice(len(self.imgs), p=self.p)]
            H, W = im.shape[1:]
            y = int(self.rng.integers(0, H - c + 1))
            x = int(self.rng.integers(0, W - c + 1))
            t = im[:, y:y + c, x:x + c]
            if self.rng.random() < 0.5:
                t = t.flip(2)
            out[b] = t
        return out.float() / 255.0


# ---------------------------------------------------------------- model card
def write_card(path, model, args, step, train_seconds, rows, base_rows, train_files, dev_files, latent=None,
               skipped=(), downscaled=()):
    cfg = model.cfg
    man = read_manifests(data_folders(args.data))
    kd = model.decoder_kmac_per_pixel()
    ke = model.encoder_kmac_per_pixel()
    L = []
    L.append(f"# Model card: {cfg.name} (sps_model_id {cfg.model_id})\n")
    L.append("Learned intra codec, float weights; the normative integer decoder data "
             f"({cfg.name}_int.npz) comes from `python -m refsw.nn.convert`. "
             f"Design notes: docs/models/{cfg.name}.md. File: refsw/data/models/{cfg.name}.npz "
             "(numpy .npz, no pickle; layout in refsw/models/io.py).\n")
    L.append("## Training\n")
    L.append(f"- steps: {step} (batch {args.batch}, crop {args.crop}x{args.crop}, Adam lr {args.lr:g}, "
             f"time-based schedule, budget {args.time_budget:.0f} s)")
    L.append(f"- wall time (training loop incl. periodic evaluation): {train_seconds:.0f} s "
             f"({train_seconds / 3600:.2f} h, cumulative over resumed runs) on this machine, "
             f"{args.threads} CPU thread(s) in the last run, torch {torch.__version__}")
    L.append(f"- command (last run): `{' '.join(['python -m refsw.train.train_intra'] + sys.argv[1:])}`")
    L.append(f"- loss: bpp + lambda*255^2*MSE (RGB in [0,1]); lambdas per operating point: "
             f"{', '.join(f'{l:g}' for l in cfg.lambdas)}; base-only aux weight {args.base_weight:g}")
    L.append("- complexity (kMAC per pixel): decoder " + " + ".join(f"{k} {v:.2f}" for k, v in kd.items()) + "; "
             f"encoder g_a {ke['g_a']:.2f} + h_a {ke['h_a']:.2f}")
    L.append("- status: " + ("final" if getattr(args, "_final", False) else "intermediate export (training in progress)"))
    L.append("")
    L += card_rd_section(dev_files, rows, base_rows, latent, cfg.base_channels)
    L.append("\n## Training data provenance\n")
    L.append(f"{len(train_files)} images from "
             + ", ".join(f"`shared/datasets/{os.path.basename(os.path.normpath(d))}`" for d in data_folders(args.data))
             + " (not in the repository); "
             "source package / path from its MANIFEST.json; sha256 of the file as read."
             + (f" Not used in the last run, smaller than its {args.crop}x{args.crop} crops: "
                + ", ".join(os.path.basename(f) for f in skipped) + "." if skipped else "")
             + (f" Downscaled by {args.jpeg_downscale} (box filter; JPEGs at their source): "
                + ", ".join(os.path.basename(f) for f in downscaled) + "." if downscaled else "")
             + "\n")
    L.append("| file | source package | source path | sha256 |")
    L.append("|---|---|---|---|")
    for f in train_files:
        b = os.path.basename(f)
        e = man.get(b, {})
        L.append(f"| {b} | {e.get('source_package', '?')} | {e.get('source_path', '?')} | {file_sha256(f)} |")
    L.append("\nHeld-out (dev) images:\n")
    for f in dev_files:
        L.append(f"- {os.path.basename(f)} sha256 {file_sha256(f)}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as fh:
        fh.write("\n".join(L) + "\n")
    os.replace(path + ".tmp", path)


# ---------------------------------------------------------------- schedule
def lr_at(args, t):
    frac = t / max(args.time_budget, 1.0)
    if frac < args.warmup_frac:
        return args.lr * (0.1 + 0.9 * frac / args.warmup_frac)
    if frac < args.decay_start:
        return args.lr
    u = min(1.0, (frac - args.decay_start) / max(1e-9, 1.0 - args.decay_start))
    lo = args.lr * args.lr_final_frac
    return lo + 0.5 * (args.lr - lo) * (1 + math.cos(math.pi * u))


def rate_weights(revived_at, t, ramp, M):
    """Per-channel weights (M,) of the y rate: min(1, (t - t_revival) / ramp) for revived channels."""
    w = torch.ones(M)
    for c, t0 in revived_at.items():
        w[c] = min(1.0, max(0.0, (t - t0) / ramp))
    return w


def sample_quality(n, cfg, rng):
    q = []
    for _ in range(n):
        if rng.random() < 0.5:
            q.append(cfg.point_quality(int(rng.integers(0, cfg.num_points))))
        else:
            q.append(float(rng.uniform(0, cfg.num_quality - 1)))
    return torch.tensor(q, dtype=torch.float32)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/datasets/train",
                    help="training folder(s), comma-separated (each may hold a MANIFEST.json)")
    ap.add_argument("--jpeg-downscale", type=int, default=1,
                    help="downscale pictures that were JPEGs at their source (MANIFEST source_path) by this "
                         "factor where a crop still fits (1 = off)")
    ap.add_argument("--dev", default="../shared/datasets/dev")
    ap.add_argument("--out", default="out/train_intra")
    ap.add_argument("--export", default=os.path.join(REPO, "refsw/data/models/intra_v1.npz"))
    ap.add_argument("--card", default=os.path.join(REPO, "refsw/data/models/intra_v1.md"))
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--init-npz", default=None,
                    help="start from exported weights, e.g. the shipped file (step and time continue from it)")
    ap.add_argument("--rewarm-steps", type=int, default=500,
                    help="after --init-npz, ramp the lr from 0.1x over this many steps (fresh Adam state)")
    ap.add_argument("--freeze-encoder", action="store_true")
    ap.add_argument("--qat", action="store_true",
                    help="quantisation-aware fine-tuning: fake-quantised h_s and g_s (refsw/train/qat.py)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--crop", type=int, default=256,
                    help="crop size (default 256: at 128 the hyper-latent of a crop is 2x2 and h_s learns "
                         "border statistics; docs/models/intra_v1.md, stop 24)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-final-frac", type=float, default=0.05)
    ap.add_argument("--warmup-frac", type=float, default=0.01)
    ap.add_argument("--decay-start", type=float, default=0.6)
    ap.add_argument("--time-budget", type=float, default=7000.0, help="seconds of training (schedule + stop)")
    ap.add_argument("--max-steps", type=int, default=0, help="stop at this step count (absolute: it continues from --resume or --init-npz; 0 = time only)")
    ap.add_argument("--base-aux", type=int, default=2, help="samples per batch with a base-only recon loss")
    ap.add_argument("--base-weight", type=float, default=0.1)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--diverge-factor", type=float, default=2.5)
    ap.add_argument("--grad-leak", type=float, default=0.0,
                    help="straight-through gradient through the clipped regions of the decoder cReLU")
    ap.add_argument("--recycle", type=float, default=0.0,
                    help="re-initialise h_s/g_s units active on fewer than this fraction of positions "
                         "(refsw/train/recycle.py); 0 = off")
    ap.add_argument("--recycle-every", type=float, default=0.0,
                    help="seconds between recycling passes (0 = once, at start)")
    ap.add_argument("--revive-latent", type=float, default=0.0,
                    help="re-initialise y channels whose coded values at q 63 are non-zero on fewer than this "
                         "fraction of positions, at start and every --revive-every s (refsw/train/recycle.py); "
                         "0 = off")
    ap.add_argument("--revive-every", type=float, default=0.0,
                    help="seconds between latent revival passes (0 = once, at start)")
    ap.add_argument("--revive-ramp", type=float, default=0.0,
                    help="seconds over which a revived channel's rate weight rises from 0 to 1 (0 = at once); "
                         "the logged training bpp is the weighted rate")
    ap.add_argument("--gain-lr-mult", type=float, default=10.0, help="lr multiplier of the gain tables")
    ap.add_argument("--reinit-zgain", action="store_true", help="reset z gain tables after loading")
    ap.add_argument("--lr-scale", type=float, default=None, help="override the lr scale stored in the checkpoint")
    ap.add_argument("--ckpt-every", type=float, default=240.0)
    ap.add_argument("--export-every", type=float, default=900.0)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--bf16", action="store_true",
                    help="hidden layers under CPU bfloat16 autocast (about 1.4x faster with avx512_bf16; "
                         "latents, entropy parameters and samples stay float32)")
    ap.add_argument("--lambdas", default=None,
                    help="comma-separated lambdas of the trained operating points (default: IntraConfig's)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-eval", action="store_true")
    args = ap.parse_args(argv)

    if args.revive_ramp < 0:
        ap.error(f"--revive-ramp: {args.revive_ramp:g} is negative (seconds, >= 0)")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed + int(time.time()) if args.resume else args.seed)
    os.makedirs(args.out, exist_ok=True)
    logf = open(os.path.join(args.out, "train.log"), "a", buffering=1)

    def log(msg):
        line = time.strftime("%Y-%m-%d %H:%M:%S ") + msg
        print(line, flush=True)
        logf.write(line + "\n")

    ClippedReLU.grad_leak = args.grad_leak
    cfg = IntraConfig()
    if args.lambdas:
        try:
            lams = check_lambdas(args.lambdas.split(","))
        except ValueError as e:
            ap.error(f"--lambdas: {e}")
        cfg = IntraConfig(num_points=len(lams), lambdas=lams)
    step, train_seconds = 0, 0.0
    rewarm_until = 0
    if args.init_npz:
        if not os.path.isfile(args.init_npz):
            ap.error(f"--init-npz: no such file: {args.init_npz}")
        try:
            model, step, train_seconds, how = init_from_npz(args.init_npz, cfg.lambdas if args.lambdas else None)
        except (KeyError, ValueError, RuntimeError) as e:
            ap.error(f"--init-npz {args.init_npz}: not intra weights of this model ({e})")
        log(f"initialised from {args.init_npz} at step {step}, {train_seconds:.0f}s; {how}")
        rewarm_until = step + max(0, args.rewarm_steps)
    else:
        model = IntraCodec(cfg)
    cfg = model.cfg
    model.bf16 = args.bf16
    model.train()
    if args.freeze_encoder:
        for p in list(model.g_a.parameters()) + list(model.h_a.parameters()):
            p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    # gain tables get a larger lr: they must track the (fast-moving) scale of g_a's
    # output, otherwise the low-quality points drift to ever higher rates
    gain_ids = {id(p) for p in (model.log_gain_enc, model.log_gain_dec, model.log_zgain_enc, model.log_zgain_dec)}
    groups = [{"params": [p for p in params if id(p) not in gain_ids], "mult": 1.0},
              {"params": [p for p in params if id(p) in gain_ids], "mult": args.gain_lr_mult}]
    opt = torch.optim.Adam([g for g in groups if g["params"]], lr=args.lr)
    ckpt = os.path.join(args.out, "ckpt.pt")
    lr_scale = 1.0 if args.lr_scale is None else args.lr_scale
    ema_loss = None
    if args.resume and os.path.exists(ckpt):
        step, train_seconds = load_ckpt(ckpt, model, opt)
        lr_scale = load_ckpt.lr_scale if args.lr_scale is None else args.lr_scale
        log(f"resumed from {ckpt} at step {step}, {train_seconds:.0f}s, lr scale {lr_scale:g}")
        rewarm_until = 0
        if load_ckpt.remapped:
            log(f"gain tables remapped from lambdas {load_ckpt.remapped} to {cfg.lambdas}")
    if args.qat:
        from refsw.nn.convert import calib_pictures, calibrate
        from refsw.train.qat import FakeQuant
        _, _, s_gin, s_hin = calibrate(model, calib_pictures(args.data))
        FakeQuant(model, s_gin, s_hin).attach()
        log(f"QAT: fake-quantised h_s and g_s, input units s_gin {s_gin:.6g}, s_hin {s_hin:.6g}")
    if args.reinit_zgain:
        model.reset_zgains()
        for p_ in (model.log_zgain_enc, model.log_zgain_dec):
            opt.state.pop(p_, None)
        log("z gains re-initialised")
    log(f"args {vars(args)}")
    log(f"config {cfg.to_dict()}")
    log(f"kMAC/px decoder {model.decoder_kmac_per_pixel()} encoder {model.encoder_kmac_per_pixel()}")

    sampler = CropSampler(args.data, args.crop, seed=int(rng.integers(1 << 30)), jpeg_downscale=args.jpeg_downscale)
    dev_files = list_images(args.dev) if args.dev and os.path.isdir(args.dev) else []
    dev_imgs = [load_image(f) for f in dev_files]
    if sampler.downscaled:
        log(f"downscaled by {args.jpeg_downscale} (JPEG at the source): {len(sampler.downscaled)} pictures")
    log(f"{len(sampler.imgs)} training images, {len(dev_files)} dev images"
        + (f"; not used, smaller than {args.crop}x{args.crop}: "
           + ", ".join(os.path.basename(f) for f in sampler.skipped) if sampler.skipped else ""))

    def do_recycle():
        batches = [sampler.batch(args.batch) for _ in range(6)]
        g = torch.Generator().manual_seed(int(rng.integers(1 << 30)))
        rep = recycle_dormant(model, batches, threshold=args.recycle, generator=g)
        log(f"recycled dormant decoder units (< {args.recycle:g} active): {rep or 'none'}")

    def log_latent_use(use=None):
        """Channels in use: on ``use`` (measured on the dev images) if given, else on training crops."""
        where = "dev images" if use is not None else "training crops"
        if use is None:
            use = latent_use(model, [sampler.batch(args.batch) for _ in range(4)])
        log(f"latent channels in use at q 63 on {where} (non-zero share >= 0.5 %): "
            f"{channels_in_use(use, cfg.base_channels)}")

    revived_at = {}  # y channel -> train_seconds at its revival (rate ramp)

    def do_revive():
        g = torch.Generator().manual_seed(int(rng.integers(1 << 30)))
        rev = revive_latent(model, [sampler.batch(args.batch) for _ in range(6)], threshold=args.revive_latent,
                            opt=opt, generator=g)
        log(f"revived {len(rev)} latent channels (channel, donor): {rev}")
        for c, _ in rev:
            revived_at[c] = train_seconds

    if args.revive_latent > 0:
        log_latent_use()
        do_revive()
    log_latent_use()
    last_revive = time.time()
    if args.recycle > 0:
        do_recycle()
    last_recycle = time.time()

    def do_export(final=False):
        model.eval()
        meta = {"step": step, "train_seconds": train_seconds}
        export_npz(model, args.export, meta)
        rows, base_rows, latent = [], [], None
        if dev_imgs and not args.no_eval:
            rows, base_rows, latent = measure_dev(model, dev_imgs)
            log("dev RD " + " ".join(f"q{r['q']:g}:{r['bpp']:.3f}bpp/{r['psnr']:.2f}dB" for r in rows))
            log("dev base-only " + " ".join(f"q{r['q']:g}:{r['psnr']:.2f}dB" for r in base_rows))
        log_latent_use(latent)
        args._final = final
        write_card(args.card, model, args, step, train_seconds, rows, base_rows, sampler.files, dev_files,
                   latent, skipped=sampler.skipped, downscaled=sampler.downscaled)
        log(f"exported {args.export} (step {step})")
        model.train()

    last_ckpt = last_export = time.time()
    acc = {"loss": 0.0, "bpp": 0.0, "psnr": 0.0, "n": 0}
    t_prev = time.time()
    while True:
        if train_seconds >= args.time_budget or (args.max_steps and step >= args.max_steps):
            break
        lr = lr_at(args, train_seconds) * lr_scale
        if step < rewarm_until:
            lr *= 0.1 + 0.9 * (1.0 - (rewarm_until - step) / args.rewarm_steps)
        for g in opt.param_groups:
            g["lr"] = lr * g["mult"]
        x = sampler.batch(args.batch)
        q = sample_quality(args.batch, cfg, rng)
        lam = model.lambda_for_quality(q)
        out = model(x, q, base_aux=args.base_aux)
        npx = x.shape[2] * x.shape[3]
        y_bits = -torch.log2(out["y_lik"]).sum(dim=(2, 3))
        if revived_at and args.revive_ramp > 0:
            y_bits = y_bits * rate_weights(revived_at, train_seconds, args.revive_ramp, cfg.latent_channels)
        bits = y_bits.sum(dim=1) - torch.log2(out["z_lik"]).sum(dim=(1, 2, 3))
        bpp = bits / npx
        mse = (out["x_hat"] - x).square().mean(dim=(1, 2, 3))
        loss = (bpp + lam * 255.0 ** 2 * mse).mean()
        if args.base_aux > 0:
            nb = args.base_aux
            mse_b = (out["x_base"] - x[:nb]).square().mean(dim=(1, 2, 3))
            loss = loss + args.base_weight * (lam[:nb] * 255.0 ** 2 * mse_b).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if args.clip > 0:
            torch.nn.utils.clip_grad_norm_(params, args.clip)
        opt.step()
        step += 1
        now = time.time()
        train_seconds += now - t_prev
        t_prev = now
        if not math.isfinite(loss.item()):
            log(f"non-finite loss at step {step}; reloading checkpoint")
            if os.path.exists(ckpt):
                step, _ = load_ckpt(ckpt, model, opt)
                lr_scale *= 0.5
            continue
        with torch.no_grad():
            acc["loss"] += loss.item()
            acc["bpp"] += bpp.mean().item()
            acc["psnr"] += (-10 * torch.log10(mse.clamp_min(1e-10))).mean().item()
            acc["n"] += 1
        if step % args.log_every == 0:
            n = acc["n"]
            avg = acc["loss"] / n
            log(f"step {step} loss {avg:.4f} bpp {acc['bpp'] / n:.4f} psnr {acc['psnr'] / n:.2f} "
                f"lr {lr:.2e} elapsed {train_seconds:.0f}s")
            acc = {"loss": 0.0, "bpp": 0.0, "psnr": 0.0, "n": 0}
            # divergence guard: a window far above the running average -> roll back, halve lr
            if ema_loss is not None and step > 300 and avg > args.diverge_factor * ema_loss and os.path.exists(ckpt):
                step, _ = load_ckpt(ckpt, model, opt)
                lr_scale *= 0.5
                log(f"divergence (window {avg:.3f} > {args.diverge_factor:g} x ema {ema_loss:.3f}): "
                    f"rolled back to step {step}, lr scale {lr_scale:g}")
            else:
                healthy = ema_loss is None or avg <= 1.5 * ema_loss
                ema_loss = avg if ema_loss is None else 0.8 * ema_loss + 0.2 * avg
                # checkpoint only after a healthy window (a rollback target must be good)
                if healthy and now - last_ckpt >= args.ckpt_every:
                    save_ckpt(ckpt, model, opt, step, train_seconds, lr_scale)
                    last_ckpt = time.time()
        if args.recycle > 0 and args.recycle_every > 0 and now - last_recycle >= args.recycle_every:
            do_recycle()
            last_recycle = time.time()
        if args.revive_latent > 0 and args.revive_every > 0 and now - last_revive >= args.revive_every:
            do_revive()
            last_revive = time.time()
        if now - last_export >= args.export_every:
            do_export()
            last_export = time.time()
    save_ckpt(ckpt, model, opt, step, train_seconds, lr_scale)
    do_export(final=True)
    log(f"done: step {step}, {train_seconds:.0f}s")


if __name__ == "__main__":
    main()
