"""Integerisation of the learned intra decoder (non-normative, offline).

Turns the float decoder of refsw.models.intra.IntraCodec (h_s, g_s, the
quality-dependent gains and the factorised z prior) into the normative integer
data of clause 10 (refsw.decoder.intnet), stored as ``<model>_int.npz``.

    python -m refsw.nn.convert [--weights refsw/data/models/intra_v1.npz] [--calib DIR]

Fixed-point choices (the normative data records the outcome, not the recipe):
activations of clipped-ReLU layers: [0, act_max] -> [0, 2^15 - 1];
weights: per output channel, |w| <= 2^14 - 1; requantisation multipliers
< 2^14 with a per-layer shift.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np
import torch

from ..decoder.intnet import IntLayer, check_bounds, to_npz_dict

ACT_BITS = 15
ACT_MAX = (1 << ACT_BITS) - 1
WEIGHT_MAX = (1 << 14) - 1
MULT_BITS = 14          # keeps |acc * mult| < 2^53: requantisation exact in float64 too
IN_CLIP = 1 << 20          # latent symbols are clipped to +-2^20 before requantisation
LAT_MAX = 1 << 15          # range of requantised latents / means
MU_FRAC_BITS = 2           # means in units of 1/4 (10.2), coded with the mean-offset tables (9.3.2.1)


def _shift_for(ratio_max: float, bits: int = MULT_BITS) -> int:
    """Largest shift with round(ratio_max * 2^shift) < 2^bits."""
    s = int(math.floor(bits - 1 - math.log2(ratio_max)))
    return max(1, min(s, 48))


def _mult(ratio: np.ndarray, shift: int) -> np.ndarray:
    return np.round(np.asarray(ratio, dtype=np.float64) * (1 << shift)).astype(np.int64)


def _conv_layers(seq, s_in: float, act_max: float, final_scale=None):
    """Layers of a DecConv/PixelShuffle/ClippedReLU stack.

    Returns (layers, last_conv_info) where the last conv is left without
    requantisation parameters when ``final_scale`` is None (its accumulator
    units s_w * s_in are returned instead)."""
    from refsw.models.intra import ClippedReLU, DecConv
    mods = list(seq)
    layers = []
    s_act = act_max / ACT_MAX
    i = 0
    acc_units = None
    while i < len(mods):
        m = mods[i]
        if not isinstance(m, DecConv):
            raise ValueError(f"unexpected module {type(m).__name__} at {i}")
        shuffle = 0
        relu = False
        j = i + 1
        if j < len(mods) and isinstance(mods[j], torch.nn.PixelShuffle):
            shuffle = mods[j].upscale_factor
            j += 1
        if j < len(mods) and isinstance(mods[j], ClippedReLU):
            relu = True
            if abs(mods[j].max_value - act_max) > 1e-9:
                raise ValueError("all clipped ReLUs must share act_max")
            j += 1
        W = m.weight.detach().double().numpy()
        b = m.bias.detach().double().numpy()
        cout = W.shape[0]
        s_w = np.abs(W).reshape(cout, -1).max(axis=1) / WEIGHT_MAX
        s_w = np.where(s_w > 0, s_w, 1.0)
        W_int = np.round(W / s_w[:, None, None, None]).astype(np.int64)
        unit = s_w * s_in
        b_int = np.round(b / unit).astype(np.int64)
        if relu:
            ratio = unit / s_act
            sh = _shift_for(ratio.max())
            layers.append(IntLayer(W_int, b_int, _mult(ratio, sh), sh, 0, ACT_MAX, shuffle, f"conv{i}"))
            s_in = s_act
        else:
            if j != len(mods):
                raise ValueError("a linear convolution must be the last layer")
            layers.append(IntLayer(W_int, b_int, np.ones(cout, np.int64), 1, -(1 << 62), 1 << 62, shuffle,
                                   f"conv{i}"))
            acc_units = unit
        i = j
    return layers, acc_units


def calibrate(model, calib_images, qualities=range(0, 64, 9)):
    """(ymax, zmax, s_gin, s_hin): the largest |y_hat * gD| and |z_hat * zD| on the
    calibration pictures and the input units of g_s and h_s derived from them."""
    from refsw.models.intra import pad_to_multiple
    cfg = model.cfg
    was_training = model.training
    model.eval()
    ymax, zmax = 1e-6, 1e-6
    with torch.no_grad():
        for x in calib_images:
            x = pad_to_multiple(x, cfg.total_stride)
            for q in qualities:
                qq = torch.tensor([float(q)])
                out = model(x, qq)
                g = model.gains(qq)
                ymax = max(ymax, float((torch.round(out["y"]) * g[1]).abs().max()))
                zh = torch.round(out["z"]).clamp(-cfg.z_support, cfg.z_support)
                zmax = max(zmax, float((zh * g[3]).abs().max()))
    # a degenerate calibration (e.g. an untrained model whose latents are all 0)
    ymax, zmax = max(ymax, 1.0), max(zmax, 1.0)
    model.train(was_training)
    # headroom: the calibrated maximum maps to 1/4 of the latent range
    return ymax, zmax, ymax / (LAT_MAX / 4), zmax / (LAT_MAX / 4)


def calib_pictures(folder=None, max_images=6):
    """Calibration pictures (1, 3, <=512, <=512) in [0, 1]: the PNGs of ``folder``
    (sorted) or the shipped default picture."""
    from PIL import Image

    from refsw.content import default_image_path
    paths = [default_image_path()]
    if folder:
        paths = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith(".png"))
    imgs = []
    for p in paths[:max_images]:
        im = np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) / 255.0
        im = im[:512, :512]
        imgs.append(torch.from_numpy(im).permute(2, 0, 1)[None].contiguous())
    return imgs


def integerize(model, calib_images, *, qualities=range(0, 64, 9)) -> dict:
    """Integer decoder data (dict of numpy arrays) for ``model`` (IntraCodec)."""
    from refsw.models.entropy_models import LOG_SCALE_MIN, LOG_SCALE_STEP
    cfg = model.cfg
    model.eval()
    M, Z = cfg.latent_channels, cfg.hyper_channels
    qs = torch.arange(cfg.num_quality, dtype=torch.float32)
    with torch.no_grad():
        gE, gD, zE, zD, lgE = (t.squeeze(-1).squeeze(-1).double().numpy() for t in model.gains(qs))
    ymax, zmax, s_gin, s_hin = calibrate(model, calib_images, qualities)
    hs, hs_units = _conv_layers(model.h_s, s_hin, cfg.act_max)
    gs, gs_units = _conv_layers(model.g_s, s_gin, cfg.act_max)
    # g_s output: samples = clamp(x, 0, 1) * 255
    ratio = gs_units * 255.0
    sh = _shift_for(ratio.max())
    gs[-1].mult = _mult(ratio, sh)
    gs[-1].shift, gs[-1].lo, gs[-1].hi = sh, 0, 255
    # quality-dependent input requantisation: a = Clip3(-LAT_MAX, LAT_MAX-1, (v * T[q][c] + rnd) >> S)
    gd_ratio = gD / s_gin
    gd_shift = _shift_for(gd_ratio.max())
    zd_ratio = zD / s_hin
    zd_shift = _shift_for(zd_ratio.max())
    # h_s outputs: means (gained domain) and scale indices
    mu_units = hs_units[:M]
    ls_units = hs_units[M:]
    mu_ratio = mu_units[None, :] * gE                     # (64, M)
    mu_shift = _shift_for(mu_ratio.max())
    ls_ratio = ls_units / LOG_SCALE_STEP                  # (M,)
    ls_off = (lgE - LOG_SCALE_MIN) / LOG_SCALE_STEP       # (64, M)
    ls_shift = _shift_for(ls_ratio.max())
    d = {}
    d.update(to_npz_dict("hs", hs))
    d.update(to_npz_dict("gs", gs))
    d["q.gd_mult"] = _mult(gd_ratio, gd_shift)
    d["q.zd_mult"] = _mult(zd_ratio, zd_shift)
    d["q.mu_mult"] = _mult(mu_ratio, mu_shift)
    d["q.ls_mult"] = _mult(ls_ratio, ls_shift)
    d["q.ls_add"] = np.round(ls_off * (1 << ls_shift)).astype(np.int64)
    d["q.shifts"] = np.array([gd_shift, zd_shift, mu_shift, ls_shift], dtype=np.int64)
    d["q.mu_frac_bits"] = np.array(MU_FRAC_BITS, dtype=np.int64)   # quarter-sample means (10.2)
    # factorised z tables (clause 9): per channel, values -z_support..z_support plus escape
    from refsw.decoder.entropy import RansTables
    S = cfg.z_support
    pmf = model.z_prior.pmf(S).numpy()
    zt = RansTables.from_pmfs(list(pmf), [-S] * Z, escape_probs=[0.0] * Z)
    d["z.offsets"], d["z.num_symbols"], d["z.cdf"] = zt.offsets, zt.num_symbols, zt.cdf
    if model.ctx is not None:
        d.update(integerize_context(model, calib_images, qualities, hs_units, s_gin))
    d["meta.config_json"] = np.frombuffer(json.dumps(cfg.to_dict()).encode(), dtype=np.uint8)
    d["meta.calibration"] = np.array([ymax, zmax, s_gin, s_hin], dtype=np.float64)
    return d


def integerize_context(model, calib_images, qualities, hs_units: np.ndarray, s_gin: float) -> dict:
    """Integer data of the checkerboard context model (10.9).

    Its input is the synthesis input a of the anchors (units s_gin) and the
    h_s output P = Clip3(-2^15, 2^15 - 1, (acc * PM[c] + rnd) >> Sp) (units
    s_p, calibrated); the first layer's weights on P are scaled by s_p / s_gin
    so that the layer sees one input unit.  Its last accumulator is brought to
    the units of h_s's last accumulator: acc_hs + ((acc * CM[c] + rnd) >> Sc)."""
    import copy

    from refsw.models.intra import pad_to_multiple
    cfg = model.cfg
    M = cfg.latent_channels
    pmax = 1e-6
    with torch.no_grad():
        for x in calib_images:
            x = pad_to_multiple(x, cfg.total_stride)
            y = model.analysis(x)
            for q in qualities:
                qq = torch.tensor([float(q)])
                gE, gD, zE, zD, lgE = model.gains(qq)
                z_hat = torch.round(model.h_a(y) * zE).clamp(-cfg.z_support, cfg.z_support)
                pmax = max(pmax, float(model.hyper_params(z_hat, zD).abs().max()))
    s_p = max(pmax, 1.0) / (LAT_MAX / 4)
    p_ratio = hs_units / s_p
    p_shift = _shift_for(p_ratio.max())
    ctx = copy.deepcopy(model.ctx)
    with torch.no_grad():
        ctx[0].weight[:, M:] *= s_p / s_gin
    layers, ctx_units = _conv_layers(ctx, s_gin, cfg.act_max)
    c_ratio = ctx_units / hs_units
    c_shift = _shift_for(c_ratio.max())
    d = to_npz_dict("ctx", layers)
    d["ctx.p_mult"] = _mult(p_ratio, p_shift)
    d["ctx.c_mult"] = _mult(c_ratio, c_shift)
    d["ctx.shifts"] = np.array([p_shift, c_shift], dtype=np.int64)
    d["ctx.idc"] = np.array(1, dtype=np.int64)          # 1: checkerboard (10.9)
    return d


