"""Bit-depth truncation (docs/spec/track2.md, T2.5).

Encoder (non-normative): :func:`truncate` drops the ``shift`` least
significant bits.  Decoder (normative): :func:`to_coded_depth` maps the inner
decoder output to the coded bit depth, :func:`restore` maps it back to
BitDepth with a mid-interval offset.
"""
from __future__ import annotations

import numpy as np


def truncate(plane: np.ndarray, shift: int) -> np.ndarray:
    """x >> shift."""
    return (np.asarray(plane, dtype=np.uint16) >> shift).astype(np.uint16)


def to_inner_depth(plane: np.ndarray, coded_depth: int, inner_depth: int) -> np.ndarray:
    """Encoder: represent coded-depth samples in the inner codec's bit depth (x << d)."""
    return (np.asarray(plane, dtype=np.uint16) << (inner_depth - coded_depth)).astype(np.uint16)


def to_coded_depth(plane: np.ndarray, inner_depth: int, coded_depth: int) -> np.ndarray:
    """Normative: d = inner_depth - coded_depth >= 0;
    d > 0: Min( ( x + ( 1 << ( d - 1 ) ) ) >> d, ( 1 << coded_depth ) - 1 ); d == 0: x."""
    d = inner_depth - coded_depth
    a = np.asarray(plane, dtype=np.int64)
    if d == 0:
        return a.astype(np.uint16)
    return np.minimum((a + (1 << (d - 1))) >> d, (1 << coded_depth) - 1).astype(np.uint16)


def restore(plane: np.ndarray, shift: int) -> np.ndarray:
    """Normative: ( x << shift ) + ( 1 << ( shift - 1 ) ) for shift > 0."""
    a = np.asarray(plane, dtype=np.int64)
    if shift == 0:
        return a.astype(np.uint16)
    return ((a << shift) + (1 << (shift - 1))).astype(np.uint16)
