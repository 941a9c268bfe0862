"""Training aids (non-normative): revival of unused latent channels, recycling of
dormant decoder units (refsw/train/recycle.py)."""
import torch

from refsw.models.intra import IntraCodec, IntraConfig
from refsw.train.recycle import latent_use, recycle_dormant, revive_latent

torch.set_num_threads(1)


def _model_with_dead_channels(dead):
    torch.manual_seed(0)
    m = IntraCodec(IntraConfig())
    with torch.no_grad():
        m.g_a[-1].weight[dead] = 0.0
        m.g_a[-1].bias[dead] = 0.0
    return m


def test_revive_latent_brings_back_unused_channels_without_changing_the_picture():
    dead = [50, 51, 52, 100]
    m = _model_with_dead_channels(dead)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    use = latent_use(m, [x])
    assert all(float(use[c]) == 0.0 for c in dead)
    q = torch.full((2,), 63.0)
    opt = torch.optim.Adam(m.parameters(), lr=1e-4)
    m.train()
    m(x, q)["x_hat"].square().mean().backward()
    opt.step()                                  # Adam state exists for every parameter
    with torch.no_grad():
        m.g_a[-1].weight[dead] = 0.0            # ...and the channels are still unused
        m.g_a[-1].bias[dead] = 0.0
    m.eval()
    with torch.no_grad():
        before = m(x, q)
    use = latent_use(m, [x])
    revived = revive_latent(m, [x], threshold=0.005, opt=opt, generator=torch.Generator().manual_seed(2))
    b = m.cfg.base_channels
    live_before = set(torch.nonzero(use >= 0.005).flatten().tolist())
    assert sorted(c for c, _ in revived) == sorted(torch.nonzero(use < 0.005).flatten().tolist())
    assert {c for c, _ in revived} >= set(dead)
    for c, d in revived:
        assert d in live_before
        assert (d < b) == (c < b) or not any((e < b) == (c < b) for e in live_before)
        assert torch.equal(m.log_gain_enc[:, c], m.log_gain_enc[:, d])
        assert float(opt.state[m.g_a[-1].weight]["exp_avg"][c].abs().max()) == 0.0
    after_use = latent_use(m, [x])
    assert float(after_use[[c for c, _ in revived]].mean()) > 0.3 * float(after_use[sorted(live_before)].mean())
    with torch.no_grad():
        after = m(x, q)
    # g_s and h_a read nothing from a revived channel yet: same picture
    assert torch.equal(before["x_hat"], after["x_hat"])
    for c, _ in revived:
        assert float(m.h_a[0].weight[:, c].detach().abs().max()) == 0.0


def test_revive_latent_leaves_a_fully_used_latent_alone():
    m = _model_with_dead_channels([])
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    use = latent_use(m, [x])
    w = m.g_a[-1].weight.clone()
    revived = revive_latent(m, [x], threshold=float(use.min()) * 0.5)
    assert revived == [] and torch.equal(w, m.g_a[-1].weight)


def test_recycle_dormant_gives_dead_units_fresh_inputs_and_no_outputs():
    torch.manual_seed(0)
    m = IntraCodec(IntraConfig())
    conv = m.g_s[3]                   # DecConv 128 -> 128 at /8, then cReLU
    with torch.no_grad():
        conv.weight[5] = 0.0
        conv.bias[5] = -1.0           # unit 5 never fires
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    rep = recycle_dormant(m, [x], generator=torch.Generator().manual_seed(5))
    assert rep.get("g_s1", 0) >= 1
    assert float(conv.weight[5].detach().abs().sum()) > 0
    cons = next(mm for mm in list(m.g_s)[4:] if isinstance(mm, torch.nn.Conv2d))
    assert float(cons.weight[:, 5].detach().abs().sum()) == 0.0


def test_remap_point_table_interpolates_and_extrapolates_in_log_lambda():
    from refsw.models.intra import remap_point_table
    old = (0.001, 0.004, 0.016)
    t = torch.tensor([[0.0, 1.0], [2.0, 3.0], [6.0, 3.0]])
    assert torch.equal(remap_point_table(t, old, old), t)
    new = (0.0005, 0.002, 0.008, 0.032)
    r = remap_point_table(t, old, new)
    # half a segment (factor 2 of a factor 4) inside; half a segment beyond each end
    assert torch.allclose(r, torch.tensor([[-1.0, 0.0], [1.0, 2.0], [4.0, 3.0], [8.0, 3.0]]))
    import pytest
    with pytest.raises(ValueError, match="rows"):
        remap_point_table(t, old[:2], new)


