"""Syntax layer: descriptors, round trips of every structure, malformed streams."""
import copy
import random

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from syntax import hls
from syntax.errors import BitstreamError
from syntax.rw import Struct, SyntaxReader, SyntaxWriter, Trace, syntax_structure, ue_bits, ue_to_se
from syntax.units import BitstreamWriter, iter_units, parse_units, rewrite_unit
from refsw.decoder import Decoder


# ---------------------------------------------------------------------------
# Exp-Golomb: H.264/H.265 Table 9-2 (bit strings) and Table 9-3 (se mapping)
# ---------------------------------------------------------------------------

EG_TABLE = {0: "1", 1: "010", 2: "011", 3: "00100", 4: "00101", 5: "00110", 6: "00111",
            7: "0001000", 8: "0001001", 14: "0001111", 15: "000010000"}
SE_TABLE = {0: 0, 1: 1, 2: -1, 3: 2, 4: -2, 5: 3, 6: -3}


@pytest.mark.parametrize("v,bits", sorted(EG_TABLE.items()))
def test_ue_table(v, bits):
    assert ue_bits(v) == bits
    s = Struct(x=v)
    w = SyntaxWriter()
    _one(w, s, "ue")
    w.bs.append("0b1" + "0" * ((-len(w.bs) - 1) % 8))
    r = SyntaxReader(w.getvalue())
    o = Struct()
    _one(r, o, "ue")
    assert o.x == v
    assert w.bs.bin.startswith(bits)


@pytest.mark.parametrize("k,v", sorted(SE_TABLE.items()))
def test_se_table(k, v):
    assert ue_to_se(k) == v
    w = SyntaxWriter()
    _one(w, Struct(x=v), "se")
    assert w.bs.bin == ue_bits(k)


@syntax_structure("test")
def _one_struct(rw, s, kind):
    if kind == "ue":
        rw.ue("x")
    elif kind == "se":
        rw.se("x")


def _one(rw, s, kind):
    _one_struct(rw, s, kind)


@given(st.integers(min_value=-(1 << 30), max_value=1 << 30), st.integers(0, 1 << 31), st.integers(1, 32))
@settings(max_examples=200, deadline=None)
def test_descriptor_roundtrip(sv, uv, n):
    uvn = uv & ((1 << n) - 1)

    @syntax_structure("test")
    def s3(rw, s):
        rw.se("a")
        rw.ue("b")
        rw.u(n, "c")
        rw.rbsp_trailing_bits()

    w = SyntaxWriter()
    s3(w, Struct(a=sv, b=uv, c=uvn))
    o = Struct()
    s3(SyntaxReader(w.getvalue()), o)
    assert (o.a, o.b, o.c) == (sv, uv, uvn)


def test_writer_refuses_out_of_range_before_writing():
    @syntax_structure("9.9")
    def s(rw, o):
        rw.u(4, "first", 0, 15)
        rw.u(6, "ph_quality_idx", 0, 63)

    w = SyntaxWriter()
    with pytest.raises(BitstreamError) as e:
        s(w, Struct(first=3, ph_quality_idx=64))
    assert len(w.bs) == 4            # nothing of the bad element was written
    assert "ph_quality_idx" in str(e.value) and "shall be in the range of 0 to 63" in str(e.value)
    assert "clause 9.9" in str(e.value)


def test_reader_range_error_names_element_and_bit():
    @syntax_structure("9.9")
    def s(rw, o):
        rw.u(4, "a")
        rw.u(4, "b", 0, 3)

    with pytest.raises(BitstreamError) as e:
        s(SyntaxReader(bytes([0x1F])), Struct())
    err = e.value
    assert err.element == "b" and err.bitpos == 4 and err.clause == "9.9"


def test_infer():
    w = SyntaxWriter()
    sps = _sps(sps_conformance_window_flag=0)
    sps.sps_conf_win_left_offset = 1      # contradicts the inferred value
    with pytest.raises(BitstreamError, match="inferred"):
        hls.seq_parameter_set(w, sps)
    s = _sps(sps_conformance_window_flag=0, sps_learned_intra_enabled_flag=0)
    for k in LEARNED_KEYS:
        s.__dict__.pop(k)
    sps2 = parse_units(_stream([(hls.UT_SPS, s, 0)]))[0].payload
    assert sps2.sps_conf_win_left_offset == 0 and sps2.sps_num_latent_layers_minus1 == 0


