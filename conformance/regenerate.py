"""Regenerate the conformance suite: bitstreams and manifest.json.

    .venv/bin/python conformance/regenerate.py [--check]

Encoder-produced streams are built from conformance/cfg/<name>.cfg and a
synthetic input (an integer pattern, identical on every machine); syntax-level
streams that the encoder does not produce are built unit by unit; negative
streams are valid streams with one defect. ``--check`` regenerates into a
temporary directory and fails if any byte differs from the committed suite.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import refsw.encoder  # noqa: E402,F401  (registers the coding modes)
from refsw.cfg import parse  # noqa: E402
from refsw.conformance import decode_internal, trace_of  # noqa: E402
from refsw.encoder import Encoder  # noqa: E402
from refsw.options import ENCODER_OPTIONS  # noqa: E402
from refsw.picture import Picture, picture_md5  # noqa: E402
from syntax import hls  # noqa: E402
from syntax.errors import BitstreamError  # noqa: E402
from syntax.levels import LEVELS, PROFILES  # noqa: E402
from syntax.rw import Struct  # noqa: E402
from syntax.units import BitstreamWriter, parse_units, rewrite_unit  # noqa: E402


def synth_picture(w, h, chroma_format="420", bit_depth=8, colour_space="ycbcr", t=0):
    """Deterministic integer test pattern: gradient + texture + moving block."""
    shapes = {"400": [(h, w)], "444": [(h, w)] * 3,
              "420": [(h, w), ((h + 1) // 2, (w + 1) // 2), ((h + 1) // 2, (w + 1) // 2)]}[chroma_format]
    planes = []
    m = 1 << bit_depth
    for c, (ph, pw) in enumerate(shapes):
        y, x = np.mgrid[0:ph, 0:pw].astype(np.int64)
        v = (x * 7 + y * 5 + c * 31) * m // (8 * (pw + ph) + 1)
        v += ((x * 73856093) ^ (y * 19349663) ^ ((t + c) * 83492791)) % (m // 8 + 1)
        bx = (3 * t) % max(pw, 1)
        v = np.where((x >= bx) & (x < bx + pw // 4 + 1) & (y < ph // 2 + 1), m - 1 - v % (m // 2), v)
        planes.append((v % m).astype(np.uint16))
    return Picture(planes, chroma_format, bit_depth, colour_space)


def _encode(cfgname, pics, extra=()):
    c, _ = parse(["--cfg", os.path.join(HERE, "cfg", cfgname + ".cfg"), *extra], ENCODER_OPTIONS)
    return Encoder(c).encode(pics)


# name -> (description, exercises, builder)
def _pcm_rgb():
    return _encode("pcm", [synth_picture(13, 7, "444", 8, "rgb")])


def _pcm_420_10bit():
    return _encode("pcm", [synth_picture(17, 9, "420", 10, t=t) for t in range(3)])


def _pcm_400():
    return _encode("pcm", [synth_picture(16, 16, "400", 8)])


def _pcm_444_16bit():
    return _encode("pcm", [synth_picture(8, 6, "444", 16)], ["--Level", "1"])


def _syntax_misc():
    """Syntax the encoder does not produce: timing, SPS extension, left/top
    cropping, reserved/unspecified unit types, a repeated SPS, picture-level
    RESTORATION unit."""
    pic = synth_picture(20, 12, "420", 8)
    sps = Struct(sps_profile_idc=1, sps_level_idc=20, sps_pic_width_in_luma_samples=20,
                 sps_pic_height_in_luma_samples=12, sps_chroma_format_idc=1, sps_colour_space_idc=0,
                 sps_bit_depth_minus8=0, sps_conformance_window_flag=1, sps_conf_win_left_offset=2,
                 sps_conf_win_right_offset=1, sps_conf_win_top_offset=4, sps_conf_win_bottom_offset=3,
                 sps_timing_info_present_flag=1, sps_num_units_in_tick=1001, sps_time_scale=60000,
                 sps_pcm_enabled_flag=1, sps_learned_intra_enabled_flag=0, sps_inner_codec_enabled_flag=0,
                 sps_feature_coding_enabled_flag=0, sps_roi_enabled_flag=0,
                 sps_spatial_resampling_enabled_flag=0, sps_temporal_resampling_enabled_flag=0,
                 sps_bit_depth_truncation_enabled_flag=0, sps_post_filter_enabled_flag=0,
                 sps_extension_flag=1, sps_extension_data_flag=[1, 0, 0, 1, 1])
    from refsw.decoder import crop_to_output
    w = BitstreamWriter()
    w.write_unit(hls.UT_SPS, sps)
    w.write_unit(50, None, raw=b"unspecified unit: skipped")
    for poc in range(2):
        p = synth_picture(20, 12, "420", 8, t=poc)
        w.write_unit(hls.UT_PH, Struct(ph_pic_order_cnt=poc, ph_pic_type=0, ph_pic_coding_mode=0))
        w.write_unit(hls.UT_PCM, Struct(pcm_sample=p.planes))
        w.write_unit(40, None, raw=b"\x00\x01reserved")
        w.write_unit(hls.UT_DPH, Struct(dph_hash_type=0, dph_picture_md5=picture_md5(crop_to_output(p, sps))))
        if poc == 0:
            w.write_unit(hls.UT_SPS, sps)          # repeated SPS: a new coded sequence, same content
    w.write_unit(hls.UT_EOS, Struct())
    return w.getvalue()


def _learned(w, h, q, extra=()):
    # natural-looking content for the learned model: the shipped default image, cropped
    from refsw.content import default_image_path
    from refsw.picture import read_png
    src = read_png(default_image_path())
    pic = Picture([p[40:40 + h, 60:60 + w].copy() for p in src.planes], "444", 8, "rgb")
    return _encode("learned", [pic], ["-q", str(q), *extra])


def _learned_face():
    # a picture with a face (scikit-image astronaut, public domain), 256x192
    import numpy as np
    from PIL import Image
    from skimage import data
    im = np.asarray(Image.fromarray(data.astronaut()[:384, 64:576]).resize((256, 192), Image.BICUBIC))
    pic = Picture([im[..., c].astype(np.uint16) for c in range(3)], "444", 8, "rgb")
    return _encode("learned", [pic], ["-q", "20"])


def _learned_base():
    from refsw.apps.extract import extract
    return extract(_learned(70, 45, 45), 0)[0]


def _learned_ycbcr(chroma_format, extra=()):
    """YCbCr input to the learned codec (10.7): the crop of _learned, converted by 10.7's matrix."""
    from refsw.colour import rgb_to_ycbcr
    from refsw.content import default_image_path
    from refsw.picture import read_png
    src = read_png(default_image_path())
    rgb = Picture([p[40:104, 60:124].copy() for p in src.planes], "444", 8, "rgb")
    return _encode("learned", [rgb_to_ycbcr(rgb, chroma_format)], ["-q", "30", *extra])


