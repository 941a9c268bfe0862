"""Spatial resampling (docs/spec/track2.md, T2.3).

Normative: :func:`upsample_plane` (rm_upsampling_filter_idc 0), integer
arithmetic only.  Non-normative: :func:`downsample_plane` (the encoder's
choice of anti-alias filter).
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from .. import probe

# T2.3: 8-tap luma filter fL, 1/16 sample phases (the H.266 luma
# interpolation filter fL[ p ][ i ]).  Every row sums to 64.
LUMA_FILTER = np.array([
    [0, 0, 0, 64, 0, 0, 0, 0],
    [0, 1, -3, 63, 4, -2, 1, 0],
    [-1, 2, -5, 62, 8, -3, 1, 0],
    [-1, 3, -8, 60, 13, -4, 1, 0],
    [-1, 4, -10, 58, 17, -5, 1, 0],
    [-1, 4, -11, 52, 26, -8, 3, -1],
    [-1, 3, -9, 47, 31, -10, 4, -1],
    [-1, 4, -11, 45, 34, -10, 4, -1],
    [-1, 4, -11, 40, 40, -11, 4, -1],
    [-1, 4, -10, 34, 45, -11, 4, -1],
    [-1, 4, -10, 31, 47, -9, 3, -1],
    [-1, 3, -8, 26, 52, -11, 4, -1],
    [0, 1, -5, 17, 58, -10, 4, -1],
    [0, 1, -4, 13, 60, -8, 3, -1],
    [0, 1, -3, 8, 62, -5, 2, -1],
    [0, 1, -2, 4, 63, -3, 1, 0],
], dtype=np.int64)

# T2.3: 4-tap chroma filter fC, 1/32 sample phases (the H.266 chroma
# interpolation filter fC[ p ][ i ]).  Every row sums to 64.
_CHROMA_HALF = [
    [0, 64, 0, 0], [-1, 63, 2, 0], [-2, 62, 4, 0], [-2, 60, 7, -1],
    [-2, 58, 10, -2], [-3, 57, 12, -2], [-4, 56, 14, -2], [-4, 55, 15, -2],
    [-4, 54, 16, -2], [-5, 53, 18, -2], [-6, 52, 20, -2], [-6, 49, 24, -3],
    [-6, 46, 28, -4], [-5, 44, 29, -4], [-4, 42, 30, -4], [-4, 39, 33, -4],
    [-4, 36, 36, -4],
]
# phases 17..31 mirror phases 15..1: fC[ p ][ i ] = fC[ 32 - p ][ 3 - i ]
CHROMA_FILTER = np.array(_CHROMA_HALF + [row[::-1] for row in _CHROMA_HALF[15:0:-1]], dtype=np.int64)


def ref_positions(src: int, dst: int, phases: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer sample index and phase of each output position (T2.3).

    pos = ( ( 2 * i + 1 ) * src * P - dst * P + dst ) / ( 2 * dst ), floor
    division: the centre of output sample i mapped onto the input grid,
    rounded to the nearest 1/P sample.  Returns (pos >> log2(P), pos & (P-1)).
    """
    i = np.arange(dst, dtype=np.int64)
    pos = ((2 * i + 1) * src * phases - dst * phases + dst) // (2 * dst)
    shift = phases.bit_length() - 1
    return pos >> shift, pos & (phases - 1)


def _filter_axis(a: np.ndarray, dst: int, table: np.ndarray, axis: int) -> np.ndarray:
    """Sum_k table[ phase ][ k ] * a[ Clip3( 0, src - 1, int + k - taps/2 + 1 ) ] along axis."""
    src = a.shape[axis]
    ntaps = table.shape[1]
    idx, ph = ref_positions(src, dst, table.shape[0])
    if probe.COUNTER is not None:
        name = "T2.3 luma phase" if table.shape[0] == 16 else "T2.3 chroma phase"
        probe.COUNTER.update((name, int(p)) for p in np.unique(ph))
    out = None
    for k in range(ntaps):
        pos = np.clip(idx + k - ntaps // 2 + 1, 0, src - 1)
        coef = table[ph, k]
        taken = np.take(a, pos, axis=axis)
        term = taken * (coef[None, :] if axis == 1 else coef[:, None])
        out = term if out is None else out + term
    return out


def upsample_plane(plane: np.ndarray, width: int, height: int, bit_depth: int, chroma: bool) -> np.ndarray:
    """Normative resampling of one sample plane to width x height (T2.3).

    Horizontal then vertical filtering, int64 without intermediate rounding;
    the result is ( v + 2048 ) >> 12 clipped to 0 .. ( 1 << bit_depth ) - 1.
    """
    table = CHROMA_FILTER if chroma else LUMA_FILTER
    a = np.asarray(plane, dtype=np.int64)
    h = _filter_axis(a, width, table, axis=1)
    v = _filter_axis(h, height, table, axis=0)
    out = (v + 2048) >> 12
    return np.clip(out, 0, (1 << bit_depth) - 1).astype(np.uint16)


def downsample_plane(plane: np.ndarray, width: int, height: int, bit_depth: int) -> np.ndarray:
    """Encoder-side (non-normative) resampling: Lanczos, centre-aligned as
    the normative upsampler, rounded to integers."""
    img = Image.fromarray(np.asarray(plane, dtype=np.float32), mode="F")
    out = np.asarray(img.resize((width, height), Image.LANCZOS), dtype=np.float64)
    return np.clip(np.floor(out + 0.5), 0, (1 << bit_depth) - 1).astype(np.uint16)


def chroma_size(width: int, height: int) -> tuple[int, int]:
    """4:2:0 chroma plane size of a width x height picture."""
    return (width + 1) // 2, (height + 1) // 2