# ---------------------------------------------------------------------------
# Round trips of every syntax structure
# ---------------------------------------------------------------------------

LEARNED_KEYS = ("sps_model_id", "sps_operating_point_set_id", "sps_num_latent_layers_minus1",
                "sps_num_task_branches", "sps_task_branch_id", "sps_task_branch_num_layers_minus1")


def _sps(**kw):
    s = Struct(sps_profile_idc=1, sps_level_idc=20, sps_pic_width_in_luma_samples=17,
               sps_pic_height_in_luma_samples=9, sps_chroma_format_idc=1, sps_colour_space_idc=0,
               sps_bit_depth_minus8=2, sps_conformance_window_flag=1, sps_conf_win_left_offset=0,
               sps_conf_win_right_offset=0, sps_conf_win_top_offset=0, sps_conf_win_bottom_offset=1,
               sps_timing_info_present_flag=1, sps_num_units_in_tick=1001, sps_time_scale=30000,
               sps_pcm_enabled_flag=1, sps_learned_intra_enabled_flag=1, sps_model_id=1,
               sps_operating_point_set_id=0, sps_num_latent_layers_minus1=1,
               sps_num_task_branches=1, sps_task_branch_id=[1], sps_task_branch_num_layers_minus1=[0],
               sps_inner_codec_enabled_flag=0, sps_feature_coding_enabled_flag=0, sps_roi_enabled_flag=0,
               sps_spatial_resampling_enabled_flag=0, sps_temporal_resampling_enabled_flag=0,
               sps_bit_depth_truncation_enabled_flag=0, sps_post_filter_enabled_flag=0,
               sps_extension_flag=0)
    s.__dict__.update(kw)
    if not s.sps_conformance_window_flag:
        for k in ("left", "right", "top", "bottom"):
            s.__dict__.pop(f"sps_conf_win_{k}_offset", None)
    return s


def _video_sps(**kw):
    d = dict(sps_profile_idc=2, sps_learned_intra_enabled_flag=0, sps_inner_codec_enabled_flag=1,
             sps_inner_codec_idc=1, sps_roi_enabled_flag=1, sps_spatial_resampling_enabled_flag=1,
             sps_temporal_resampling_enabled_flag=1, sps_bit_depth_truncation_enabled_flag=1,
             sps_post_filter_enabled_flag=1, sps_post_filter_id=3)
    d.update(kw)
    s = _sps(**d)
    for k in LEARNED_KEYS:
        s.__dict__.pop(k)
    return s


def _es(n_lane=5, n_esc=2):
    return Struct(es_num_lanes_minus1=3, es_lane_data_size=n_lane, es_escape_data_size=n_esc,
                  es_lane_data=bytes(i % 256 for i in range(n_lane)), es_escape_data=bytes([255] * n_esc))


def _stream(units, trace=None):
    w = BitstreamWriter(trace)
    for ut, payload, layer in units:
        if payload is None:
            w.write_unit(ut, None, layer_id=layer, raw=b"\x01\x02")
        else:
            w.write_unit(ut, payload, layer_id=layer)
    return w.getvalue()


def _pcm(sps, seed=0):
    rng = np.random.default_rng(seed)
    bd = hls.bit_depth(sps)
    return Struct(pcm_sample=[rng.integers(0, 1 << bd, hls.comp_size(sps, c)[::-1])
                              for c in range(hls.num_comp(sps))])


