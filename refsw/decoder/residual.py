"""Clause 11: residual enhancement layer of a learned picture.

A RESIDUAL unit (7.10) refines the decoded learned picture with a coded
residual: 8x8 blocks of quantised transform coefficients of each component
(of the YCoCg-R residual for an RGB picture), entropy-coded with the
Gaussian-conditional tables (9.3.2).  The scale index of each coefficient
comes from its component, its frequency and the activity of the decoded
learned picture in its block, so every table index is known before the
substream is decoded.  All arithmetic is on integers.
"""
from __future__ import annotations

import numpy as np

from syntax.errors import BitstreamError

from ..picture import Picture
from . import probe
from .entropy import RansSubstreams, decode_substreams, gaussian_tables
from .residual_tables import RES_SCALE_TABLE

#: Table 11-1: the 8-point transform matrix (HEVC's), ResTransMatrix[ k ][ n ]
RES_TRANS_MATRIX = np.array([
    [64, 64, 64, 64, 64, 64, 64, 64],
    [89, 75, 50, 18, -18, -50, -75, -89],
    [83, 36, -36, -83, -83, -36, 36, 83],
    [75, -18, -89, -50, 50, 89, 18, -75],
    [64, -64, -64, 64, 64, -64, -64, 64],
    [50, -89, 18, 75, -75, -18, 89, -50],
    [36, -83, 83, -36, -36, 83, -83, 36],
    [18, -50, 75, -89, 89, -75, 50, -18],
], dtype=np.int64)

RES_BLOCK = 8            # block width and height
RES_NUM_ACT = 16         # activity classes
RES_NUM_FREQ = 15        # frequency classes u + v = 0 .. 14
RES_SHIFT = 19           # 11.4: 2 * log2(64 * sqrt(8)) + log2(16)
RES_MAX_LEVEL = 32767    # 7.10: |coefficient level| bound


def _step_table() -> np.ndarray:
    # ResStep[ qp ] = Round( 8 * (256 / 0.11)^(qp / 63) ): step in 1/16 sample,
    # the ratio between qp steps equal to that of the Gaussian scale indices (9.3.2)
    r = np.exp(np.log(256.0 / 0.11) / 63.0)
    return np.array([int(np.floor(8.0 * r ** qp + 0.5)) for qp in range(64)], dtype=np.int64)


#: Table 11-2: ResStep[ res_qp ], quantiser step in units of 1/16 of a transform coefficient
RES_STEP = _step_table()
RES_STEP_ROWS = RES_STEP.reshape(8, 8)     # Table 11-2 as printed: ResStep[ 8 * p + k ]


def component_classes(colour_space_idc: int, num_comp: int) -> list[int]:
    """The row of ResScaleTable of each component (11.3): Y, Co, Cg of an RGB picture
    0, 1, 2; Y of a YCbCr picture 0, its Cb and Cr 1."""
    return [0, 1, 2][:num_comp] if colour_space_idc == 1 else [0, 1, 1][:num_comp]


def ycocg_r_forward(r, g, b):
    """YCoCg-R of integer planes (11.2; used on the learned picture and by the encoder)."""
    co = r - b
    t = b + (co >> 1)
    cg = g - t
    y = t + (cg >> 1)
    return y, co, cg


def ycocg_r_inverse(y, co, cg):
    """Inverse YCoCg-R (11.5)."""
    t = y - (cg >> 1)
    g = cg + t
    b = t - (co >> 1)
    r = b + co
    return r, g, b


