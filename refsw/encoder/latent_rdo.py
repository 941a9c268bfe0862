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
from dataclasses import dataclass, fields, replace

import torch

from ..models.entropy_models import gaussian_likelihood
from ..models.intra import ste_round

@dataclass(frozen=True)
class SearchSchedule:
    """Step and temperature schedule of the search (encoder choice, not signalled).

    Adam step on the gained latent (quantiser step 1): ``lr`` up to quality
    ``lr_knee``, rising geometrically to ``lr_top`` at ``lr_top_q`` and constant
    above; within a search it decays by a cosine to ``lr_final`` of itself.  The
    soft-rounding temperature is max(tau0 * exp(-tau_decay * it / iters), tau_min).
    The defaults (``SHIPPED``) are what ``ctc/ai.cfg`` codes with; the measurements
    behind them are in docs/models/intra_v1.md.  ``benchmarks/search_schedule.py``
    compares another schedule with them by BD-rate.
    """
    lr: float = 0.015
    lr_knee: float = 21
    lr_top: float = 0.12
    lr_top_q: float = 42
    lr_final: float = 0.1
    tau0: float = 1.0
    tau_decay: float = 4.0
    tau_min: float = 0.02

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"SearchSchedule.{f.name}: {v!r} is not a finite number >= 0")
        if not self.lr_knee < self.lr_top_q:
            raise ValueError(f"SearchSchedule: lr_knee ({self.lr_knee}) must be below lr_top_q ({self.lr_top_q})")
        for name in ("lr", "lr_top", "tau_min"):
            if not getattr(self, name) > 0:
                raise ValueError(f"SearchSchedule.{name}: must be > 0")

    def step(self, q: float) -> float:
        """Initial Adam step of the search at quality q.

        Chosen by the coded J (real rate, integer decoder) of 40 iterations with soft
        rounding on three training pictures (docs/models/intra_v1.md): 0.015 beats 0.01
        at q 0 and 21 and from q 42 up 0.12 beats the smaller steps tried.  (0.025
        lowered J at q 0-21 on the crops but cost 0.05-0.09 dB at equal rate at q 7-28 on
        the CTC pictures, so the low end keeps 0.015.)
        """
        if q <= self.lr_knee:
            return self.lr
        if q >= self.lr_top_q:
            return self.lr_top
        return self.lr * (self.lr_top / self.lr) ** ((q - self.lr_knee) / (self.lr_top_q - self.lr_knee))

    def step_at(self, lr0: float, it: int, iters: int) -> float:
        """Step at iteration it of iters: cosine from lr0 down to lr_final * lr0."""
        return lr0 * (self.lr_final + (1 - self.lr_final) * 0.5 * (1 + math.cos(math.pi * it / iters)))

    def temperature(self, it: int, iters: int) -> float:
        return max(self.tau0 * math.exp(-self.tau_decay * it / iters), self.tau_min)

    @classmethod
    def parse(cls, text: str) -> "SearchSchedule":
        """'lr=0.02,lr_knee=28' -> SHIPPED with those fields changed."""
        names = {f.name for f in fields(cls)}
        kw = {}
        for item in filter(None, (t.strip() for t in text.split(","))):
            k, sep, v = item.partition("=")
            k = k.strip()
            if not sep or k not in names:
                raise ValueError(f"search schedule {text!r}: {item!r} is not <field>=<number>; "
                                 f"fields: {', '.join(sorted(names))}")
            try:
                kw[k] = float(v)
            except ValueError:
                raise ValueError(f"search schedule {text!r}: {k}={v!r} is not a number") from None
        return replace(SHIPPED, **kw)

    def describe(self) -> str:
        return ",".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))


SHIPPED = SearchSchedule()


def soft_round(y: torch.Tensor, tau: float) -> torch.Tensor:
    """floor(y) + P(up): the expectation of the two-point relaxation of rounding
    (Yang et al. 2020) with P(up) = sigmoid((atanh(r) - atanh(1 - r)) / tau),
    r = y - floor(y).  Differentiable in y; tends to round(y) as tau -> 0."""
    f = torch.floor(y)
    r = (y - f).clamp(1e-4, 1 - 1e-4)
    return f + torch.sigmoid((torch.atanh(r) - torch.atanh(1 - r)) / tau)


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
            z_hat, y_hat = ste_round(z).clamp(-S, S), ste_round(y_g)
        else:
            z_hat, y_hat = soft_round(z, tau).clamp(-S, S), soft_round(y_g, tau)
        mu, log_sigma = m.entropy_params(z_hat, y_hat, self.zD, self.gE, self.gD, self.lgE)   # context included
        bits = -(torch.log2(gaussian_likelihood(y_hat, mu, torch.exp(log_sigma))).sum()
                 + torch.log2(m.z_prior.likelihood(z_hat)).sum())
        x_hat = m.synthesize(y_hat, self.gD)[..., :self.h, :self.w]
        mse = (x_hat.clamp(0, 1) - self.xt).square().mean()
        return bits / (self.h * self.w) + self.lam * 255.0 ** 2 * mse


def refine_latents(model, x: torch.Tensor, y_g: torch.Tensor, z: torch.Tensor, q: int,
                   iters: int, valid_hw=None, schedule: SearchSchedule | None = None):
    """(y_g, z) -> refined (y_g, z), both float, same shapes (encoder side).

    x: (1, 3, H, W) padded picture in [0, 1]; valid_hw: (h, w) picture area
    without the padding (distortion is measured there only); schedule: None for
    ``SHIPPED``.
    """
    if iters <= 0:
        return y_g, z
    for p in model.parameters():
        p.requires_grad_(False)
    cost = RdCost(model, x, q, valid_hw)
    yv = y_g.detach().clone().requires_grad_(True)
    zv = z.detach().clone().requires_grad_(True)
    sch = schedule or SHIPPED
    lr0 = sch.step(q)
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
                g["lr"] = sch.step_at(lr0, it, iters)
            opt.zero_grad(set_to_none=True)
            cost(yv, zv, sch.temperature(it, iters)).backward()
            opt.step()
    return best[1], best[2]
