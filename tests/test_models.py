"""Fast checks of the learned-model package (registry, shapes, npz round trip)."""
import json
import math
import os

import numpy as np
import pytest
import torch

from refsw.models import registry
from refsw.models.entropy_models import (NUM_SCALES, SCALE_MAX, SCALE_MIN, FactorizedPrior,
                                         index_to_scale, pmf_to_integer_cdf, scale_index, scale_table)
from refsw.models.intra import ClippedReLU, IntraCodec, IntraConfig, pad_to_multiple
from refsw.models.io import export_npz, load_npz, read_npz

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = registry.build_model(1)
    m.eval()
    return m


def test_registry():
    e = registry.get_entry(1)
    assert e.model_id == 1 and e.name == "intra_v1"
    assert e.config.model_id == 1
    assert e.weights_path.endswith(os.path.join("data", "models", "intra_v1.npz"))
    with pytest.raises(KeyError):
        registry.get_entry(0)
    cfg = e.config
    assert 0 < cfg.base_channels < cfg.latent_channels
    assert cfg.total_stride == cfg.stride * 4


def test_integer_data_hashes(tmp_path):
    """10.1: the shipped integer data are the registered files; other data are refused
    before they are read, and record_hashes rewrites the registered values."""
    from dataclasses import replace
    import shutil
    import refsw.decoder.learned_intra as li
    import refsw.decoder.task_branch as tb
    from refsw.decoder import model_data as md
    entries = list(md.MODEL_DATA.values()) + list(md.TASK_BRANCH_DATA.values())
    for e in entries:
        assert md.file_sha256(e.int_path) == e.int_sha256, e.int_path
    e = md.model_data(1)
    shutil.copy(e.int_path, tmp_path / e.int_file)
    data = bytearray((tmp_path / "intra_v1_int.npz").read_bytes())
    data[-100] ^= 1
    (tmp_path / "intra_v1_int.npz").write_bytes(bytes(data))
    old = md.MODEL_DATA[1]
    md.MODEL_DATA[1] = replace(old, int_file=str(tmp_path / e.int_file))
    li.int_model.cache_clear()
    try:
        with pytest.raises(ValueError, match=r"intra_v1_int.npz: SHA-256 .* not the registered integer data "
                                             r"of sps_model_id 1"):
            li.int_model(1)
    finally:
        md.MODEL_DATA[1] = old
        li.int_model.cache_clear()
    tb.int_branch.cache_clear()
    old_b = md.TASK_BRANCH_DATA[(1, 1)]
    md.TASK_BRANCH_DATA[(1, 1)] = replace(old_b, int_sha256="0" * 64)
    try:
        with pytest.raises(ValueError, match="task branch face of sps_model_id 1"):
            tb.int_branch(1, "face")
    finally:
        md.TASK_BRANCH_DATA[(1, 1)] = old_b
        tb.int_branch.cache_clear()
    # record_hashes on a copy of the model-data source whose literals are stale
    src = open(md.__file__, encoding="utf-8").read()
    stale = src
    for x in entries:
        stale = stale.replace(x.int_sha256, "f" * 64)
    (tmp_path / "model_data.py").write_text(stale, encoding="utf-8")
    done = md.record_hashes(str(tmp_path / "model_data.py"))
    assert (tmp_path / "model_data.py").read_text(encoding="utf-8") == src
    assert sorted(done) == sorted((os.path.basename(x.int_path), x.int_sha256) for x in entries)


def test_complexity_budget(model):
    d = model.decoder_kmac_per_pixel()
    assert d["h_s"] + d["g_s"] <= 40.0
    # decoder uses only integerisable layers
    for seq in (model.h_s, model.g_s):
        for m in seq:
            assert isinstance(m, (torch.nn.Conv2d, torch.nn.PixelShuffle, ClippedReLU))


def test_scale_table():
    s = scale_table()
    assert len(s) == NUM_SCALES
    assert math.isclose(s[0], SCALE_MIN) and math.isclose(s[-1], SCALE_MAX)
    ls = torch.log(torch.tensor([1e-3, SCALE_MIN, 1.0, SCALE_MAX, 1e4]))
    k = scale_index(ls)
    assert k.tolist()[0] == 0 and k.tolist()[1] == 0 and k.tolist()[3] == 63 and k.tolist()[4] == 63
    assert abs(math.log(float(index_to_scale(k[2:3]))) - 0.0) <= 0.07


