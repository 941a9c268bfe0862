"""Learned intra coding mode (ph_pic_coding_mode 1), clauses 8.2 and 10.

Normative decoding of a learned picture, for the model signalled by
sps_model_id, from its integer data (``<model>_int.npz``):

1. HYPER unit: z_hat[c][y][x], c < Z, over (H/64, W/64), decoded with the
   model's factorised tables (table index c for channel c).
2. Hyper-synthesis (10.3; layers 10.2): a = Clip3(-2^15, 2^15-1, (Clip3(-2^20, 2^20, z_hat) * ZD[q][c] + rnd) >> Sz),
   then the integer layers of h_s; its last accumulator gives per latent
   channel c the mean muF[c] in units of 2^-F (F = MuFracBits, 10.3) and
   the scale index k[c] = Clip3(0, 63, (acc[M+c] * LS[c] + LSA[q][c] + rnd) >> Sls).
3. LATENT units (10.4): layer l carries channels [C_l, C_(l+1)); its symbols
   s are decoded with the table that k (and, for F = 2, the mean's fraction)
   selects; y_hat = s + mu, mu the rounded mean. Channels of layers not
   decoded take y_hat = mu. A model with a spatial context (10.9) decodes
   each layer in two passes: the anchors with these parameters, then the
   non-anchors with parameters refined by the context network.
4. Synthesis (10.5): a = Clip3(-2^15, 2^15-1, (Clip3(-2^20, 2^20, y_hat) * GD[q][c] + rnd) >> Sg),
   then the integer layers of g_s, whose last layer gives the R, G, B
   samples in [0, 255].
"""
from __future__ import annotations

import functools
import json
import os

import numpy as np

from syntax import hls
from syntax.errors import BitstreamError

from ..npzfile import read_npz
from ..picture import Picture
from .core import CodedPicture, register_picture_decoder
from .entropy import RansSubstreams, RansTables, decode_substreams, gaussian_tables
from . import intnet
from .intnet import check_bounds, from_npz
from .model_data import check_int_data, model_data
from .residual import apply_residual

IN_CLIP = 1 << 20
LAT_MAX = 1 << 15