def test_resume_with_other_operating_points_remaps_gain_tables(tmp_path):
    from refsw.models.intra import POINT_TABLES
    from refsw.train.train_intra import load_ckpt, save_ckpt
    old_cfg = IntraConfig(num_points=3, lambdas=(0.001, 0.004, 0.016))
    torch.manual_seed(0)
    m_old = IntraCodec(old_cfg)
    with torch.no_grad():
        m_old.log_gain_enc.copy_(torch.arange(3.0).view(3, 1).expand_as(m_old.log_gain_enc))
    opt_old = torch.optim.Adam(m_old.parameters(), lr=1e-4)
    m_old(torch.rand(1, 3, 64, 64), torch.tensor([5.0]))["x_hat"].mean().backward()
    opt_old.step()
    path = str(tmp_path / "ckpt.pt")
    save_ckpt(path, m_old, opt_old, step=7, train_seconds=1.5)

    new_cfg = IntraConfig(num_points=4, lambdas=(0.0005, 0.001, 0.004, 0.016))
    m_new = IntraCodec(new_cfg)
    opt_new = torch.optim.Adam(m_new.parameters(), lr=1e-4)
    assert load_ckpt(path, m_new, opt_new) == (7, 1.5)
    assert load_ckpt.remapped == old_cfg.lambdas
    assert torch.allclose(m_new.log_gain_enc[1:], m_old.log_gain_enc.detach())
    g = m_old.log_gain_enc.detach()
    assert torch.allclose(m_new.log_gain_enc[0], 1.5 * g[0] - 0.5 * g[1], atol=1e-6)   # about -0.5
    assert torch.equal(m_new.g_s[0].weight, m_old.g_s[0].weight)
    tables = {id(getattr(m_new, n)) for n in POINT_TABLES}
    kept = [p for p in m_new.parameters() if p in opt_new.state]
    assert kept and all(id(p) not in tables for p in kept)      # gain tables restart their Adam state
    # the same operating points: nothing remapped
    m_same = IntraCodec(old_cfg)
    opt_same = torch.optim.Adam(m_same.parameters(), lr=1e-4)
    load_ckpt(path, m_same, opt_same)
    assert load_ckpt.remapped is None and m_same.log_gain_enc in opt_same.state


def test_remap_points_tool_moves_weights_to_new_operating_points(tmp_path, capsys):
    import pytest
    from refsw.models.io import export_npz, load_npz
    from refsw.models.intra import POINT_TABLES
    from refsw.train.remap_points import main
    torch.manual_seed(0)
    m = IntraCodec(IntraConfig(num_points=3, lambdas=(0.001, 0.004, 0.016)))
    m.eval()
    src, dst = str(tmp_path / "in.npz"), str(tmp_path / "out.npz")
    export_npz(m, src, {"step": 5, "train_seconds": 2.0})
    assert main([src, dst, "--lambdas", "0.0005,0.001,0.004,0.016"]) == 0
    r = load_npz(dst)
    assert r.cfg.num_points == 4 and r.cfg.lambdas == (0.0005, 0.001, 0.004, 0.016)
    a, b = m.state_dict(), r.state_dict()
    for k in a:
        if k.split(".")[0] in POINT_TABLES:
            assert torch.allclose(b[k][1:], a[k], atol=1e-3)        # npz stores float16
        else:
            assert torch.equal(a[k].half().float(), b[k].half().float()), k
    with pytest.raises(SystemExit):
        main([src, dst, "--lambdas", "0.004,0.001"])
    assert "increasing" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK not a zip")
    for f in (str(bad), str(tmp_path / "missing.npz")):
        with pytest.raises(SystemExit):
            main([f, dst])
        assert f"{f}: not an intra weight file" in capsys.readouterr().err