def _learned_face_latent_hash():
    """The face picture of _learned_face with the latent hash (LatentHash 1): the task branch
    checks the latent of layer 0 against the layer-0 DPH unit (8.6)."""
    import numpy as np
    from PIL import Image
    from skimage import data
    im = np.asarray(Image.fromarray(data.astronaut()[:384, 64:576]).resize((256, 192), Image.BICUBIC))
    pic = Picture([im[..., c].astype(np.uint16) for c in range(3)], "444", 8, "rgb")
    return _encode("learned", [pic], ["-q", "20", "--LatentHash", "1"])


def _learned_one_layer():
    """One latent layer (sps_num_latent_layers_minus1 0, channels [0, 160), 10.1), which the
    encoder's cfg does not offer: built from the learned picture encoder's units."""
    from refsw.encoder.core import (CODING_MODE_TOOLS, PICTURE_ENCODERS, build_sps, hash_units,
                                    layer_reconstructions)
    from refsw.content import default_image_path
    from refsw.picture import read_png
    c, _ = parse(["--cfg", os.path.join(HERE, "cfg", "learned.cfg"), "-q", "30", "--TaskBranches", "none"],
                 ENCODER_OPTIONS)
    src = read_png(default_image_path())
    pic = Picture([p[40:104, 60:124].copy() for p in src.planes], "444", 8, "rgb")
    sps = build_sps(pic, c, tools={**CODING_MODE_TOOLS["learned"], "sps_num_latent_layers_minus1": 0})
    units, recon = PICTURE_ENCODERS["learned"](Encoder(c), pic, sps, 0)
    w = BitstreamWriter()
    w.write_unit(hls.UT_SPS, sps)
    for ut, payload, layer in units + hash_units(layer_reconstructions(units, recon), sps):
        w.write_unit(ut, payload, layer_id=layer)
    w.write_unit(hls.UT_EOS, Struct())
    return w.getvalue()


