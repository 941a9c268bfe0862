"""The checkerboard context model (10.9) with a small random model 2: two-pass
entropy decoding, bit exactness, layered decoding and errors."""
import numpy as np
import pytest
import torch

from refsw.cfg import parse
from refsw.decoder import Decoder
from refsw.decoder.learned_intra import anchor_mask, int_model
from refsw.encoder import Encoder
from refsw.models.registry import load_model
from refsw.options import ENCODER_OPTIONS
from syntax import hls
from syntax.errors import BitstreamError
from syntax.rw import Struct
from syntax.units import parse_units, rewrite_unit
from conftest import random_codec, synthetic_rgb


@pytest.fixture(scope="module")
def model2(tmp_path_factory):
    with random_codec(tmp_path_factory.mktemp("model2"), model_id=2):
        yield


@pytest.fixture(scope="module")
def model1(tmp_path_factory):
    with random_codec(tmp_path_factory.mktemp("model1"), model_id=1):
        yield


def _encode(*args, w=130, h=67):
    c, _ = parse(["--CodingMode", "learned", *args], ENCODER_OPTIONS)
    return Encoder(c).encode([synthetic_rgb(w, h, 3)])


def test_two_pass_roundtrip_paths_and_layers(model2):
    data = _encode("--ModelId", "2", "-q", "45")
    lats = [u for u in parse_units(data) if u.type_name == "LATENT"]
    assert len(lats) == 2 and all(u.payload.get("lat_ctx_substream") is not None for u in lats)
    out = Decoder().decode(data)
    assert out[0].hash_status == "match" and out[0].hash_layer == 1
    assert Decoder(reference=True).decode(data)[0].picture == out[0].picture     # int64 path
    base = Decoder(max_layer=0).decode(data)       # the base layer alone: its own DPH
    assert base[0].hash_status == "match" and base[0].hash_layer == 0


def test_context_refines_non_anchors_only_and_keeps_layers_apart(model2):
    m = int_model(2)
    rng = np.random.default_rng(0)
    z = rng.integers(-3, 4, (1, m.Z, 2, 3)).astype(np.int64)
    acc = m.hyper_acc(z, 40)
    y = rng.integers(-20, 21, (1, m.M, 8, 12)).astype(np.int64)
    A = anchor_mask(8, 12)
    a = m.synthesis_input(y, 40) * A
    acc2 = m.context_acc(acc, a, 40)
    assert np.array_equal(acc2[..., A == 1], acc[..., A == 1])      # anchors: first-pass parameters
    assert not np.array_equal(acc2[..., A == 0], acc[..., A == 0])  # non-anchors: refined
    # base-layer outputs (means and scales of channels < base) ignore the enhancement anchors
    a2 = a.copy()
    a2[:, m.base:] = rng.integers(-9000, 9000, a2[:, m.base:].shape) * A
    acc3 = m.context_acc(acc, a2, 40)
    base = np.r_[0:m.base, m.M:m.M + m.base]
    assert np.array_equal(acc3[:, base], acc2[:, base])
    assert not np.array_equal(acc3, acc2)


def test_integer_context_tracks_the_float_model(model2):
    """The integer means of the second pass follow the float model's (10.9 from convert)."""
    m, fm = int_model(2), load_model(2)
    rng = np.random.default_rng(1)
    q = 50
    z = rng.integers(-2, 3, (1, m.Z, 2, 2)).astype(np.int64)
    y = rng.integers(-4, 5, (1, m.M, 8, 8)).astype(np.int64)
    A = anchor_mask(8, 8)
    acc = m.hyper_acc(z, q)
    mu2, _ = m.entropy_params(m.context_acc(acc, m.synthesis_input(y, q) * A, q), q)
    with torch.no_grad():
        gE, gD, zE, zD, lgE = fm.gains(torch.tensor([float(q)]))
        mu_f, _ = fm.entropy_params(torch.from_numpy(z).float(), torch.from_numpy(y).float(), zD, gE, gD, lgE)
    d = np.abs(mu2.astype(np.float64) - mu_f.numpy())[..., A == 0]    # integer means are rounded
    assert np.quantile(d, 0.99) <= 1.0, np.quantile(d, 0.99)


def test_substream_count_must_match_the_model(model1, model2):
    for model_id, add in ((2, False), (1, True)):
        data = _encode("--ModelId", str(model_id), "-q", "30", w=64, h=64)
        units = parse_units(data)
        lat = [u for u in units if u.type_name == "LATENT"][0]
        p = lat.payload
        new = Struct(lat_num_channels=p.lat_num_channels, lat_substream=p.lat_substream)
        if add:
            new.lat_ctx_substream = p.lat_substream
        bad = rewrite_unit(data, lat, payload=new)
        with pytest.raises(BitstreamError, match="lat_ctx_substream"):
            Decoder().decode(bad)


def test_latent_syntax_second_substream_is_optional():
    """A LATENT unit of a model without context has no second substream (the model-1 bytes);
    the reader finds the second one by more_rbsp_data( )."""
    from syntax.rw import SyntaxReader, SyntaxWriter
    es = Struct(es_num_lanes_minus1=0, es_lane_data_size=2, es_escape_data_size=0, es_lane_data=b"ab",
                es_escape_data=b"")
    sizes = []
    for lat in (Struct(lat_num_channels=3, lat_substream=es),
                Struct(lat_num_channels=3, lat_substream=es, lat_ctx_substream=es)):
        w = SyntaxWriter()
        hls.latent_layer(w, lat, Struct())
        back = Struct()
        hls.latent_layer(SyntaxReader(w.getvalue()), back, Struct())
        assert back.lat_substream == lat.lat_substream and back.get("lat_ctx_substream") == lat.get("lat_ctx_substream")
        sizes.append(len(w.getvalue()))
    assert sizes[0] < sizes[1]
