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
