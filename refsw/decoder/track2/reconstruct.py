"""Normative Track 2 restoration (docs/spec/track2.md, T2.8): from the
pictures output by the inner decoder to the output pictures of the coded
sequence.  The encoder runs the same functions to get its reconstruction.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from syntax import hls
from syntax.errors import BitstreamError

from ...picture import Picture
from .. import probe
from . import bitdepth, postfilter, spatial, temporal


@dataclass
class Params:
    width: int            # sps_pic_width_in_luma_samples
    height: int
    bit_depth: int        # BitDepth
    codec_idc: int
    inner_depth: int      # InnerBitDepth
    coded_width: int      # CodedWidth (inner picture size)
    coded_height: int
    spatial: bool
    temporal_ratio: int   # 1: no temporal resampling
    interp_idc: int
    shift: int            # BitDepthShift (0: no truncation)
    pf: tuple = (None, None)   # post-filter coefficients for luma, chroma (None: not filtered)

    @property
    def coded_depth(self) -> int:
        return self.bit_depth - self.shift


def params(sps, rm) -> Params:
    """Derived variables of T2.1 from the SPS and the sequence-level RM."""
    def err(msg, element):
        return BitstreamError(msg, structure="restoration_metadata", element=element, clause="T2.1")
    if rm is None:
        raise err("a coded sequence of inner-codec pictures has no sequence-level RESTORATION unit "
                  "(rm_picture_level_flag equal to 0) before its first picture header", "rm_picture_level_flag")
    if sps.sps_chroma_format_idc != 1 or sps.sps_colour_space_idc != 0:
        raise BitstreamError("inner-codec pictures need sps_chroma_format_idc equal to 1 (4:2:0 YCbCr)",
                             structure="seq_parameter_set", element="sps_chroma_format_idc", clause="T2.1")
    w, h = sps.sps_pic_width_in_luma_samples, sps.sps_pic_height_in_luma_samples
    sp = bool(rm.get("rm_spatial_resampling_flag", 0))
    tr = bool(rm.get("rm_temporal_resampling_flag", 0))
    bd = bool(rm.get("rm_bit_depth_truncation_flag", 0))
    pf = (None, None)
    if rm.get("rm_post_filter_flag", 0):
        if sps.sps_post_filter_id != 0:
            raise BitstreamError(f"sps_post_filter_id {sps.sps_post_filter_id} is not supported by this decoder "
                                 "(0: signalled-coefficient filter)", structure="seq_parameter_set",
                                 element="sps_post_filter_id", clause="T2.6")
        pf = tuple(list(rm.rm_pf_coeff[c]) if rm.rm_pf_component_flag[c] else None for c in range(2))
    return Params(
        width=w, height=h, bit_depth=hls.bit_depth(sps), codec_idc=sps.sps_inner_codec_idc,
        inner_depth=rm.rm_inner_bit_depth_minus8 + 8,
        coded_width=rm.rm_coded_width_in_luma_samples if sp else w,
        coded_height=rm.rm_coded_height_in_luma_samples if sp else h,
        spatial=sp, temporal_ratio=rm.rm_temporal_ratio_minus1 + 1 if tr else 1,
        interp_idc=rm.rm_temporal_interp_idc if tr else 0,
        shift=rm.rm_bit_depth_shift if bd else 0, pf=pf)


def restore_planes(p: Params, planes, post_filter: bool = True):
    """T2.8 step 2 for one inner picture: bit depth, spatial, post filter."""
    out = []
    cw, ch = spatial.chroma_size(p.width, p.height)
    for c, plane in enumerate(planes):
        x = bitdepth.to_coded_depth(plane, p.inner_depth, p.coded_depth)
        x = bitdepth.restore(x, p.shift)
        if p.spatial:
            tw, th = (p.width, p.height) if c == 0 else (cw, ch)
            x = spatial.upsample_plane(x, tw, th, p.bit_depth, chroma=c > 0)
        coeffs = p.pf[0 if c == 0 else 1]
        if post_filter and coeffs is not None:
            x = postfilter.apply(x, coeffs, p.bit_depth)
        out.append(x)
    return out


def _probe_tools(p: Params, post_filter: bool) -> None:
    """Decoding-process probe (probe.py): which Track 2 tools a coded sequence switches on."""
    c = probe.COUNTER
    c[("inner codec", {0: "HEVC", 1: "VVC"}.get(p.codec_idc, "?"))] += 1
    c[("T2.3 spatial resampling", "on" if p.spatial else "off")] += 1
    c[("T2.4 temporal resampling", "on" if p.temporal_ratio > 1 else "off")] += 1
    c[("T2.5 bit depth", "BitDepthShift > 0" if p.shift else "BitDepthShift = 0")] += 1
    c[("T2.5 bit depth", "d > 0 (InnerBitDepth > CodedBitDepth)" if p.inner_depth > p.coded_depth
       else "d = 0")] += 1
    for name, coeffs in (("luma", p.pf[0]), ("chroma", p.pf[1])):
        c[("T2.6 post filter", f"{name} {'on' if post_filter and coeffs is not None else 'off'}")] += 1


def reconstruct(p: Params, inner_pics, num_pics: int, post_filter: bool = True) -> list[Picture]:
    """Output pictures 0 .. num_pics - 1 of a coded sequence (T2.8)."""
    idx = temporal.coded_indices(num_pics, p.temporal_ratio)
    if len(inner_pics) != len(idx):
        raise BitstreamError(f"{len(inner_pics)} inner pictures for {len(idx)} coded pictures",
                             structure="inner_codec_payload", clause="T2.4")
    restored = {n: restore_planes(p, planes, post_filter) for n, planes in zip(idx, inner_pics)}
    if probe.COUNTER is not None:
        _probe_tools(p, post_filter)
    out = []
    for n in range(num_pics):
        if n in restored:
            planes = restored[n]
        else:
            a = max(k for k in idx if k < n)
            b = min(k for k in idx if k > n)
            if probe.COUNTER is not None:
                probe.COUNTER[("T2.4 dropped picture", "repetition" if p.interp_idc == temporal.INTERP_REPEAT
                               else "weighted average, gap 2" if b - a == 2 else "weighted average, gap >= 3")] += 1
            planes = [temporal.interpolate(pa, pb, a, b, n, p.interp_idc)
                      for pa, pb in zip(restored[a], restored[b])]
        out.append(Picture([np.ascontiguousarray(x, dtype=np.uint16) for x in planes], "420", p.bit_depth))
    return out