def blocks(p: np.ndarray) -> np.ndarray:
    """(H, W) -> (H/8, W/8, 8, 8)."""
    H, W = p.shape
    return p.reshape(H // RES_BLOCK, RES_BLOCK, W // RES_BLOCK, RES_BLOCK).transpose(0, 2, 1, 3)


def unblocks(b: np.ndarray) -> np.ndarray:
    nby, nbx = b.shape[:2]
    return b.transpose(0, 2, 1, 3).reshape(nby * RES_BLOCK, nbx * RES_BLOCK)


def floor_log2(v: np.ndarray) -> np.ndarray:
    """FloorLog2 of positive integers, exactly (no floating point)."""
    v = np.asarray(v, dtype=np.int64)
    out = np.zeros(v.shape, dtype=np.int64)
    for s in (32, 16, 8, 4, 2, 1):
        m = v >= (1 << s)
        out[m] += s
        v = np.where(m, v >> s, v)
    return out


def activity_class(plane: np.ndarray) -> np.ndarray:
    """ActClass of each 8x8 block of a component of the prediction (11.3):
    Min(15, FloorLog2(1 + sum of absolute horizontal and vertical differences
    inside the block))."""
    b = blocks(np.asarray(plane, dtype=np.int64))
    act = np.abs(np.diff(b, axis=3)).sum(axis=(2, 3)) + np.abs(np.diff(b, axis=2)).sum(axis=(2, 3))
    return np.minimum(RES_NUM_ACT - 1, floor_log2(1 + act))


FREQ_CLASS = np.add.outer(np.arange(RES_BLOCK), np.arange(RES_BLOCK))   # u + v


def prediction_planes(pic: Picture, colour_space_idc: int) -> list[np.ndarray]:
    """The components of the learned picture in the residual domain (11.2)."""
    planes = [np.asarray(p, dtype=np.int64) for p in pic.planes]
    if colour_space_idc == 1:
        return list(ycocg_r_forward(*planes))
    return planes


def component_qps(res, num_comp: int) -> list[int]:
    """QpC of each component (7.10): res_qp, plus res_qp_delta[ c ] for c > 0."""
    return [int(res.res_qp)] + [int(res.res_qp) + int(res.res_qp_delta[c]) for c in range(1, num_comp)]


def scale_indexes(pred: list[np.ndarray], classes: list[int], qps, offsets) -> list[np.ndarray]:
    """Scale index of every coefficient (11.3), per component (H/8, W/8, 8, 8)."""
    out = []
    for c, p in enumerate(pred):
        a = activity_class(p)
        base = RES_SCALE_TABLE[classes[c]][a[..., None, None], FREQ_CLASS[None, None]]
        out.append(np.clip(base + int(offsets[c]) - int(qps[c]), 0, 63))
    return out


def inverse_transform(levels: np.ndarray, res_qp: int) -> np.ndarray:
    """Scaling and inverse transform (11.4): levels (..., 8, 8) [v][u] -> residual samples."""
    d = (levels.astype(np.int64) * RES_STEP[res_qp]).astype(np.float64)
    T = RES_TRANS_MATRIX.astype(np.float64)
    # T^T d T: every partial sum is an integer below 2^49 (|level| <= 32767,
    # ResStep <= 18618), so the float64 products and sums are exact
    e = (T.T @ d @ T).astype(np.int64)
    return (e + (1 << (RES_SHIFT - 1))) >> RES_SHIFT


def residual_error(msg, *, element, where, shall=None, clause="11.3"):
    return BitstreamError(msg, structure="residual_layer", element=element, clause=clause, where=where,
                          shall=shall)


def decode_levels(res, pred, classes, where) -> list[np.ndarray]:
    """Entropy decoding of the coefficient levels of every component (11.3)."""
    ks = scale_indexes(pred, classes, component_qps(res, len(pred)), res.res_scale_offset)
    flat = np.concatenate([k.reshape(-1) for k in ks])
    sym = decode_substreams(RansSubstreams.from_syntax(res.res_substream), flat, gaussian_tables()).astype(np.int64)
    if sym.size and int(np.abs(sym).max()) > RES_MAX_LEVEL:
        raise residual_error(f"coefficient level {int(np.abs(sym).max())} beyond +-{RES_MAX_LEVEL}",
                             element="res_substream", where=where,
                             shall=f"The absolute value of each coefficient level shall not exceed {RES_MAX_LEVEL}")
    out, i = [], 0
    for k in ks:
        out.append(sym[i:i + k.size].reshape(k.shape))
        i += k.size
    return out


def apply_residual(pic: Picture, res, colour_space_idc: int, where: str = "") -> Picture:
    """Clause 11: the learned picture refined by the RESIDUAL unit payload ``res``."""
    for c, p in enumerate(pic.planes):
        if p.shape[0] % RES_BLOCK or p.shape[1] % RES_BLOCK:
            raise residual_error(f"component {c} is {p.shape[1]}x{p.shape[0]}, not a multiple of {RES_BLOCK}",
                                 element="unit_type", where=where)
    if probe.COUNTER is not None:
        probe.COUNTER[("residual colour domain (11.2)",
                       "YCoCg-R (RGB)" if colour_space_idc == 1 else "YCbCr components")] += 1
    classes = component_classes(colour_space_idc, len(pic.planes))
    pred = prediction_planes(pic, colour_space_idc)
    levels = decode_levels(res, pred, classes, where)
    lim = 1 << (pic.bit_depth + 1)
    qps = component_qps(res, len(levels))
    r = [np.clip(unblocks(inverse_transform(lv, qp)), -lim, lim - 1) for lv, qp in zip(levels, qps)]
    if colour_space_idc == 1:
        r = list(ycocg_r_inverse(*r))
    hi = (1 << pic.bit_depth) - 1
    planes = [np.clip(np.asarray(p, dtype=np.int64) + rc, 0, hi).astype(np.uint16) for p, rc in zip(pic.planes, r)]
    return Picture(planes, pic.chroma_format, pic.bit_depth, pic.colour_space)
