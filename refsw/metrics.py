"""Objective quality metrics (non-normative)."""
from __future__ import annotations

import math

import numpy as np

from .picture import Picture, PictureError


def plane_psnr(a: np.ndarray, b: np.ndarray, bit_depth: int) -> float:
    if a.shape != b.shape:
        raise PictureError(f"PSNR: plane shapes differ: {a.shape} vs {b.shape}")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    peak = (1 << bit_depth) - 1
    return math.inf if mse == 0 else 10 * math.log10(peak * peak / mse)


def psnr(ref: Picture, rec: Picture) -> list[float]:
    """Per-component PSNR, then the combined value: 6:1:1 weighted for YCbCr
    4:2:0 (as in the JVET CTC), mean MSE over R, G, B for RGB."""
    if len(ref.planes) != len(rec.planes):
        raise PictureError("PSNR: component counts differ")
    vals = [plane_psnr(a, b, rec.bit_depth) for a, b in zip(ref.planes, rec.planes)]
    if len(vals) == 3:
        if rec.colour_space == "rgb":
            mses = [10 ** (-v / 10) if math.isfinite(v) else 0 for v in vals]
            m = sum(mses) / 3
            vals.append(math.inf if m == 0 else -10 * math.log10(m))
        else:
            vals.append((6 * vals[0] + vals[1] + vals[2]) / 8)
    return vals