def _syntax_feature_profile():
    """The Feature profile with sps_feature_coding_enabled_flag 1 and PCM pictures only (a coded
    sequence need not have FEATURE pictures), without DPH units (8.6: "no hash")."""
    d = _encode("pcm", [synth_picture(8, 8, "400", 8, t=t) for t in range(2)],
                ["--Profile", "feature", "--PictureHash", "0"])
    sps_unit = parse_units(d)[0]
    sps = sps_unit.payload
    sps.sps_feature_coding_enabled_flag = 1
    return rewrite_unit(d, sps_unit, payload=sps)


def _inner_tools_off():
    """Every Track 2 tool enabled in the SPS and switched off in the sequence-level metadata
    (rm_spatial_resampling_flag, rm_temporal_resampling_flag, rm_bit_depth_truncation_flag,
    rm_post_filter_flag 0), ROI enabled with an empty region list (rm_num_roi 0) in picture 0
    that the other pictures keep (T2.7): the output is that of the stream without tools (the first
    4 pictures of inner_hevc_ra_none's input), whose SPS and sequence-level RESTORATION unit are
    rewritten; its other units are kept."""
    d = _inner(n=4)
    units = parse_units(d)
    sps, rm = units[0].payload, units[1].payload
    assert units[1].unit_type == hls.UT_RESTORATION and not rm.rm_picture_level_flag
    for flag in ("sps_roi_enabled_flag", "sps_spatial_resampling_enabled_flag", "sps_temporal_resampling_enabled_flag",
                 "sps_bit_depth_truncation_enabled_flag", "sps_post_filter_enabled_flag"):
        setattr(sps, flag, 1)
    sps.sps_post_filter_id = 0
    rm.rm_spatial_resampling_flag = rm.rm_temporal_resampling_flag = 0
    rm.rm_bit_depth_truncation_flag = rm.rm_post_filter_flag = 0
    w = BitstreamWriter()
    w.write_unit(hls.UT_SPS, sps)
    w.write_unit(hls.UT_RESTORATION, rm)
    first_dph = next(u for u in units if u.unit_type == hls.UT_DPH)
    out = [w.getvalue()]
    for u in units[2:]:
        if u is first_dph:
            w2 = BitstreamWriter()
            w2.sps = sps
            w2.write_unit(hls.UT_RESTORATION, Struct(rm_picture_level_flag=1, rm_num_roi=0))
            out.append(w2.getvalue())
        out.append(d[u.offset:u.offset + 4 + u.size])
    return b"".join(out)


def _video(w=64, h=48, n=6, bit_depth=8):
    return [synth_picture(w, h, "420", bit_depth, t=t) for t in range(n)]


def _inner(*extra, n=6, bit_depth=8):
    return _encode("inner", _video(n=n, bit_depth=bit_depth), list(extra))