@pytest.mark.parametrize("hw", [(37, 50), (64, 129)])
def test_forward_shapes_odd_sizes(model, hw):
    H, W = hw
    x = torch.rand(1, 3, H, W)
    xp = pad_to_multiple(x, model.cfg.total_stride)
    assert xp.shape[-2] % 64 == 0 and xp.shape[-1] % 64 == 0
    assert torch.equal(xp[..., :H, :W], x)
    with torch.no_grad():
        out = model(xp, torch.tensor([20.0]), base_aux=1)
    Hp, Wp = xp.shape[-2:]
    assert out["x_hat"].shape == (1, 3, Hp, Wp)
    assert out["x_base"].shape == (1, 3, Hp, Wp)
    assert out["y"].shape == (1, model.cfg.latent_channels, Hp // 16, Wp // 16)
    assert out["z"].shape == (1, model.cfg.hyper_channels, Hp // 64, Wp // 64)
    assert (out["y_lik"] > 0).all() and (out["y_lik"] <= 1).all()


def test_quality_interpolation(model):
    cfg = model.cfg
    for i in range(cfg.num_points):
        q = torch.tensor([cfg.point_quality(i)])
        gE = model.gains(q)[0].flatten()
        assert torch.allclose(gE, model.log_gain_enc[i].exp(), rtol=1e-5)
    lam = model.lambda_for_quality(torch.tensor([0.0, 63.0]))
    assert torch.allclose(lam, torch.tensor([cfg.lambdas[0], cfg.lambdas[-1]]), rtol=1e-5)


def test_clipped_relu_forward_exact():
    a = ClippedReLU(6.0)
    a.train()
    x = torch.linspace(-10, 10, 101, requires_grad=True)
    y = a(x)
    assert torch.equal(y.detach(), x.detach().clamp(0, 6))
    y.sum().backward()
    assert torch.equal(x.grad, ((x >= 0) & (x <= 6)).float())  # exact gradient by default


def test_integer_cdf():
    fp = FactorizedPrior(4)
    cdf = fp.integer_cdf(31, 16)
    assert cdf.shape == (4, 64) and cdf.dtype == np.int32
    assert (cdf[:, 0] == 0).all() and (cdf[:, -1] == 1 << 16).all()
    assert (np.diff(cdf, axis=1) >= 1).all()
    c2 = pmf_to_integer_cdf(np.array([[1.0, 0.0, 0.0, 1e-12]]), 8)
    assert c2[0, -1] == 256 and (np.diff(c2[0]) >= 1).all()


def test_npz_round_trip(model, tmp_path):
    p = str(tmp_path / "m.npz")
    export_npz(model, p, {"step": 7})
    arrs = read_npz(p)
    assert json.loads(arrs["config_json"].tobytes().decode())["model_id"] == 1
    assert int(arrs["meta.step"]) == 7
    cfg = model.cfg
    assert arrs["derived.log_gain_enc_q"].shape == (cfg.num_quality, cfg.latent_channels)
    assert arrs["derived.z_cdf"].shape == (cfg.hyper_channels, 2 * cfg.z_support + 2)
    assert all(v.dtype != object for v in arrs.values())
    m2 = load_npz(p)
    assert m2.cfg == model.cfg
    for k, v in model.state_dict().items():
        assert torch.allclose(m2.state_dict()[k], v, rtol=1e-3, atol=1e-4), k
    # a second export of the reloaded model is bit-identical (stored values are the model)
    p2 = str(tmp_path / "m2.npz")
    export_npz(m2, p2, {"step": 7})
    a2 = read_npz(p2)
    for k in arrs:
        assert np.array_equal(arrs[k], a2[k]), k
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        o1 = m2(x, torch.tensor([30.0]))["x_hat"]
        o2 = registry.load_model(1, p)(x, torch.tensor([30.0]))["x_hat"]
    assert torch.equal(o1, o2)


def test_packaged_weights_load():
    e = registry.get_entry(1)
    if not os.path.exists(e.weights_path):
        pytest.skip("packaged weights not present")
    m = registry.load_model(1)
    assert m.cfg == e.config


def test_bf16_training_forward_keeps_float32_outputs(model):
    """--bf16 training: hidden layers in bfloat16, latents / entropy parameters /
    samples in float32, close to the float32 forward; eval mode ignores it."""
    torch.manual_seed(0)
    x, q = torch.rand(2, 3, 64, 64), torch.tensor([5.0, 60.0])
    model.train()
    try:
        outs = []
        for bf16 in (False, True):
            model.bf16 = bf16
            torch.manual_seed(1)            # same noise draws
            outs.append(model(x, q))
        for k in ("x_hat", "y", "z", "y_lik", "z_lik"):
            assert outs[1][k].dtype == torch.float32, k
        rel = float((outs[1]["x_hat"] - outs[0]["x_hat"]).abs().max().detach() / outs[0]["x_hat"].abs().max().detach())
        assert 0 < rel < 0.05                # bfloat16 really ran, and stayed close
        outs[1]["x_hat"].square().mean().backward()
        assert model.g_a[1].gamma.grad is not None and model.g_a[1].gamma.grad.dtype == torch.float32
        model.eval()
        with torch.no_grad():
            a = model(x, q)["x_hat"]        # bf16 still set: ignored outside training
            model.bf16 = False
            assert torch.equal(a, model(x, q)["x_hat"])
    finally:
        model.bf16 = False
        model.zero_grad(set_to_none=True)
        model.eval()