def _all_units():
    sps = _sps()
    vs = _video_sps()
    fsps = _sps(sps_profile_idc=3, sps_learned_intra_enabled_flag=0, sps_feature_coding_enabled_flag=1)
    for k in LEARNED_KEYS:
        fsps.__dict__.pop(k)
    ext = _sps(sps_extension_flag=1, sps_extension_data_flag=[1, 0, 1])
    return [
        ("intra", [
            (hls.UT_SPS, sps, 0),
            (hls.UT_PH, Struct(ph_pic_order_cnt=0, ph_pic_type=0, ph_pic_coding_mode=0), 0),
            (hls.UT_PCM, _pcm(sps), 0),
            (hls.UT_DPH, Struct(dph_hash_type=0, dph_picture_md5=[bytes(range(16))] * 3), 0),
            (hls.UT_PH, Struct(ph_pic_order_cnt=1, ph_pic_type=0, ph_pic_coding_mode=1, ph_quality_idx=63), 0),
            (hls.UT_HYPER, Struct(hyp_num_channels=4, hyp_substream=_es()), 0),
            (hls.UT_LATENT, Struct(lat_num_channels=8, lat_substream=_es(0, 0)), 0),
            (hls.UT_LATENT, Struct(lat_num_channels=24, lat_substream=_es(300, 0)), 1),
            (hls.UT_RESIDUAL, Struct(res_qp=30, res_qp_delta=[None, 7, -30], res_scale_offset=[0, -32, 32],
                                     res_substream=_es(5, 2)), 1),
            (41, None, 0),
            (hls.UT_EOS, Struct(), 0),
        ]),
        ("video", [
            (hls.UT_SPS, vs, 0),
            (hls.UT_RESTORATION, Struct(rm_picture_level_flag=0, rm_inner_bit_depth_minus8=2,
                                        rm_spatial_resampling_flag=1,
                                        rm_coded_width_in_luma_samples=8, rm_coded_height_in_luma_samples=4,
                                        rm_upsampling_filter_idc=0, rm_temporal_resampling_flag=1,
                                        rm_temporal_ratio_minus1=1, rm_temporal_interp_idc=0,
                                        rm_bit_depth_truncation_flag=1, rm_bit_depth_shift=2,
                                        rm_post_filter_flag=1, rm_pf_component_flag=[1, 1],
                                        rm_pf_coeff=[[1, -2, 3, -4, 5, -6], [-64, 63, 0, 0, 7, 0]]), 0),
            (hls.UT_PH, Struct(ph_pic_order_cnt=7, ph_pic_type=2, ph_pic_coding_mode=2), 0),
            (hls.UT_INNER, Struct(icp_data_byte=b"\x00\x00\x01\x40\x01" * 7), 0),
            (hls.UT_RESTORATION, Struct(rm_picture_level_flag=1, rm_num_roi=2, rm_roi_x=[0, 3], rm_roi_y=[1, 2],
                                        rm_roi_width_minus1=[16, 4], rm_roi_height_minus1=[3, 5]), 0),
        ]),
        ("feature", [
            (hls.UT_SPS, fsps, 0),
            (hls.UT_PH, Struct(ph_pic_order_cnt=0, ph_pic_type=0, ph_pic_coding_mode=3), 0),
            (hls.UT_FEATURE, Struct(fp_tensor_idx=2, fp_num_dims_minus1=2, fp_dim=[3, 4, 5],
                                    fp_sample_bit_depth_minus1=9, fp_zero_point=-512, fp_step_num=3,
                                    fp_step_log2_den=4, fp_entropy_coded_flag=0,
                                    fp_sample=np.arange(60) * 17 % 1024), 0),
            (hls.UT_FEATURE, Struct(fp_tensor_idx=3, fp_num_dims_minus1=0, fp_dim=[10],
                                    fp_sample_bit_depth_minus1=7, fp_zero_point=5, fp_step_num=1,
                                    fp_step_log2_den=0, fp_entropy_coded_flag=1, fp_substream=_es()), 0),
        ]),
        ("sps_extension", [(hls.UT_SPS, ext, 0)]),
    ]


def _norm(o):
    if isinstance(o, Struct):
        return {k: _norm(v) for k, v in o.__dict__.items()}
    if isinstance(o, (list, tuple)):
        return [_norm(v) for v in o]
    if isinstance(o, np.ndarray):
        return o.astype(np.int64).tolist()
    return o