class IntModel:
    """Normative integer data of a learned intra model."""

    def __init__(self, path: str, model_id: int):
        if not os.path.exists(path):
            raise BitstreamError(f"no integer data for sps_model_id {model_id} ({path} missing)",
                                 element="sps_model_id", clause="10.1")
        z = read_npz(path)   # ValueError naming the file if unreadable or incomplete
        self.cfg = json.loads(bytes(z["meta.config_json"]).decode())
        self.model_id = model_id
        self.calibration = np.asarray(z["meta.calibration"], dtype=np.float64) if "meta.calibration" in z else None
        self.hs = from_npz(z, "hs")
        self.gs = from_npz(z, "gs")
        self.gd_mult = z["q.gd_mult"]
        self.zd_mult = z["q.zd_mult"]
        self.mu_mult = z["q.mu_mult"]
        self.ls_mult = z["q.ls_mult"]
        self.ls_add = z["q.ls_add"]
        self.gd_shift, self.zd_shift, self.mu_shift, self.ls_shift = (int(v) for v in z["q.shifts"])
        # 10.2: fraction bits of the mean (0: integer means and the 64-table set;
        # 2: quarter-sample means and the mean-offset set of 9.3.2.1)
        self.mu_frac_bits = int(z["q.mu_frac_bits"]) if "q.mu_frac_bits" in z else 0
        if self.mu_shift <= self.mu_frac_bits:
            raise ValueError(f"mu_frac_bits {self.mu_frac_bits} needs a mean shift above it (Smu {self.mu_shift})")
        self.y_tables = gaussian_tables(self.mu_frac_bits)   # ValueError for a set that does not exist
        self.z_tables = RansTables(offsets=z["z.offsets"], num_symbols=z["z.num_symbols"], cdf=z["z.cdf"])
        self.M = self.cfg["latent_channels"]
        self.Z = self.cfg["hyper_channels"]
        self.base = self.cfg["base_channels"]
        self.stride = self.cfg["stride"]
        self.total_stride = self.cfg["total_stride"]
        # accumulator bounds, checked at load (10.1)
        acc_hs = check_bounds(self.hs, LAT_MAX, name="h_s",
                              extra_mult=np.concatenate([self.mu_mult.ravel(), self.ls_mult.ravel()]))[-1]
        check_bounds(self.gs, LAT_MAX, name="g_s")
        # 10.9 spatial context (checkerboard): present for models with ctx.* data
        self.ctx = from_npz(z, "ctx") if "ctx.num_layers" in z else None
        acc_mu_ls = acc_hs          # bound of the accumulator the MU and LS requantise
        if self.ctx is not None:
            if int(z["ctx.idc"]) != 1:
                raise ValueError(f"{path}: context model {int(z['ctx.idc'])} is not defined (10.9)")
            self.ctx_p_mult = z["ctx.p_mult"]
            self.ctx_c_mult = z["ctx.c_mult"]
            self.ctx_p_shift, self.ctx_c_shift = (int(v) for v in z["ctx.shifts"])
            acc_ctx = check_bounds(self.ctx, LAT_MAX, name="ctx")[-1]
            # the refined accumulator acc_hs + ((accC * CM + rnd) >> Sc) at the non-anchors
            acc_mu_ls = acc_hs + (acc_ctx * int(np.abs(self.ctx_c_mult).max()) >> self.ctx_c_shift) + 1
        # the Requant products outside the layers (10.3, 10.5, 10.9): |v| * Max|m| + Max|a| + 2^(s-1) < 2^63
        products = [("ZD (10.3 step 2)", IN_CLIP, self.zd_mult, 0, self.zd_shift),
                    ("GD (10.5)", IN_CLIP, self.gd_mult, 0, self.gd_shift),
                    ("MU (10.3 step 3)", acc_mu_ls, self.mu_mult, 0, self.mu_shift - self.mu_frac_bits),
                    ("LS, LSA (10.3 step 3)", acc_mu_ls, self.ls_mult, int(np.abs(self.ls_add).max()), self.ls_shift)]
        if self.ctx is not None:
            products += [("PM (10.9)", acc_hs, self.ctx_p_mult, 0, self.ctx_p_shift),
                         ("CM (10.9)", acc_ctx, self.ctx_c_mult, 0, self.ctx_c_shift)]
        for what, vmax, mult, add, shift in products:
            if vmax * int(np.abs(mult).max()) + add + (1 << max(shift - 1, 0)) >= 1 << 63:
                raise ValueError(f"{path}: requantisation product bound of {what} >= 2^63")
        self.cache = {}

    @property
    def num_passes(self) -> int:
        """Entropy-decoding passes of a latent layer: 2 with the spatial context (10.9), else 1."""
        return 1 if self.ctx is None else 2

    def layer_channels(self, num_layers: int):
        """[C_0, C_1, ..., C_L]: channel ranges of the latent layers."""
        if num_layers == 1:
            return [0, self.M]
        if num_layers == 2:
            return [0, self.base, self.M]
        raise BitstreamError(f"model {self.model_id} has 1 or 2 latent layers, the SPS signals {num_layers}",
                             element="sps_num_latent_layers_minus1", clause="10.1")

    # -- 10.3 hyper-synthesis ------------------------------------------------
    def hyper_synthesis(self, z_hat: np.ndarray, q: int, path="float64", device="cpu"):
        """(mu, k): integer means and scale indices (10.3) of z_hat (1, Z, h, w) int64.
        On a GPU (``device``) z_hat and the results are torch tensors."""
        return self.entropy_params(self.hyper_acc(z_hat, q, path, device), q, device)

    def hyper_acc(self, z_hat, q: int, path="float64", device="cpu"):
        """10.3 steps 1-2: the last accumulator of h_s (1, 2M, h, w) int64."""
        eng = engine(device)
        x = eng.requant(clip3(z_hat, IN_CLIP), self.zd_mult[q], None, self.zd_shift, -LAT_MAX, LAT_MAX - 1)
        return eng.run(self.hs, x, path, return_last_acc=True, cache=self.cache)

    def context_acc(self, acc, a_anchor, q: int, path="float64", device="cpu"):
        """10.9: the accumulator refined at the non-anchor positions from the
        synthesis input ``a_anchor`` of the decoded anchors (0 elsewhere):
        P = Clip3(-2^15, 2^15 - 1, (acc * PM + rnd) >> Sp), the context layers on
        [a_anchor, P], and acc + ((accC * CM + rnd) >> Sc) at non-anchors."""
        eng = engine(device)
        p = eng.requant(acc, self.ctx_p_mult, None, self.ctx_p_shift, -LAT_MAX, LAT_MAX - 1)
        x = np.concatenate([a_anchor, p], axis=1) if device == "cpu" else _torch_cat(a_anchor, p)
        acc_c = eng.run(self.ctx, x, path, return_last_acc=True, cache=self.cache)
        delta = eng.requant(acc_c, self.ctx_c_mult, None, self.ctx_c_shift, -(1 << 62), 1 << 62)
        na = to_device(1 - anchor_mask(*acc.shape[-2:]), device)
        return acc + delta * na

    def synthesis_input(self, y_hat, q: int, device="cpu"):
        """10.5 step 1: a = Clip3(-2^15, 2^15 - 1, (Clip3(-2^20, 2^20, y_hat) * GD[q][c] + rnd) >> Sg)."""
        return engine(device).requant(clip3(y_hat, IN_CLIP), self.gd_mult[q], None, self.gd_shift,
                                      -LAT_MAX, LAT_MAX - 1)

    def entropy_params(self, acc, q: int, device="cpu"):
        """10.3 steps 3-4: (mu, k) of an h_s accumulator."""
        rq = engine(device).requant
        M = self.M
        n = self.mu_frac_bits
        mu = rq(acc[:, :M], self.mu_mult[q], None, self.mu_shift - n, -LAT_MAX << n, (LAT_MAX << n) - 1)
        k = rq(acc[:, M:], self.ls_mult, self.ls_add[q], self.ls_shift, 0, 63)
        if n == 0:
            return mu, k
        mu_r, f = split_mean(mu, n)
        return mu_r, (k << n) + f

    # -- 10.5 synthesis ---------------------------------------------------------
    def synthesis(self, y_hat: np.ndarray, q: int, path="float64", device="cpu"):
        """R, G, B samples (1, 3, H, W) int64 of y_hat (1, M, h, w) int64 (10.5)."""
        return engine(device).run(self.gs, self.synthesis_input(y_hat, q, device), path, cache=self.cache)


