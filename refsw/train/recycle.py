"""Recycling of dormant decoder units (non-normative training aid).

A clipped-ReLU unit of h_s / g_s that (almost) never fires carries no
information and gets no gradient, so plain training cannot revive it.  Following
the "dormant neuron" recycling idea (ReDo), each such unit gets fresh incoming
weights (random direction, the mean norm and bias of the live units of its
layer) and zero outgoing weights, so it fires again and training can use it.
Units that are dead change nothing at recycling; units below the threshold but
not dead lose their rare contribution (a small change of the function).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from refsw.models.intra import ClippedReLU, DecConv


def decoder_units(seq: nn.Sequential):
    """(cReLU, producing conv, pixel-shuffle factor r, consuming conv) per cReLU."""
    mods = list(seq)
    out = []
    for i, m in enumerate(mods):
        if not isinstance(m, ClippedReLU):
            continue
        r, prod = 1, None
        for j in range(i - 1, -1, -1):
            if isinstance(mods[j], nn.PixelShuffle):
                r = mods[j].upscale_factor
            elif isinstance(mods[j], DecConv):
                prod = mods[j]
                break
        cons = next(mm for mm in mods[i + 1:] if isinstance(mm, DecConv))
        out.append((m, prod, r, cons))
    return out


@torch.no_grad()
def measure_activity(model, batches, qualities):
    """Fraction of positions where each decoder cReLU unit is > 0."""
    acts, hooks = {}, []
    for seq in (model.h_s, model.g_s):
        for relu, *_ in decoder_units(seq):
            def hook(mod, inp, out, key=id(relu)):
                acts.setdefault(key, []).append((out > 0).float().mean(dim=(0, 2, 3)))
            hooks.append(relu.register_forward_hook(hook))
    was = model.training
    model.eval()
    try:
        for x in batches:
            for q in qualities:
                model(x, torch.full((x.shape[0],), float(q)))
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    return {k: torch.stack(v).mean(0) for k, v in acts.items()}


@torch.no_grad()
def reinit_units(prod: DecConv, cons: DecConv, r: int, units, live, generator=None) -> None:
    """Fresh incoming weights for the cReLU units ``units`` of a layer (random
    direction with the mean norm and bias of the ``live`` units; ``r`` is the
    pixel-shuffle factor between ``prod`` and the cReLU) and zero outgoing weights
    in ``cons``, so the network's function is unchanged."""
    rr = r * r
    rows = lambda ch: torch.arange(rr) + ch * rr  # noqa: E731 conv outputs of unit ch
    live_rows = torch.cat([rows(int(c)) for c in live])
    norm = prod.weight[live_rows].flatten(1).norm(dim=1).mean()
    bias = prod.bias[live_rows].mean()
    for c in units:
        idx = rows(int(c))
        w = torch.randn(prod.weight[idx].shape, generator=generator)
        prod.weight[idx] = w / w.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * norm
        prod.bias[idx] = bias
        cons.weight[:, int(c)] = 0.0


@torch.no_grad()
def recycle_dormant(model, batches, qualities=(0.0, 31.5, 63.0), threshold=0.01, generator=None):
    """Re-initialise dormant h_s / g_s units in place; returns {layer: count}."""
    act = measure_activity(model, batches, qualities)
    report = {}
    for name, seq in (("h_s", model.h_s), ("g_s", model.g_s)):
        for li, (relu, prod, r, cons) in enumerate(decoder_units(seq)):
            a = act[id(relu)]
            dead = torch.nonzero(a < threshold).flatten()
            live = torch.nonzero(a >= threshold).flatten()
            if dead.numel() == 0 or live.numel() == 0:
                continue
            reinit_units(prod, cons, r, dead.tolist(), live, generator)
            report[f"{name}{li}"] = int(dead.numel())
    return report


# ------------------------------------------------------------------ latent channels
IN_USE = 0.005     # a y channel is "in use" if its coded values are non-zero on >= 0.5 % of positions


def channels_in_use(use: torch.Tensor, base_channels: int) -> str:
    """'base B/b, enhancement E/e' from a per-channel non-zero share."""
    b = base_channels
    return (f"base {int((use[:b] >= IN_USE).sum())}/{b}, "
            f"enhancement {int((use[b:] >= IN_USE).sum())}/{len(use) - b}")