STREAMS = [
    ("pcm_rgb444_8bit_13x7", "PCM, RGB 4:4:4 8-bit, odd size", ["pcm", "rgb", "444"], _pcm_rgb),
    ("pcm_yuv420_10bit_17x9", "PCM, YCbCr 4:2:0 10-bit, odd size (right/bottom cropping), 3 pictures",
     ["pcm", "420", "10bit", "conformance_window"], _pcm_420_10bit),
    ("pcm_yuv400_8bit_16x16", "PCM, monochrome", ["pcm", "400"], _pcm_400),
    ("pcm_yuv444_16bit_8x6", "PCM, YCbCr 4:4:4 16-bit, level 1", ["pcm", "444", "16bit"], _pcm_444_16bit),
    ("syntax_misc_20x12", "timing info, SPS extension data, left/top cropping, reserved and unspecified "
     "unit types (skipped), repeated SPS", ["pcm", "timing", "sps_extension", "reserved_units",
                                            "conformance_window"], _syntax_misc),
    ("learned_q0_64x64", "learned intra, quality 0, picture size a multiple of 64", ["learned", "layers"],
     lambda: _learned(64, 64, 0)),
    ("learned_q36_70x45", "learned intra, quality 36, odd size (padding + cropping)", ["learned", "layers",
                                                                                        "conformance_window"],
     lambda: _learned(70, 45, 36)),
    ("learned_q63_130x67", "learned intra, quality 63, odd size", ["learned", "layers", "conformance_window"],
     lambda: _learned(130, 67, 63)),
    ("learned_task_face_256x192", "learned intra with a face (astronaut); task branch 'face' output "
     "checked (task_sha256, 10.8)", ["learned", "layers", "task_branch"], _learned_face),
    ("learned_base_layer_70x45", "base layer extracted from a learned stream (refsw-extract --layers base): "
     "checked against the layer-0 hash", ["learned", "extraction"], _learned_base),
    ("inner_hevc_ra_none", "inner HEVC, random access, no Track 2 tool", ["inner", "hevc"], lambda: _inner()),
    ("inner_hevc_roi", "ROI background simplification, boxes signalled", ["inner", "roi"],
     lambda: _inner("--RoiEnabled", "1", "--RoiBackground", "flat")),
    ("inner_hevc_spatial", "spatial resampling 0.5 (normative 8-tap/4-tap upsampling)", ["inner", "spatial"],
     lambda: _inner("--SpatialResampling", "1", "--SpatialResamplingRatio", "0.5")),
    ("inner_hevc_temporal", "temporal resampling ratio 2 (normative interpolation)", ["inner", "temporal"],
     lambda: _inner("--TemporalResampling", "1", "--TemporalRatio", "2")),
    ("inner_hevc_temporal_repeat", "temporal resampling ratio 3, repeat", ["inner", "temporal"],
     lambda: _inner("--TemporalResampling", "1", "--TemporalRatio", "3", "--TemporalInterp", "1")),
    ("inner_hevc_bitdepth_10bit", "10-bit source, bit-depth truncation by 2", ["inner", "bitdepth", "10bit"],
     lambda: _inner("--BitDepthTruncation", "1", "--BitDepthShift", "2", bit_depth=10)),
    ("inner_hevc_postfilter", "post filter after spatial resampling", ["inner", "postfilter", "spatial"],
     lambda: _inner("--PostFilter", "1", "--SpatialResampling", "1")),
    ("inner_hevc_ld_all_tools", "low delay, every Track 2 tool, whole inner stream in one unit",
     ["inner", "roi", "spatial", "temporal", "bitdepth", "postfilter", "low_delay"],
     lambda: _inner("--LowDelay", "1", "--IntraPeriod", "0", "--RoiEnabled", "1", "--SpatialResampling", "1",
                    "--TemporalResampling", "1", "--BitDepthTruncation", "1", "--BitDepthShift", "1",
                    "--PostFilter", "1", "--InnerPacking", "sequence")),
    ("inner_vvc_ra", "inner VVC (vvenc), random access GOP 16, 17 pictures, spatial resampling", ["inner", "vvc", "spatial"],
     lambda: _inner("--InnerCodec", "vvc", "--SpatialResampling", "1", "--GOPSize", "16", "--IntraPeriod", "16",
                    "--InnerPreset", "faster", n=17)),
    # -- #28 "paths no stream exercises", #30 CRC-32 hash ---------------------------------------------
    ("syntax_feature_profile_8x8", "Feature profile, sps_feature_coding_enabled_flag 1, PCM pictures only, "
     "no DPH unit (\"no hash\", 8.6)", ["pcm", "feature_profile", "no_hash"], _syntax_feature_profile),
    ("learned_ycbcr444_64x64", "learned intra, YCbCr 4:4:4 output (10.7 colour conversion)",
     ["learned", "ycbcr", "444"], lambda: _learned_ycbcr("444")),
    ("learned_ycbcr420_crc_64x64", "learned intra, YCbCr 4:2:0 output (10.7), CRC-32 picture hash and latent "
     "hash (PictureHash 2, LatentHash 1)", ["learned", "ycbcr", "420", "crc_hash", "latent_hash"],
     lambda: _learned_ycbcr("420", ["--PictureHash", "2", "--LatentHash", "1"])),
    ("learned_one_layer_64x64", "learned intra with one latent layer (sps_num_latent_layers_minus1 0), no "
     "task branch", ["learned", "one_layer"], _learned_one_layer),
    ("learned_task_face_latent_hash_256x192", "learned_task_face_256x192 with the MD5 latent hash "
     "(LatentHash 1): the face branch checks the latent of layer 0 (8.6)", ["learned", "task_branch",
                                                                            "latent_hash"],
     _learned_face_latent_hash),
    ("learned_residual_130x67", "learned intra (quality 36) with the residual enhancement layer (clause 11, "
     "res_qp 18), odd size", ["learned", "residual", "conformance_window"],
     lambda: _learned(130, 67, 36, ["--ResidualQP", "18"])),
    ("learned_residual_ycbcr420_64x64", "learned intra, YCbCr 4:2:0 output with the residual enhancement "
     "layer (res_qp 12; Y, Cb, Cr residual, no YCoCg-R)", ["learned", "residual", "ycbcr", "420"],
     lambda: _learned_ycbcr("420", ["--ResidualQP", "12"])),
    ("inner_hevc_crc_hash", "inner HEVC, random access, CRC-32 picture hash (PictureHash 2, 20-byte DPH units)",
     ["inner", "hevc", "crc_hash"], lambda: _inner("--PictureHash", "2", n=4)),
    ("inner_hevc_spatial_072", "spatial resampling 46x34 -> 64x48 (ratio 0.72): every luma (16) and chroma "
     "(32) filter phase of T2.3", ["inner", "spatial", "phases"],
     lambda: _inner("--SpatialResampling", "1", "--SpatialResamplingRatio", "0.72")),
    ("inner_hevc_temporal_gap4", "temporal resampling ratio 4, weighted average: pictures 1..3 from 0 and 4 "
     "(gap 4, weights 3:1, 2:2, 1:3)", ["inner", "temporal"],
     lambda: _inner("--TemporalResampling", "1", "--TemporalRatio", "4", n=5)),
    ("inner_hevc_bitdepth_expand_10bit", "10-bit source truncated by 4: 6-bit samples in an 8-bit HEVC "
     "stream (T2.5 with d = 2)", ["inner", "bitdepth", "10bit"],
     lambda: _inner("--BitDepthTruncation", "1", "--BitDepthShift", "4", n=4, bit_depth=10)),
    ("inner_hevc_postfilter_luma", "post filter on luma and chroma, no resampling (QP 45)",
     ["inner", "postfilter"], lambda: _inner("--PostFilter", "1", "--QP", "45")),
    ("inner_hevc_tools_off", "every Track 2 tool enabled in the SPS and off in the sequence-level metadata, "
     "an empty ROI list (rm_num_roi 0) kept by the later pictures", ["inner", "tools_off", "roi"],
     _inner_tools_off),
]

