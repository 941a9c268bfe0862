"""Post filter, sps_post_filter_id 0 (docs/spec/track2.md, T2.6).

A point-symmetric 5x5 diamond filter whose six coefficients per component
group (luma; both chroma components) are estimated by the encoder (least
squares, non-normative: :func:`estimate`) and signalled in the sequence-level
restoration metadata; the filter itself (:func:`apply`) is normative and
integer.
"""
from __future__ import annotations

import numpy as np

PF_SHIFT = 7                 # coefficients in units of 1 / 128
PF_COEFF_MIN, PF_COEFF_MAX = -64, 63
# (dy, dx) of the taps of rm_pf_coeff[ c ][ k ]; the mirrored tap (-dy, -dx)
# has the same coefficient.
PF_TAPS = ((0, 1), (1, 0), (0, 2), (2, 0), (1, 1), (1, -1))


def _shifted(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """p[ Clip3( 0, h - 1, y + dy ) ][ Clip3( 0, w - 1, x + dx ) ]."""
    h, w = a.shape
    ys = np.clip(np.arange(h) + dy, 0, h - 1)
    xs = np.clip(np.arange(w) + dx, 0, w - 1)
    return a[ys][:, xs]


def centre_coeff(coeffs) -> int:
    """The centre tap: ( 1 << PF_SHIFT ) - 2 * Sum( coeffs )."""
    return (1 << PF_SHIFT) - 2 * int(sum(coeffs))


def apply(plane: np.ndarray, coeffs, bit_depth: int) -> np.ndarray:
    """Normative filter:
    Clip3( 0, ( 1 << BitDepth ) - 1, ( c6 * p[y][x] + Sum_k c[k] * ( p[y+dy][x+dx] + p[y-dy][x-dx] ) + 64 ) >> 7 )."""
    a = np.asarray(plane, dtype=np.int64)
    acc = centre_coeff(coeffs) * a
    for c, (dy, dx) in zip(coeffs, PF_TAPS):
        if c:
            acc = acc + int(c) * (_shifted(a, dy, dx) + _shifted(a, -dy, -dx))
    out = (acc + (1 << (PF_SHIFT - 1))) >> PF_SHIFT
    return np.clip(out, 0, (1 << bit_depth) - 1).astype(np.uint16)


def estimate(pairs, bit_depth: int, masks=None) -> list[int] | None:
    """Encoder: least-squares coefficients over (reconstructed, original)
    plane pairs (restricted to ``masks`` when given), quantised to the
    signalled range.  None if filtering does not lower the squared error."""
    if masks is None:
        masks = [None] * len(pairs)
    pairs = [(r, o, np.ones(np.shape(r), bool) if m is None else m) for (r, o), m in zip(pairs, masks)]
    pairs = [(r, o, m) for r, o, m in pairs if m.any()]
    if not pairs:
        return None
    feats, targets = [], []
    for rec, org, m in pairs:
        a = np.asarray(rec, dtype=np.float64)
        f = [(_shifted(a, dy, dx) + _shifted(a, -dy, -dx) - 2 * a)[m] for dy, dx in PF_TAPS]
        feats.append(np.stack(f, axis=1))
        targets.append((np.asarray(org, dtype=np.float64) - a)[m])
    F = np.concatenate(feats)
    t = np.concatenate(targets)
    sol, *_ = np.linalg.lstsq(F, t, rcond=None)
    coeffs = [int(np.clip(np.round(v * (1 << PF_SHIFT)), PF_COEFF_MIN, PF_COEFF_MAX)) for v in sol]
    if not any(coeffs):
        return None
    before = sum(float(np.sum(((np.asarray(r, np.float64) - np.asarray(o, np.float64)) ** 2)[m]))
                 for r, o, m in pairs)
    after = sum(float(np.sum(((apply(r, coeffs, bit_depth).astype(np.float64) - np.asarray(o, np.float64)) ** 2)[m]))
                for r, o, m in pairs)
    return coeffs if after < before else None
