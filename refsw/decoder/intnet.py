"""Clause 10.2: integer neural-network decoding process.

Every tensor of the normative synthesis (h_s, g_s) holds integers. A layer
is a 2-D convolution with integer weights and bias, followed by a
per-channel requantisation and a clip:

    acc[ c ]  = bias[ c ] + sum over ci, ky, kx of weight[ c ][ ci ][ ky ][ kx ] * in[ ci ][ y + ky - p ][ x + kx - p ]
    out[ c ]  = Clip3( lo, hi, ( acc[ c ] * mult[ c ] + add[ c ] + ( 1 << ( shift - 1 ) ) ) >> shift )

with zero padding p = k / 2, ">>" an arithmetic right shift, then an
optional pixel shuffle (depth to space) by ``shuffle``. ``add`` is zero
unless stated.

Execution paths (all give identical integers):

* ``float64``: convolution in float64 on integer-valued arrays. Exact
  because every partial sum is an integer of magnitude < 2^53, which
  :func:`check_bounds` proves for each layer when the model loads, so the
  order of summation cannot matter (numpy's BLAS sums in any order). It runs
  as matrix products on stacked shifted copies of the zero-padded, flattened
  input (:func:`conv2d_taps`). The
  requantisation runs in int64, or in float64 where
  :func:`f64_requant_exact` proves that exact.
* ``int64``: the same products in int64 (slow; the reference used by tests).

Arrays are numpy arrays on the CPU. On a GPU the same process runs in torch
(:mod:`refsw.decoder.intnet_torch`, imported only then, see
:func:`refsw.decoder.learned_intra.engine`), with TF32 and cuDNN autotuning off.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EXACT_LIMIT = 1 << 53
#: memory for the stacked shifted copies of a layer input (conv2d_taps; speed only)
STACK_BYTES = 1 << 27
INT64_LIMIT = 1 << 63


class IntNetError(ValueError):
    """An integer network whose bounds do not guarantee exact arithmetic."""


@dataclass
class IntLayer:
    weight: np.ndarray        # int64 (Cout, Cin, k, k)
    bias: np.ndarray          # int64 (Cout,)
    mult: np.ndarray          # int64 (Cout,)
    shift: int
    lo: int
    hi: int
    shuffle: int = 0          # 0: none, r: pixel shuffle by r after the clip
    name: str = ""

    @property
    def cin(self):
        return self.weight.shape[1]

    @property
    def cout(self):
        return self.weight.shape[0]

    def max_acc(self, in_bound: int) -> int:
        w = np.abs(self.weight).reshape(self.cout, -1).sum(axis=1).astype(object)
        return int(max(w * in_bound + np.abs(self.bias).astype(object)))

    def out_bound(self) -> int:
        return max(abs(self.lo), abs(self.hi))


def check_bounds(layers: list[IntLayer], in_bound: int, *, extra_mult=None, name="network") -> list[int]:
    """Prove exactness: every layer's accumulator < 2^53 and the requantisation
    product < 2^63. Returns the accumulator bound of each layer."""
    bounds = []
    b = in_bound
    for i, L in enumerate(layers):
        acc = L.max_acc(b)
        if acc >= EXACT_LIMIT:
            raise IntNetError(f"{name} layer {i} ({L.name}): accumulator bound {acc} >= 2^53")
        mmax = int(np.abs(L.mult).max()) if L.mult.size else 0
        if i == len(layers) - 1 and extra_mult is not None:
            mmax = max(mmax, int(np.abs(extra_mult).max()))
        if acc * mmax + (1 << L.shift) >= INT64_LIMIT:
            raise IntNetError(f"{name} layer {i} ({L.name}): requantisation product bound >= 2^63")
        bounds.append(acc)
        b = L.out_bound()
    return bounds


def pixel_shuffle(x: np.ndarray, r: int) -> np.ndarray:
    """Depth to space: out[n][c][r*y+i][r*x+j] = x[n][c*r*r+i*r+j][y][x]."""
    n, c, h, w = x.shape
    c //= r * r
    return np.ascontiguousarray(x.reshape(n, c, r, r, h, w).transpose(0, 1, 4, 2, 5, 3)).reshape(n, c, h * r, w * r)


def conv2d_taps(x: np.ndarray, taps: np.ndarray, bias: np.ndarray, shuffle: int = 0) -> np.ndarray:
    """Zero-padded 'same' convolution of x (N, Cin, H, W) with taps
    (k*k, Cout, Cin), tap t = ky*k + kx, as one or k accumulated matrix products.
    With ``shuffle`` r > 0, x is given before its depth-to-space by r
    (N, Cin*r*r, H/r, W/r), which is done by the copy into the padded buffer.

    The input is padded by p = k//2 and flattened to (Cin, (H+2p)(W+2p)) with
    a guard of p*(W+2p)+p zeros at each end; the output on the padded grid at
    flat position i is bias + sum_t taps[t] @ xf[:, i + off_t], with
    off_t = (ky-p)*(W+2p) + (kx-p).  The taps of a group of kernel rows are
    one product: their shifted views are stacked into (taps*Cin, n) and
    multiplied by the group's taps side by side (Cout, taps*Cin); the group is
    the whole kernel when the copies fit in STACK_BYTES, else one row.  The
    border of the padded grid is cropped off. Exact in float64 whenever every partial sum is an
    integer < 2^53 (check_bounds); in int64 always (within the bounds
    check_bounds proves)."""
    kk, cout, cin = taps.shape
    k = int(round(kk ** 0.5))
    p = k // 2
    n, _, h, w = x.shape
    r = max(shuffle, 1)
    h, w = h * r, w * r
    wp = w + 2 * p
    npad = (h + 2 * p) * wp
    g = p * wp + p
    dt = taps.dtype
    # kernel rows per product: all k (one product, no accumulation) when their
    # stacked copies fit in STACK_BYTES, else one row at a time
    g_rows = k if k * k * cin * npad * 8 <= STACK_BYTES else 1
    groups = [list(range(r0, min(k, r0 + g_rows))) for r0 in range(0, k, g_rows)]
    mats = [np.ascontiguousarray(taps[k * grp[0]:k * (grp[-1] + 1)].transpose(1, 0, 2).reshape(cout, -1))
            for grp in groups]
    out = np.empty((n, cout, h, w), dtype=dt)
    tmp = np.empty((cout, npad), dtype=dt) if len(groups) > 1 else None
    stack = np.empty((g_rows * k * cin, npad), dtype=dt)
    for i in range(n):
        xf = np.zeros((cin, npad + 2 * g), dtype=dt)
        dst = xf[:, g:g + npad].reshape(cin, h + 2 * p, wp)[:, p:p + h, p:p + w]
        if shuffle:   # dst[c][r*y+i][r*x+j] = x[c*r*r+i*r+j][y][x]
            src = x[i].reshape(cin, r, r, h // r, w // r)
            for a in range(r):
                for b in range(r):
                    dst[:, a::r, b::r] = src[:, a, b]
        else:
            dst[...] = x[i]
        acc = np.empty((cout, npad), dtype=dt)
        for gi, grp in enumerate(groups):
            j = 0
            for ky in grp:
                for kx in range(k):
                    off = g + (ky - p) * wp + (kx - p)
                    stack[j * cin:(j + 1) * cin] = xf[:, off:off + npad]
                    j += 1
            if gi == 0:
                np.matmul(mats[gi], stack[:j * cin], out=acc)
            else:
                np.matmul(mats[gi], stack[:j * cin], out=tmp)
                acc += tmp
        acc += bias.reshape(-1, 1)
        out[i] = acc.reshape(cout, h + 2 * p, wp)[:, p:p + h, p:p + w]
    return out


def layer_taps(L: IntLayer, path: str, cache: dict):
    """Taps (k*k, Cout, Cin) and bias of a layer in the path's dtype, cached."""
    key = (id(L), "taps", path)
    if key not in cache:
        dt = np.int64 if path == "int64" else np.float64
        co, ci, k, _ = L.weight.shape
        t = L.weight.astype(dt).transpose(2, 3, 0, 1).reshape(k * k, co, ci)
        cache[key] = (np.ascontiguousarray(t), L.bias.astype(dt))
    return cache[key]