# target layer Lt (8.1) a stream is decoded with; the manifest gives it as target_layer
TARGET_LAYER = {"learned_base_layer_70x45": 0}

# streams whose bytes depend on an external encoder build (x265, vvenc):
# `--check` compares their decoded hashes only when the bitstream differs
ENCODER_DEPENDENT = ("inner_",)


# ---------------------------------------------------------------------------
# Negative streams: (name, description, expected element, clause, builder)
# ---------------------------------------------------------------------------

def _base():
    return _pcm_rgb()


def _patch(data, offset, value):
    d = bytearray(data)
    d[offset] = value
    return bytes(d)


def _unit(data, type_name, k=0):
    return [u for u in parse_units(data) if u.type_name == type_name][k]


def _neg_truncated():
    d = _base()
    return d[:len(d) - 40]


def _neg_forbidden_bit():
    d = _base()
    u = _unit(d, "PH")
    return _patch(d, u.offset + 4, d[u.offset + 4] | 0x80)


def _neg_profile():
    return _patch(_base(), 6, 9)           # sps_profile_idc is byte 6 (after unit_length, header)


def _neg_level():
    d = _encode("pcm", [synth_picture(400, 100, "400", 8)], ["--Level", "3"])
    return _patch(d, 7, 10)                # sps_level_idc 30 -> 10: 40000 > MaxLumaPs 36864