def test_rate_weights_ramp_revived_channels_from_zero_to_one():
    from refsw.train.train_intra import rate_weights
    w = rate_weights({3: 100.0, 7: 50.0}, t=150.0, ramp=100.0, M=10)
    assert w.shape == (10,)
    assert float(w[3]) == 0.5 and float(w[7]) == 1.0
    assert torch.equal(w[[0, 1, 2, 4, 5, 6, 8, 9]], torch.ones(8))
    assert float(rate_weights({3: 100.0}, t=90.0, ramp=100.0, M=10)[3]) == 0.0


def test_train_intra_runs_resumes_and_ramps_revived_rate(tmp_path):
    """A few steps of train_intra end to end: revival with a rate ramp, checkpoint, export, card, resume."""
    from conftest import tiny_train_args
    from refsw.train import train_intra
    out = tmp_path / "run"
    args = tiny_train_args(tmp_path)
    from PIL import Image
    Image.new("RGB", (80, 40)).save(tmp_path / "train" / "small.png")     # below the 64x64 crop
    train_intra.main(args + ["--max-steps", "2", "--revive-latent", "0.5", "--revive-ramp", "100"])
    log = (out / "train.log").read_text()
    assert "revived" in log and "done: step 2" in log
    assert "2 training images" in log and "not used, smaller than 64x64: small.png" in log
    assert "Not used in the last run, smaller than its 64x64 crops: small.png." in (tmp_path / "w.md").read_text()
    assert (out / "ckpt.pt").exists() and (tmp_path / "w.npz").exists() and (tmp_path / "w.md").exists()
    train_intra.main(args + ["--max-steps", "3", "--resume"])
    assert "resumed from" in (out / "train.log").read_text()
    assert "done: step 3" in (out / "train.log").read_text()


def test_train_intra_rejects_a_negative_revive_ramp(capsys):
    import pytest
    from refsw.train import train_intra
    with pytest.raises(SystemExit):
        train_intra.main(["--revive-ramp", "-5", "--max-steps", "1"])
    assert "--revive-ramp" in capsys.readouterr().err


def test_training_resumes_from_a_remapped_weight_file_at_its_trained_points(tmp_path, capsys):
    """remap_points keeps the trained gain tables; train_intra --init-npz restores them exactly,
    continues step and time from the file, and names a file that is not intra weights."""
    import numpy as np
    import pytest
    from refsw.models.intra import POINT_TABLES
    from refsw.models.io import export_npz, read_npz
    from refsw.train import train_intra
    from refsw.train.remap_points import main as remap
    torch.manual_seed(0)
    trained = (0.001, 0.004, 0.016)
    m = IntraCodec(IntraConfig(num_points=3, lambdas=trained))
    with torch.no_grad():   # a kink at the middle point: remapping there and back is not exact
        m.log_gain_enc.copy_(torch.tensor([0.0, 1.0, 0.0]).view(3, 1).expand_as(m.log_gain_enc))
    m.eval()
    src, shipped, twice = (str(tmp_path / n) for n in ("in.npz", "shipped.npz", "twice.npz"))
    export_npz(m, src, {"step": 5, "train_seconds": 2.0})
    assert remap([src, shipped, "--lambdas", "0.0005,0.002,0.008,0.032"]) == 0
    assert remap([shipped, twice, "--lambdas", "0.0005,0.001,0.002,0.008,0.032"]) == 0
    a = read_npz(twice)      # a second remap carries the trained tables over unchanged
    assert tuple(a["meta.trained_lambdas"].tolist()) == trained
    for n in POINT_TABLES:
        assert np.array_equal(a["trained." + n], m.state_dict()[n].half().numpy())

    r, step, secs, how = train_intra.init_from_npz(twice, trained)
    assert (step, secs) == (5, 2.0) and "restored" in how and r.cfg.lambdas == trained
    for n in POINT_TABLES:
        assert torch.equal(r.state_dict()[n], m.state_dict()[n].half().float())
    assert torch.equal(r.g_s[0].weight, m.g_s[0].weight.half().float())
    # without the trained tables: remapped back, which loses the kink
    stripped = str(tmp_path / "stripped.npz")
    np.savez(stripped, **{k: v for k, v in a.items() if not k.startswith("trained.") and k != "meta.trained_lambdas"})
    r2, _, _, how2 = train_intra.init_from_npz(stripped, trained)
    assert "remapped" in how2
    assert float(r2.log_gain_enc[1, 0].detach()) < 0.9
    # the file's own points: loaded as they are
    assert train_intra.init_from_npz(twice)[0].cfg.num_points == 5

    from conftest import tiny_train_args
    out = tmp_path / "run"
    args = tiny_train_args(tmp_path, "0.001,0.004,0.016") + ["--time-budget", "1000"]
    train_intra.main(args + ["--init-npz", twice, "--max-steps", "7", "--rewarm-steps", "4"])
    log = (out / "train.log").read_text()
    assert "at step 5, 2s; trained gain tables restored" in log and "done: step 7" in log
    assert int(read_npz(str(tmp_path / "w.npz"))["meta.step"]) == 7
    with pytest.raises(SystemExit):
        train_intra.main(args + ["--init-npz", str(tmp_path / "nope.npz")])
    assert "--init-npz: no such file" in capsys.readouterr().err
    junk = str(tmp_path / "junk.npz")
    np.savez(junk, x=np.zeros(3))
    with pytest.raises(SystemExit):
        train_intra.main(args + ["--init-npz", junk])
    assert "not intra weights" in capsys.readouterr().err