def requant(acc: np.ndarray, mult, add, shift: int, lo: int, hi: int) -> np.ndarray:
    """Clip3( lo, hi, ( acc * mult + add + ( 1 << ( shift - 1 ) ) ) >> shift ), per channel (axis 1), int64."""
    v = np.asarray(acc, dtype=np.int64) * np.asarray(mult, dtype=np.int64).reshape(1, -1, 1, 1)
    if add is not None:
        v += np.asarray(add, dtype=np.int64).reshape(1, -1, 1, 1)
    if shift > 0:
        v += 1 << (shift - 1)
        v >>= shift
    return np.clip(v, lo, hi, out=v)


def requant_f64_(acc: np.ndarray, mult: np.ndarray, shift: int, lo: int, hi: int) -> np.ndarray:
    """In-place float64 form of :func:`requant`, exact when
    |acc * mult| + 2^(shift-1) < 2^53: the product and the sum are exact
    integers, the scaling by 2^-shift is exact and floor() is the arithmetic shift."""
    acc *= mult
    acc += float(1 << (shift - 1))
    acc *= 2.0 ** -shift
    np.floor(acc, out=acc)
    return np.clip(acc, lo, hi, out=acc)


def f64_requant_exact(L: IntLayer, in_bound: int) -> bool:
    return L.max_acc(in_bound) * int(np.abs(L.mult).max()) + (1 << L.shift) < EXACT_LIMIT