def integerize_branch(head, codec_int_path: str) -> dict:
    """Integer data of a task branch (10.8) whose input is the synthesis input
    of the codec in ``codec_int_path`` (same scale s_gin)."""
    z = np.load(codec_int_path, allow_pickle=False)
    s_gin = float(z["meta.calibration"][2])
    cfg = head.cfg
    head.eval()
    layers, units = _conv_layers(head.t_s, s_gin, cfg.act_max)
    ratio = units * 256.0                        # outputs in units of 1/256
    sh = _shift_for(ratio.max())
    layers[-1].mult = _mult(ratio, sh)
    layers[-1].shift, layers[-1].lo, layers[-1].hi = sh, -LAT_MAX, LAT_MAX - 1
    d = to_npz_dict("tb", layers)
    d["out.params"] = np.array([cfg.stride, int(round(cfg.score_min * 256)), cfg.max_detections,
                                1, int(round(1 / cfg.nms_iou))], dtype=np.int64)
    if abs(cfg.nms_iou - 0.5) > 1e-9:
        raise ValueError("only nms_iou 0.5 (1/2) is supported by the converter")
    d["meta.config_json"] = np.frombuffer(json.dumps(cfg.to_dict()).encode(), dtype=np.uint8)
    d["meta.codec_calibration"] = np.asarray(z["meta.calibration"], dtype=np.float64)
    return d


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m refsw.nn.convert", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-id", type=int, default=1)
    ap.add_argument("--weights", help="float weights (.npz); default: the registered file")
    ap.add_argument("--calib", help="folder of PNG images for calibration (default: shipped content)")
    ap.add_argument("--max-images", type=int, default=6)
    ap.add_argument("-o", "--output", help="output .npz (default: <weights>_int.npz next to the weights)")
    ap.add_argument("--branch", help="convert this task branch (name or id) of the model instead of the codec")
    a = ap.parse_args(argv)
    if a.branch:
        return _main_branch(a)
    from refsw.models.registry import get_entry, load_model
    entry = get_entry(a.model_id)
    model = load_model(a.model_id, a.weights)
    imgs = calib_pictures(a.calib, a.max_images)
    d = integerize(model, imgs)
    out = a.output or (a.weights or entry.weights_path).replace(".npz", "_int.npz")
    np.savez_compressed(out, **d)
    from ..decoder.intnet import from_npz
    z = np.load(out, allow_pickle=False)
    b1 = check_bounds(from_npz(z, "hs"), LAT_MAX, name="h_s")
    b2 = check_bounds(from_npz(z, "gs"), LAT_MAX, name="g_s")
    print(f"wrote {out}; max accumulator bits h_s {max(b1).bit_length()}, g_s {max(b2).bit_length()}")
    return 0


def _main_branch(a):
    from refsw.models.registry import branch_weights_path, find_task_branch, get_entry
    from refsw.models.task_io import load_branch
    e = find_task_branch(a.model_id, a.branch)
    head = load_branch(a.weights or branch_weights_path(e))
    d = integerize_branch(head, get_entry(a.model_id).weights_path.replace(".npz", "_int.npz"))
    out = a.output or (a.weights or branch_weights_path(e)).replace(".npz", "_int.npz")
    np.savez_compressed(out, **d)
    from ..decoder.intnet import from_npz
    b = check_bounds(from_npz(np.load(out, allow_pickle=False), "tb"), LAT_MAX, name=e.name)
    print(f"wrote {out}; max accumulator bits {max(b).bit_length()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
