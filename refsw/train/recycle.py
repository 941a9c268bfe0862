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


def _units(seq: nn.Sequential):
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
        for relu, *_ in _units(seq):
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
def recycle_dormant(model, batches, qualities=(0.0, 31.5, 63.0), threshold=0.01, generator=None):
    """Re-initialise dormant h_s / g_s units in place; returns {layer: count}."""
    act = measure_activity(model, batches, qualities)
    report = {}
    for name, seq in (("h_s", model.h_s), ("g_s", model.g_s)):
        for li, (relu, prod, r, cons) in enumerate(_units(seq)):
            a = act[id(relu)]
            dead = torch.nonzero(a < threshold).flatten()
            live = torch.nonzero(a >= threshold).flatten()
            if dead.numel() == 0 or live.numel() == 0:
                continue
            rr = r * r
            rows = lambda ch: torch.arange(rr) + ch * rr  # noqa: E731 conv outputs of unit ch
            live_rows = torch.cat([rows(int(c)) for c in live])
            w_live = prod.weight[live_rows]
            norm = w_live.flatten(1).norm(dim=1).mean()
            bias = prod.bias[live_rows].mean()
            for c in dead.tolist():
                idx = rows(c)
                w = torch.randn(prod.weight[idx].shape, generator=generator)
                w = w / w.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * norm
                prod.weight[idx] = w
                prod.bias[idx] = bias
                cons.weight[:, c] = 0.0
            report[f"{name}{li}"] = int(dead.numel())
    return report
