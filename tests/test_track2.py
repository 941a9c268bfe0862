"""Track 2 (coding mode "inner"): normative restoration processes, syntax,
encode/decode round trips with each tool on and off, thread independence,
malformed inner payloads, the CLI on the CTC cfgs."""
import os
import subprocess
import sys

import numpy as np
import pytest

from refsw import cfg as cfgmod
from refsw import tasks  # noqa: F401
import refsw.encoder  # noqa: F401  (registers the coding modes)
from refsw.decoder import Decoder
from refsw.encoder import Encoder
from refsw.options import ENCODER_OPTIONS
from refsw.picture import Picture, picture_md5
from refsw.tasks.evaluate import average_precision
from refsw.decoder.track2 import bitdepth, postfilter, spatial, temporal
from refsw.decoder.track2 import inner as dec_inner
from refsw.encoder.track2 import inner, roi
from syntax import hls
from syntax.errors import BitstreamError
from syntax.rw import Struct
from syntax.units import BitstreamWriter, parse_units, rewrite_unit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)


# ---------------------------------------------------------------------------
# normative integer processes against hand-computed values
# ---------------------------------------------------------------------------

def test_filter_tables():
    assert spatial.LUMA_FILTER.shape == (16, 8) and (spatial.LUMA_FILTER.sum(1) == 64).all()
    assert spatial.CHROMA_FILTER.shape == (32, 4) and (spatial.CHROMA_FILTER.sum(1) == 64).all()
    assert spatial.CHROMA_FILTER[24].tolist() == [-2, 16, 54, -4]
    assert spatial.CHROMA_FILTER[5].tolist() == [-3, 57, 12, -2]
    assert spatial.LUMA_FILTER[8].tolist() == [-1, 4, -11, 40, 40, -11, 4, -1]


def test_ref_positions_2x():
    # output i of a 4 -> 8 upsampling sits at ( i + 0.5 ) / 2 - 0.5 input samples
    idx, ph = spatial.ref_positions(4, 8, 16)
    assert (idx * 16 + ph).tolist() == [-4, 4, 12, 20, 28, 36, 44, 52]
    assert idx.tolist() == [-1, 0, 0, 1, 1, 2, 2, 3] and ph.tolist() == [12, 4, 12, 4, 12, 4, 12, 4]


def test_upsample_hand_computed():
    row = np.array([[0, 0, 0, 0, 64, 64, 64, 64]], dtype=np.uint16)
    out = spatial.upsample_plane(row, 16, 1, 8, chroma=False)
    # sample 7: phase 4 at integer 3 -> taps x[0..7] * (-1, 4, -10, 58, 17, -5, 1, 0) = 64 * 13,
    # vertical 1 -> 1 is phase 0 (x 64): ( 832 * 64 + 2048 ) >> 12 = 13
    assert int(out[0, 7]) == 13
    # sample 3: phase 4 at integer 1, only x[4] = 64 under tap 6 (coefficient 1): ( 64 * 64 + 2048 ) >> 12 = 1
    # sample 12: phase 12 at integer 5: 64 * ( -5 + 17 + 58 - 10 + 4 - 1 ) = 64 * 63 -> 63
    assert out[0, :4].tolist() == [0, 0, 0, 1] and int(out[0, 12]) == 63 and out[0, -2:].tolist() == [64] * 2
    const = np.full((6, 10), 700, dtype=np.uint16)
    assert (spatial.upsample_plane(const, 17, 13, 10, chroma=True) == 700).all()
    # clipping of the overshoot at a step edge
    step = np.array([[0, 0, 0, 0, 255, 255, 255, 255]] * 2, dtype=np.uint16)
    up = spatial.upsample_plane(step, 16, 4, 8, chroma=False)
    assert up.min() == 0 and up.max() == 255 and up.dtype == np.uint16