def anchor_mask(h: int, w: int) -> np.ndarray:
    """(h, w) int64: 1 at the anchor positions of the checkerboard (y + x even, 10.9)."""
    return ((np.arange(h).reshape(h, 1) + np.arange(w).reshape(1, w)) % 2 == 0).astype(np.int64)


def _torch_cat(a, b):
    import torch
    return torch.cat([a, b], dim=1)


def clip3(v, c: int):
    """Clip3(-c, c, v) of a numpy array or a torch tensor."""
    return v.clamp(-c, c) if hasattr(v, "clamp") else np.clip(v, -c, c)


def engine(device: str):
    """The integer network engine (10.2) for arrays on ``device``: the module with
    ``run`` and ``requant``, numpy's on the CPU, torch's only on a GPU."""
    if device == "cpu":
        return intnet
    from . import intnet_torch
    return intnet_torch


def split_mean(mu_f, n: int):
    """10.3 step 4: a mean in units of 2^-n -> (mu_r, f): mu_r the mean rounded
    (half up) to an integer, f = 0..2^n - 1 its position, mean = mu_r + (f - 2^(n-1)) / 2^n."""
    half = 1 << (n - 1)
    mu_r = (mu_f + half) >> n
    return mu_r, mu_f - (mu_r << n) + half


@functools.lru_cache(maxsize=4)
def int_model(model_id: int) -> IntModel:
    try:
        entry = model_data(model_id)
    except KeyError:
        raise BitstreamError(f"unknown sps_model_id {model_id}", element="sps_model_id", clause="10.1")
    check_int_data(entry.int_path, entry.int_sha256, f"sps_model_id {model_id}")
    return IntModel(entry.int_path, model_id)


def decoder_device(dec) -> str:
    """The device a decoder runs the integer networks on ("cpu": numpy; else torch, exact mode)."""
    dev = getattr(dec, "device", "cpu") or "cpu"
    if dev != "cpu":
        from .intnet_torch import exact_mode
        exact_mode()
    return dev


def to_device(a: np.ndarray, device: str):
    """An int64 numpy array as the decoder's array type (a torch tensor on a GPU)."""
    if device == "cpu":
        return a
    import torch
    return torch.from_numpy(a).to(device)


def to_numpy(a) -> np.ndarray:
    return a if isinstance(a, np.ndarray) else a.cpu().numpy()


