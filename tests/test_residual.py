"""Clause 11: residual enhancement layer of learned pictures."""
from __future__ import annotations

import math

import numpy as np
import pytest

from refsw.cfg import parse
from refsw.decoder import Decoder
from refsw.decoder.residual import (RES_STEP, RES_TRANS_MATRIX, activity_class, inverse_transform,
                                    ycocg_r_forward, ycocg_r_inverse)
from refsw.encoder import Encoder
from refsw.options import ENCODER_OPTIONS
from refsw.picture import Picture
from syntax.errors import BitstreamError
from syntax.units import parse_units, rewrite_unit
from conftest import random_codec, synthetic_rgb


@pytest.fixture(scope="module")
def random_model(tmp_path_factory):
    with random_codec(tmp_path_factory.mktemp("model")):
        yield


def _encode(pic, *args):
    c, _ = parse(["--CodingMode", "learned", *args], ENCODER_OPTIONS)
    return Encoder(c).encode([pic])


def _psnr(a: Picture, b: Picture) -> float:
    err = np.concatenate([((p.astype(float) - q.astype(float)) ** 2).ravel() for p, q in zip(a.planes, b.planes)])
    mse = err.mean()
    return 10 * math.log10(255 ** 2 / mse)


def test_residual_roundtrip_and_quality_rises_with_rate(random_model):
    pic = synthetic_rgb(70, 45)
    plain = _encode(pic, "-q", "30")
    rows = []
    for qp in (40, 25, 10):
        data = _encode(pic, "-q", "30", "--ResidualQP", str(qp))
        units = parse_units(data)
        assert [u.type_name for u in units] == ["SPS", "PH", "HYPER", "LATENT", "LATENT", "RESIDUAL", "DPH", "DPH",
                                                "EOS"]
        assert next(u for u in units if u.type_name == "RESIDUAL").unit_layer_id == 1
        out = Decoder().decode(data)
        assert out[0].hash_status == "match"
        assert Decoder(reference=True).decode(data)[0].picture == out[0].picture
        rows.append((len(data), _psnr(out[0].picture, pic)))
        # the base layer alone drops the residual with the top latent layer and still matches
        assert Decoder(max_layer=0).decode(data)[0].hash_status == "match"
    base = _psnr(Decoder().decode(plain)[0].picture, pic)
    sizes, psnrs = zip(*rows)
    assert sizes[0] > len(plain) and list(sizes) == sorted(sizes)
    assert base < psnrs[0] < psnrs[1] < psnrs[2] and psnrs[2] > 45


def test_residual_ycbcr420(random_model):
    from refsw.colour import rgb_to_ycbcr
    pic = rgb_to_ycbcr(synthetic_rgb(64, 48), "420")
    data = _encode(pic, "-q", "20", "--ResidualQP", "12")
    out = Decoder().decode(data)[0]
    assert out.hash_status == "match" and out.picture.chroma_format == "420"
    assert _psnr(out.picture, pic) > 40


def test_inverse_transform_is_the_formula_of_11_4():
    """11.4 written out with Python integers, on random and extreme levels."""
    rng = np.random.default_rng(3)
    T = RES_TRANS_MATRIX.tolist()
    for qp, levels in ((20, rng.integers(-40, 41, (8, 8))), (63, np.full((8, 8), 32767)),
                       (63, rng.choice([-32767, 32767], (8, 8))), (0, rng.integers(-3, 4, (8, 8)))):
        got = inverse_transform(levels[None], qp)[0]
        d = [[int(levels[v][u]) * int(RES_STEP[qp]) for u in range(8)] for v in range(8)]
        for y in range(8):
            for x in range(8):
                e = sum(T[v][y] * d[v][u] * T[u][x] for v in range(8) for u in range(8))
                assert got[y][x] == (e + (1 << 18)) >> 19


def test_transform_is_near_orthonormal_and_steps_double_every_5_6():
    T = RES_TRANS_MATRIX
    g = T @ T.T
    assert np.abs(g - np.diag(np.diag(g))).max() <= 0.002 * 32768 and np.abs(np.diag(g) - 32768).max() < 0.01 * 32768
    r = RES_STEP[1:] / RES_STEP[:-1]
    assert np.allclose(r[20:], (256 / 0.11) ** (1 / 63), rtol=0.05)


def test_ycocg_r_is_lossless():
    rng = np.random.default_rng(0)
    r, g, b = (rng.integers(-511, 512, 1000) for _ in range(3))
    assert all((a == c).all() for a, c in zip(ycocg_r_inverse(*ycocg_r_forward(r, g, b)), (r, g, b)))


def test_activity_class_is_the_formula_of_11_3():
    rng = np.random.default_rng(1)
    plane = rng.integers(0, 256, (16, 24))
    plane[:8, :8] = 7                                  # flat block: act 0, class 0
    got = activity_class(plane)
    for by in range(2):
        for bx in range(3):
            B = plane[8 * by:8 * by + 8, 8 * bx:8 * bx + 8].tolist()
            act = sum(abs(B[i][j + 1] - B[i][j]) for i in range(8) for j in range(7)) + \
                sum(abs(B[i + 1][j] - B[i][j]) for i in range(7) for j in range(8))
            assert got[by, bx] == min(15, (1 + int(act)).bit_length() - 1)
    assert got[0, 0] == 0