@pytest.mark.parametrize("name,units", _all_units(), ids=[n for n, _ in _all_units()])
def test_structure_roundtrip(name, units):
    t1 = Trace()
    data = _stream(units, t1)
    t2 = Trace()
    parsed = parse_units(data, t2)
    assert t1.text() == t2.text()                     # encoder and parser traces identical
    assert len(parsed) == len(units)
    rebuilt = _stream([(u.unit_type, u.payload, u.unit_layer_id) if u.payload is not None
                       else (u.unit_type, None, u.unit_layer_id) for u in parsed])
    assert rebuilt == data                            # build -> parse -> build
    for u in parsed:                                  # rewrite_unit without changes: identity
        assert rewrite_unit(data, u) == data
    again = parse_units(rewrite_unit(data, parsed[-1], temporal_id=3))
    assert again[-1].unit_temporal_id == 3 and again[-1].raw == parsed[-1].raw
    assert [u.raw for u in again[:-1]] == [u.raw for u in parsed[:-1]]
    for (ut, payload, layer), u in zip(units, parsed):
        assert u.unit_type == ut and u.unit_layer_id == layer
        if payload is not None:
            src = _norm(payload)
            got = _norm(u.payload)
            for k, v in src.items():              # every given element comes back
                assert got[k] == v, k


def test_every_structure_is_exercised():
    used = set()
    for _, units in _all_units():
        for ut, payload, _ in units:
            if payload is not None:
                used.add(hls.PAYLOAD_STRUCTURES[ut].__name__)
    assert used == {f.__name__ for f in hls.PAYLOAD_STRUCTURES.values()}