def test_bit_depth_hand_computed():
    assert bitdepth.restore(np.array([0, 1, 255]), 2).tolist() == [2, 6, 1022]
    assert bitdepth.to_coded_depth(np.array([0, 1, 2, 3, 1023]), 10, 8).tolist() == [0, 0, 1, 1, 255]
    assert bitdepth.truncate(np.array([1023, 5]), 2).tolist() == [255, 1]
    x = np.array([7, 200])
    assert bitdepth.to_coded_depth(bitdepth.to_inner_depth(x, 8, 10), 10, 8).tolist() == [7, 200]


def test_temporal_hand_computed():
    assert temporal.coded_indices(9, 2) == [0, 2, 4, 6, 8]
    assert temporal.coded_indices(8, 3) == [0, 3, 6, 7]
    assert temporal.coded_indices(5, 1) == [0, 1, 2, 3, 4]
    a, b = np.array([10, 0]), np.array([21, 255])
    # ( 2 * 10 + 1 * 21 + 1 ) / 3 = 14, ( 10 + 2 * 21 + 1 ) / 3 = 17
    assert temporal.interpolate(a, b, 0, 3, 1, 0).tolist() == [14, 85]
    assert temporal.interpolate(a, b, 0, 3, 2, 0).tolist() == [17, 170]
    assert temporal.interpolate(a, b, 0, 3, 2, 1).tolist() == [10, 0]


def test_post_filter_hand_computed():
    p = np.zeros((5, 5), dtype=np.uint16)
    p[2, 2] = 128
    out = postfilter.apply(p, [16, 0, 0, 0, 0, 0], 8)
    assert postfilter.centre_coeff([16, 0, 0, 0, 0, 0]) == 96
    assert out[2, 2] == 96 and out[2, 1] == 16 and out[2, 3] == 16 and out[1, 2] == 0
    assert (postfilter.apply(np.full((4, 4), 77, np.uint16), [5, -3, 2, 1, -7, 9], 8) == 77).all()


def test_average_precision():
    gt = [[(0, 0, 10, 10)], [(0, 0, 10, 10)]]
    assert average_precision(gt, [[(0, 0, 10, 10, 0.9)], [(0, 0, 10, 10, 0.8)]]) == 1.0
    assert average_precision(gt, [[(0, 0, 10, 10, 0.9)], []]) == 0.5
    # a false positive ranked first halves the precision of the first hit
    assert average_precision(gt, [[(50, 50, 60, 60, 0.95), (0, 0, 10, 10, 0.9)], []]) == pytest.approx(0.25)


def test_roi_helpers():
    assert roi.merge_boxes([(0, 0, 10, 10), (5, 5, 10, 10), (30, 30, 2, 2)]) == [(0, 0, 15, 15), (30, 30, 2, 2)]
    d = tasks.Detection(10, 10, 20, 30, 0.9)
    assert roi.boxes_from_detections([d], 0.5, 0.5, 24, 100) == [(5, 0, 19, 40)]
    y = np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) % 256
    c = np.full((24, 32), 128, np.uint16)
    out = roi.simplify([y, c, c], [(8, 8, 16, 16)], "flat", 8, 8)
    assert (out[0][8:24, 8:24] == y[8:24, 8:24]).all()
    assert len(np.unique(out[0][30:, :])) == 1


# ---------------------------------------------------------------------------
# syntax
# ---------------------------------------------------------------------------

def _sps(**tools):
    s = Struct(sps_profile_idc=2, sps_level_idc=10, sps_pic_width_in_luma_samples=64,
               sps_pic_height_in_luma_samples=48, sps_chroma_format_idc=1, sps_colour_space_idc=0,
               sps_bit_depth_minus8=2, sps_conformance_window_flag=0, sps_timing_info_present_flag=0,
               sps_pcm_enabled_flag=0, sps_learned_intra_enabled_flag=0, sps_inner_codec_enabled_flag=1,
               sps_inner_codec_idc=0, sps_feature_coding_enabled_flag=0, sps_roi_enabled_flag=1,
               sps_spatial_resampling_enabled_flag=1, sps_temporal_resampling_enabled_flag=1,
               sps_bit_depth_truncation_enabled_flag=1, sps_post_filter_enabled_flag=1, sps_post_filter_id=0,
               sps_extension_flag=0)
    for k, v in tools.items():
        setattr(s, k, v)
    return s


