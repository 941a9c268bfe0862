"""Residual enhancement layer encoder (clause 11 is its decoding process).

Non-normative choices: the forward transform (orthonormal form of the
decoder's matrix, float), rate-distortion optimised quantisation with the
rANS table costs, and the per-component scale offsets chosen to minimise
the rate.
"""
from __future__ import annotations

import functools

import numpy as np

from syntax.rw import Struct

from ..decoder.entropy import encode_substreams, gaussian_tables
from ..decoder.residual import (RES_BLOCK, RES_MAX_LEVEL, RES_STEP, RES_TRANS_MATRIX, blocks, apply_residual,
                                component_classes, prediction_planes, scale_indexes, ycocg_r_forward)
from ..picture import Picture
from .core import entropy_substream

#: rate-distortion slope of the quantiser, lambda = LAMBDA_FACTOR * step^2 per bit
LAMBDA_FACTOR = 0.12
#: scale offsets tried per component
OFFSETS = range(-8, 9)
_VMAX = 2047          # dense cost table range; larger levels are priced as escapes


@functools.lru_cache(maxsize=1)
def cost_table() -> np.ndarray:
    """bits[ k ][ v + VMAX ]: cost of level v with Gaussian table k (escape codes included)."""
    gt = gaussian_tables()
    v = np.arange(-_VMAX, _VMAX + 1)
    out = np.empty((gt.num_tables, v.size))
    for k in range(gt.num_tables):
        f = gt.freqs(k).astype(np.float64)       # values offset .. offset + n - 1, then the escape bin
        lo = int(gt.offsets[k])
        n = f.size - 1
        hi = lo + n - 1
        bits = np.empty(v.size)
        inside = (v >= lo) & (v <= hi)
        bits[inside] = -np.log2(f[v[inside] - lo] / 65536.0)
        esc = -np.log2(max(f[-1], 1.0) / 65536.0)
        code = np.where(v > hi, 2 * (v - hi - 1), 2 * (lo - v - 1) + 1)
        bits[~inside] = esc + 2 * np.floor(np.log2(code[~inside] + 1)) + 1
        out[k] = bits
    return out


def level_bits(levels: np.ndarray, k: np.ndarray) -> np.ndarray:
    c = cost_table()
    return c[k, np.clip(levels, -_VMAX, _VMAX) + _VMAX]


def basis() -> np.ndarray:
    """Orthonormal rows of the decoder's transform matrix."""
    T = RES_TRANS_MATRIX.astype(np.float64)
    return T / np.sqrt((T * T).sum(axis=1, keepdims=True))


def forward(plane: np.ndarray) -> np.ndarray:
    """Coefficients [by, bx, v, u] of a residual plane, in sample units."""
    B = basis()
    return B @ blocks(plane.astype(np.float64)) @ B.T


def quantise(coef: np.ndarray, step: float, k: np.ndarray | None) -> np.ndarray:
    """RDOQ: each level among 0, floor and floor + 1 of |c| / step minimising
    squared error + lambda * bits (plain rounding with dead zone 1/3 without k)."""
    a = np.abs(coef) / step
    s = np.sign(coef).astype(np.int64)
    if k is None:
        return s * np.minimum(np.floor(a + 1.0 / 3.0), RES_MAX_LEVEL).astype(np.int64)
    lam = LAMBDA_FACTOR * step * step
    lo = np.minimum(np.floor(a), RES_MAX_LEVEL).astype(np.int64)
    best = None
    for cand in (np.zeros_like(lo), lo, np.minimum(lo + 1, RES_MAX_LEVEL)):
        cost = (np.abs(coef) - cand * step) ** 2 + lam * level_bits(s * cand, k)
        if best is None:
            best, level = cost, cand
        else:
            better = cost < best
            best = np.where(better, cost, best)
            level = np.where(better, cand, level)
    return s * level


#: default res_qp_delta of components 1, 2: YCoCg-R (RGB pictures) weighs the errors of Y, Co, Cg
#: in the RGB squared error as 3 : 1/2 : 3/4, so steps in ratio 1 : sqrt(6) : 2 (ResStep doubles
#: every 5.63 qp); YCbCr: the chroma step equal to the luma step
DEFAULT_QP_DELTAS = {1: (7, 6), 0: (0, 0)}


def encode_residual(source: Picture, base: Picture, res_qp: int, colour_space_idc: int, qp_deltas=None):
    """(payload Struct of residual_layer(), refined picture) for the learned picture ``base``
    of ``source`` (both at the coded size)."""
    if not 0 <= res_qp <= 63:
        raise ValueError(f"ResidualQP {res_qp}: shall be in 0..63")
    deltas = list(qp_deltas if qp_deltas is not None else DEFAULT_QP_DELTAS[colour_space_idc])
    deltas = [0] + [min(63 - res_qp, max(-res_qp, d)) for d in deltas][:len(base.planes) - 1]
    qps = [res_qp + d for d in deltas]
    classes = component_classes(colour_space_idc, len(base.planes))
    pred = prediction_planes(base, colour_space_idc)
    diff = [np.asarray(s, dtype=np.int64) - np.asarray(b, dtype=np.int64)
            for s, b in zip(source.planes, base.planes)]
    if colour_space_idc == 1:
        diff = list(ycocg_r_forward(*diff))
    steps = [RES_STEP[qp] / 16.0 for qp in qps]
    coefs = [forward(d) for d in diff]
    # scale offset of each component: the one with the fewest bits for dead-zone levels
    k0 = scale_indexes(pred, classes, qps, [0] * len(pred))
    offsets = []
    for c, coef in enumerate(coefs):
        lv = quantise(coef, steps[c], None)
        bits = [level_bits(lv, np.clip(k0[c] + o, 0, 63)).sum() for o in OFFSETS]
        offsets.append(list(OFFSETS)[int(np.argmin(bits))])
    ks = scale_indexes(pred, classes, qps, offsets)
    levels = [quantise(coef, st, k) for coef, st, k in zip(coefs, steps, ks)]
    sym = np.concatenate([lv.reshape(-1) for lv in levels])
    idx = np.concatenate([k.reshape(-1) for k in ks])
    subs = encode_substreams(sym, idx, gaussian_tables())
    res = Struct(res_qp=res_qp, res_qp_delta=[None] + deltas[1:], res_scale_offset=offsets,
                 res_substream=entropy_substream(subs))
    return res, apply_residual(base, res, colour_space_idc)


__all__ = ["encode_residual", "forward", "quantise", "level_bits", "RES_BLOCK"]