def test_widen_keeps_the_decoded_picture_and_gives_new_units_inputs_and_gradients(tmp_path):
    import numpy as np
    import pytest

    from refsw.models.io import export_npz, load_npz, read_npz
    from refsw.train.widen import main as widen_main, widen_model

    torch.manual_seed(0)
    cfg = IntraConfig(gs_channels=(32, 32, 16, 16, 8), hs_channels=(16, 24), enc_channels=32,
                      latent_channels=40, base_channels=12, hyper_enc_channels=32, hyper_channels=16)
    m = IntraCodec(cfg).eval()
    with torch.no_grad():
        m.log_gain_enc += 3.0          # an untrained model codes an all-zero latent
        m.log_gain_dec += 1.0
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    q = torch.tensor([40.0])
    w = widen_model(m, gs_channels=(32, 40, 16, 24, 16), hs_channels=(16, 32), generator=torch.Generator().manual_seed(2))
    assert w.cfg.gs_channels == (32, 40, 16, 24, 16) and w.cfg.hs_channels == (16, 32)
    with torch.no_grad():
        a, b = m(x, q), w(x, q)
    for k in ("x_hat", "y_lik", "z_lik"):    # same function (float summation order aside)
        assert torch.allclose(a[k], b[k], rtol=0, atol=1e-5), k
    assert float(a["x_hat"].std()) > 0.01
    # the new units of g_s layer 4 (the /2 stage, pixel-shuffled) fire and get gradient
    prod, cons = w.g_s[10], w.g_s[13]
    assert prod.out_channels == 4 * 16 and cons.in_channels == 16
    assert float(cons.weight.detach()[:, 8:].abs().max()) == 0.0
    assert float(prod.weight.detach()[32:].abs().min(dim=0).values.max()) > 0
    w.train()
    w(x, q)["x_hat"].square().mean().backward()
    assert float(cons.weight.grad[:, 8:].abs().max()) > 0
    # widths only grow
    with pytest.raises(ValueError, match="only grow"):
        widen_model(m, gs_channels=(32, 32, 16, 16, 4))
    # CLI: meta and trained tables carried over, file decodes the same
    src, dst = tmp_path / "in.npz", tmp_path / "out.npz"
    export_npz(m, str(src), {"step": 7}, {"trained.log_gain_enc": m.log_gain_enc.detach()})
    assert widen_main([str(src), str(dst), "--gs-channels", "32,32,16,16,12"]) == 0
    r = read_npz(str(dst))
    assert int(r["meta.step"]) == 7 and "trained.log_gain_enc" in r
    with torch.no_grad():
        assert torch.allclose(load_npz(str(src))(x, q)["x_hat"], load_npz(str(dst))(x, q)["x_hat"], rtol=0, atol=1e-5)
    assert np.array_equal(read_npz(str(src))["derived.z_cdf"], r["derived.z_cdf"])
    with pytest.raises(SystemExit):
        widen_main([str(src), str(dst), "--gs-channels", "32,32,16"])