def run(layers: list[IntLayer], x, path: str = "float64", *, return_last_acc: bool = False,
        cache: dict | None = None, in_bound: int = 1 << 15):
    """Run the layers on integer array x (N, C, H, W); returns int64.

    ``return_last_acc``: return the int64 accumulators of the last layer
    instead of requantising them (its caller requantises channel groups with
    quality-dependent tables, 10.3)."""
    if path not in ("float64", "int64"):
        raise ValueError(f"unknown integer path {path!r}")
    cache = {} if cache is None else cache
    b = in_bound
    shuffle = 0   # depth-to-space of the previous layer, done by the next convolution's input copy
    for i, L in enumerate(layers):
        taps, bias = layer_taps(L, path, cache)
        acc = conv2d_taps(x.astype(taps.dtype, copy=False), taps, bias, shuffle)
        if return_last_acc and i == len(layers) - 1:
            return acc.astype(np.int64)
        key = ("f64ok", id(L), b)
        if key not in cache:
            cache[key] = f64_requant_exact(L, b)
        if path == "float64" and cache[key]:
            # float64 all the way: no int64 round trip (exactness proven above)
            x = requant_f64_(acc, L.mult.astype(np.float64).reshape(1, -1, 1, 1), L.shift, L.lo, L.hi)
        else:
            x = requant(acc, L.mult, None, L.shift, L.lo, L.hi)
        shuffle = L.shuffle
        if shuffle and i == len(layers) - 1:
            x = pixel_shuffle(x, shuffle)
        b = L.out_bound()
    return x.astype(np.int64)


def to_npz_dict(prefix: str, layers: list[IntLayer]) -> dict:
    d = {f"{prefix}.num_layers": np.array(len(layers), dtype=np.int64)}
    for i, L in enumerate(layers):
        wt = np.int16 if np.abs(L.weight).max() < (1 << 15) else np.int32
        d[f"{prefix}.{i}.weight"] = L.weight.astype(wt)
        d[f"{prefix}.{i}.bias"] = L.bias.astype(np.int64)
        d[f"{prefix}.{i}.mult"] = L.mult.astype(np.int64)
        d[f"{prefix}.{i}.params"] = np.array([L.shift, L.lo, L.hi, L.shuffle], dtype=np.int64)
    return d


def from_npz(z, prefix: str) -> list[IntLayer]:
    n = int(z[f"{prefix}.num_layers"])
    out = []
    for i in range(n):
        shift, lo, hi, shuffle = (int(v) for v in z[f"{prefix}.{i}.params"])
        wshape = z[f"{prefix}.{i}.weight"].shape
        if len(wshape) != 4 or wshape[2] != wshape[3] or wshape[2] % 2 == 0:
            raise IntNetError(f"{prefix}.{i}.weight: shape {wshape}, a layer needs an odd square kernel (10.2)")
        out.append(IntLayer(z[f"{prefix}.{i}.weight"].astype(np.int64), z[f"{prefix}.{i}.bias"].astype(np.int64),
                            z[f"{prefix}.{i}.mult"].astype(np.int64), shift, lo, hi, shuffle, f"{prefix}.{i}"))
    return out
