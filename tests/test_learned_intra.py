"""Learned intra coding mode with a small random model: bit exactness and errors.

These tests do not need the shipped weights: they integerise a randomly
initialised model of the registered architecture, so they check the
normative machinery (integer layers, entropy coding, syntax), not RD.
"""

import numpy as np
import pytest
import torch

from refsw.cfg import parse
from refsw.decoder import Decoder
from refsw.encoder import Encoder
from refsw.decoder import intnet_torch
from refsw.decoder.intnet import IntLayer, IntNetError, check_bounds, conv2d_taps, from_npz, run, to_npz_dict
from refsw.options import ENCODER_OPTIONS
from refsw.picture import Picture
from syntax.errors import BitstreamError
from syntax.units import parse_units, rewrite_unit
from conftest import random_codec, synthetic_rgb


@pytest.fixture(scope="module")
def random_model(tmp_path_factory):
    with random_codec(tmp_path_factory.mktemp("model")):
        yield


def _pic(w=70, h=45, seed=1):
    return synthetic_rgb(w, h, seed)


def _encode(pic, *args):
    c, _ = parse(["--CodingMode", "learned", *args], ENCODER_OPTIONS)
    return Encoder(c).encode([pic])


def test_roundtrip_hash_and_paths(random_model):
    data = _encode(_pic(), "-q", "40")
    units = parse_units(data)
    assert [u.type_name for u in units] == ["SPS", "PH", "HYPER", "LATENT", "LATENT", "DPH", "DPH", "EOS"]
    assert [u.unit_layer_id for u in units if u.type_name == "DPH"] == [0, 1]
    out = Decoder().decode(data)
    assert out[0].hash_status == "match"
    assert (out[0].picture.width, out[0].picture.height) == (70, 45)
    out2 = Decoder(reference=True).decode(data)     # int64 convolution path
    assert out2[0].hash_status == "match"
    assert out2[0].picture == out[0].picture
    from threadpoolctl import threadpool_limits
    with threadpool_limits(1):     # the CPU decoder's products run in numpy's BLAS
        assert Decoder().decode(data)[0].picture == out[0].picture


def test_quality_changes_rate(random_model):
    sizes = [len(_encode(_pic(), "-q", str(q))) for q in (0, 63)]
    assert sizes[0] != sizes[1]


def test_base_layer_alone_decodes(random_model):
    data = _encode(_pic(), "-q", "30")
    out = Decoder(max_layer=0).decode(data)
    assert out[0].picture.width == 70 and out[0].hash_status == "match"   # the layer-0 DPH


def test_corrupt_latent_is_bitstream_error_or_mismatch(random_model):
    data = bytearray(_encode(_pic(), "-q", "50"))
    lat = [u for u in parse_units(bytes(data)) if u.type_name == "LATENT"][1]
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(40):
        d = bytearray(data)
        i = lat.offset + 4 + 2 + int(rng.integers(0, lat.size - 2))
        d[i] ^= 1 << int(rng.integers(0, 8))
        try:
            out = Decoder().decode(bytes(d))
            seen.add(out[0].hash_status)
        except BitstreamError:
            seen.add("error")
    assert seen <= {"error", "mismatch", "match"}
    assert "error" in seen or "mismatch" in seen


def test_model_id_unknown_is_bitstream_error(random_model):
    data = bytearray(_encode(_pic(), "-q", "10", "--ModelId", "1"))
    # rewrite sps_model_id to 77 through the syntax layer
    units = parse_units(bytes(data))
    from syntax.units import BitstreamWriter
    w = BitstreamWriter()
    sps = units[0].payload
    sps.sps_model_id = 77
    w.write_unit(0, sps)
    bad = w.getvalue() + bytes(data[units[1].offset:])
    with pytest.raises(BitstreamError, match="sps_model_id"):
        Decoder().decode(bad)


def test_bound_check_refuses_inexact_layer():
    L = IntLayer(np.full((1, 4096, 3, 3), 1 << 14, np.int64), np.zeros(1, np.int64), np.ones(1, np.int64),
                 1, 0, 10, 0, "big")
    with pytest.raises(IntNetError, match="2\\^53"):
        check_bounds([L], 1 << 30)