def test_restoration_metadata_round_trip():
    w = BitstreamWriter()
    w.write_unit(hls.UT_SPS, _sps())
    seq = Struct(rm_picture_level_flag=0, rm_inner_bit_depth_minus8=0, rm_spatial_resampling_flag=1,
                 rm_coded_width_in_luma_samples=32, rm_coded_height_in_luma_samples=24, rm_upsampling_filter_idc=0,
                 rm_temporal_resampling_flag=1, rm_temporal_ratio_minus1=1, rm_temporal_interp_idc=1,
                 rm_bit_depth_truncation_flag=1, rm_bit_depth_shift=2, rm_post_filter_flag=1,
                 rm_pf_component_flag=[1, 0], rm_pf_coeff=[[-5, 63, -64, 0, 1, 2], None])
    pic = Struct(rm_picture_level_flag=1, rm_num_roi=2, rm_roi_x=[0, 10], rm_roi_y=[1, 20],
                 rm_roi_width_minus1=[63, 3], rm_roi_height_minus1=[46, 27])
    w.write_unit(hls.UT_RESTORATION, seq)
    w.write_unit(hls.UT_RESTORATION, pic)
    units = parse_units(w.getvalue())
    a, b = units[1].payload, units[2].payload
    assert a.rm_pf_coeff[0] == [-5, 63, -64, 0, 1, 2] and a.rm_coded_width_in_luma_samples == 32
    assert a.rm_bit_depth_shift == 2 and a.rm_temporal_interp_idc == 1
    assert b.rm_roi_x == [0, 10] and b.rm_roi_height_minus1 == [46, 27]


def test_restoration_metadata_constraints():
    w = BitstreamWriter()
    w.write_unit(hls.UT_SPS, _sps())
    bad = Struct(rm_picture_level_flag=0, rm_inner_bit_depth_minus8=0, rm_spatial_resampling_flag=1,
                 rm_coded_width_in_luma_samples=33, rm_coded_height_in_luma_samples=24, rm_upsampling_filter_idc=0,
                 rm_temporal_resampling_flag=0, rm_bit_depth_truncation_flag=0, rm_post_filter_flag=0)
    with pytest.raises(BitstreamError, match="even"):
        w.write_unit(hls.UT_RESTORATION, bad)
    bad2 = Struct(rm_picture_level_flag=0, rm_inner_bit_depth_minus8=0, rm_spatial_resampling_flag=0,
                  rm_temporal_resampling_flag=0, rm_bit_depth_truncation_flag=1, rm_bit_depth_shift=1,
                  rm_post_filter_flag=0)
    with pytest.raises(BitstreamError, match="rm_inner_bit_depth_minus8"):   # 10-bit, shift 1: 9 > 8
        w.write_unit(hls.UT_RESTORATION, bad2)
    # no truncation: CodedBitDepth = BitDepth = 10 > InnerBitDepth 8 (was a negative shift at decoding)
    bad3 = Struct(rm_picture_level_flag=0, rm_inner_bit_depth_minus8=0, rm_spatial_resampling_flag=0,
                  rm_temporal_resampling_flag=0, rm_bit_depth_truncation_flag=0, rm_post_filter_flag=0)
    with pytest.raises(BitstreamError, match="CodedBitDepth"):
        w.write_unit(hls.UT_RESTORATION, bad3)
    bad3.rm_inner_bit_depth_minus8 = 2
    w.write_unit(hls.UT_RESTORATION, bad3)                                   # 10-bit HEVC: allowed
    for idc, depth_minus8 in ((0, 1), (0, 8), (1, 4)):                       # HEVC 9 / 16, VVC 12-bit
        w2 = BitstreamWriter()
        w2.write_unit(hls.UT_SPS, _sps(sps_inner_codec_idc=idc))
        bad3.rm_inner_bit_depth_minus8 = depth_minus8
        with pytest.raises(BitstreamError, match="InnerBitDepth shall be 8 or 10"):
            w2.write_unit(hls.UT_RESTORATION, bad3)


