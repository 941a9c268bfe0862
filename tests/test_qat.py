"""Quantisation-aware training aid (refsw/train/qat.py) against the integer decoder."""
import numpy as np
import pytest
import torch

from refsw.models.intra import ClippedReLU, IntraCodec, IntraConfig
from refsw.nn.convert import ACT_MAX, calibrate, integerize
from refsw.decoder.learned_intra import IntModel
from refsw.train.qat import FakeQuant, synthesis_gap


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(3)
    cfg = IntraConfig(gs_channels=[32, 32, 16, 16, 8], hs_channels=[32, 32], enc_channels=32,
                      hyper_enc_channels=32)
    m = IntraCodec(cfg)
    m.eval()
    calib = [torch.rand(1, 3, 64, 64)]
    return m, calib


def test_fake_quantised_synthesis_is_the_integer_synthesis(small, tmp_path):
    m, calib = small
    path = str(tmp_path / "w_int.npz")
    np.savez_compressed(path, **integerize(m, calib))
    im = IntModel(path, 1)
    _, _, s_gin, s_hin = calibrate(m, calib)
    q = 30
    gD = m.gains(torch.tensor([float(q)]))[1]
    # an untrained g_a gives y_hat = 0; code random symbols inside the calibrated range
    g = torch.Generator().manual_seed(0)
    lim = torch.floor(2.0 / gD).clamp(max=6)
    y_hat = torch.round((torch.rand(1, m.cfg.latent_channels, 4, 4, generator=g) * 2 - 1) * lim)
    assert float(y_hat.detach().abs().max()) > 0
    with torch.no_grad():
        xf = torch.round(m.synthesize(y_hat, gD).clamp(0, 1) * 255)
    xi = torch.from_numpy(im.synthesis(y_hat.to(torch.int64).numpy(), q)).double()
    fq = FakeQuant(m, s_gin, s_hin).attach()
    acts = []
    hooks = [r.register_forward_hook(lambda mod, i, o: acts.append(o.detach()))
             for r in m.g_s if isinstance(r, ClippedReLU)]
    try:
        xq = m.synthesize(y_hat, gD)
    finally:
        for h in hooks:
            h.remove()
        fq.detach()
    xq_r = torch.round(xq.detach().clamp(0, 1) * 255).double()
    # activations on the integer grid of the decoder
    for a in acts:
        k = a / fq.s_act
        assert torch.allclose(k, torch.round(k), atol=1e-3) and float(k.max()) <= ACT_MAX
    # the fake-quantised float model is the integer decoder up to the multiplier rounding
    d_fq = (xq_r - xi).abs()
    d_f = (xf.double() - xi).abs()
    # the fake-quantised float model is the integer decoder up to the rounding of the
    # requantisation multipliers (relative 2^-13), which the float32 forward cannot carry
    d_fq = (xq_r - xi).abs()
    d_f = (xf.double() - xi).abs()
    assert float(d_fq.max()) <= 1 and float(d_fq.sum()) <= float(d_f.sum())
    assert float((d_fq == 0).double().mean()) >= 0.98
    with torch.no_grad():
        assert float((xq.detach() - m.synthesize(y_hat, gD)).abs().max()) > 0   # it does quantise
    # straight-through gradients reach the weights
    fq.attach()
    try:
        m.synthesize(y_hat, gD).mean().backward()
    finally:
        fq.detach()
    assert m.g_s[0].weight.grad is not None and float(m.g_s[0].weight.grad.abs().sum()) > 0
    with pytest.raises(ValueError):
        FakeQuant(m, 0.0, s_hin)


def test_shipped_integer_data_matches_the_shipped_float_weights(tmp_path, capsys):
    """The synthesis gap of the shipped pair is a few thousandths of a dB; it fails if the
    float weights ship without re-running refsw.nn.convert."""
    from PIL import Image
    from refsw.content import default_image_path
    from refsw.train.qat import main
    im = Image.open(default_image_path()).convert("RGB")
    im.crop((64, 64, 64 + 160, 64 + 96)).save(tmp_path / "crop.png")
    assert main(["--images", str(tmp_path)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    gap = float(line.split("gap ")[1].split(" dB")[0])
    assert abs(gap) < 0.01, line
    with pytest.raises(SystemExit):
        main(["--images", str(tmp_path / "none")])


def test_synthesis_gap_rows(small, tmp_path):
    m, calib = small
    path = str(tmp_path / "w_int.npz")
    np.savez_compressed(path, **integerize(m, calib))
    rows = synthesis_gap(m, IntModel(path, 1), [torch.rand(1, 3, 40, 72)], qualities=(0, 63))
    assert [r[:2] for r in rows] == [(0, 0), (0, 63)]
    assert all(abs(r[3] - r[2]) < 0.5 for r in rows)


def test_train_intra_qat_runs_with_fake_quantisation(tmp_path):
    from conftest import tiny_train_args
    from refsw.train import train_intra
    train_intra.main(tiny_train_args(tmp_path) + ["--max-steps", "2", "--qat"])
    log = (tmp_path / "run" / "train.log").read_text()
    assert "QAT: fake-quantised h_s and g_s" in log and "done: step 2" in log