def _neg_ph_before_sps():
    d = _base()
    return d[_unit(d, "PH").offset:]


def _neg_pcm_without_ph():
    d = _base()
    ph = _unit(d, "PH")
    pcm = _unit(d, "PCM")
    return d[:ph.offset] + d[pcm.offset:]


def _neg_trailing_bytes():
    d = bytearray(_base())
    ph = _unit(bytes(d), "PH")
    n = int.from_bytes(d[ph.offset:ph.offset + 4], "big")
    d[ph.offset:ph.offset + 4] = (n + 1).to_bytes(4, "big")
    d.insert(ph.offset + 4 + n, 0)
    return bytes(d)


def _neg_coding_mode():
    d = _base()
    return _ph_mode5(d, _unit(d, "PH"))


def _ph_mode5(d, ph):
    # rebuild the PH payload by hand: 1 00 00110 | 1 0000000  (poc 0, I, mode 5, trailing bits)
    d = bytearray(d)
    n = int.from_bytes(d[ph.offset:ph.offset + 4], "big")
    payload = bytes([0b10000110, 0b10000000])
    new = (2 + len(payload)).to_bytes(4, "big") + bytes(d[ph.offset + 4:ph.offset + 6]) + payload
    return bytes(d[:ph.offset]) + new + bytes(d[ph.offset + 4 + n:])


def _neg_tool_not_in_profile():
    d = _base()
    sps = parse_units(d)[0].payload
    sps.sps_inner_codec_enabled_flag = 1
    sps.sps_inner_codec_idc = 0
    sps.sps_profile_idc = 2                # write as Machine Video, then relabel as Main Intra
    w = BitstreamWriter()
    w.write_unit(hls.UT_SPS, sps)
    s = w.getvalue()
    s = _patch(s, 6, 1)
    return s + d[parse_units(d)[1].offset:]


def _neg_two_dph():
    d = _base()
    dph = _unit(d, "DPH")
    n = int.from_bytes(d[dph.offset:dph.offset + 4], "big")
    one = d[dph.offset:dph.offset + 4 + n]
    return d[:dph.offset + 4 + n] + one + d[dph.offset + 4 + n:]


def _neg_residual_layer():
    """The RESIDUAL unit of learned_residual_130x67 moved to layer 0 (the picture's top LATENT is layer 1)."""
    d = _learned(130, 67, 36, ["--ResidualQP", "18"])
    return rewrite_unit(d, _unit(d, "RESIDUAL"), layer_id=0)


