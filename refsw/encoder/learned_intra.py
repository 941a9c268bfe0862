"""Learned intra encoding (non-normative): analysis (g_a, h_a, optional latent
RD search), entropy coding of the symbols against the decoder's integer means
and scales, reconstruction through the normative integer decoder, and the
rate search of --TargetBpp.  The decoding process is
:mod:`refsw.decoder.learned_intra` (clauses 8.2, 10).
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from syntax import hls
from syntax.rw import Struct

from ..decoder.entropy import RansSubstreams, encode_substreams
from ..decoder.learned_intra import IN_CLIP, anchor_mask, decode_latents, int_model, output_picture
from ..picture import Picture
from .core import (CODED_SIZE_ALIGN, CODING_MODE_TOOLS, LATENT_DECODERS, EncoderError, entropy_substream,
                   hash_units, layer_reconstructions, register_picture_encoder)


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


def encode_learned(enc, pic: Picture, sps, poc, q: int, *, num_layers: int, source: Picture | None = None):
    """Units and layer reconstructions of a learned picture; ``pic`` is RGB at the coded
    size, ``source`` the picture in the SPS colour format when that is YCbCr."""
    m = int_model(sps.sps_model_id)
    model = float_model(sps.sps_model_id)
    valid_hw = (pic.height - sps.sps_conf_win_bottom_offset, pic.width - sps.sps_conf_win_right_offset)
    z_hat, y_g = analyse(model, pic, q, getattr(enc.cfg, "LatentRefine", 0), valid_hw,
                         enc.search_schedule)
    z_hat = z_hat.numpy()
    acc = m.hyper_acc(z_hat, q)
    mu, k = m.entropy_params(acc, q)
    # the symbols are round(y) - mu: the encoder uses the decoder's integer means
    y_hat = np.clip(torch.round(y_g).to(torch.int64).numpy(), -IN_CLIP, IN_CLIP)
    sym = (y_hat - mu)[0]
    kk = k[0]
    _, Hz, Wz = z_hat[0].shape
    zi = np.broadcast_to(np.arange(m.Z).reshape(m.Z, 1, 1), (m.Z, Hz, Wz))
    units = [(hls.UT_PH, Struct(ph_pic_order_cnt=poc, ph_pic_type=0, ph_pic_coding_mode=hls.LEARNED_MODE,
                                ph_quality_idx=q), 0),
             (hls.UT_HYPER, Struct(hyp_num_channels=m.Z,
                                   hyp_substream=entropy_substream(encode_substreams(z_hat[0], zi, m.z_tables))), 0)]
    chans = m.layer_channels(num_layers)
    gt = m.y_tables
    if m.ctx is not None:
        # 10.9: anchors with the first-pass parameters, non-anchors with the refined ones
        A = anchor_mask(*y_hat.shape[-2:]).astype(bool)
        a = m.synthesis_input(y_hat, q) * A.astype(np.int64)
        mu2, k2 = m.entropy_params(m.context_acc(acc, a, q), q)
        sym2, kk2 = (y_hat - mu2)[0], k2[0]
    for layer in range(num_layers):
        c0, c1 = chans[layer], chans[layer + 1]
        if m.ctx is None:
            lat = Struct(lat_num_channels=c1 - c0,
                         lat_substream=entropy_substream(encode_substreams(sym[c0:c1], kk[c0:c1], gt)))
        else:
            lat = Struct(lat_num_channels=c1 - c0,
                         lat_substream=entropy_substream(encode_substreams(sym[c0:c1][:, A], kk[c0:c1][:, A], gt)),
                         lat_ctx_substream=entropy_substream(
                             encode_substreams(sym2[c0:c1][:, ~A], kk2[c0:c1][:, ~A], gt)))
        units.append((hls.UT_LATENT, lat, layer))
    x = m.synthesis(y_hat, q)[0].astype(np.uint16)
    recon = {num_layers - 1: output_picture(x, sps)}
    res_qp = getattr(enc.cfg, "ResidualQP", -1)
    if res_qp >= 0:
        # clause 11: the residual of the top layer's picture against the source, in the output format
        from .residual import encode_residual
        res, recon[num_layers - 1] = encode_residual(source or pic, recon[num_layers - 1], res_qp,
                                                     sps.sps_colour_space_idc)
        units.append((hls.UT_RESIDUAL, res, num_layers - 1))
    if num_layers > 1 and getattr(enc.cfg, "BaseLayerHash", 1):
        # base-layer-only reconstruction (10.4: channels of undecoded layers take mu)
        yb = y_hat.copy()
        yb[:, chans[1]:] = mu[:, chans[1]:]
        xb = m.synthesis(yb, q)[0].astype(np.uint16)
        recon[0] = output_picture(xb, sps)
    return units, recon


@register_picture_encoder("learned")
def encode_learned_picture(enc, pic: Picture, sps, poc):
    if pic.bit_depth != 8 or (pic.colour_space == "ycbcr" and pic.chroma_format not in ("420", "444")):
        raise EncoderError("CodingMode learned: the model codes 8-bit RGB, or 8-bit YCbCr 4:2:0 / 4:4:4 "
                           f"pictures (got {pic.chroma_format} {pic.bit_depth}-bit {pic.colour_space})")
    source = None
    if pic.colour_space == "ycbcr":
        from ..colour import ycbcr_to_rgb
        source = pic
        pic = ycbcr_to_rgb(pic)   # non-normative; the decoder converts back normatively (10.7)
    num_layers = sps.sps_num_latent_layers_minus1 + 1
    cfg = enc.cfg
    if cfg.TargetBpp > 0:
        q, units, recon, bpp = search_quality(enc, pic, sps, poc, cfg.TargetBpp, num_layers, source)
        if bpp > cfg.TargetBpp:
            enc.log.append(f"POC {poc:4d} TargetBpp {cfg.TargetBpp:g} is below the rate of the lowest quality "
                           f"index: coded at quality 0, {bpp:.4f} bpp")
    else:
        q = cfg.Quality
        units, recon = encode_learned(enc, pic, sps, poc, q, num_layers=num_layers, source=source)
    enc.log.append(f"POC {poc:4d} quality {q}" + (f" ResidualQP {cfg.ResidualQP}" if cfg.ResidualQP >= 0 else ""))
    return units, recon


def _units_bytes(units, sps):
    from syntax.units import BitstreamWriter
    w = BitstreamWriter()
    w.sps = sps
    for ut, payload, layer in units:
        w.write_unit(ut, payload, layer_id=layer)
    return w.nbytes


def search_quality(enc, pic, sps, poc, target_bpp, num_layers, source=None):
    """Largest quality index whose picture rate is <= target (bisection; rate
    increases with the quality index), or 0 if none is; returns (q, units, recon,
    bpp) of that coding."""
    npix = (pic.width - sps.sps_conf_win_right_offset) * (pic.height - sps.sps_conf_win_bottom_offset)
    lo, hi = 0, 63
    best, coded = 0, {}

    def code(q):
        units, recon = encode_learned(enc, pic, sps, poc, q, num_layers=num_layers, source=source)
        recons = layer_reconstructions(units, recon)
        # the latent hashes have a fixed size: a stand-in latent counts their bytes
        latents = {l: (np.zeros((1, 1, 1, 1), np.int64), 1) for l in recons} if getattr(enc.cfg, "LatentHash", 0) else None
        full = units + hash_units(recons, sps, enc.cfg.PictureHash, latents) if enc.cfg.PictureHash else units
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


def decoded_latents(units, sps, layers) -> dict:
    """{l: (y_hat, C_(l+1))} for the latent hashes (7.8): the latent the normative
    decoder gets from the HYPER unit and the LATENT units of layers 0..l of a
    picture's units (with a spatial context, 10.9, the channels of a layer depend
    on the layers present, so the encoder runs the decoding process itself)."""
    from syntax.units import Unit
    m = int_model(sps.sps_model_id)
    q = next(p for ut, p, _ in units if ut == hls.UT_PH).ph_quality_idx
    hyp = next(Unit(ut, layer, payload=p) for ut, p, layer in units if ut == hls.UT_HYPER)
    lats = [Unit(ut, layer, payload=p) for ut, p, layer in units if ut == hls.UT_LATENT]
    H, W = sps.sps_pic_height_in_luma_samples, sps.sps_pic_width_in_luma_samples
    chans = m.layer_channels(sps.sps_num_latent_layers_minus1 + 1)
    return {l: (decode_latents(m, sps, hyp, [u for u in lats if u.unit_layer_id <= l], q, H, W), chans[l + 1])
            for l in layers}


LATENT_DECODERS["learned"] = decoded_latents
CODED_SIZE_ALIGN["learned"] = 64
CODING_MODE_TOOLS["learned"] = {"sps_learned_intra_enabled_flag": 1, "sps_model_id": 1,
                                "sps_operating_point_set_id": 0, "sps_num_latent_layers_minus1": 1}
