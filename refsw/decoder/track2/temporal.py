"""Temporal resampling (docs/spec/track2.md, T2.4).

The encoder codes the pictures of :func:`coded_indices` with the inner codec
and drops the others; the decoder reconstructs a dropped picture from the two
nearest coded pictures by :func:`interpolate` (normative, integer).
"""
from __future__ import annotations

import numpy as np

INTERP_LINEAR = 0   # rounded weighted average of the neighbouring coded pictures
INTERP_REPEAT = 1   # copy of the preceding coded picture


def coded_indices(num_pics: int, ratio: int) -> list[int]:
    """Picture indices n (0-based, output order within the coded sequence)
    that are coded by the inner codec: n % ratio == 0, and the last picture."""
    if num_pics <= 0:
        return []
    idx = [n for n in range(num_pics) if n % ratio == 0]
    if idx[-1] != num_pics - 1:
        idx.append(num_pics - 1)
    return idx


def interpolate(prev: np.ndarray, nxt: np.ndarray, a: int, b: int, n: int, interp_idc: int) -> np.ndarray:
    """Sample plane of dropped picture n from coded pictures a < n < b.

    interp_idc 0: ( ( b - n ) * P[ a ] + ( n - a ) * P[ b ] + ( ( b - a ) >> 1 ) ) / ( b - a ),
    integer division of a non-negative value; interp_idc 1: P[ a ].
    """
    if interp_idc == INTERP_REPEAT:
        return np.asarray(prev, dtype=np.uint16).copy()
    d = b - a
    v = (b - n) * np.asarray(prev, dtype=np.int64) + (n - a) * np.asarray(nxt, dtype=np.int64) + (d >> 1)
    return (v // d).astype(np.uint16)
