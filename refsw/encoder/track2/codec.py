"""Track 2 sequence encoder (non-normative): coding mode "inner" (ph_pic_coding_mode 2).

Unit layout of a coded sequence written by :func:`encode_sequence`::

    SPS
    RESTORATION (rm_picture_level_flag 0: inner bit depth, resampling, truncation, post filter)
    for each output picture n (output order):
        PH (ph_pic_order_cnt = n)
        INNER         the access units of the inner bitstream not yet sent, in decoding
                      order, up to and including the access unit of picture n; absent
                      when there is none (picture dropped by temporal resampling, or
                      its access unit already sent with an earlier picture)
        RESTORATION   (rm_picture_level_flag 1: ROI boxes; written when the encoder
                      signals them and they differ from the previous picture's)
        DPH           (MD5 or CRC-32 of output picture n, PictureHash)
    EOS

The concatenation of the INNER units of a coded sequence is the inner
bitstream (7.5); the decoder decodes it as a whole at the end of the coded
sequence (8.4) and assigns its output pictures to the coded (not dropped)
pictures in order.
"""
from __future__ import annotations

import time

import numpy as np


from syntax import hls
from syntax.rw import Struct
from syntax.levels import level_for

from ...decoder.core import crop_to_output
from ...decoder.track2 import bitdepth, postfilter, spatial, temporal
from ...decoder.track2.reconstruct import params, reconstruct, restore_planes
from ..core import SEQUENCE_ENCODERS, EncoderError, build_sps, dph_payload, pad_picture
from ...decoder.track2 import inner as dec_inner
from . import inner, roi


def _coded_size(width: int, height: int, ratio: float) -> tuple[int, int]:
    """Even coded size closest to ratio * size, at least 16 x 16 (or the source size)."""
    def one(n):
        return min(n, max(16, 2 * int(round(n * ratio / 2))))
    return one(width), one(height)


