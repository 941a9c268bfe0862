"""Encoder-side latent RD optimisation (refsw/encoder/latent_rdo.py, non-normative)."""
import math
import os

import numpy as np
import torch

from refsw.cfg import parse
from refsw.content import default_image_path
from refsw.decoder import Decoder
from refsw.encoder import Encoder, pad_picture
from refsw.picture import read_png
from refsw.options import ENCODER_OPTIONS
from refsw.picture import Picture
from refsw.encoder.latent_rdo import RdCost, refine_latents
from refsw.encoder.learned_intra import analyse, float_model


def _crop(w=96, h=64):
    pic = read_png(default_image_path())
    return Picture([p[40:40 + h, 120:120 + w].copy() for p in pic.planes], "444", 8, "rgb")


def _padded(pic, m=64):
    return pad_picture(pic, pic.width + (-pic.width) % m, pic.height + (-pic.height) % m)


def test_refinement_lowers_the_rd_cost():
    model = float_model(1)
    pic = _crop()
    pp = _padded(pic)
    x = torch.from_numpy(np.stack(pp.planes).astype(np.float32) / 255.0)[None]
    for q in (0, 63):
        with torch.no_grad():
            gE, _, zE, _, _ = model.gains(torch.tensor([float(q)]))
            y_g = model.analysis(x) * gE
            z = model.h_a(y_g / gE) * zE
        cost = RdCost(model, x, q, (pic.height, pic.width))
        y2, z2 = refine_latents(model, x, y_g, z, q, 10, (pic.height, pic.width))
        with torch.no_grad():
            j0, j1 = float(cost(y_g, z)), float(cost(y2, z2))
        assert j1 < j0, (q, j0, j1)
        assert y2.shape == y_g.shape and z2.shape == z.shape
    # iterations 0: analyse() returns g_a's latent unchanged
    z0, y0 = analyse(model, pp, 20)
    z1, y1 = analyse(model, pp, 20, refine=0)
    assert torch.equal(y0, y1) and torch.equal(z0, z1)


def test_refined_stream_conforms_and_differs():
    pic = _crop(70, 45)
    streams = {}
    for it in (0, 6):
        c, _ = parse(["--CodingMode", "learned", "-q", "30", "--LatentRefine", str(it)], ENCODER_OPTIONS)
        streams[it] = Encoder(c).encode([pic])
        out = Decoder().decode(streams[it])
        assert out[0].hash_status == "match"
        assert (out[0].picture.width, out[0].picture.height) == (70, 45)
    assert streams[0] != streams[6]


def test_latent_refine_option_range():
    import pytest
    from refsw.cfg import CfgError
    with pytest.raises(CfgError, match="LatentRefine"):
        parse(["--LatentRefine", "-1"], ENCODER_OPTIONS)


def test_search_step_grows_above_the_knee():
    from refsw.encoder.latent_rdo import SHIPPED as S
    assert S.step(0) == S.step(S.lr_knee) == S.lr
    assert S.step(S.lr_top_q) == S.step(63) == S.lr_top
    s = [S.step(q) for q in range(S.lr_knee, S.lr_top_q + 1)]
    assert all(a < b for a, b in zip(s, s[1:]))
    assert S.step_at(0.1, 0, 40) == 0.1 and math.isclose(S.step_at(0.1, 40, 40), 0.1 * S.lr_final)


def test_search_schedule_parse_and_errors():
    import pytest
    from refsw.encoder.latent_rdo import SHIPPED, SearchSchedule
    s = SearchSchedule.parse("lr=0.025, lr_knee=28")
    assert (s.lr, s.lr_knee, s.lr_top, s.lr_top_q) == (0.025, 28, SHIPPED.lr_top, SHIPPED.lr_top_q)
    assert SearchSchedule.parse(s.describe()) == s
    assert SearchSchedule.parse("lr=0.0123456789").describe().startswith("lr=0.0123456789,")
    assert SearchSchedule.parse("") == SHIPPED
    for bad, msg in (("lr", "not <field>=<number>"), ("step=1", "not <field>=<number>"),
                     ("lr=abc", "not a number"), ("lr=-1", "finite number >= 0"),
                     ("lr_knee=50", "below lr_top_q"), ("lr=nan", "finite number"),
                     ("tau_min=0", "tau_min: must be > 0")):
        with pytest.raises(ValueError, match=msg):
            SearchSchedule.parse(bad)


def test_encoder_takes_a_search_schedule():
    from refsw.encoder.latent_rdo import SHIPPED, SearchSchedule
    pic = _crop(70, 45)
    c, _ = parse(["--CodingMode", "learned", "-q", "40", "--LatentRefine", "4"], ENCODER_OPTIONS)
    shipped = Encoder(c).encode([pic])
    assert Encoder(c, search_schedule=SHIPPED).encode([pic]) == shipped
    other = Encoder(c, search_schedule=SearchSchedule.parse("lr_top=0.5")).encode([pic])
    assert other != shipped
    assert Decoder().decode(other)[0].hash_status == "match"


def test_soft_rounding_anneals_to_round():
    from refsw.encoder import latent_rdo as L
    y = torch.tensor([-2.7, -1.52, -0.2, 0.0, 0.3, 0.49, 0.51, 1.9, 3.2])
    hard = L.soft_round(y, 1e-3)
    assert torch.allclose(hard, torch.round(y), atol=1e-3)
    soft = L.soft_round(y, 1.0)
    assert torch.all((soft - torch.floor(y) >= 0) & (soft - torch.floor(y) <= 1))
    assert not torch.allclose(soft, torch.round(y), atol=0.05)   # tau 1 is far from round()
    yv = y.clone().requires_grad_(True)
    L.soft_round(yv, 0.5).sum().backward()
    assert torch.all(yv.grad >= 0) and torch.all(yv.grad[y != torch.round(y)] > 0)   # monotone
    S = L.SHIPPED
    assert S.temperature(0, 40) == S.tau0 and S.temperature(40, 40) == max(S.tau0 * math.exp(-S.tau_decay), S.tau_min)


def test_search_schedule_benchmark(tmp_path, capsys):
    """benchmarks/search_schedule.py: BD of a schedule against itself is 0; bad input is named."""
    import importlib.util
    import pytest
    from PIL import Image
    spec = importlib.util.spec_from_file_location(
        "search_schedule", os.path.join(os.path.dirname(__file__), "..", "benchmarks", "search_schedule.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    pic = _crop(64, 48)
    Image.fromarray(np.stack(pic.planes, -1).astype(np.uint8)).save(tmp_path / "a.png")
    args = ["--images", str(tmp_path), "--qualities", "0,21,42,63", "--iters", "2"]
    assert bench.main(args + ["--candidate", "lr=0.015"]) == 3     # the shipped lr: BD 0, not < 0
    out = capsys.readouterr().out
    assert "mean over 1 pictures: BD-rate +0.00 %, BD-PSNR +0.000 dB" in out, out
    with pytest.raises(SystemExit, match="--candidate: search schedule 'lr=x': lr='x' is not a number"):
        bench.main(args + ["--candidate", "lr=x"])
    for bad, msg in ((["--qualities", "0,63"], "need at least 4 values"), (["--crop", "5"], "--crop '5'"),
                     (["--iters", "0"], "--iters must be >= 1")):
        with pytest.raises(SystemExit):
            bench.main(args + ["--candidate", ""] + bad)
        assert msg in capsys.readouterr().err
