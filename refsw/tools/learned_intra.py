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
   decoded take y_hat = mu.
4. Synthesis (10.5): a = Clip3(-2^15, 2^15-1, (Clip3(-2^20, 2^20, y_hat) * GD[q][c] + rnd) >> Sg),
   then the integer layers of g_s, whose last layer gives the R, G, B
   samples in [0, 255].
"""
from __future__ import annotations

import functools
import json
import os

import numpy as np
import torch

from syntax import hls
from syntax.errors import BitstreamError
from syntax.rw import Struct

from ..decoder import CodedPicture, register_picture_decoder, sps_picture_format
from ..encoder import (CODED_SIZE_ALIGN, CODING_MODE_TOOLS, EncoderError, hash_units, layer_reconstructions,
                       register_picture_encoder)
from ..entropy import RansSubstreams, RansTables, decode_substreams, encode_substreams, gaussian_tables
from ..models.io import read_npz
from ..models.registry import check_int_data, get_entry
from ..nn.intnet import check_bounds, exact_mode, from_npz, requant, run
from ..picture import Picture

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
        # the Requant products outside the layers (10.3, 10.5): |v| * Max|m| + Max|a| + 2^(s-1) < 2^63
        for what, vmax, mult, add, shift in (
                ("ZD (10.3 step 2)", IN_CLIP, self.zd_mult, 0, self.zd_shift),
                ("GD (10.5)", IN_CLIP, self.gd_mult, 0, self.gd_shift),
                ("MU (10.3 step 3)", acc_hs, self.mu_mult, 0, self.mu_shift - self.mu_frac_bits),
                ("LS, LSA (10.3 step 3)", acc_hs, self.ls_mult, int(np.abs(self.ls_add).max()), self.ls_shift)):
            if vmax * int(np.abs(mult).max()) + add + (1 << max(shift - 1, 0)) >= 1 << 63:
                raise ValueError(f"{path}: requantisation product bound of {what} >= 2^63")
        self.cache = {}

    def layer_channels(self, num_layers: int):
        """[C_0, C_1, ..., C_L]: channel ranges of the latent layers."""
        if num_layers == 1:
            return [0, self.M]
        if num_layers == 2:
            return [0, self.base, self.M]
        raise BitstreamError(f"model {self.model_id} has 1 or 2 latent layers, the SPS signals {num_layers}",
                             element="sps_num_latent_layers_minus1", clause="10.1")

    # -- 10.3 hyper-synthesis ------------------------------------------------
    def hyper_synthesis(self, z_hat: torch.Tensor, q: int, path="float64"):
        x = requant(z_hat.clamp(-IN_CLIP, IN_CLIP), self.zd_mult[q], None, self.zd_shift, -LAT_MAX, LAT_MAX - 1)
        acc = run(self.hs, x, path, return_last_acc=True, cache=self.cache)
        M = self.M
        n = self.mu_frac_bits
        mu = requant(acc[:, :M], self.mu_mult[q], None, self.mu_shift - n, -LAT_MAX << n, (LAT_MAX << n) - 1)
        k = requant(acc[:, M:], self.ls_mult, self.ls_add[q], self.ls_shift, 0, 63)
        if n == 0:
            return mu, k
        mu_r, f = split_mean(mu, n)
        return mu_r, (k << n) + f

    # -- 10.5 synthesis ---------------------------------------------------------
    def synthesis(self, y_hat: torch.Tensor, q: int, path="float64"):
        x = requant(y_hat.clamp(-IN_CLIP, IN_CLIP), self.gd_mult[q], None, self.gd_shift, -LAT_MAX, LAT_MAX - 1)
        return run(self.gs, x, path, cache=self.cache)


def split_mean(mu_f: torch.Tensor, n: int):
    """10.3 step 4: a mean in units of 2^-n -> (mu_r, f): mu_r the mean rounded
    (half up) to an integer, f = 0..2^n - 1 its position, mean = mu_r + (f - 2^(n-1)) / 2^n."""
    half = 1 << (n - 1)
    mu_r = (mu_f + half) >> n
    return mu_r, mu_f - (mu_r << n) + half


@functools.lru_cache(maxsize=4)
def int_model(model_id: int) -> IntModel:
    try:
        entry = get_entry(model_id)
    except KeyError:
        raise BitstreamError(f"unknown sps_model_id {model_id}", element="sps_model_id", clause="10.1")
    check_int_data(entry.int_path, entry.int_sha256, f"sps_model_id {model_id}")
    return IntModel(entry.int_path, model_id)


def _device(dec_or_enc):
    dev = getattr(dec_or_enc, "device", "cpu") or "cpu"
    if dev != "cpu":
        exact_mode()
    return dev


def _check_sps(sps, where_unit):
    ok = sps.sps_bit_depth_minus8 == 0 and (
        (sps.sps_colour_space_idc == 1 and sps.sps_chroma_format_idc == 3)
        or (sps.sps_colour_space_idc == 0 and sps.sps_chroma_format_idc in (1, 3)))
    if not ok:
        raise BitstreamError("the learned intra model codes 8-bit RGB 4:4:4, or YCbCr 4:4:4 / 4:2:0 pictures",
                             element="sps_colour_space_idc", clause="10.1", where=where_unit)


def _output_picture(x: np.ndarray, sps) -> Picture:
    """R, G, B sample arrays -> the decoded picture in the SPS colour format (10.7)."""
    pic = Picture([x[0], x[1], x[2]], "444", 8, "rgb")
    if sps.sps_colour_space_idc == 0:
        from ..colour import rgb_to_ycbcr
        pic = rgb_to_ycbcr(pic, "420" if sps.sps_chroma_format_idc == 1 else "444")
    return pic


def decode_latents(m: IntModel, sps, hyp_unit, lat_units, q, H, W, path="float64", device="cpu"):
    """Entropy decoding and hyper-synthesis: y_hat (1, M, H/16, W/16) int64."""
    hs_, ws_ = H // m.total_stride, W // m.total_stride
    hyp = hyp_unit.payload
    if hyp.hyp_num_channels != m.Z:
        raise BitstreamError(f"hyp_num_channels {hyp.hyp_num_channels}, the model has {m.Z}",
                             element="hyp_num_channels", clause="7.3", where=f"unit {hyp_unit.index}")
    zi = np.broadcast_to(np.arange(m.Z).reshape(m.Z, 1, 1), (m.Z, hs_, ws_))
    z_hat = decode_substreams(_subs(hyp.hyp_substream), zi, m.z_tables)
    z_hat = torch.from_numpy(z_hat.astype(np.int64))[None].to(device)
    mu, k = m.hyper_synthesis(z_hat, q, path)
    y_hat = mu.clone()
    chans = m.layer_channels(sps.sps_num_latent_layers_minus1 + 1)
    kk = k[0].cpu().numpy()
    gt = m.y_tables
    for u in lat_units:
        layer = u.unit_layer_id
        c0, c1 = chans[layer], chans[layer + 1]
        lat = u.payload
        if lat.lat_num_channels != c1 - c0:
            raise BitstreamError(f"lat_num_channels {lat.lat_num_channels}, layer {layer} of the model has "
                                 f"{c1 - c0}", element="lat_num_channels", clause="7.2", where=f"unit {u.index}")
        s = decode_substreams(_subs(lat.lat_substream), kk[c0:c1], gt)
        y_hat[0, c0:c1] += torch.from_numpy(s.astype(np.int64)).to(device)
    return y_hat


def _subs(es) -> RansSubstreams:
    return RansSubstreams(es.es_num_lanes_minus1 + 1, bytes(es.es_lane_data), bytes(es.es_escape_data))


def _es(subs: RansSubstreams) -> Struct:
    return Struct(es_num_lanes_minus1=subs.num_lanes - 1, es_lane_data_size=len(subs.lane_data),
                  es_escape_data_size=len(subs.escape_data), es_lane_data=subs.lane_data,
                  es_escape_data=subs.escape_data)


def learned_picture_units(cp: CodedPicture):
    """Checks common to every decoding of a learned picture (8.2, 10.1): the
    model, its coded size, one HYPER unit.  Returns (model, H, W, HYPER unit,
    LATENT units)."""
    sps = cp.sps
    _check_sps(sps, f"unit {cp.ph_unit.index}")
    m = int_model(sps.sps_model_id)
    sets = get_entry(sps.sps_model_id).operating_point_sets
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
    dev = _device(dec)
    y_hat = decode_latents(m, sps, hyp, lats, cp.ph.ph_quality_idx, H, W, path, dev)
    x = m.synthesis(y_hat, cp.ph.ph_quality_idx, path)[0].cpu().numpy().astype(np.uint16)
    return _output_picture(x, sps)


# ---------------------------------------------------------------------------
# Encoder (non-normative)
# ---------------------------------------------------------------------------

@functools.lru_cache(maxsize=2)
def float_model(model_id: int):
    from ..models.registry import load_model
    return load_model(model_id)


def analyse(model, pic: Picture, q: int, refine: int = 0, valid_hw=None, schedule=None):
    """Encoder analysis: z_hat and the gained latent y (float) of a padded picture.

    refine > 0: that many iterations of latent RD optimisation (latent_rdo.py) with
    ``schedule`` (a latent_rdo.SearchSchedule; None: the shipped one)."""
    x = torch.from_numpy(np.stack(pic.planes).astype(np.float32) / 255.0)[None]
    qq = torch.tensor([float(q)])
    with torch.no_grad():
        gE, gD, zE, zD, lgE = model.gains(qq)
        y = model.analysis(x)
        z = model.h_a(y) * zE
        y_g = y * gE
    if refine > 0:
        from .latent_rdo import refine_latents
        y_g, z = refine_latents(model, x, y_g, z, q, refine, valid_hw, schedule)
    S = model.cfg.z_support
    z_hat = torch.round(z).clamp(-S, S).to(torch.int64)
    return z_hat, y_g


def encode_learned(enc, pic: Picture, sps, poc, q: int, *, num_layers: int):
    m = int_model(sps.sps_model_id)
    model = float_model(sps.sps_model_id)
    valid_hw = (pic.height - sps.sps_conf_win_bottom_offset, pic.width - sps.sps_conf_win_right_offset)
    z_hat, y_g = analyse(model, pic, q, getattr(enc.cfg, "LatentRefine", 0), valid_hw,
                         enc.search_schedule)
    mu, k = m.hyper_synthesis(z_hat, q)
    # the symbols are round(y) - mu: the encoder uses the decoder's integer means
    y_hat = torch.round(y_g).to(torch.int64).clamp(-IN_CLIP, IN_CLIP)
    sym = (y_hat - mu)[0].numpy()
    kk = k[0].numpy()
    _, Hz, Wz = z_hat[0].shape
    zi = np.broadcast_to(np.arange(m.Z).reshape(m.Z, 1, 1), (m.Z, Hz, Wz))
    units = [(hls.UT_PH, Struct(ph_pic_order_cnt=poc, ph_pic_type=0, ph_pic_coding_mode=hls.LEARNED_MODE,
                                ph_quality_idx=q), 0),
             (hls.UT_HYPER, Struct(hyp_num_channels=m.Z,
                                   hyp_substream=_es(encode_substreams(z_hat[0].numpy(), zi, m.z_tables))), 0)]
    chans = m.layer_channels(num_layers)
    gt = m.y_tables
    for layer in range(num_layers):
        c0, c1 = chans[layer], chans[layer + 1]
        subs = encode_substreams(sym[c0:c1], kk[c0:c1], gt)
        units.append((hls.UT_LATENT, Struct(lat_num_channels=c1 - c0, lat_substream=_es(subs)), layer))
    x = m.synthesis(y_hat, q)[0].numpy().astype(np.uint16)
    recon = {num_layers - 1: _output_picture(x, sps)}
    if num_layers > 1 and getattr(enc.cfg, "BaseLayerHash", 1):
        # base-layer-only reconstruction (10.4: channels of undecoded layers take mu)
        yb = y_hat.clone()
        yb[:, chans[1]:] = mu[:, chans[1]:]
        xb = m.synthesis(yb, q)[0].numpy().astype(np.uint16)
        recon[0] = _output_picture(xb, sps)
    return units, recon


@register_picture_encoder("learned")
def encode_learned_picture(enc, pic: Picture, sps, poc):
    if pic.bit_depth != 8 or (pic.colour_space == "ycbcr" and pic.chroma_format not in ("420", "444")):
        raise EncoderError("CodingMode learned: the model codes 8-bit RGB, or 8-bit YCbCr 4:2:0 / 4:4:4 "
                           f"pictures (got {pic.chroma_format} {pic.bit_depth}-bit {pic.colour_space})")
    if pic.colour_space == "ycbcr":
        from ..colour import ycbcr_to_rgb
        pic = ycbcr_to_rgb(pic)   # non-normative; the decoder converts back normatively (10.7)
    num_layers = sps.sps_num_latent_layers_minus1 + 1
    cfg = enc.cfg
    if cfg.TargetBpp > 0:
        q, units, recon, bpp = search_quality(enc, pic, sps, poc, cfg.TargetBpp, num_layers)
        if bpp > cfg.TargetBpp:
            enc.log.append(f"POC {poc:4d} TargetBpp {cfg.TargetBpp:g} is below the rate of the lowest quality "
                           f"index: coded at quality 0, {bpp:.4f} bpp")
    else:
        q = cfg.Quality
        units, recon = encode_learned(enc, pic, sps, poc, q, num_layers=num_layers)
    enc.log.append(f"POC {poc:4d} quality {q}")
    return units, recon


def _units_bytes(units, sps):
    from syntax.units import BitstreamWriter
    w = BitstreamWriter()
    w.sps = sps
    for ut, payload, layer in units:
        w.write_unit(ut, payload, layer_id=layer)
    return w.nbytes


def search_quality(enc, pic, sps, poc, target_bpp, num_layers):
    """Largest quality index whose picture rate is <= target (bisection; rate
    increases with the quality index), or 0 if none is; returns (q, units, recon,
    bpp) of that coding."""
    npix = (pic.width - sps.sps_conf_win_right_offset) * (pic.height - sps.sps_conf_win_bottom_offset)
    lo, hi = 0, 63
    best, coded = 0, {}

    def code(q):
        units, recon = encode_learned(enc, pic, sps, poc, q, num_layers=num_layers)
        full = units + hash_units(layer_reconstructions(units, recon), sps) if enc.cfg.PictureHash else units
        return units, recon, 8 * _units_bytes(full, sps) / npix   # the picture's rate includes its DPH units

    while lo <= hi:
        mid = (lo + hi) // 2
        coded[mid] = code(mid)
        if coded[mid][2] <= target_bpp:
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    units, recon, bpp = coded[best] if best in coded else code(best)
    return best, units, recon, bpp


CODED_SIZE_ALIGN["learned"] = 64
CODING_MODE_TOOLS["learned"] = {"sps_learned_intra_enabled_flag": 1, "sps_model_id": 1,
                                "sps_operating_point_set_id": 0, "sps_num_latent_layers_minus1": 1}