def test_float64_equals_int64_on_random_layers():
    rng = np.random.default_rng(2)
    layers = [IntLayer(rng.integers(-8191, 8192, (8, 5, 3, 3)), rng.integers(-1000, 1000, 8),
                       rng.integers(1 << 18, 1 << 19, 8), 20, 0, 32767, 2, "a"),
              IntLayer(rng.integers(-8191, 8192, (3, 2, 3, 3)), rng.integers(-1000, 1000, 3),
                       rng.integers(1 << 18, 1 << 19, 3), 22, 0, 255, 0, "b")]
    check_bounds(layers, 32767)
    x = rng.integers(-32768, 32767, (1, 5, 9, 11))
    a = run(layers, x, "float64")
    b = run(layers, x, "int64")
    assert a.dtype == np.int64 and np.array_equal(a, b)
    # the torch form (a GPU decoder's; here on the CPU) gives the same integers
    assert np.array_equal(intnet_torch.run(layers, torch.from_numpy(x), "float64").numpy(), a)


@pytest.mark.parametrize("k,shuffle,n", [(1, 0, 1), (3, 0, 2), (3, 2, 1), (5, 2, 2), (5, 0, 1)])
def test_tap_convolution_equals_int64_convolution(k, shuffle, n):
    # conv2d_taps (the float64 path) against the int64 conv, near the 2^53 bound
    rng = np.random.default_rng(k * 10 + shuffle + n)
    cin, cout, h, w = 6, 5, 7, 10
    wt = rng.integers(-(1 << 20), 1 << 20, (cout, cin, k, k))
    x = rng.integers(-(1 << 26), 1 << 26, (n, cin * max(shuffle, 1) ** 2, h, w))
    bias = rng.integers(-(1 << 40), 1 << 40, cout)
    ref = torch.nn.functional.conv2d(
        torch.nn.functional.pixel_shuffle(torch.from_numpy(x), shuffle) if shuffle else torch.from_numpy(x),
        torch.from_numpy(wt), torch.from_numpy(bias), padding=k // 2)
    assert ref.abs().max() > 1 << 46
    taps = wt.transpose(2, 3, 0, 1).reshape(k * k, cout, cin)
    got = conv2d_taps(x.astype(np.float64), taps.astype(np.float64), bias.astype(np.float64), shuffle)
    assert got.shape == tuple(ref.shape) and np.array_equal(got.astype(np.int64), ref.numpy())
    assert np.array_equal(conv2d_taps(x, taps, bias, shuffle), ref.numpy())     # the int64 path
    got_t = intnet_torch.conv2d_taps(torch.from_numpy(x).double(), torch.from_numpy(taps).double(),
                                     torch.from_numpy(bias).double(), shuffle)
    assert torch.equal(got_t.to(torch.int64), ref)


def test_shuffle_chain_float64_equals_int64():
    # depth-to-space between layers (fused into the next layer's input copy) and after the last one
    rng = np.random.default_rng(5)
    layers = [IntLayer(rng.integers(-8191, 8192, (16, 3, 1, 1)), rng.integers(-1000, 1000, 16),
                       rng.integers(1 << 18, 1 << 19, 16), 18, 0, 32767, 2, "a"),
              IntLayer(rng.integers(-8191, 8192, (8, 4, 5, 5)), rng.integers(-1000, 1000, 8),
                       rng.integers(1 << 18, 1 << 19, 8), 24, -300, 32767, 2, "b"),
              IntLayer(rng.integers(-8191, 8192, (4, 2, 3, 3)), rng.integers(-1000, 1000, 4),
                       rng.integers(1 << 18, 1 << 19, 4), 22, 0, 255, 2, "c")]
    x = rng.integers(-32768, 32767, (2, 3, 5, 6))
    a = run(layers, x, "float64")
    assert a.shape == (2, 1, 40, 48)
    assert np.array_equal(a, run(layers, x, "int64"))
    assert np.array_equal(intnet_torch.run(layers, torch.from_numpy(x), "int64").numpy(), a)


def test_even_kernel_refused_at_load():
    L = IntLayer(np.ones((2, 2, 2, 2), np.int64), np.zeros(2, np.int64), np.ones(2, np.int64), 1, 0, 10, 0, "e")
    with pytest.raises(IntNetError, match="gs.0.weight: shape \\(2, 2, 2, 2\\).*odd square kernel"):
        from_npz(to_npz_dict("gs", [L]), "gs")


def test_target_bpp_search(random_model):
    pic = _pic()
    c, _ = parse(["--CodingMode", "learned", "--TargetBpp", "2.0"], ENCODER_OPTIONS)
    enc = Encoder(c)
    data = enc.encode([pic])
    assert 8 * len(data) / (pic.width * pic.height) <= 2.0 + 0.5   # headers counted in the search
    assert any("quality" in line for line in enc.log)


def test_target_bpp_below_the_lowest_rate_is_reported(random_model):
    c, _ = parse(["--CodingMode", "learned", "--TargetBpp", "0.001"], ENCODER_OPTIONS)
    enc = Encoder(c)
    enc.encode([_pic()])
    assert any("quality 0" in line for line in enc.log)
    assert any("below the rate of the lowest quality index" in line for line in enc.log)


def _picture_bits(data):
    """Bits of the one picture of a stream: from its PH unit up to EOS (DPH units included)."""
    units = parse_units(data)
    start = next(u.offset for u in units if u.type_name == "PH")
    return 8 * (next(u.offset for u in units if u.type_name == "EOS") - start)


@pytest.mark.parametrize("hash_flag", ["0", "1"])
def test_target_bpp_is_the_picture_rate(random_model, hash_flag):
    """TargetBpp picks the largest quality whose picture (with its DPH units, if
    any) fits: the chosen q fits and q + 1 does not."""
    pic = _pic()
    npix = pic.width * pic.height

    def rate(q):
        return _picture_bits(_encode(pic, "-q", str(q), "--PictureHash", hash_flag)) / npix

    target = rate(40)
    c, _ = parse(["--CodingMode", "learned", "--TargetBpp", repr(target), "--PictureHash", hash_flag],
                 ENCODER_OPTIONS)
    enc = Encoder(c)
    data = enc.encode([pic])
    q = int(next(line for line in enc.log if "quality" in line).split()[-1])
    assert _picture_bits(data) / npix == rate(q) <= target
    assert q == 63 or rate(q + 1) > target


def test_extract_base_layer_is_conforming(random_model, tmp_path):
    from refsw.apps.extract import extract
    data = _encode(_pic(), "-q", "55")     # (random model: at q 45 its enhancement layer codes only the means)
    sub, kept, dropped = extract(data, 0)
    assert dropped == 2 and len(sub) < len(data)           # LATENT layer 1 and its DPH
    out = Decoder().decode(sub)
    assert out[0].hash_status == "match" and out[0].hash_layer is None or out[0].hash_layer == 0
    full = Decoder().decode(data)[0].picture
    assert Decoder(max_layer=0).decode(data)[0].picture == out[0].picture
    assert full != out[0].picture


def test_encoder_and_parser_traces_identical(random_model):
    from syntax.rw import Trace
    from syntax.units import iter_units
    c, _ = parse(["--CodingMode", "learned", "-q", "12"], ENCODER_OPTIONS)
    t1 = Trace()
    data = Encoder(c, t1).encode([_pic()])
    t2 = Trace()
    for _ in iter_units(data, t2):
        pass
    assert t1.text() == t2.text() and "lat_num_channels" in t1.text()


def test_colour_conversion_hand_computed():
    from refsw.colour import rgb_to_ycbcr
    white = Picture([np.full((2, 2), 255, np.uint16)] * 3, "444", 8, "rgb")
    black = Picture([np.zeros((2, 2), np.uint16)] * 3, "444", 8, "rgb")
    assert [int(p[0, 0]) for p in rgb_to_ycbcr(white, "444").planes] == [235, 128, 128]
    assert [int(p[0, 0]) for p in rgb_to_ycbcr(black, "420").planes] == [16, 128, 128]
    red = Picture([np.full((1, 1), 255, np.uint16), np.zeros((1, 1), np.uint16), np.zeros((1, 1), np.uint16)],
                  "444", 8, "rgb")
    # BT.709 limited range red: Y 63, Cb 102, Cr 240
    assert [int(p[0, 0]) for p in rgb_to_ycbcr(red, "444").planes] == [63, 102, 240]


def test_ycbcr420_input_roundtrip(random_model):
    from refsw.colour import rgb_to_ycbcr
    pic = rgb_to_ycbcr(_pic(), "420")
    data = _encode(pic, "-q", "30")
    out = Decoder().decode(data)[0]
    assert out.hash_status == "match" and out.picture.chroma_format == "420"
    assert (out.picture.width, out.picture.height) == (70, 45)
    assert out.picture.planes[1].shape == (23, 35)


def test_unreadable_or_incomplete_integer_data_names_the_file(tmp_path):
    from refsw.decoder.learned_intra import IntModel
    bad = tmp_path / "m_int.npz"
    bad.write_bytes(b"PK\x03\x04" + b"\0" * 40)
    with pytest.raises(ValueError, match=f"{bad}: not a readable .npz file"):
        IntModel(str(bad), 1)
    part = tmp_path / "part_int.npz"
    np.savez(part, **{"meta.config_json": np.frombuffer(b"{}", np.uint8)})
    with pytest.raises(ValueError, match=f"{part}: no array 'hs.num_layers'"):
        IntModel(str(part), 1)


@pytest.mark.parametrize("kind, layer, tid, match", [
    ("PH", 1, None, "PH unit with unit_layer_id 1"),
    ("HYPER", 2, None, "HYPER unit with unit_layer_id 2"),
    ("EOS", 1, None, "EOS unit with unit_layer_id 1"),
    ("DPH", 2, None, "DPH unit with unit_layer_id 2"),
    ("LATENT", 2, None, "LATENT unit with unit_layer_id 2"),
    ("SPS", None, 1, "SPS unit with temporal id 1"),
    ("PH", None, 2, "PH unit with temporal id 2"),
    ("LATENT", None, 1, "LATENT unit with temporal id 1"),
    ("DPH", None, 3, "DPH unit with temporal id 3"),
])
def test_unit_header_constraints(random_model, kind, layer, tid, match):
    data = _encode(_pic(), "-q", "20")
    unit = [u for u in parse_units(data) if u.type_name == kind][-1]
    with pytest.raises(BitstreamError, match=match) as e:
        Decoder().decode(rewrite_unit(data, unit, layer_id=layer, temporal_id=tid))
    assert e.value.bitpos == 8 * unit.offset + (39 if layer is not None else 45)
    assert "5.2" in str(e.value)


def test_operating_point_set_unknown_is_bitstream_error(random_model):
    data = _encode(_pic(), "-q", "10")
    units = parse_units(data)
    from syntax.units import BitstreamWriter
    w = BitstreamWriter()
    sps = units[0].payload
    sps.sps_operating_point_set_id = 3
    w.write_unit(0, sps)
    bad = w.getvalue() + data[units[1].offset:]
    with pytest.raises(BitstreamError, match="sps_operating_point_set_id 3"):
        Decoder().decode(bad)
    with pytest.raises(BitstreamError, match="sps_operating_point_set_id 3"):
        Decoder(task="face").decode(bad)


def test_task_branch_ids_distinct(random_model):
    from syntax.rw import Trace
    from syntax.units import BitstreamWriter
    data = _encode(_pic(), "-q", "10")
    units = parse_units(data)
    sps = units[0].payload
    sps.sps_num_task_branches = 2
    sps.sps_task_branch_id = [1, 1]
    sps.sps_task_branch_num_layers_minus1 = [0, 0]
    with pytest.raises(BitstreamError, match="distinct"):
        BitstreamWriter().write_unit(0, sps)          # the writer runs the same template
    sps.sps_task_branch_id = [1, 2]
    w = BitstreamWriter()
    w.write_unit(0, sps)
    good = w.getvalue() + data[units[1].offset:]
    assert Decoder().decode(good)[0].hash_status == "match"  # an unknown branch id is ignored
    t = Trace()
    parse_units(good, t)
    pos = int(next(ln for ln in t.lines if "sps_task_branch_id[1]" in ln).split()[0])
    with pytest.raises(BitstreamError, match="distinct") as e:
        Decoder().decode(_set_bits(good, pos, 8, 1))
    assert e.value.element.startswith("sps_task_branch_id")


def _set_bits(data, pos, n, value):
    """data with the n bits at bit position pos replaced by value (MSB first)."""
    bits = "".join(f"{b:08b}" for b in data)
    bits = bits[:pos] + f"{value:0{n}b}" + bits[pos + n:]
    return bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))


def test_requantisation_bounds_outside_the_layers_checked_at_load(tmp_path):
    """10.1: the Requant products of ZD, GD, MU and LS/LSA are bounded at load."""
    from refsw.decoder.learned_intra import IntModel
    with random_codec(tmp_path) as path:
        z = dict(np.load(path))
        IntModel(str(path), 1)
        for key, what in (("q.ls_add", "LS, LSA"), ("q.gd_mult", "GD")):
            bad = dict(z)
            bad[key] = np.full_like(z[key], np.iinfo(np.int64).max if key == "q.ls_add" else 1 << 62)
            np.savez(tmp_path / "bad.npz", **bad)
            with pytest.raises(ValueError, match=f"bad.npz: requantisation product bound of {what}"):
                IntModel(str(tmp_path / "bad.npz"), 1)
