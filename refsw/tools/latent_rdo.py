"""Encoder-side rate-distortion optimisation of the latents (non-normative).

The analysis transform g_a is a one-shot approximation of the latent that
minimises R + lambda*D for the *decoder* the bitstream feeds.  The encoder is
free to search further: starting from (y, z) = (g_a(x) * gE, h_a(y) * zE), it
descends on

    J(y, z) = (bits(round(y) | h_s(round(z))) + bits(round(z))) / npix
              + lambda(q) * 255^2 * MSE(g_s(round(y) * gD), x)    (picture area only)

with the float model.  J is evaluated on the rounded, coded latent (the proxy of
the actual operating point) and the best iterate by J is kept, so the search never
returns a worse proxy cost than g_a's own latent.  The descent direction comes from
J with y and z *soft*-rounded (`soft_round`, annealed towards round() over the
iterations).  The bitstream syntax and the decoder are untouched.  (Refinement of
this kind: Campos et al. 2019; annealed rounding: Yang et al. 2020.)
"""
from __future__ import annotations

import math

import torch

from ..models.entropy_models import gaussian_likelihood
from ..models.intra import _ste_round

LR = 0.015         # Adam step on the gained latent (quantiser step 1) up to quality LR_KNEE
LR_KNEE = 21       # above it the step grows geometrically ...
LR_TOP = 0.12      # ... to this at quality LR_TOP_Q, and stays there
LR_TOP_Q = 42
LR_FINAL = 0.1     # fraction of the step reached at the last iteration (cosine)
TAU0 = 1.0         # soft-rounding temperature at the first iteration,
TAU_DECAY = 4.0    # decaying as exp(-TAU_DECAY * it / iters)
TAU_MIN = 0.02     # down to this


def soft_round(y: torch.Tensor, tau: float) -> torch.Tensor:
    """floor(y) + P(up): the expectation of the two-point relaxation of rounding
    (Yang et al. 2020) with P(up) = sigmoid((atanh(r) - atanh(1 - r)) / tau),
    r = y - floor(y).  Differentiable in y; tends to round(y) as tau -> 0."""
    f = torch.floor(y)
    r = (y - f).clamp(1e-4, 1 - 1e-4)
    return f + torch.sigmoid((torch.atanh(r) - torch.atanh(1 - r)) / tau)


def temperature(it: int, iters: int) -> float:
    return max(TAU0 * math.exp(-TAU_DECAY * it / iters), TAU_MIN)


def step_for_quality(q: float) -> float:
    """Initial Adam step of the search at quality q.

    Chosen by the coded J (real rate, integer decoder) of 40 iterations with soft
    rounding on three training pictures (docs/models/intra_v1.md): 0.015 beats 0.01
    at q 0 and 21 and from q 42 up 0.12 beats the smaller steps tried.  (0.025
    lowered J at q 0-21 on the crops but cost 0.05-0.09 dB at equal rate at q 7-28 on
    the CTC pictures, so the low end keeps 0.015.)
    """
    if q <= LR_KNEE:
        return LR
    if q >= LR_TOP_Q:
        return LR_TOP
    return LR * (LR_TOP / LR) ** ((q - LR_KNEE) / (LR_TOP_Q - LR_KNEE))


class RdCost:
    """J(y, z) of one picture at quality q (float model, straight-through rounding)."""

    def __init__(self, model, x: torch.Tensor, q: int, valid_hw=None):
        self.model = model
        qq = torch.tensor([float(q)])
        with torch.no_grad():
            self.gE, self.gD, self.zE, self.zD, self.lgE = model.gains(qq)
            self.lam = float(model.lambda_for_quality(qq)[0])
        h, w = valid_hw if valid_hw is not None else x.shape[-2:]
        self.h, self.w = h, w
        self.xt = x[..., :h, :w]

    def __call__(self, y_g: torch.Tensor, z: torch.Tensor, tau: float | None = None) -> torch.Tensor:
        """J with y and z rounded (tau None: straight-through) or soft-rounded at temperature tau."""
        m = self.model
        S = m.cfg.z_support
        if tau is None:
            z_hat, y_hat = _ste_round(z).clamp(-S, S), _ste_round(y_g)
        else:
            z_hat, y_hat = soft_round(z, tau).clamp(-S, S), soft_round(y_g, tau)
        mu, log_sigma = m.hyper_decode(z_hat, self.zD, self.gE, self.lgE)
        bits = -(torch.log2(gaussian_likelihood(y_hat, mu, torch.exp(log_sigma))).sum()
                 + torch.log2(m.z_prior.likelihood(z_hat)).sum())
        x_hat = m.synthesize(y_hat, self.gD)[..., :self.h, :self.w]
        mse = (x_hat.clamp(0, 1) - self.xt).square().mean()
        return bits / (self.h * self.w) + self.lam * 255.0 ** 2 * mse


def refine_latents(model, x: torch.Tensor, y_g: torch.Tensor, z: torch.Tensor, q: int,
                   iters: int, valid_hw=None):
    """(y_g, z) -> refined (y_g, z), both float, same shapes (encoder side).

    x: (1, 3, H, W) padded picture in [0, 1]; valid_hw: (h, w) picture area
    without the padding (distortion is measured there only).
    """
    if iters <= 0:
        return y_g, z
    for p in model.parameters():
        p.requires_grad_(False)
    cost = RdCost(model, x, q, valid_hw)
    yv = y_g.detach().clone().requires_grad_(True)
    zv = z.detach().clone().requires_grad_(True)
    lr0 = step_for_quality(q)
    opt = torch.optim.Adam([yv, zv], lr=lr0)
    best = (math.inf, y_g, z)
    with torch.enable_grad():
        for it in range(iters + 1):
            with torch.no_grad():
                J = float(cost(yv, zv))
            if J < best[0]:
                best = (J, yv.detach().clone(), zv.detach().clone())
            if it == iters:
                break
            for g in opt.param_groups:
                g["lr"] = lr0 * (LR_FINAL + (1 - LR_FINAL) * 0.5 * (1 + math.cos(math.pi * it / iters)))
            opt.zero_grad(set_to_none=True)
            cost(yv, zv, temperature(it, iters)).backward()
            opt.step()
    return best[1], best[2]
