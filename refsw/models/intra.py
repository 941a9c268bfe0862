"""Learned intra codec (model id 1, "intra_v1"), float reference / training model.

CompressAI notation: g_a (analysis), h_a (hyper-analysis), h_s (hyper-synthesis),
g_s (synthesis).  The encoder side (g_a, h_a) is free-form (GDN, LeakyReLU); the
decoder side (h_s, g_s) uses only 3x3 convolutions, PixelShuffle(2) upsampling and
clipped ReLU (``clamp(x, 0, act_max)``) so it can be integerised.

Data flow (q = quality index, real in [0, 63]; gains are per channel, see
:meth:`IntraCodec.gains`)::

    y      = g_a(x)                       x: RGB in [0,1], H, W multiple of 64
    z      = h_a(y) * zE[q]               z_hat = round(z)            (factorised prior)
    p      = h_s(z_hat * zD[q])           p[:, :M] = mu', p[:, M:] = log-scale'
    y_g    = y * gE[q]                    y_hat = round(y_g)          (integers, coded)
    mu     = mu' * gE[q]                  decoder: mu_r = round(mu)
    logsig = log-scale' + ln gE[q]        decoder: k = clamp(round((logsig - ln 0.11)/step), 0, 63)
    symbol = y_hat - mu_r                 coded with zero-mean Gaussian table s_k
    x_hat  = g_s(y_hat * gD[q])           clamp to [0,1], *255, round

Layered latent: channels [0, base_channels) of y form the base layer, the rest
the enhancement layer.  A base-only decoder (z + base channels) replaces the
enhancement channels by their predicted means mu_r (see :meth:`fill_enhancement`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .entropy_models import FactorizedPrior, gaussian_likelihood, lower_bound, upper_bound


@dataclass(frozen=True)
class IntraConfig:
    name: str = "intra_v1"
    model_id: int = 1
    colour: str = "RGB"             # RGB 4:4:4, 8 bit, normalised to [0, 1]
    enc_channels: int = 96          # g_a hidden channels (N)
    latent_channels: int = 160      # y channels (M)
    base_channels: int = 48         # y[:, :48] = base layer, y[:, 48:] = enhancement
    hyper_enc_channels: int = 96    # h_a hidden channels
    hyper_channels: int = 64        # z channels (Z)
    hs_channels: tuple = (64, 96)   # h_s hidden channels at /32, /16
    gs_channels: tuple = (128, 128, 64, 64, 64)  # g_s hidden: /8, /8, /4, /4, /2
    act_max: float = 6.0            # clipped ReLU upper bound in h_s / g_s
    stride: int = 16                # g_a total stride
    total_stride: int = 64          # g_a * h_a stride: pad pictures to a multiple of this
    num_points: int = 10            # trained operating points (q = 0, 7, ..., 63)
    num_quality: int = 64           # quality index range [0, 63]
    # lambda (D = 255^2 * MSE on [0,1] RGB) of each trained operating point
    lambdas: tuple = (0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128)
    z_support: int = 127            # z coded in [-127, 127] (encoder clamps)
    z_cdf_precision: int = 16
    # spatial context model (model 2): "none" or "checkerboard" (two passes, anchors
    # (i + j) even first; non-anchor entropy parameters refined from the anchors)
    context: str = "none"
    ctx_channels: int = 0           # hidden units of the context network
    ctx_base_channels: int = 0      # of which see base-layer anchors only (layered latent)

    def to_dict(self):
        d = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}

    @staticmethod
    def from_dict(d):
        d = dict(d)
        for k, v in d.items():
            if isinstance(v, list):
                d[k] = tuple(v)
        return IntraConfig(**d)

    def point_quality(self, i: int) -> float:
        """Quality index of trained operating point i (0, 7, 14, ..., 63 for 10 points)."""
        return i * (self.num_quality - 1) / (self.num_points - 1)


# --------------------------------------------------------------------------- layers
class GDN(nn.Module):
    """Generalised divisive normalisation (encoder side only)."""

    def __init__(self, ch: int, inverse: bool = False, beta_min: float = 1e-6, gamma_init: float = 0.1):
        super().__init__()
        self.inverse = inverse
        self.pedestal = 2 ** -36
        self.beta_bound = (beta_min + self.pedestal) ** 0.5
        self.beta = nn.Parameter(torch.sqrt(torch.ones(ch) + self.pedestal))
        self.gamma = nn.Parameter(torch.sqrt(gamma_init * torch.eye(ch) + self.pedestal))

    def forward(self, x):
        if torch.is_autocast_enabled("cpu"):     # normalisation stays float32 (see run_mixed)
            with torch.autocast("cpu", enabled=False):
                return self.forward(x.float())
        beta = torch.clamp(self.beta, min=self.beta_bound) ** 2 - self.pedestal
        gamma = torch.clamp(self.gamma, min=self.pedestal ** 0.5) ** 2 - self.pedestal
        C = x.shape[1]
        norm = F.conv2d(x * x, gamma.view(C, C, 1, 1), beta)
        norm = torch.sqrt(norm)
        return x * norm if self.inverse else x / norm


class DecConv(nn.Conv2d):
    """3x3 convolution of the integerisable decoder.

    QAT hook: set ``fake_quant`` to a callable ``f(module, x) -> y`` to replace
    the float convolution (e.g. by fake-quantised weights / requantisation).
    """

    def __init__(self, cin, cout, k=3):
        super().__init__(cin, cout, k, padding=k // 2)
        self.fake_quant: Optional[Callable] = None

    def forward(self, x):
        if self.fake_quant is not None:
            return self.fake_quant(self, x)
        return super().forward(x)


class ClippedReLU(nn.Module):
    """clamp(x, 0, max).  QAT hook: ``fake_quant`` replaces it if set.

    The forward value is exactly the clipped ReLU.  In training mode the
    backward pass additionally lets a small gradient (``grad_leak``) through
    the clipped regions so units cannot die (forward unaffected).
    """

    grad_leak = 0.0

    def __init__(self, max_value: float):
        super().__init__()
        self.max_value = float(max_value)
        self.fake_quant: Optional[Callable] = None

    def forward(self, x):
        if self.fake_quant is not None:
            return self.fake_quant(self, x)
        y = torch.clamp(x, 0.0, self.max_value)
        if self.training and self.grad_leak > 0:
            y = y + self.grad_leak * (x - x.detach())
        return y


class MaskedDecConv(DecConv):
    """DecConv whose weights outside ``mask`` stay zero: zero at init and a zero
    gradient there, so Adam never moves them (the stored weights are the true ones)."""

    def __init__(self, cin, cout, mask: torch.Tensor, k=3):
        super().__init__(cin, cout, k)
        self.register_buffer("mask", mask.view(cout, cin, 1, 1).float(), persistent=False)
        with torch.no_grad():
            self.weight.mul_(self.mask)
        self.weight.register_hook(lambda g: g * self.mask)


def anchor_mask(h: int, w: int, device=None) -> torch.Tensor:
    """(1, 1, h, w) checkerboard: 1 at anchor positions (i + j even), decoded first."""
    i = torch.arange(h, device=device).view(h, 1)
    j = torch.arange(w, device=device).view(1, w)
    return (((i + j) % 2) == 0).float().view(1, 1, h, w)


def run_mixed(seq: nn.Sequential, x: torch.Tensor, bf16: bool) -> torch.Tensor:
    """Run a transform; with ``bf16`` (training only) its hidden layers run under
    CPU bfloat16 autocast and its last convolution (and what follows it) in
    float32, so latents, means, scales and samples keep float32 precision."""
    if not bf16:
        return seq(x)
    last = max(i for i, m in enumerate(seq) if isinstance(m, nn.Conv2d))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = seq[:last](x)
    return seq[last:](h.float())


# the per-operating-point tables of IntraCodec (rows = trained points)
POINT_TABLES = ("log_gain_enc", "log_gain_dec", "log_zgain_enc", "log_zgain_dec")


def check_lambdas(lambdas) -> tuple:
    """The lambdas of a set of operating points as floats; ValueError unless they are
    at least two positive, increasing values."""
    lams = tuple(float(v) for v in lambdas)
    if len(lams) < 2 or lams[0] <= 0 or any(b <= a for a, b in zip(lams, lams[1:])):
        raise ValueError(f"need at least two positive increasing lambdas, got {', '.join(map(str, lambdas))}")
    return lams


def remap_point_table(table: torch.Tensor, old_lambdas, new_lambdas) -> torch.Tensor:
    """Rows of a (P_old, C) per-point table at new operating points (training aid).

    Piecewise linear in ln(lambda) between the old points; outside their range the
    end segments are extrapolated.  Used when the set of trained points changes.
    """
    lo = torch.log(torch.tensor(check_lambdas(old_lambdas), dtype=torch.float64))
    ln = torch.log(torch.tensor(new_lambdas, dtype=torch.float64))
    if table.shape[0] != lo.numel():
        raise ValueError(f"table has {table.shape[0]} rows for {lo.numel()} lambdas")
    i0 = (torch.searchsorted(lo, ln, right=True) - 1).clamp(0, lo.numel() - 2)
    f = ((ln - lo[i0]) / (lo[i0 + 1] - lo[i0])).to(table.dtype).unsqueeze(1)
    return table[i0] * (1 - f) + table[i0 + 1] * f


def remap_point_tables(state_dict: dict, old_lambdas, new_lambdas) -> dict:
    """A copy of an IntraCodec state dict with every table of :data:`POINT_TABLES` remapped."""
    return {k: remap_point_table(v, old_lambdas, new_lambdas) if k in POINT_TABLES else v
            for k, v in state_dict.items()}


def ste_round(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


# --------------------------------------------------------------------------- model
class IntraCodec(nn.Module):
    bf16 = False   # training speed-up: hidden layers in bfloat16 (see run_mixed)

    def __init__(self, cfg: IntraConfig = IntraConfig()):
        super().__init__()
        self.cfg = cfg
        N, M, Z = cfg.enc_channels, cfg.latent_channels, cfg.hyper_channels
        NH = cfg.hyper_enc_channels
        a = cfg.act_max

        def conv(cin, cout, k=5, s=2):
            return nn.Conv2d(cin, cout, k, stride=s, padding=k // 2)

        # ---- encoder side (non-normative)
        self.g_a = nn.Sequential(
            conv(3, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M))
        self.h_a = nn.Sequential(
            conv(M, NH, 3, 1), nn.LeakyReLU(0.1),
            conv(NH, NH), nn.LeakyReLU(0.1),
            conv(NH, Z))

        # ---- decoder side (normative after integerisation)
        h1, h2 = cfg.hs_channels
        self.h_s = nn.Sequential(
            DecConv(Z, 4 * h1), nn.PixelShuffle(2), ClippedReLU(a),      # /64 -> /32
            DecConv(h1, 4 * h2), nn.PixelShuffle(2), ClippedReLU(a),     # /32 -> /16
            DecConv(h2, 2 * M))                                           # mu', log-scale'
        c1, c2, c3, c4, c5 = cfg.gs_channels
        self.g_s = nn.Sequential(
            DecConv(M, 4 * c1), nn.PixelShuffle(2), ClippedReLU(a),      # /16 -> /8
            DecConv(c1, c2), ClippedReLU(a),
            DecConv(c2, 4 * c3), nn.PixelShuffle(2), ClippedReLU(a),     # /8 -> /4
            DecConv(c3, c4), ClippedReLU(a),
            DecConv(c4, 4 * c5), nn.PixelShuffle(2), ClippedReLU(a),     # /4 -> /2
            DecConv(c5, 4 * 3), nn.PixelShuffle(2))                       # /2 -> /1, RGB

        self.z_prior = FactorizedPrior(Z)
        self.ctx = self._build_context() if cfg.context != "none" else None
        self._init_weights()

        # per-operating-point log-gains, initialised so the quantiser step
        # shrinks ~sqrt(lambda ratio) per point
        P = cfg.num_points
        lam = torch.tensor(cfg.lambdas, dtype=torch.float32)
        lg = 0.5 * torch.log(lam / lam[-1]).view(P, 1)
        self.log_gain_enc = nn.Parameter(lg.repeat(1, M).clone())
        # decoder gains start small so g_s sees inputs of order 1
        self.log_gain_dec = nn.Parameter((-lg - math.log(4.0)).repeat(1, M).clone())
        self.log_zgain_enc = nn.Parameter(torch.zeros(P, Z))
        self.log_zgain_dec = nn.Parameter(torch.zeros(P, Z))
        self.reset_zgains()

    def _build_context(self):
        """Checkerboard context network (decoder side): input = anchors of y_hat * gD
        (non-anchors zero) and the h_s output p (2M), output = a correction of p at
        the non-anchor positions.  Hidden units [0, ctx_base_channels) see only the
        base-layer anchors; the base channels' outputs read only those units, so the
        base layer decodes without the enhancement layer."""
        cfg = self.cfg
        if cfg.context != "checkerboard":
            raise ValueError(f"unknown context model {cfg.context!r}")
        M, b, C, Cb = cfg.latent_channels, cfg.base_channels, cfg.ctx_channels, cfg.ctx_base_channels
        if not 0 < Cb < C:
            raise ValueError(f"ctx_base_channels {Cb} must be in 1..ctx_channels-1 ({C})")
        m1 = torch.ones(C, 3 * M)
        m1[:Cb, b:M] = 0                      # base units: no enhancement anchors
        m2 = torch.ones(2 * M, C)
        base_out = torch.cat([torch.arange(b), M + torch.arange(b)])
        m2[base_out, Cb:] = 0                 # base outputs: base units only
        return nn.Sequential(MaskedDecConv(3 * M, C, m1), ClippedReLU(cfg.act_max),
                             MaskedDecConv(C, 2 * M, m2))

    def _init_weights(self):
        """Variance-preserving init (He for convs feeding a ReLU, unit gain otherwise)."""
        for seq, last_linear in ((self.g_a, True), (self.h_a, True), (self.h_s, True), (self.g_s, True)):
            convs = [m for m in seq if isinstance(m, nn.Conv2d)]
            for i, c in enumerate(convs):
                fan_in = c.in_channels * c.kernel_size[0] * c.kernel_size[1]
                relu_next = seq in (self.h_s, self.g_s) and i < len(convs) - 1
                std = math.sqrt((2.0 if relu_next else 1.0) / fan_in)
                nn.init.normal_(c.weight, 0.0, std)
                nn.init.zeros_(c.bias)
        nn.init.constant_(self.g_s[-2].bias, 0.5)  # mid-grey output offset
        if self.ctx is not None:
            c0, c1 = self.ctx[0], self.ctx[-1]
            nn.init.normal_(c0.weight, 0.0, math.sqrt(2.0 / (c0.in_channels * 9)))
            with torch.no_grad():
                c0.weight.mul_(c0.mask)
            nn.init.zeros_(c0.bias)
            nn.init.zeros_(c1.weight)          # no correction at first: model 1's prior
            nn.init.zeros_(c1.bias)

    @torch.no_grad()
    def reset_zgains(self):
        """z gains: coarser z at low quality (step ~ sqrt(lambda ratio)), inverse on decode."""
        lam = torch.tensor(self.cfg.lambdas, dtype=torch.float32)
        lg = 0.5 * torch.log(lam / lam[-1]).view(-1, 1)
        self.log_zgain_enc.copy_(lg.expand_as(self.log_zgain_enc))
        self.log_zgain_dec.copy_((-lg).expand_as(self.log_zgain_dec))

    def _run(self, seq: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        """A transform of this model; bfloat16 hidden layers only when training with ``bf16``."""
        return run_mixed(seq, x, self.bf16 and self.training)

    # ------------------------------------------------------------ gains / quality
    def interp(self, table: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Linear interpolation of a (P, C) table at quality q (B,) real in [0, 63]."""
        P = self.cfg.num_points
        t = q.to(table.dtype).clamp(0, self.cfg.num_quality - 1) * (P - 1) / (self.cfg.num_quality - 1)
        i0 = torch.clamp(torch.floor(t), 0, P - 2).long()
        f = (t - i0.to(t.dtype)).unsqueeze(1)
        return table[i0] * (1 - f) + table[i0 + 1] * f

    def gains(self, q: torch.Tensor):
        """Per-sample gains (B, C, 1, 1): (gE, gD, zE, zD, log gE).

        Interpolation is linear in the log domain (= geometric in the gains).
        """
        lgE = self.interp(self.log_gain_enc, q)[..., None, None]
        lgD = self.interp(self.log_gain_dec, q)[..., None, None]
        lzE = self.interp(self.log_zgain_enc, q)[..., None, None]
        lzD = self.interp(self.log_zgain_dec, q)[..., None, None]
        return lgE.exp(), lgD.exp(), lzE.exp(), lzD.exp(), lgE

    def lambda_for_quality(self, q: torch.Tensor) -> torch.Tensor:
        lam = torch.log(torch.tensor(self.cfg.lambdas, dtype=torch.float32)).view(-1, 1)
        return self.interp(lam, q).squeeze(1).exp()

    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        """g_a on x in [0,1] (centred internally; encoder side, non-normative)."""
        return self._run(self.g_a, x - 0.5)

    # ------------------------------------------------------------ decoder helpers
    def hyper_params(self, z_hat: torch.Tensor, zD) -> torch.Tensor:
        """h_s output p: (mu', log-scale'), 2M channels, un-gained."""
        return self._run(self.h_s, z_hat * zD)

    def hyper_decode(self, z_hat: torch.Tensor, zD, gE, lgE):
        """h_s -> (mu, log_sigma) in the gained (coded) domain (no spatial context)."""
        return self.split_params(self.hyper_params(z_hat, zD), gE, lgE)

    def split_params(self, p, gE, lgE):
        M = self.cfg.latent_channels
        return p[:, :M] * gE, p[:, M:] + lgE

    def context_params(self, p: torch.Tensor, y_hat: torch.Tensor, gD) -> torch.Tensor:
        """p refined at the non-anchor positions from the anchors of y_hat (checkerboard);
        p unchanged without a context model."""
        if self.ctx is None:
            return p
        a = anchor_mask(*y_hat.shape[-2:], device=y_hat.device)
        d = self._run(self.ctx, torch.cat([y_hat * gD * a, p], dim=1))
        return p + d * (1 - a)

    def entropy_params(self, z_hat, y_hat, zD, gE, gD, lgE):
        """(mu, log_sigma) of every y position, gained domain, context included."""
        return self.split_params(self.context_params(self.hyper_params(z_hat, zD), y_hat, gD), gE, lgE)

    def fill_enhancement(self, y_hat: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        """Base-only latent: enhancement channels replaced by round(mu)."""
        b = self.cfg.base_channels
        return torch.cat([y_hat[:, :b], torch.round(mu[:, b:])], dim=1)

    def synthesize(self, y_hat: torch.Tensor, gD) -> torch.Tensor:
        return self._run(self.g_s, y_hat * gD)

    # ------------------------------------------------------------ training forward
    def forward(self, x: torch.Tensor, q: torch.Tensor, base_aux: int = 0):
        """Training / estimation forward.

        x: (B,3,H,W) in [0,1], H, W multiples of 64.  q: (B,) quality (real).
        Returns dict with x_hat, y_lik, z_lik (noise-based likelihoods), and
        x_base (base-only reconstruction of the first ``base_aux`` samples).
        """
        gE, gD, zE, zD, lgE = self.gains(q)
        y = self.analysis(x)
        S = self.cfg.z_support
        z = self._run(self.h_a, y) * zE
        if self.training:
            # z: bounded to the coded support (gradient still pulls values back
            # inside); additive noise for both the rate and the h_s input (stable:
            # h_s cannot buy precision by inflating z)
            z = upper_bound(lower_bound(z, -S), S)
            z_noisy = z + torch.empty_like(z).uniform_(-0.5, 0.5)
            z_lik = self.z_prior.likelihood(z_noisy)
            z_hat = z_noisy
        else:
            z_hat = torch.round(z).clamp(-self.cfg.z_support, self.cfg.z_support)
            z_lik = self.z_prior.likelihood(z_hat)
        p = self.hyper_params(z_hat, zD)
        mu_h = p[:, :self.cfg.latent_channels] * gE       # hyperprior-only mean (base-only fill)
        y_g = y * gE
        y_hat = ste_round(y_g) if self.training else torch.round(y_g)
        mu, log_sigma = self.split_params(self.context_params(p, y_hat, gD), gE, lgE)
        if self.training:
            y_noisy = y_g + torch.empty_like(y_g).uniform_(-0.5, 0.5)
            y_lik = gaussian_likelihood(y_noisy, mu, torch.exp(log_sigma))
        else:
            y_lik = gaussian_likelihood(y_hat, mu, torch.exp(log_sigma))
        x_hat = self.synthesize(y_hat, gD)
        out = {"x_hat": x_hat, "y_lik": y_lik, "z_lik": z_lik, "y": y_g, "z": z}
        if base_aux > 0:
            yb = self.fill_enhancement(y_hat[:base_aux], mu_h[:base_aux].detach())
            out["x_base"] = self.synthesize(yb, gD[:base_aux])
        return out

    # ------------------------------------------------------------ complexity
    def decoder_kmac_per_pixel(self) -> dict:
        d = {"h_s": _seq_kmac(self.h_s, 64), "g_s": _seq_kmac(self.g_s, 16)}
        if self.ctx is not None:
            d["ctx"] = _seq_kmac(self.ctx, 16)
        return d

    def encoder_kmac_per_pixel(self) -> dict:
        return {"g_a": _seq_kmac(self.g_a, 1), "h_a": _seq_kmac(self.h_a, 16)}


def _seq_kmac(seq: nn.Sequential, in_stride: int) -> float:
    """kMAC per *full-resolution* pixel of a sequential stack starting at in_stride."""
    s = in_stride
    macs = 0.0
    for m in seq:
        if isinstance(m, nn.Conv2d):
            s_out = s * m.stride[0]
            k = m.kernel_size[0] * m.kernel_size[1]
            macs += m.in_channels * m.out_channels * k / (s_out * s_out)
            s = s_out
        elif isinstance(m, nn.PixelShuffle):
            s = s // m.upscale_factor
        elif isinstance(m, GDN):
            c = m.beta.numel()
            macs += c * c / (s * s)
    return macs / 1000.0


def pad_to_multiple(x: torch.Tensor, m: int = 64) -> torch.Tensor:
    """Encoder-side replicate padding (bottom/right) to a multiple of m."""
    H, W = x.shape[-2:]
    ph, pw = (-H) % m, (-W) % m
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (0, pw, 0, ph), mode="replicate")