def encode_sequence(enc, pics, writer):
    cfg = enc.cfg
    t_start = time.perf_counter()
    first = pics[0]
    for i, p in enumerate(pics):
        p.validate()
        if (p.width, p.height, p.chroma_format, p.bit_depth, p.colour_space) != \
                (first.width, first.height, first.chroma_format, first.bit_depth, first.colour_space):
            raise EncoderError(f"picture {i} has a different format from picture 0")
    if first.chroma_format != "420" or first.colour_space != "ycbcr":
        raise EncoderError(f"CodingMode inner: the inner codec codes 4:2:0 YCbCr, the input is "
                           f"{first.chroma_format} {first.colour_space}")
    try:
        codec = inner.CODEC_IDC[cfg.InnerCodec]
    except KeyError:
        raise EncoderError(f"InnerCodec: unknown inner codec {cfg.InnerCodec!r}")
    B = first.bit_depth
    shift = cfg.BitDepthShift if cfg.BitDepthTruncation else 0
    if shift >= B:
        raise EncoderError(f"BitDepthShift {shift} must be less than the input bit depth {B}")
    coded_depth = B - shift
    try:
        inner_depth = inner.inner_bit_depth(codec, coded_depth)
    except inner.InnerCodecError as e:
        raise EncoderError(f"InputBitDepth: {e}")
    W, H = enc.coded_size(first)
    N = len(pics)
    ratio = cfg.TemporalRatio if cfg.TemporalResampling else 1
    idx = temporal.coded_indices(N, ratio)
    cw, ch = _coded_size(W, H, cfg.SpatialResamplingRatio) if cfg.SpatialResampling else (W, H)
    tools = {
        "sps_inner_codec_enabled_flag": 1, "sps_inner_codec_idc": codec,
        "sps_roi_enabled_flag": int(cfg.RoiEnabled),
        "sps_spatial_resampling_enabled_flag": int(cfg.SpatialResampling),
        "sps_temporal_resampling_enabled_flag": int(cfg.TemporalResampling),
        "sps_bit_depth_truncation_enabled_flag": int(cfg.BitDepthTruncation),
        "sps_post_filter_enabled_flag": int(cfg.PostFilter),
    }
    if cfg.PostFilter:
        tools["sps_post_filter_id"] = 0
    sps = build_sps(first, cfg, coded_width=W, coded_height=H, tools=tools)
    padded = [pad_picture(p, W, H) for p in pics]

    # -- ROI (task network on the source) --------------------------------------
    rois = None
    if cfg.RoiEnabled:
        from ...tasks import get_task_network, parse_network_args
        try:
            net = get_task_network(cfg.RoiDetector, **parse_network_args(cfg.RoiDetectorArgs))
        except ValueError as e:
            raise EncoderError(f"RoiDetector / RoiDetectorArgs: {e}")
        t0 = time.perf_counter()
        per_pic = [roi.boxes_from_detections(net.detect(p), cfg.RoiThreshold, cfg.RoiMargin, W, H) for p in pics]
        rois = roi.segment_union(roi.temporal_union(per_pic, max(1, ratio)), cfg.RoiPeriod)
        max_roi = level_for(sps.sps_level_idc).MaxRoi
        rois = [r if len(r) <= max_roi else roi.merge_boxes([_bbox(r)]) for r in rois]
        # safe ROI (an encoder choice): a picture whose regions cover too little of it, e.g. none
        # because the detector found nothing, is not simplified (it would lose everything)
        simplify_pic = [roi.covered_fraction(r, W, H) >= cfg.RoiMinArea and bool(r) for r in rois]
        enc.log.append(f"ROI: {cfg.RoiDetector} on {N} pictures, {sum(map(len, per_pic))} boxes, "
                       f"{time.perf_counter() - t0:.2f} s; background simplified in "
                       f"{sum(simplify_pic)} of {N} pictures (RoiMinArea {cfg.RoiMinArea:g})")

    # -- pre-processing of the coded pictures ------------------------------------
    frames = []
    for n in idx:
        planes = padded[n].planes
        if rois is not None and simplify_pic[n]:
            planes = roi.simplify(planes, rois[n], cfg.RoiBackground, cfg.RoiBlurFactor, B)
        if (cw, ch) != (W, H):
            c2 = spatial.chroma_size(cw, ch)
            planes = [spatial.downsample_plane(pl, *((cw, ch) if c == 0 else c2), B) for c, pl in enumerate(planes)]
        if shift:
            planes = [bitdepth.truncate(pl, shift) for pl in planes]
        frames.append(planes)

    # -- inner codec ---------------------------------------------------------------
    st = inner.Structure(intra_period=cfg.IntraPeriod, gop_size=cfg.GOPSize, low_delay=cfg.LowDelay,
                         qp=cfg.QP, preset=cfg.InnerPreset)
    t0 = time.perf_counter()
    try:
        stream = inner.encode(codec, frames, cw, ch, coded_depth, inner_depth, st)
    except inner.InnerCodecError as e:
        raise EncoderError(f"InnerCodec: {e}")
    t_inner = time.perf_counter() - t0
    inner_pics = dec_inner.decode(codec, stream.data, cw, ch, inner_depth, len(idx), where="encoder")

    # -- sequence-level restoration metadata ---------------------------------------
    rm = Struct(rm_picture_level_flag=0, rm_inner_bit_depth_minus8=inner_depth - 8)
    if cfg.SpatialResampling:
        rm.rm_spatial_resampling_flag = int((cw, ch) != (W, H))
        if rm.rm_spatial_resampling_flag:
            rm.rm_coded_width_in_luma_samples, rm.rm_coded_height_in_luma_samples = cw, ch
            rm.rm_upsampling_filter_idc = 0
    if cfg.TemporalResampling:
        rm.rm_temporal_resampling_flag = int(ratio > 1)
        if ratio > 1:
            rm.rm_temporal_ratio_minus1 = ratio - 1
            rm.rm_temporal_interp_idc = cfg.TemporalInterp
    if cfg.BitDepthTruncation:
        rm.rm_bit_depth_truncation_flag = 1
        rm.rm_bit_depth_shift = shift
    if cfg.PostFilter:
        rm.rm_post_filter_flag = 0
        p0 = params(sps, rm)
        pre = [restore_planes(p0, planes, post_filter=False) for planes in inner_pics]
        flags, coeffs = [], []
        for grp, comps in ((0, (0,)), (1, (1, 2))):
            pairs = [(r[c], padded[n].planes[c]) for r, n in zip(pre, idx) for c in comps]
            masks = None
            if rois is not None and cfg.RoiBackground != "none":   # fit where detail was kept
                masks = [(roi.roi_mask(rois[n], W, H) if simplify_pic[n] else np.ones((H, W), bool))
                         [::1 if c == 0 else 2, ::1 if c == 0 else 2] for n in idx for c in comps]
            co = postfilter.estimate(pairs, B, masks)
            flags.append(int(co is not None))
            coeffs.append(co or [0] * 6)
        if any(flags):
            rm.rm_post_filter_flag = 1
            rm.rm_pf_component_flag = flags
            rm.rm_pf_coeff = [coeffs[c] if flags[c] else None for c in range(2)]
        enc.log.append(f"post filter: luma {coeffs[0] if flags[0] else 'off'}, chroma "
                       f"{coeffs[1] if flags[1] else 'off'}")
    recon = reconstruct(params(sps, rm), inner_pics, N)

    # -- units -----------------------------------------------------------------------
    writer.write_unit(hls.UT_SPS, sps)
    writer.write_unit(hls.UT_RESTORATION, rm)
    enc.log.extend(stream.log)
    enc.log.append(f"inner {cfg.InnerCodec.upper()} {st.name} QP {cfg.QP}: {len(idx)} of {N} pictures coded at "
                   f"{cw}x{ch} {inner_depth}-bit, {len(stream.data)} bytes, {t_inner:.2f} s")
    # access units to output pictures (see the module docstring)
    out_of_inner = {i: n for i, n in enumerate(idx)}
    au_iter = [(data, out_of_inner[i]) for data, i in stream.access_units]
    if cfg.InnerPacking == "sequence":
        au_iter = [(data, 0) for data, _ in au_iter]
    max_payload = level_for(sps.sps_level_idc).MaxUnitBytes - 2

    def write_inner(aus):
        """INNER units of at most MaxUnitBytes, split at access-unit boundaries."""
        chunk = b""
        for au in aus:
            if chunk and len(chunk) + len(au) > max_payload:
                writer.write_unit(hls.UT_INNER, Struct(icp_data_byte=chunk))
                chunk = b""
            chunk += au
        if chunk:
            writer.write_unit(hls.UT_INNER, Struct(icp_data_byte=chunk))
    pos_of = {}
    for k, (_, n) in enumerate(au_iter):
        pos_of[n] = k
    sent = 0
    outputs = []
    for n in range(N):
        start = writer.nbytes
        ptype = stream.pic_types[idx.index(n)] if n in idx else 2
        writer.write_unit(hls.UT_PH, Struct(ph_pic_order_cnt=n, ph_pic_type=ptype,
                                             ph_pic_coding_mode=hls.INNER_MODE))
        if n in pos_of and sent <= pos_of[n]:
            write_inner([au_iter[k][0] for k in range(sent, pos_of[n] + 1)])
            sent = pos_of[n] + 1
        if rois is not None and cfg.RoiSignal and (n == 0 or rois[n] != rois[n - 1]):
            boxes = rois[n]
            writer.write_unit(hls.UT_RESTORATION, Struct(
                rm_picture_level_flag=1, rm_num_roi=len(boxes),
                rm_roi_x=[b[0] for b in boxes], rm_roi_y=[b[1] for b in boxes],
                rm_roi_width_minus1=[b[2] - 1 for b in boxes], rm_roi_height_minus1=[b[3] - 1 for b in boxes]))
        out = crop_to_output(recon[n], sps)
        outputs.append(out)
        if cfg.PictureHash:
            writer.write_unit(hls.UT_DPH, dph_payload(out, cfg.PictureHash))
        enc.log.append(f"POC {n:4d} {'IPB'[ptype]} {'coded' if n in idx else 'interpolated':12s} "
                       f"{8 * (writer.nbytes - start):10d} bits")
    if sent != len(au_iter):
        raise EncoderError("internal: inner access units left unsent")
    enc.log.append(f"total encoder time {time.perf_counter() - t_start:.2f} s")
    return outputs


def _bbox(boxes):
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[0] + b[2] for b in boxes)
    y1 = max(b[1] + b[3] for b in boxes)
    return (x0, y0, x1 - x0, y1 - y0)


SEQUENCE_ENCODERS["inner"] = encode_sequence