@st.composite
def sps_strategy(draw):
    w = draw(st.integers(1, 300))
    h = draw(st.integers(1, 300))
    cf = draw(st.sampled_from([0, 1, 3]))
    cs = 1 if (cf == 3 and draw(st.booleans())) else 0
    sw, sh = hls.sub_wh(cf)
    win = draw(st.booleans())
    kw = dict(sps_pic_width_in_luma_samples=w, sps_pic_height_in_luma_samples=h, sps_chroma_format_idc=cf,
              sps_colour_space_idc=cs, sps_bit_depth_minus8=draw(st.integers(0, 8)),
              sps_conformance_window_flag=int(win),
              sps_timing_info_present_flag=int(draw(st.booleans())),
              sps_learned_intra_enabled_flag=int(draw(st.booleans())))
    if win:
        kw.update(sps_conf_win_left_offset=sw * draw(st.integers(0, (w - 1) // sw // 2)),
                  sps_conf_win_right_offset=draw(st.integers(0, (w - 1) // 2)),
                  sps_conf_win_top_offset=sh * draw(st.integers(0, (h - 1) // sh // 2)),
                  sps_conf_win_bottom_offset=draw(st.integers(0, (h - 1) // 2)))
    s = _sps(**kw)
    if not s.sps_learned_intra_enabled_flag:
        for k in LEARNED_KEYS:
            s.__dict__.pop(k)
    return s


@given(sps_strategy())
@settings(max_examples=60, deadline=None)
def test_sps_pcm_roundtrip_property(sps):
    data = _stream([(hls.UT_SPS, sps, 0),
                    (hls.UT_PH, Struct(ph_pic_order_cnt=0, ph_pic_type=0, ph_pic_coding_mode=0), 0),
                    (hls.UT_PCM, _pcm(sps), 0)])
    parsed = parse_units(data)
    again = _stream([(u.unit_type, u.payload, u.unit_layer_id) for u in parsed])
    assert again == data
    out = Decoder().decode(data)
    assert (out[0].picture.width, out[0].picture.height) == hls.output_size(sps)


# ---------------------------------------------------------------------------
# Malformed streams: only BitstreamError, never another exception or a hang
# ---------------------------------------------------------------------------

def _small_stream():
    from refsw.picture import picture_md5
    sps = _sps(sps_learned_intra_enabled_flag=0, sps_pic_width_in_luma_samples=8,
               sps_pic_height_in_luma_samples=6, sps_conformance_window_flag=0)
    for k in LEARNED_KEYS:
        sps.__dict__.pop(k)
    pcm = _pcm(sps)
    from refsw.picture import Picture
    pic = Picture([np.asarray(p, dtype=np.uint16) for p in pcm.pcm_sample], "420", 10, "ycbcr")
    return _stream([(hls.UT_SPS, sps, 0),
                    (hls.UT_PH, Struct(ph_pic_order_cnt=0, ph_pic_type=0, ph_pic_coding_mode=0), 0),
                    (hls.UT_PCM, pcm, 0),
                    (hls.UT_DPH, Struct(dph_hash_type=0, dph_picture_md5=picture_md5(pic)), 0),
                    (hls.UT_EOS, Struct(), 0)])


def test_small_stream_decodes_and_matches():
    out = Decoder().decode(_small_stream())
    assert len(out) == 1 and out[0].hash_status == "match"


def test_truncation_at_every_byte():
    data = _small_stream()
    for n in range(len(data)):
        try:
            Decoder().decode(data[:n])
        except BitstreamError as e:
            assert e.bitpos is not None or e.element is not None
        # a cut on a unit boundary is a shorter valid stream


def test_random_bit_flips_only_bitstream_error():
    data = _small_stream()
    rng = random.Random(1)
    outcomes = {"error": 0, "mismatch": 0, "ok": 0}
    for _ in range(600):
        d = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(d) * 8)
            d[i // 8] ^= 0x80 >> (i % 8)
        try:
            out = Decoder().decode(bytes(d))
            outcomes["mismatch" if any(o.hash_status == "mismatch" for o in out) else "ok"] += 1
        except BitstreamError:
            outcomes["error"] += 1
    assert outcomes["error"] > 100 and outcomes["mismatch"] > 50


def test_wrong_lengths():
    data = bytearray(_small_stream())
    d = bytearray(data)
    d[0:4] = (0xFFFFFFF0).to_bytes(4, "big")
    with pytest.raises(BitstreamError, match="unit_length"):
        Decoder().decode(bytes(d))
    d = bytearray(data)
    d[0:4] = (1).to_bytes(4, "big")
    with pytest.raises(BitstreamError, match="unit_length"):
        Decoder().decode(bytes(d))


def test_unknown_unit_types_are_skipped():
    units = [u for _, us in _all_units()[:1] for u in us]
    data = _stream(units)
    parsed = parse_units(data)
    assert [u.unit_type for u in parsed if u.payload is None] == [41]


def test_unknown_profile_and_level():
    for kw, msg in ((dict(sps_profile_idc=9), "sps_profile_idc"), (dict(sps_level_idc=33), "sps_level_idc")):
        sps = _sps(**kw)
        with pytest.raises(BitstreamError, match=msg):
            _stream([(hls.UT_SPS, sps, 0)])


def test_level_bounds_picture_size():
    sps = _sps(sps_level_idc=10, sps_pic_width_in_luma_samples=400, sps_pic_height_in_luma_samples=400,
               sps_conformance_window_flag=0)
    with pytest.raises(BitstreamError, match="MaxLumaPs"):
        _stream([(hls.UT_SPS, sps, 0)])
    # hand-made hostile SPS: width beyond MaxDim is refused before any allocation
    w = SyntaxWriter()
    w.bs.append("uint:8=1, uint:8=10")
    w.bs.append("ue=100000, ue=100000")
    w.bs.append("0b1" + "0" * ((-len(w.bs) - 1) % 8))
    with pytest.raises(BitstreamError, match="sps_pic_width_in_luma_samples"):
        hls.seq_parameter_set(SyntaxReader(w.getvalue()), Struct())


def test_unit_before_sps_and_profile_tools():
    data = _small_stream()
    units = parse_units(data)
    ph_only = data[units[1].offset:]
    with pytest.raises(BitstreamError, match="first unit is a PH unit"):
        Decoder().decode(ph_only)
    with pytest.raises(BitstreamError, match="Table A-1"):
        _stream([(hls.UT_SPS, _sps(sps_inner_codec_enabled_flag=1, sps_inner_codec_idc=0), 0)])


def test_sps_size_first_unit_and_extension_parse_time():
    """5.1 / 5.3: an SPS unit is at most 65536 bytes and the first unit is an SPS;
    sps_extension_data_flag runs parse in linear time (the stop bit is found once)."""
    import time
    from syntax.levels import MAX_UNIT_BYTES_NO_SPS
    ok = _stream([(hls.UT_SPS, _sps(), 0), (hls.UT_EOS, Struct(), 0)])
    rsv = BitstreamWriter()
    rsv.write_unit(41, None, raw=b"reserved")
    with pytest.raises(BitstreamError, match="first unit is a reserved") as e:
        parse_units(rsv.getvalue() + ok)
    assert e.value.element == "unit_type" and e.value.clause == "5.3"
    with pytest.raises(BitstreamError, match="first unit is a EOS"):
        parse_units(ok[len(ok) - 6:] + ok)
    # 8 KiB of extension flags, then 8 KiB of zero bytes in the same unit (before the fix:
    # a backwards scan over the zeros per flag, ~20 s; now well under a second)
    n = 8 * 1024
    data = bytearray(_stream([(hls.UT_SPS, _sps(sps_extension_flag=1, sps_extension_data_flag=[1] * (8 * n)), 0)]))
    data[0:4] = (int.from_bytes(data[0:4], "big") + n).to_bytes(4, "big")
    t = time.process_time()
    with pytest.raises(BitstreamError, match="bytes left in the unit"):
        parse_units(bytes(data) + bytes(n))
    assert time.process_time() - t < 5.0
    # an SPS unit above 64 KiB, even after an SPS of a level with larger units
    big = bytearray(_stream([(hls.UT_SPS, _sps(), 0)]) + bytes(MAX_UNIT_BYTES_NO_SPS))
    big[0:4] = (int.from_bytes(big[0:4], "big") + MAX_UNIT_BYTES_NO_SPS).to_bytes(4, "big")
    big = bytes(big)
    with pytest.raises(BitstreamError, match="SPS unit of 655") as e:
        parse_units(ok[:len(ok) - 6] + big)
    assert e.value.element == "unit_length" and e.value.bitpos == (len(ok) - 6) * 8


def test_sample_packing_blocks_and_memory():
    """u(n) sample arrays (7.1, 7.6) pack and unpack in blocks: exact for every n
    across block boundaries, and parsing a 1 MiB unit of 14-bit samples stays
    within a small multiple of the unit (it peaked at 71.5 MiB)."""
    import tracemalloc
    from syntax.rw import _SAMPLE_BLOCK, pack_samples, unpack_samples
    rng = np.random.default_rng(3)
    for nbits in (1, 3, 7, 9, 14, 15):
        for count in (0, 1, 9, _SAMPLE_BLOCK - 1, _SAMPLE_BLOCK + 5):
            v = rng.integers(0, 1 << nbits, count)
            raw = pack_samples(v, nbits)
            assert len(raw) == (count * nbits + 7) // 8
            assert ''.join(f"{b:08b}" for b in raw)[:count * nbits] == ''.join(f"{x:0{nbits}b}" for x in v)
            assert np.array_equal(unpack_samples(np.frombuffer(raw, np.uint8), count, nbits), v)
    sps = _sps(sps_profile_idc=3, sps_level_idc=10, sps_learned_intra_enabled_flag=0, sps_pcm_enabled_flag=0,
               sps_feature_coding_enabled_flag=1)
    for k in LEARNED_KEYS:
        sps.__dict__.pop(k)
    n = 589824
    data = _stream([(hls.UT_SPS, sps, 0),
                    (hls.UT_PH, Struct(ph_pic_order_cnt=0, ph_pic_type=0, ph_pic_coding_mode=3), 0),
                    (hls.UT_FEATURE, Struct(fp_tensor_idx=0, fp_num_dims_minus1=0, fp_dim=[n],
                                            fp_sample_bit_depth_minus1=13, fp_zero_point=0, fp_step_num=1,
                                            fp_step_log2_den=0, fp_entropy_coded_flag=0,
                                            fp_sample=np.arange(n) % (1 << 14)), 0)])
    tracemalloc.start()
    try:
        units = parse_units(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(units[2].payload.fp_sample, np.arange(n) % (1 << 14))
    assert peak < 12 * len(data), peak
