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


# --------------------------------------------------------------------------
# MS-SSIM, sequence averages and rates (used by the CTC, refsw.ctc)
# --------------------------------------------------------------------------

MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MSSSIM_WIN = 11


def ms_ssim(ref: Picture, rec: Picture) -> float:
    """MS-SSIM (Wang et al. 2003, 5 scales, 11x11 Gaussian window sigma 1.5)
    through pytorch-msssim, with data range 2^bit_depth - 1.

    RGB pictures: the mean over R, G and B (as CompressAI reports it).
    YCbCr pictures: luma only (as the JVET/VCM CTC report it).
    Pictures whose smaller side is <= 160 samples are too small for the 4
    down-samplings: NaN (MS-SSIM undefined), not an error.
    """
    return ms_ssim_batch([ref], [rec])[0]


def ms_ssim_batch(refs, recs, batch: int = 8) -> list[float]:
    """:func:`ms_ssim` of picture pairs, computed in float32 batches."""
    refs, recs = list(refs), list(recs)
    out = []
    for a, b in zip(refs, recs):
        if a.width != b.width or a.height != b.height:
            raise PictureError(f"MS-SSIM: sizes differ: {a.width}x{a.height} vs {b.width}x{b.height}")
    if not refs:
        return out
    if min(refs[0].width, refs[0].height) <= (MSSSIM_WIN - 1) * 2 ** 4:
        return [math.nan] * len(refs)
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    comps = [0, 1, 2] if refs[0].colour_space == "rgb" else [0]

    def t(pics):
        return torch.from_numpy(np.stack([np.stack([p.planes[c] for c in comps]) for p in pics])
                                .astype(np.float32))

    with torch.no_grad():
        for i in range(0, len(refs), batch):
            v = _ms_ssim(t(refs[i:i + batch]), t(recs[i:i + batch]),
                         data_range=float((1 << recs[i].bit_depth) - 1), size_average=False,
                         win_size=MSSSIM_WIN, weights=list(MSSSIM_WEIGHTS))
            out += [float(x) for x in v]
    return out


def ms_ssim_db(v: float) -> float:
    """MS-SSIM on a dB scale, -10 log10(1 - v) (inf when v == 1)."""
    if math.isnan(v):
        return math.nan
    return math.inf if v >= 1 else -10 * math.log10(1 - v)


def sequence_psnr(refs, recs) -> list[float]:
    """Per-component and combined PSNR averaged over the pictures (the JVET
    convention: mean of the per-picture PSNR values)."""
    vals = [psnr(r, d) for r, d in zip(refs, recs)]
    if not vals:
        raise PictureError("sequence_psnr: no picture")
    return [sum(v[i] for v in vals) / len(vals) for i in range(len(vals[0]))]


def bits_per_pixel(nbits: int, pics) -> float:
    """Bits per luma sample position over all pictures."""
    n = sum(p.width * p.height for p in pics)
    return nbits / n if n else math.nan


def kbps(nbits: int, frames: int, fps: float) -> float:
    """Bit rate in kbit/s (1000 bits) of ``frames`` pictures at ``fps``."""
    return nbits * fps / frames / 1000.0 if frames and fps else math.nan