def _stream():
    return _encode(synthetic_rgb(64, 64), "-q", "30", "--ResidualQP", "20")


def _rewrite_order(data, order):
    """The units of data in another order (indexes into parse_units), each copied as is."""
    u = parse_units(data)
    return b"".join(data[u[i].offset:u[i].offset + 4 + u[i].size] for i in order)


def test_residual_unit_placement_errors(random_model):
    data = _stream()
    u = parse_units(data)
    names = [x.type_name for x in u]
    r = names.index("RESIDUAL")
    # a second RESIDUAL unit
    twice = _rewrite_order(data, list(range(r + 1)) + [r] + list(range(r + 1, len(u))))
    with pytest.raises(BitstreamError) as e:
        Decoder().decode(twice)
    assert (e.value.element, e.value.clause) == ("unit_type", "8.2")
    # before the top LATENT unit
    order = list(range(len(u)))
    order[r - 1], order[r] = order[r], order[r - 1]
    with pytest.raises(BitstreamError) as e:
        Decoder().decode(_rewrite_order(data, order))
    assert (e.value.element, e.value.clause) == ("unit_type", "8.2")
    # in layer 0 while the picture has layer 1
    with pytest.raises(BitstreamError) as e:
        Decoder().decode(rewrite_unit(data, u[r], layer_id=0))
    assert (e.value.element, e.value.clause) == ("unit_layer_id", "8.2")


def test_residual_corruption_is_bitstream_error_or_mismatch(random_model):
    data = bytearray(_stream())
    u = next(x for x in parse_units(bytes(data)) if x.type_name == "RESIDUAL")
    rng = np.random.default_rng(5)
    seen = set()
    for _ in range(40):
        d = bytearray(data)
        pos = u.offset + 6 + int(rng.integers(0, u.size - 2))
        d[pos] ^= 1 << int(rng.integers(0, 8))
        try:
            out = Decoder().decode(bytes(d))
            seen.add(out[0].hash_status)
        except BitstreamError as e:
            seen.add("error")
            assert e.clause
    assert seen <= {"error", "mismatch", "match"} and seen & {"error", "mismatch"}
    with pytest.raises(BitstreamError):             # truncated in the unit
        Decoder().decode(bytes(data[:u.offset + 4 + u.size // 2]))


def test_level_bound_is_checked(random_model):
    """11.3: a level beyond 32767, coded with the tables the decoder derives, is an error."""
    from refsw.decoder.entropy import encode_substreams, gaussian_tables
    from refsw.decoder.residual import component_classes, component_qps, prediction_planes, scale_indexes
    from refsw.encoder.core import entropy_substream
    data = _stream()
    units = parse_units(data)
    u = next(x for x in units if x.type_name == "RESIDUAL")
    no_res = b"".join(data[x.offset:x.offset + 4 + x.size] for x in units if x.type_name not in ("RESIDUAL", "DPH"))
    base = Decoder().decode(no_res)[0].picture          # 64x64: coded size = output size
    res = u.payload
    ks = scale_indexes(prediction_planes(base, 1), component_classes(1, 3), component_qps(res, 3),
                       res.res_scale_offset)
    idx = np.concatenate([k.reshape(-1) for k in ks])
    sym = np.zeros(idx.size, dtype=np.int64)
    sym[5] = 40000
    res.res_substream = entropy_substream(encode_substreams(sym, idx, gaussian_tables()))
    with pytest.raises(BitstreamError) as e:
        Decoder().decode(rewrite_unit(data, u, payload=res))
    assert (e.value.element, e.value.clause) == ("res_substream", "11.3")


def test_task_decoding_ignores_the_residual(random_model):
    a = _encode(synthetic_rgb(64, 64), "-q", "30")
    b = _encode(synthetic_rgb(64, 64), "-q", "30", "--ResidualQP", "20")
    assert Decoder().decode(a)[0].picture != Decoder().decode(b)[0].picture
    ua = [x for x in parse_units(a) if x.type_name == "LATENT"]
    ub = [x for x in parse_units(b) if x.type_name == "LATENT"]
    assert [x.payload for x in ua] == [x.payload for x in ub]


def test_scale_table_as_fitted():
    """Table 11-3 as refsw.train.fit_residual writes it: 3 x 16 x 15 values in 0..127,
    non-decreasing in ActClass; the rendered spec tables equal it."""
    import os
    from refsw.decoder.residual_tables import RES_SCALE_TABLE
    from syntax.render import parse_array
    t = RES_SCALE_TABLE
    assert t.shape == (3, 16, 15) and t.min() >= 0 and t.max() <= 127
    assert (np.diff(t, axis=1) >= 0).all()
    text = open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "spec",
                             "11-residual.md"), encoding="utf-8").read()
    for c in range(3):
        assert parse_array(text, f"ResScaleTable{c}") == t[c].tolist()