def _neg_layer_id():
    d = _base()
    return rewrite_unit(d, _unit(d, "PH"), layer_id=1)


def _neg_temporal_id():
    d = _base()
    return rewrite_unit(d, _unit(d, "PCM"), temporal_id=1)


def _neg_poc_order():
    d = _pcm_420_10bit()
    ph = _unit(d, "PH", 2)
    assert d[ph.offset + 6] >> 5 == 0b011             # ph_pic_order_cnt 2: ue(v) '011'
    return _patch(d, ph.offset + 6, d[ph.offset + 6] & ~0x20)   # '010': 1, as picture 1


def _neg_long_exp_golomb():
    d = _base()
    sps = parse_units(d)[0]
    body = bytearray(d[sps.offset + 4: sps.offset + 4 + sps.size])
    body[4:] = bytes(8)                   # width ue(v): more than 32 leading zero bits
    return (len(body)).to_bytes(4, "big") + bytes(body) + d[sps.offset + 4 + sps.size:]


def _neg_hash_type():
    d = _base()
    dph = _unit(d, "DPH")
    return _patch(d, dph.offset + 6, 2)    # dph_hash_type, the first payload byte: 2 is reserved


def _neg_latent_hash_not_learned():
    d = _base()
    dph = _unit(d, "DPH")
    dph.payload.dph_latent_md5 = bytes(range(16))
    return rewrite_unit(d, dph)


NEGATIVE = [
    ("neg_truncated", "stream cut inside the PCM unit", "unit_length", "5.1", _neg_truncated),
    ("neg_forbidden_zero_bit", "forbidden_zero_bit equal to 1 in the PH unit", "forbidden_zero_bit", "5.2",
     _neg_forbidden_bit),
    ("neg_unknown_profile", "sps_profile_idc 9", "sps_profile_idc", "A.2", _neg_profile),
    ("neg_level_picture_size", "400x100 picture at level 1", "sps_pic_height_in_luma_samples", "A.3", _neg_level),
    ("neg_no_sps", "bitstream starting with a PH unit", "unit_type", "5.3", _neg_ph_before_sps),
    ("neg_pcm_without_ph", "PCM unit with no picture header", "unit_type", "8.1", _neg_pcm_without_ph),
    ("neg_trailing_byte", "PH unit one byte longer than its syntax", "unit_length", "5.1", _neg_trailing_bytes),
    ("neg_coding_mode_range", "ph_pic_coding_mode 5", "ph_pic_coding_mode", "6.2", _neg_coding_mode),
    ("neg_tool_not_in_profile", "inner codec enabled in the Main Intra profile",
     "sps_inner_codec_enabled_flag", "A.2", _neg_tool_not_in_profile),
    ("neg_two_dph", "two DPH units of layer 0 in one picture", "unit_layer_id", "5.3", _neg_two_dph),
    ("neg_ph_layer_id", "PH unit with unit_layer_id 1", "unit_layer_id", "5.2", _neg_layer_id),
    ("neg_temporal_id", "PCM unit with temporal id 1 after a PH unit with temporal id 0",
     "unit_temporal_id_plus1", "5.2", _neg_temporal_id),
    ("neg_poc_order", "third picture of a coded sequence with the POC of the second",
     "ph_pic_order_cnt", "8.1", _neg_poc_order),
    ("neg_exp_golomb_too_long", "ue(v) with more than 32 leading zero bits",
     "sps_pic_width_in_luma_samples", "4.3", _neg_long_exp_golomb),
    ("neg_dph_hash_type", "dph_hash_type 2 (reserved)", "dph_hash_type", "7.8", _neg_hash_type),
    ("neg_residual_layer", "RESIDUAL unit in layer 0 of a picture whose highest LATENT unit is in layer 1",
     "unit_layer_id", "8.2", _neg_residual_layer),
    ("neg_latent_hash_not_learned", "a latent hash (dph_latent_md5) in the DPH unit of a PCM picture",
     "dph_latent_md5", "7.8", _neg_latent_hash_not_learned),
]


