"""Entropy-model building blocks for the learned codecs (float / training side).

Conventions shared with the normative entropy coder (refsw/entropy):

* ``y`` (main latent) symbols are coded with zero-mean discretised Gaussian
  tables indexed by a *scale index* ``k`` in ``[0, NUM_SCALES-1]``::

      s_k = exp(ln(SCALE_MIN) + k * (ln(SCALE_MAX) - ln(SCALE_MIN)) / (NUM_SCALES-1))

  The model predicts a natural-log scale; :func:`scale_index` rounds it to
  the nearest index in the log domain.
* ``z`` (hyper latent) symbols are coded with per-channel static tables
  derived from a learned factorised density (:class:`FactorizedPrior`), see
  :meth:`FactorizedPrior.integer_cdf`.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SCALE_MIN = 0.11
SCALE_MAX = 256.0
NUM_SCALES = 64
LOG_SCALE_MIN = math.log(SCALE_MIN)
LOG_SCALE_MAX = math.log(SCALE_MAX)
LOG_SCALE_STEP = (LOG_SCALE_MAX - LOG_SCALE_MIN) / (NUM_SCALES - 1)
LIKELIHOOD_BOUND = 1e-9


def scale_table() -> np.ndarray:
    """The 64 normative Gaussian scales s_k (float64)."""
    k = np.arange(NUM_SCALES, dtype=np.float64)
    return np.exp(LOG_SCALE_MIN + k * LOG_SCALE_STEP)


def scale_index(log_scale: torch.Tensor) -> torch.Tensor:
    """Nearest scale index (log domain) for a natural-log scale, clamped to [0, 63]."""
    k = torch.round((log_scale - LOG_SCALE_MIN) / LOG_SCALE_STEP)
    return k.clamp_(0, NUM_SCALES - 1).to(torch.int64)


def index_to_scale(k: torch.Tensor) -> torch.Tensor:
    return torch.exp(LOG_SCALE_MIN + k.to(torch.float64) * LOG_SCALE_STEP)


class _LowerBound(torch.autograd.Function):
    """max(x, bound) whose gradient still flows where it would raise x.

    A plain clamp kills the gradient of elements stuck below the bound (e.g. a
    symbol far in the tail of its Gaussian): the model can then never repair
    them and the rate drifts up.  Same construction as CompressAI's LowerBound.
    """

    @staticmethod
    def forward(ctx, x, bound: float):
        ctx.save_for_backward(x)
        ctx.bound = bound
        return x.clamp_min(bound)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        pass_through = (x >= ctx.bound) | (g < 0)
        return g * pass_through.to(g.dtype), None


def lower_bound(x: torch.Tensor, bound: float) -> torch.Tensor:
    return _LowerBound.apply(x, bound)


def upper_bound(x: torch.Tensor, bound: float) -> torch.Tensor:
    return -_LowerBound.apply(-x, -bound)


def _std_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x * (2 ** -0.5))


def gaussian_likelihood(x: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """P(x) of an integer-width bin centred on ``x`` under N(mean, scale).

    Uses the symmetric (upper-tail) formulation for numerical accuracy.
    """
    scale = upper_bound(lower_bound(scale, SCALE_MIN), SCALE_MAX)
    v = (x - mean).abs()
    upper = _std_normal_cdf((0.5 - v) / scale)
    lower = _std_normal_cdf((-0.5 - v) / scale)
    return lower_bound(upper - lower, LIKELIHOOD_BOUND)


class FactorizedPrior(nn.Module):
    """Per-channel learned CDF (Balle et al. 2018, "EntropyBottleneck"-style).

    Own implementation (CompressAI is not used).  Density of channel c is the
    derivative of a monotone function built from small per-channel matrices.
    At coding time the density is tabulated over the integer support
    ``[-support, support]`` into fixed-precision CDFs (:meth:`integer_cdf`).
    """

    def __init__(self, channels: int, filters=(3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        self.channels = channels
        filters = (1,) + tuple(filters) + (1,)
        scale = init_scale ** (1 / (len(filters) - 1))
        self.n_layers = len(filters) - 1
        for i in range(self.n_layers):
            init = math.log(math.expm1(1 / scale / filters[i + 1]))
            m = torch.full((channels, filters[i + 1], filters[i]), init)
            self.register_parameter(f"matrix{i}", nn.Parameter(m))
            b = torch.empty(channels, filters[i + 1], 1).uniform_(-0.5, 0.5)
            self.register_parameter(f"bias{i}", nn.Parameter(b))
            if i < self.n_layers - 1:
                self.register_parameter(f"factor{i}", nn.Parameter(torch.zeros(channels, filters[i + 1], 1)))

    def _logits_cumulative(self, x: torch.Tensor) -> torch.Tensor:
        # x: (C, 1, L)
        for i in range(self.n_layers):
            m = F.softplus(getattr(self, f"matrix{i}"))
            x = torch.matmul(m, x) + getattr(self, f"bias{i}")
            if i < self.n_layers - 1:
                x = x + torch.tanh(getattr(self, f"factor{i}")) * torch.tanh(x)
        return x

    def likelihood(self, z: torch.Tensor) -> torch.Tensor:
        """Bin probability of (noisy or integer) z, shape (B, C, H, W)."""
        B, C, H, W = z.shape
        v = z.permute(1, 0, 2, 3).reshape(C, 1, -1)
        lower = self._logits_cumulative(v - 0.5)
        upper = self._logits_cumulative(v + 0.5)
        sign = -torch.sign(lower + upper).detach()
        lik = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()
        lik = lower_bound(lik, LIKELIHOOD_BOUND)
        return lik.reshape(C, B, H, W).permute(1, 0, 2, 3)

    @torch.no_grad()
    def pmf(self, support: int) -> torch.Tensor:
        """(C, 2*support+1) float64 probabilities of integers -support..support.

        The two tails (mass beyond the support) are folded into the end bins.
        """
        C = self.channels
        v = torch.arange(-support, support + 1, dtype=torch.float32)
        v = v.view(1, 1, -1).expand(C, 1, -1)
        edges = torch.cat([v - 0.5, v[..., -1:] + 0.5], dim=-1)
        cdf = torch.sigmoid(self._logits_cumulative(edges)).double().squeeze(1)
        cdf[:, 0] = 0.0
        cdf[:, -1] = 1.0
        return (cdf[:, 1:] - cdf[:, :-1]).clamp_min(0.0)

    @torch.no_grad()
    def integer_cdf(self, support: int, precision: int = 16) -> np.ndarray:
        """Deterministic integer CDF tables, shape (C, 2*support+2), int32.

        cdf[c, 0] = 0, cdf[c, -1] = 2**precision, every symbol frequency >= 1.
        Symbol value v in [-support, support] has frequency
        cdf[c, v+support+1] - cdf[c, v+support].
        """
        return pmf_to_integer_cdf(self.pmf(support).numpy(), precision)


def pmf_to_integer_cdf(pmf: np.ndarray, precision: int = 16) -> np.ndarray:
    """Quantise rows of a pmf to integer frequencies summing to 2**precision (each >= 1)."""
    total = 1 << precision
    C, L = pmf.shape
    out = np.zeros((C, L + 1), dtype=np.int64)
    for c in range(C):
        p = np.maximum(pmf[c], 0.0)
        p = p / p.sum()
        f = np.maximum(1, np.floor(p * (total - L)).astype(np.int64) + 1)
        # distribute the remainder (can be negative) onto the largest bins
        diff = total - int(f.sum())
        order = np.argsort(-p, kind="stable")
        i = 0
        while diff != 0:
            j = order[i % L]
            if diff > 0:
                f[j] += 1
                diff -= 1
            elif f[j] > 1:
                f[j] -= 1
                diff += 1
            i += 1
        out[c, 1:] = np.cumsum(f)
    return out.astype(np.int32)