def check_sps(sps, where_unit):
    ok = sps.sps_bit_depth_minus8 == 0 and (
        (sps.sps_colour_space_idc == 1 and sps.sps_chroma_format_idc == 3)
        or (sps.sps_colour_space_idc == 0 and sps.sps_chroma_format_idc in (1, 3)))
    if not ok:
        raise BitstreamError("the learned intra model codes 8-bit RGB 4:4:4, or YCbCr 4:4:4 / 4:2:0 pictures",
                             element="sps_colour_space_idc", clause="10.1", where=where_unit)


def output_picture(x: np.ndarray, sps) -> Picture:
    """R, G, B sample arrays -> the decoded picture in the SPS colour format (10.7)."""
    pic = Picture([x[0], x[1], x[2]], "444", 8, "rgb")
    if sps.sps_colour_space_idc == 0:
        from ..colour import rgb_to_ycbcr
        pic = rgb_to_ycbcr(pic, "420" if sps.sps_chroma_format_idc == 1 else "444")
    return pic


def decode_latents(m: IntModel, sps, hyp_unit, lat_units, q, H, W, path="float64", device="cpu"):
    """Entropy decoding and hyper-synthesis (10.3, 10.4, 10.9): y_hat (1, M, H/16, W/16) int64.
    Channels of the layers without a LATENT unit take the first-pass mean."""
    hs_, ws_ = H // m.total_stride, W // m.total_stride
    hyp = hyp_unit.payload
    if hyp.hyp_num_channels != m.Z:
        raise BitstreamError(f"hyp_num_channels {hyp.hyp_num_channels}, the model has {m.Z}",
                             element="hyp_num_channels", clause="7.3", where=f"unit {hyp_unit.index}")
    zi = np.broadcast_to(np.arange(m.Z).reshape(m.Z, 1, 1), (m.Z, hs_, ws_))
    z_hat = decode_substreams(RansSubstreams.from_syntax(hyp.hyp_substream), zi, m.z_tables)
    z_hat = to_device(z_hat.astype(np.int64)[None], device)
    acc = m.hyper_acc(z_hat, q, path, device)
    mu, k = m.entropy_params(acc, q, device)
    y_hat = to_numpy(mu).copy()
    chans = m.layer_channels(sps.sps_num_latent_layers_minus1 + 1)
    kk = to_numpy(k)[0]
    gt = m.y_tables
    layers = []
    for u in lat_units:
        layer = u.unit_layer_id
        c0, c1 = chans[layer], chans[layer + 1]
        lat = u.payload
        if lat.lat_num_channels != c1 - c0:
            raise BitstreamError(f"lat_num_channels {lat.lat_num_channels}, layer {layer} of the model has "
                                 f"{c1 - c0}", element="lat_num_channels", clause="7.2", where=f"unit {u.index}")
        passes = 1 + (lat.get("lat_ctx_substream") is not None)
        if passes != m.num_passes:
            raise BitstreamError(f"LATENT unit with {passes} entropy substream(s); model {m.model_id} "
                                 f"decodes a latent layer in {m.num_passes} pass(es)",
                                 element="lat_ctx_substream", clause="10.9", where=f"unit {u.index}",
                                 shall="lat_ctx_substream shall be present if and only if the model has a "
                                       "spatial context (Table 10-4)")
        layers.append((u, c0, c1))
    if m.ctx is None:
        for u, c0, c1 in layers:
            y_hat[0, c0:c1] += decode_substreams(RansSubstreams.from_syntax(u.payload.lat_substream), kk[c0:c1], gt).astype(np.int64)
        return to_device(y_hat, device)
    # 10.9: first pass, the anchors of every present layer
    A = anchor_mask(H // m.stride, W // m.stride).astype(bool)
    for u, c0, c1 in layers:
        s = decode_substreams(RansSubstreams.from_syntax(u.payload.lat_substream), kk[c0:c1][:, A], gt)
        y_hat[0, c0:c1][:, A] += s.astype(np.int64)
    # the context, then the second pass: the non-anchors
    present = np.zeros(m.M, dtype=bool)      # channels of the present layers; the others feed 0
    for _, c0, c1 in layers:
        present[c0:c1] = True
    a = to_numpy(m.synthesis_input(to_device(y_hat, device), q, device)) * (A & present[:, None, None])
    acc2 = m.context_acc(acc, to_device(a, device), q, path, device)
    mu2, k2 = (to_numpy(v) for v in m.entropy_params(acc2, q, device))
    N = ~A
    for u, c0, c1 in layers:
        s = decode_substreams(RansSubstreams.from_syntax(u.payload.lat_ctx_substream), k2[0, c0:c1][:, N], gt)
        y_hat[0, c0:c1][:, N] = mu2[0, c0:c1][:, N] + s.astype(np.int64)
    return to_device(y_hat, device)


def learned_picture_units(cp: CodedPicture):
    """Checks common to every decoding of a learned picture (8.2, 10.1): the
    model, its coded size, one HYPER unit.  Returns (model, H, W, HYPER unit,
    LATENT units)."""
    sps = cp.sps
    check_sps(sps, f"unit {cp.ph_unit.index}")
    m = int_model(sps.sps_model_id)
    sets = model_data(sps.sps_model_id).operating_point_sets
    if sps.sps_operating_point_set_id not in sets:
        raise BitstreamError(f"sps_operating_point_set_id {sps.sps_operating_point_set_id}: model "
                             f"{sps.sps_model_id} defines the sets {sorted(sets)}",
                             element="sps_operating_point_set_id", clause="10.1",
                             where=f"unit {cp.ph_unit.index}",
                             shall="sps_operating_point_set_id shall be a set of the model")
    H, W = sps.sps_pic_height_in_luma_samples, sps.sps_pic_width_in_luma_samples
    if H % m.total_stride or W % m.total_stride:
        raise BitstreamError(f"coded size {W}x{H} is not a multiple of {m.total_stride}",
                             element="sps_pic_width_in_luma_samples", clause="10.1",
                             shall=f"The coded picture size of a learned picture shall be a multiple of "
                                   f"{m.total_stride}")
    hyp = cp.units_of(hls.UT_HYPER)
    if len(hyp) != 1:
        raise BitstreamError(f"a learned picture has {len(hyp)} HYPER units", element="unit_type", clause="8.2",
                             where=f"unit {cp.ph_unit.index}",
                             shall="A learned picture shall contain exactly one HYPER unit")
    return m, H, W, hyp[0], cp.units_of(hls.UT_LATENT)


@register_picture_decoder(hls.LEARNED_MODE)
def decode_learned_picture(dec, cp: CodedPicture) -> Picture:
    """Clause 8.2: learned intra picture."""
    sps = cp.sps
    m, H, W, hyp, lats = learned_picture_units(cp)
    layers = sorted(u.unit_layer_id for u in lats)
    if layers != list(range(len(layers))) or not layers:
        raise BitstreamError(f"latent layers {layers}: layers 0..L shall each be present once",
                             element="unit_layer_id", clause="8.2", where=f"unit {cp.ph_unit.index}")
    path = "int64" if dec.reference else "float64"
    dev = decoder_device(dec)
    res = residual_unit(cp, layers[-1])
    y_hat = decode_latents(m, sps, hyp, lats, cp.ph.ph_quality_idx, H, W, path, dev)
    x = to_numpy(m.synthesis(y_hat, cp.ph.ph_quality_idx, path, dev))[0].astype(np.uint16)
    pic = output_picture(x, sps)
    if res is not None:
        pic = apply_residual(pic, res.payload, sps.sps_colour_space_idc, f"unit {res.index}")
    return pic


def residual_unit(cp: CodedPicture, highest: int):
    """8.2: the RESIDUAL unit of a learned picture (at most one, in the layer of its
    highest LATENT unit, after the LATENT units), or None."""
    res = cp.units_of(hls.UT_RESIDUAL)
    if not res:
        return None
    u = res[0]
    if len(res) > 1:
        raise BitstreamError("a learned picture has 2 RESIDUAL units", element="unit_type", clause="8.2",
                             where=f"unit {res[1].index}",
                             shall="A learned picture shall contain at most one RESIDUAL unit")
    if u.unit_layer_id != highest:
        raise BitstreamError(f"RESIDUAL unit with unit_layer_id {u.unit_layer_id}; the highest LATENT unit of the "
                             f"picture has {highest}", element="unit_layer_id", clause="8.2",
                             where=f"unit {u.index}", bitpos=u.offset * 8 + 39,
                             shall="The unit_layer_id of the RESIDUAL unit shall be equal to the largest "
                                   "unit_layer_id of the LATENT units of its picture")
    last_latent = max(x.index for x in cp.units_of(hls.UT_LATENT))
    if u.index < last_latent:
        raise BitstreamError("RESIDUAL unit before a LATENT unit of its picture", element="unit_type",
                             clause="8.2", where=f"unit {u.index}",
                             shall="The RESIDUAL unit shall follow the LATENT units of its picture")
    return u