def nonzero_share(y_coded: torch.Tensor) -> torch.Tensor:
    """Per channel: share of the coded (rounded) values that are non-zero."""
    return (torch.round(y_coded) != 0).float().mean(dim=(0, 2, 3))


@torch.no_grad()
def latent_use(model, batches, q: float = 63.0) -> torch.Tensor:
    """Per y channel: share of coded values round(y * gE[q]) that are non-zero, mean over batches."""
    was = model.training
    model.eval()
    try:
        shares = []
        for x in batches:
            gE = model.gains(torch.full((x.shape[0],), float(q)))[0]
            shares.append(nonzero_share(model.analysis(x) * gE))
    finally:
        model.train(was)
    return torch.stack(shares).mean(0)


def _like_live_state(opt, p, dead_idx, live_idx, dim=0):
    """Adam state of re-initialised slices: no momentum, the mean second moment of live slices."""
    st = opt.state.get(p) if opt is not None else None
    if not st or "exp_avg" not in st:
        return
    m, v = st["exp_avg"].movedim(dim, 0), st["exp_avg_sq"].movedim(dim, 0)
    m[dead_idx] = 0.0
    v[dead_idx] = v[live_idx].mean(0, keepdim=True)


@torch.no_grad()
def revive_latent(model, batches, threshold=IN_USE, noise=0.5, q=63.0, opt=None, generator=None):
    """Re-initialise unused latent channels in place; returns the revived channel list.

    A y channel whose coded values are (almost) always zero at the top quality
    costs nothing and carries nothing; g_s ignores it, so g_a gets no gradient
    for it and plain training cannot bring it back.  Each such channel c takes a
    live donor d (from the same layer, base or enhancement, when it has one):
    g_a's output filter of c = filter of d plus a random perturbation of
    ``noise`` times its norm, the gain tables and h_s's mean / scale rows of d;
    g_s and h_a get zero weights from c, so the reconstruction is unchanged at
    first (z loses the small contribution of c's unquantised values) and training
    decides what c carries.  A context model (model 2) gets zero weights from
    c's anchors and no correction of c's parameters.
    """
    use = latent_use(model, batches, q)
    M, b = model.cfg.latent_channels, model.cfg.base_channels
    dead = torch.nonzero(use < threshold).flatten().tolist()
    live = torch.nonzero(use >= threshold).flatten().tolist()
    if not dead or not live:
        return []
    ga, gs0, ha0, hs = model.g_a[-1], model.g_s[0], model.h_a[0], model.h_s[-1]
    donors = []
    for c in dead:
        pool = [d for d in live if (d < b) == (c < b)] or live
        d = pool[int(torch.randint(len(pool), (1,), generator=generator))]
        donors.append(d)
        w = ga.weight[d]
        u = torch.randn(w.shape, generator=generator)
        ga.weight[c] = w + noise * w.norm() * u / u.norm()
        ga.bias[c] = ga.bias[d]
        for t in (model.log_gain_enc, model.log_gain_dec):
            t[:, c] = t[:, d]
        hs.weight[c], hs.bias[c] = hs.weight[d], hs.bias[d]                    # mean
        hs.weight[M + c], hs.bias[M + c] = hs.weight[M + d], hs.bias[M + d]    # log-scale
        gs0.weight[:, c] = 0.0
        ha0.weight[:, c] = 0.0
        if model.ctx is not None:      # the context neither reads c's anchors nor corrects c at first
            model.ctx[0].weight[:, c] = 0.0
            for r in (c, M + c):
                model.ctx[-1].weight[r] = 0.0
                model.ctx[-1].bias[r] = 0.0
    dl, ll = torch.tensor(dead), torch.tensor(live)
    _like_live_state(opt, ga.weight, dl, ll)
    _like_live_state(opt, ga.bias, dl, ll)
    _like_live_state(opt, gs0.weight, dl, ll, dim=1)
    _like_live_state(opt, ha0.weight, dl, ll, dim=1)
    _like_live_state(opt, model.log_gain_enc, dl, ll, dim=1)
    _like_live_state(opt, model.log_gain_dec, dl, ll, dim=1)
    for off in (0, M):
        _like_live_state(opt, hs.weight, dl + off, ll + off)
        _like_live_state(opt, hs.bias, dl + off, ll + off)
    return list(zip(dead, donors))