# ---------------------------------------------------------------------------
# encode / decode
# ---------------------------------------------------------------------------

tasks.TASK_NETWORKS["fixed"] = tasks.CentreBox   # deterministic stand-in task network


def clip(n=5, w=64, h=48, bit_depth=8):
    rng = np.random.default_rng(7)
    pics = []
    for t in range(n):
        yy, xx = np.mgrid[0:h, 0:w]
        y = (40 + 2 * xx + yy + 6 * t + rng.integers(0, 6, (h, w))) % (1 << 8)
        y[h // 3:h // 3 + 12, 8 + 3 * t:20 + 3 * t] = 220
        y = y.astype(np.uint16) << (bit_depth - 8)
        cb = np.full(((h + 1) // 2, (w + 1) // 2), 100 << (bit_depth - 8), np.uint16)
        cr = (np.arange(cb.size, dtype=np.uint16).reshape(cb.shape) % 64 + 96) << (bit_depth - 8)
        pics.append(Picture([y, cb, cr], "420", bit_depth))
    return pics


def config(*extra):
    argv = ["--Profile", "machine_video", "--CodingMode", "inner", "--QP", "30", "--IntraPeriod", "4",
            "--GOPSize", "4", "--InnerPreset", "ultrafast", "--RoiDetector", "fixed", *extra]
    return cfgmod.parse(argv, ENCODER_OPTIONS)[0]


TOOL_CASES = {
    "none": [],
    "roi": ["--RoiEnabled", "1", "--RoiBackground", "flat"],
    "roi_blur_unsignalled": ["--RoiEnabled", "1", "--RoiSignal", "0"],
    "spatial": ["--SpatialResampling", "1", "--SpatialResamplingRatio", "0.5"],
    "temporal": ["--TemporalResampling", "1", "--TemporalRatio", "2"],
    "temporal_repeat": ["--TemporalResampling", "1", "--TemporalRatio", "3", "--TemporalInterp", "1"],
    "bitdepth": ["--BitDepthTruncation", "1", "--BitDepthShift", "2"],
    "postfilter": ["--PostFilter", "1", "--SpatialResampling", "1"],
    "low_delay_all": ["--LowDelay", "1", "--IntraPeriod", "0", "--RoiEnabled", "1", "--SpatialResampling", "1",
                      "--TemporalResampling", "1", "--BitDepthTruncation", "1", "--BitDepthShift", "1",
                      "--PostFilter", "1", "--InnerPacking", "sequence"],
}


def roundtrip(c, pics):
    enc = Encoder(c)
    data = enc.encode(pics)
    out = Decoder().decode(data)
    assert [d.hash_status for d in out] == ["match"] * len(pics)
    assert all(d.picture == r for d, r in zip(out, enc.recon))
    assert [d.poc for d in out] == list(range(len(pics)))
    return data, out, enc


@pytest.mark.parametrize("case", list(TOOL_CASES))
def test_tools_round_trip(case):
    pics = clip()
    data, out, enc = roundtrip(config(*TOOL_CASES[case]), pics)
    sps = parse_units(data)[0].payload
    flags = {"roi": sps.sps_roi_enabled_flag, "spatial": sps.sps_spatial_resampling_enabled_flag,
             "temporal": sps.sps_temporal_resampling_enabled_flag,
             "bitdepth": sps.sps_bit_depth_truncation_enabled_flag, "postfilter": sps.sps_post_filter_enabled_flag}
    for k, v in flags.items():
        assert v == int(k in case or case == "low_delay_all" or (k == "spatial" and case == "postfilter")), k
    psnr_y = 10 * np.log10(255 ** 2 / np.mean((out[-1].picture.planes[0].astype(float) - pics[-1].planes[0]) ** 2))
    assert psnr_y > 14, psnr_y


def test_roi_boxes_signalled_and_persisting():
    pics = clip(6)
    dec = Decoder()
    data = Encoder(config("--RoiEnabled", "1", "--RoiPeriod", "4")).encode(pics)
    for _ in range(2):                                # per decode() call, one list per output picture
        out = dec.decode(data)
        assert [p.roi for p in out] == [[(8, 6, 48, 36)]] * 6   # 16..48 x 12..36 enlarged by 25 %, persisting
    rms = [u for u in parse_units(data) if u.unit_type == hls.UT_RESTORATION]
    assert len(rms) == 1 + 1   # sequence level + one picture-level unit (the boxes never change)


def test_ten_bit_input_and_truncation():
    pics = clip(3, bit_depth=10)
    data, out, _ = roundtrip(config("--BitDepthTruncation", "1", "--BitDepthShift", "2", "--IntraPeriod", "1"), pics)
    rm = parse_units(data)[1].payload
    assert rm.rm_inner_bit_depth_minus8 == 0 and rm.rm_bit_depth_shift == 2
    assert out[0].picture.bit_depth == 10
    assert all(int(p.min()) & 3 == 2 for p in out[0].picture.planes)   # ( x << 2 ) + 2


def test_vvc_inner_codec():
    pics = clip(3)
    data, out, enc = roundtrip(config("--InnerCodec", "vvc", "--InnerPreset", "faster", "--IntraPeriod", "1",
                                      "--SpatialResampling", "1", "--SpatialResamplingRatio", "0.5"), pics)
    assert parse_units(data)[0].payload.sps_inner_codec_idc == 1


def test_decode_independent_of_thread_count():
    import torch
    pics = clip(4)
    data = Encoder(config("--SpatialResampling", "1", "--TemporalResampling", "1", "--PostFilter", "1")).encode(pics)
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = [picture_md5(d.picture) for d in Decoder(threads=1).decode(data)]
        torch.set_num_threads(2)
        b = [picture_md5(d.picture) for d in Decoder(threads=2).decode(data)]
    finally:
        torch.set_num_threads(n)
    assert a == b


def _replace_inner(data, fn):
    units = parse_units(data)
    out = bytearray()
    for u in units:
        body = data[u.offset + 4:u.offset + 4 + u.size]
        if u.unit_type == hls.UT_INNER:
            body = body[:2] + fn(body[2:])
        out += len(body).to_bytes(4, "big") + body
    return bytes(out)


@pytest.mark.parametrize("how", ["garbage", "truncated"])
def test_corrupt_inner_payload_is_a_bitstream_error(how):
    pics = clip(3)
    data = Encoder(config("--InnerPacking", "sequence", "--IntraPeriod", "1")).encode(pics)
    if how == "garbage":
        bad = _replace_inner(data, lambda b: bytes(np.random.default_rng(1).integers(0, 256, len(b), dtype=np.uint8)))
    else:
        bad = _replace_inner(data, lambda b: b[:len(b) // 2])
    with pytest.raises(BitstreamError) as e:
        Decoder().decode(bad)
    assert "INNER" in str(e.value) and "inner_codec_payload" in str(e.value)


def test_missing_sequence_metadata_is_a_bitstream_error():
    data = Encoder(config("--IntraPeriod", "1")).encode(clip(2))
    units = parse_units(data)
    bad = b"".join(data[u.offset:u.offset + 4 + u.size] for u in units if u.unit_type != hls.UT_RESTORATION)
    with pytest.raises(BitstreamError, match="sequence-level RESTORATION"):
        Decoder().decode(bad)


def test_ctc_cfgs_parse():
    for name in ("ra.cfg", "ld.cfg", "ai_video.cfg"):
        c, _ = cfgmod.parse(["--cfg", os.path.join(ROOT, "ctc", name)], ENCODER_OPTIONS)
        assert c.CodingMode == "inner" and c.Profile == "machine_video"


def _cli(*args, cwd):
    return subprocess.run([os.path.join(BIN, args[0]), *args[1:]], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_cli_ra_default_content(tmp_path):
    """refsw-encode --cfg ctc/ra.cfg -o x.bin (default video, MTCNN ROI), then refsw-decode."""
    import importlib.util
    if importlib.util.find_spec("facenet_pytorch") is None:
        pytest.skip("facenet-pytorch (MTCNN weights) not installed")
    r = _cli("refsw-encode", "--cfg", os.path.join(ROOT, "ctc", "ra.cfg"), "-o", "x.bin",
             "--FramesToBeEncoded", "9", "--TemporalResampling", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "carphone_qcif_33.y4m" in r.stdout and "ROI: mtcnn" in r.stdout
    r = _cli("refsw-decode", "-b", "x.bin", "-o", "x.yuv", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("[CRC:OK]") == 9          # ctc/ra.cfg: PictureHash 2
    assert os.path.getsize(tmp_path / "x.yuv") == 9 * 176 * 144 * 3 // 2
    # a corrupted INNER payload: one line on stderr, exit status 2, no traceback
    data = (tmp_path / "x.bin").read_bytes()
    (tmp_path / "bad.bin").write_bytes(_replace_inner(data, lambda b: b"\x00\x00\x01" + b"\xff" * 40))
    r = _cli("refsw-decode", "-b", "bad.bin", cwd=tmp_path)
    assert r.returncode == 2 and "bitstream error" in r.stderr and "Traceback" not in r.stderr
    assert "INNER" in r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ra.cfg", "ld.cfg", "ai_video.cfg"])
def test_cli_ctc_cfgs_full(tmp_path, name):
    r = _cli("refsw-encode", "--cfg", os.path.join(ROOT, "ctc", name), "-o", "x.bin", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    outs = []
    for threads in ("1", "2"):
        r = _cli("refsw-decode", "-b", "x.bin", "-o", f"x{threads}.yuv", "--Threads", threads, cwd=tmp_path)
        assert r.returncode == 0 and r.stdout.count("[CRC:OK]") == 33, r.stderr
        outs.append((tmp_path / f"x{threads}.yuv").read_bytes())
    assert outs[0] == outs[1]


def _units_bytes(data, units):
    return b"".join(data[u.offset:u.offset + 4 + u.size] for u in units)


def test_restoration_and_mode_structure_errors():
    """7.7 / 8.1: one sequence-level RESTORATION unit before the first PH, at most one
    picture-level unit per picture, and INNER pictures alone in their coded sequence."""
    data = Encoder(config("--IntraPeriod", "1", "--RoiEnabled", "1")).encode(clip(2))
    units = parse_units(data)
    i = next(k for k, u in enumerate(units) if u.type_name == "RESTORATION" and not u.payload.rm_picture_level_flag)
    ph = next(k for k, u in enumerate(units) if u.type_name == "PH")
    assert i < ph
    twice = _units_bytes(data, units[:i + 1] + units[i:])
    with pytest.raises(BitstreamError, match="sequence-level RESTORATION unit repeated"):
        Decoder().decode(twice)
    late = _units_bytes(data, units[:i] + units[i + 1:ph + 1] + [units[i]] + units[ph + 1:])
    with pytest.raises(BitstreamError, match="sequence-level RESTORATION unit after a picture header"):
        Decoder().decode(late)
    j = next(k for k, u in enumerate(units) if u.type_name == "RESTORATION" and u.payload.rm_picture_level_flag)
    with pytest.raises(BitstreamError, match="second picture-level RESTORATION"):
        Decoder().decode(_units_bytes(data, units[:j + 1] + units[j:]))
    # a PCM picture (same SPS format) after the INNER pictures of the sequence
    c = cfgmod.parse(["--Profile", "machine_video", "--CodingMode", "pcm"], ENCODER_OPTIONS)[0]
    pcm = Encoder(c).encode(clip(1))
    pu = parse_units(pcm)
    pic = [u for u in pu if u.type_name in ("PH", "PCM")]
    eos = len(units) - 1
    assert units[eos].type_name == "EOS"
    sps = units[0].payload
    sps.sps_pcm_enabled_flag = 1                    # Machine Video allows both tools
    w = BitstreamWriter()
    w.write_unit(hls.UT_SPS, sps)
    mixed = (w.getvalue() + _units_bytes(data, units[1:eos]) + _units_bytes(pcm, pic)
             + _units_bytes(data, units[eos:]))
    with pytest.raises(BitstreamError, match="PCM picture in a coded sequence of INNER pictures"):
        Decoder().decode(mixed)


def test_inner_bit_depth_must_match_the_inner_bitstream():
    """T2.1/T2.2: an 8-bit HEVC inner bitstream signalled as InnerBitDepth 10 is
    named (the samples would otherwise be read as 10-bit values)."""
    from refsw.conformance import suite_dir
    with open(os.path.join(suite_dir(), "streams", "inner_hevc_ra_none.bin"), "rb") as f:
        data = f.read()
    units = parse_units(data)
    assert [u.type_name for u in units[:2]] == ["SPS", "RESTORATION"]
    rm = units[1].payload
    assert rm.rm_inner_bit_depth_minus8 == 0
    rm.rm_inner_bit_depth_minus8 = 2
    w = BitstreamWriter()
    w.write_unit(hls.UT_SPS, units[0].payload)
    w.write_unit(hls.UT_RESTORATION, rm)
    with pytest.raises(BitstreamError, match="inner bitstream is yuv420p; .* InnerBitDepth 10 \\(yuv420p10le\\)"):
        Decoder().decode(w.getvalue() + data[units[2].offset:])


def _ph(unit, **changes):
    return Struct(**{**vars(unit.payload), **changes})


def test_picture_order_count_constraints():
    """8.1 / T2.4: POCs increase within a coded sequence; INNER picture n has POC n."""
    data = Encoder(config("--IntraPeriod", "1")).encode(clip(3))
    units = parse_units(data)
    phs = [k for k, u in enumerate(units) if u.type_name == "PH"]
    assert [units[k].payload.ph_pic_order_cnt for k in phs] == [0, 1, 2]
    assert len(Decoder().decode(data)) == 3
    bad = rewrite_unit(data, units[phs[1]], payload=_ph(units[phs[1]], ph_pic_order_cnt=5))
    with pytest.raises(BitstreamError, match=r"ph_pic_order_cnt 5 of picture 1 .*expected 1") as e:
        Decoder().decode(bad)
    assert e.value.element == "ph_pic_order_cnt" and "T2.4" in str(e.value)
    assert e.value.bitpos == (units[phs[1]].offset + 6) * 8
    # PCM pictures: any increasing POCs, not a repeated or decreasing one
    c = cfgmod.parse(["--Profile", "machine_video", "--CodingMode", "pcm"], ENCODER_OPTIONS)[0]
    pcm = Encoder(c).encode(clip(3))
    pu = parse_units(pcm)
    pp = [k for k, u in enumerate(pu) if u.type_name == "PH"]
    gap = rewrite_unit(pcm, pu[pp[2]], payload=_ph(pu[pp[2]], ph_pic_order_cnt=9))
    assert [p.poc for p in Decoder().decode(gap)] == [0, 1, 9]
    with pytest.raises(BitstreamError, match=r"ph_pic_order_cnt 0 does not exceed .*\(1\)") as e:
        Decoder().decode(rewrite_unit(pcm, pu[pp[2]], payload=_ph(pu[pp[2]], ph_pic_order_cnt=0)))
    assert e.value.element == "ph_pic_order_cnt" and "8.1" in str(e.value)


def _planes(w, h, seed):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w)).astype(np.uint16),
            *(rng.integers(0, 256, (h // 2, w // 2)).astype(np.uint16) for _ in range(2))]


def test_inner_picture_size_is_checked_not_rescaled():
    """T2.2: every inner picture is CodedWidth x CodedHeight.  A second picture of another
    size with the same number of samples (128x32 after 64x64) was accepted before: the
    byte count matched, and a size change would have been rescaled by ffmpeg."""
    st = inner.Structure(intra_period=1, qp=30, preset="ultrafast")
    a = inner.encode(inner.HEVC, [_planes(64, 64, 1)], 64, 64, 8, 8, st).data
    b = inner.encode(inner.HEVC, [_planes(128, 32, 2)], 128, 32, 8, 8, st).data
    assert len(dec_inner.decode(inner.HEVC, a + a, 64, 64, 8, 2)) == 2
    with pytest.raises(BitstreamError, match=r"inner picture 1 of the HEVC inner bitstream is 128x32 yuv420p, "
                                             r"expected 64x64"):
        dec_inner.decode(inner.HEVC, a + b, 64, 64, 8, 2)
    with pytest.raises(BitstreamError, match="decodes to more than 1 pictures"):
        dec_inner.decode(inner.HEVC, a + a + a, 64, 64, 8, 1)


def test_inner_decoder_output_is_bounded():
    """The inner decoder's output is read up to the size the SPS allows, then it is stopped."""
    big = [sys.executable, "-c", "import sys\nfor _ in range(64): sys.stdout.buffer.write(bytes(1 << 20))"]
    rc, out, err, note = dec_inner._run_bounded(big, b"", 3 << 20)
    assert note == "output" and len(out) <= 4 << 20
    slow = [sys.executable, "-c", "import time; time.sleep(30)"]
    rc, out, err, note = dec_inner._run_bounded(slow, b"", 1 << 20, timeout=1)
    assert note == "timeout" and rc != 0
    rc, out, err, note = dec_inner._run_bounded([sys.executable, "-c", "import sys; print(sys.stdin.read()[::-1])"],
                                            b"abc", 100)
    assert (rc, out.strip(), note) == (0, b"cba", None)


def test_roi_of_pcm_pictures():
    """T2.7: the regions come with every output picture, PCM pictures included, and
    persist to the next picture of the coded sequence only."""
    c = cfgmod.parse(["--Profile", "machine_video", "--CodingMode", "pcm"], ENCODER_OPTIONS)[0]
    pcm = Encoder(c).encode(clip(2))
    units = parse_units(pcm)
    sps = units[0].payload
    sps.sps_roi_enabled_flag = 1
    w = BitstreamWriter()
    w.write_unit(hls.UT_SPS, sps)
    roi = Struct(rm_picture_level_flag=1, rm_num_roi=1, rm_roi_x=[3], rm_roi_y=[4], rm_roi_width_minus1=[9],
                 rm_roi_height_minus1=[19])
    for u in units[1:]:
        if u.type_name == "EOS":
            continue
        w.write_unit(u.unit_type, u.payload)
        if u.type_name == "PCM" and u.index < 3:
            w.write_unit(hls.UT_RESTORATION, roi)
    w.write_unit(hls.UT_SPS, sps)                          # a new coded sequence: no regions yet
    w.write_unit(hls.UT_PH, units[1].payload)
    w.write_unit(hls.UT_PCM, units[2].payload)
    out = Decoder(check_hash=False).decode(w.getvalue())
    assert [p.roi for p in out] == [[(3, 4, 10, 20)], [(3, 4, 10, 20)], []]
    assert Decoder().decode(pcm)[0].roi is None            # not enabled in the SPS
    bad = Struct(**{**vars(roi), "rm_roi_x": [hls.output_size(sps)[0] - 9]})   # 10 wide: one beyond the picture
    with pytest.raises(BitstreamError, match="rm_roi_width_minus1"):
        w2 = BitstreamWriter()
        w2.write_unit(hls.UT_SPS, sps)
        w2.write_unit(hls.UT_RESTORATION, bad)
