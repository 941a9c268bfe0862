"""Clause 10.2 on a GPU: the integer network engine of :mod:`refsw.decoder.intnet`
in torch (imported only for ``--device cuda``). Same process, same integers:
float64 products are exact in any summation order (10.2); TF32 and cuDNN
autotuning are off (:func:`exact_mode`). The CPU decoder does not use torch.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .intnet import IntLayer, f64_requant_exact


def _weights(L: IntLayer, path: str, device, cache: dict):
    """Weight and bias tensors of a layer for a path (int64 or float64), cached."""
    key = (id(L), path, device)
    if key not in cache:
        dt = np.int64 if path == "int64" else np.float64
        cache[key] = (torch.from_numpy(L.weight.astype(dt)).to(device),
                      torch.from_numpy(L.bias.astype(dt)).to(device))
    return cache[key]


def conv2d_taps(x: torch.Tensor, taps: torch.Tensor, bias: torch.Tensor, shuffle: int = 0) -> torch.Tensor:
    """Zero-padded 'same' convolution of x (N, Cin, H, W) with taps
    (k*k, Cout, Cin), tap t = ky*k + kx, as k*k accumulated matrix products.
    With ``shuffle`` r > 0, x is given before its depth-to-space by r
    (N, Cin*r*r, H/r, W/r), which is done by the copy into the padded buffer.

    The input is padded by p = k//2 and flattened to (Cin, (H+2p)(W+2p)) with
    a guard of p*(W+2p)+p zeros at each end; the output on the padded grid at
    flat position i is bias + sum_t taps[t] @ xf[:, i + off_t], with
    off_t = (ky-p)*(W+2p) + (kx-p). Each operand is a strided view (no copy);
    the border of the padded grid is cropped off. Exact in float64 whenever
    every partial sum is an integer < 2^53 (check_bounds)."""
    kk, cout, cin = taps.shape
    k = int(round(kk ** 0.5))
    p = k // 2
    n, _, h, w = x.shape
    r = max(shuffle, 1)
    h, w = h * r, w * r
    wp = w + 2 * p
    npad = (h + 2 * p) * wp
    g = p * wp + p
    outs = []
    for i in range(n):
        xf = x.new_zeros(cin, npad + 2 * g)
        dst = xf[:, g:g + npad].view(cin, h + 2 * p, wp)[:, p:p + h, p:p + w]
        if shuffle:   # dst[c][r*y+i][r*x+j] = x[c*r*r+i*r+j][y][x]
            dst.view(cin, h // r, r, w // r, r).permute(0, 2, 4, 1, 3).copy_(x[i].view(cin, r, r, h // r, w // r))
        else:
            dst.copy_(x[i])
        acc = bias.view(-1, 1).expand(cout, npad).clone()
        for t in range(kk):
            off = g + (t // k - p) * wp + (t % k - p)
            acc.addmm_(taps[t], xf[:, off:off + npad])
        outs.append(acc.view(cout, h + 2 * p, wp)[:, p:p + h, p:p + w])
    return outs[0].unsqueeze(0) if n == 1 else torch.stack(outs)


def _taps(L: IntLayer, device, cache: dict):
    """float64 taps (k*k, Cout, Cin) and bias of a layer for :func:`conv2d_taps`, cached."""
    key = (id(L), "taps", device)
    if key not in cache:
        co, ci, k, _ = L.weight.shape
        t = L.weight.astype(np.float64).transpose(2, 3, 0, 1).reshape(k * k, co, ci)
        cache[key] = (torch.from_numpy(np.ascontiguousarray(t)).to(device),
                      torch.from_numpy(L.bias.astype(np.float64)).to(device))
    return cache[key]


def _conv_acc(x: torch.Tensor, L: IntLayer, path: str, cache: dict, shuffle: int = 0) -> torch.Tensor:
    """Integer convolution of x after a depth-to-space by ``shuffle`` (if > 0);
    the accumulators are int64 (int64 path) or integer-valued float64
    (float64 path, exact by check_bounds)."""
    if path == "int64":
        w, b = _weights(L, path, x.device, cache)
        if shuffle:
            x = F.pixel_shuffle(x, shuffle)
        return F.conv2d(x.to(torch.int64), w, b, padding=L.weight.shape[2] // 2)
    taps, b = _taps(L, x.device, cache)
    return conv2d_taps(x.to(torch.float64), taps, b, shuffle)


def requant(acc: torch.Tensor, mult, add, shift: int, lo: int, hi: int) -> torch.Tensor:
    """Clip3( lo, hi, ( acc * mult + add + ( 1 << ( shift - 1 ) ) ) >> shift ), per channel."""
    m = torch.as_tensor(np.asarray(mult, dtype=np.int64), device=acc.device).view(1, -1, 1, 1)
    v = acc * m
    if add is not None:
        v = v + torch.as_tensor(np.asarray(add, dtype=np.int64), device=acc.device).view(1, -1, 1, 1)
    if shift > 0:
        v = (v + (1 << (shift - 1))) >> shift
    return v.clamp_(lo, hi)


def requant_f64_(acc: torch.Tensor, mult: torch.Tensor, shift: int, lo: int, hi: int) -> torch.Tensor:
    """In-place float64 form of :func:`requant`, exact when
    |acc * mult| + 2^(shift-1) < 2^53: the product and the sum are exact
    integers, the scaling by 2^-shift is exact and floor() is the arithmetic shift."""
    return acc.mul_(mult).add_(float(1 << (shift - 1))).mul_(2.0 ** -shift).floor_().clamp_(lo, hi)


def run(layers: list[IntLayer], x: torch.Tensor, path: str = "float64", *, return_last_acc: bool = False,
        cache: dict | None = None, in_bound: int = 1 << 15) -> torch.Tensor:
    """Run the layers on integer tensor x (N, C, H, W); returns int64.

    ``return_last_acc``: return the int64 accumulators of the last layer
    instead of requantising them (its caller requantises channel groups with
    quality-dependent tables, 10.3)."""
    if path not in ("float64", "int64"):
        raise ValueError(f"unknown integer path {path!r}")
    cache = {} if cache is None else cache
    b = in_bound
    shuffle = 0   # depth-to-space of the previous layer, done by the next convolution's input copy
    for i, L in enumerate(layers):
        acc = _conv_acc(x, L, path, cache, shuffle)
        if return_last_acc and i == len(layers) - 1:
            return acc.to(torch.int64)
        key = ("f64ok", id(L), b)
        if key not in cache:
            cache[key] = f64_requant_exact(L, b)
        if path == "float64" and cache[key]:
            # float64 all the way: no int64 round trip (exactness proven above)
            mkey = ("mult64", id(L), x.device)
            if mkey not in cache:
                cache[mkey] = torch.from_numpy(L.mult.astype(np.float64)).to(x.device).view(1, -1, 1, 1)
            x = requant_f64_(acc, cache[mkey], L.shift, L.lo, L.hi)
        else:
            x = requant(acc.to(torch.int64), L.mult, None, L.shift, L.lo, L.hi)
        shuffle = L.shuffle
        if shuffle and i == len(layers) - 1:
            x = F.pixel_shuffle(x, shuffle)
        b = L.out_bound()
    return x.to(torch.int64)


def exact_mode():
    """Switch off non-deterministic / inexact backends (TF32, autotuning)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