def _fmt(out):
    p = out[0].picture
    return {"width": p.width, "height": p.height, "chroma_format": p.chroma_format, "bit_depth": p.bit_depth,
            "colour_space": p.colour_space}


def build(dest):
    os.makedirs(os.path.join(dest, "streams"), exist_ok=True)
    os.makedirs(os.path.join(dest, "negative"), exist_ok=True)
    manifest = {"version": 1, "description": "refsw conformance suite; regenerate with "
                "conformance/regenerate.py", "streams": [], "negative": []}
    for name, desc, exercises, fn in STREAMS:
        data = fn()
        sps = parse_units(data)[0].payload
        md5s, out = decode_internal(data, max_layer=TARGET_LAYER.get(name))
        rel = f"streams/{name}.bin"
        with open(os.path.join(dest, rel), "wb") as f:
            f.write(data)
        manifest["streams"].append({
            "name": name, "file": rel, "description": desc, "exercises": exercises,
            "profile": PROFILES[sps.sps_profile_idc].name, "level": LEVELS[sps.sps_level_idc].name,
            "frames": len(out), **({"target_layer": TARGET_LAYER[name]} if name in TARGET_LAYER else {}),
            "format": _fmt(out),
            "bitstream_sha256": hashlib.sha256(data).hexdigest(),
            "trace_sha256": hashlib.sha256(trace_of(data).encode()).hexdigest(),
            "md5": md5s,
        })
        if sps.get("sps_num_task_branches"):
            from refsw.conformance import decode_task
            from refsw.decoder.model_data import TASK_BRANCH_DATA as TASK_BRANCHES
            names = {e.branch_id: e.name for (mid, _), e in TASK_BRANCHES.items() if mid == sps.sps_model_id}
            manifest["streams"][-1]["task_sha256"] = {
                names[b]: decode_task(data, names[b]) for b in sps.sps_task_branch_id}
    for name, desc, element, clause, fn in NEGATIVE:
        data = fn()
        try:
            decode_internal(data)
            raise SystemExit(f"negative stream {name} decodes without error")
        except BitstreamError as e:
            if (e.element, e.clause) != (element, clause):
                raise SystemExit(f"negative stream {name}: got {e.element} ({e.clause}), want {element} "
                                 f"({clause}): {e}")
        rel = f"negative/{name}.bin"
        with open(os.path.join(dest, rel), "wb") as f:
            f.write(data)
        manifest["negative"].append({"name": name, "file": rel, "description": desc, "element": element,
                                     "clause": clause, "bitstream_sha256": hashlib.sha256(data).hexdigest()})
    with open(os.path.join(dest, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    return manifest


def main(argv):
    if "--check" in argv:
        with tempfile.TemporaryDirectory() as td:
            m_new = build(td)
            m_old = json.load(open(os.path.join(HERE, "manifest.json"), encoding="utf-8"))
            old = {x["name"]: x for x in m_old["streams"] + m_old["negative"]}
            diffs = []
            for x in m_new["streams"] + m_new["negative"]:
                o = old.get(x["name"])
                if o is None:
                    diffs.append(x["name"] + " (missing)")
                elif o["bitstream_sha256"] != x["bitstream_sha256"]:
                    if x["name"].startswith(ENCODER_DEPENDENT) and o.get("md5") is not None:
                        continue  # another x265/vvenc build: its bytes may differ; the committed stream is the reference
                    diffs.append(x["name"])
            if len(old) != len(m_new["streams"]) + len(m_new["negative"]):
                diffs.append("stream list")
            if diffs:
                print("regenerated suite differs: " + ", ".join(diffs))
                return 1
            print("conformance suite is reproducible")
            return 0
    for sub in ("streams", "negative"):
        shutil.rmtree(os.path.join(HERE, sub), ignore_errors=True)
    m = build(HERE)
    print(f"{len(m['streams'])} streams, {len(m['negative'])} negative streams written to {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
