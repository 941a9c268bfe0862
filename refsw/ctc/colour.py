"""RGB <-> Y'CbCr conversion for the CTC (non-normative).

RGB pictures (the PNG test images) reach the HEVC and VVC anchors, and the
YUV-domain metrics, through one fixed conversion so that every codec is
measured against the same YUV reference:

* matrix BT.709 (Kr = 0.2126, Kb = 0.0722), **full range** (Y and CbCr use
  0..2^B-1, chroma offset 2^(B-1)), the conversion CompressAI uses for its
  HM/VTM anchors;
* computed in float64, rounded half up, clipped;
* 4:2:0: the full-resolution Cb/Cr (float, before rounding) are averaged
  over 2x2 blocks (centre-sited chroma; an odd last row/column is
  replicated);
* back to RGB (to measure RGB PSNR of a 4:2:0 anchor): chroma upsampled
  with the centre-sited bilinear filter (taps 1/4, 3/4; edges replicated),
  then the inverse matrix, rounded and clipped.
"""
from __future__ import annotations

import numpy as np

from ..picture import Picture, PictureError

KR, KB = 0.2126, 0.0722
KG = 1.0 - KR - KB


def _round_clip(a, bit_depth):
    return np.clip(np.floor(a + 0.5), 0, (1 << bit_depth) - 1).astype(np.uint16)


def _down2(a: np.ndarray) -> np.ndarray:
    h, w = a.shape
    if h % 2 or w % 2:
        a = np.pad(a, ((0, h % 2), (0, w % 2)), mode="edge")
    return 0.25 * (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2])


def _up2_axis(a: np.ndarray, axis: int, n: int) -> np.ndarray:
    """Centre-sited x2 bilinear upsampling along ``axis`` to length n."""
    a = np.moveaxis(a, axis, 0)
    p = np.concatenate([a[:1], a, a[-1:]], axis=0)
    even = 0.25 * p[:-2] + 0.75 * p[1:-1]   # sample 2i   (between i-1 and i, closer to i)
    odd = 0.75 * p[1:-1] + 0.25 * p[2:]     # sample 2i+1
    out = np.empty((2 * a.shape[0],) + a.shape[1:], dtype=np.float64)
    out[0::2] = even
    out[1::2] = odd
    return np.moveaxis(out[:n], 0, axis)


def rgb_to_ycbcr(pic: Picture, chroma_format: str = "420") -> Picture:
    """RGB (4:4:4) -> Y'CbCr BT.709 full range, same bit depth."""
    if pic.colour_space != "rgb":
        raise PictureError("rgb_to_ycbcr needs an RGB picture")
    if chroma_format not in ("420", "444"):
        raise PictureError(f"rgb_to_ycbcr: chroma format {chroma_format!r} not supported (420, 444)")
    bd = pic.bit_depth
    r, g, b = (p.astype(np.float64) for p in pic.planes)
    off = float(1 << (bd - 1))
    y = KR * r + KG * g + KB * b
    cb = (b - y) / (2 * (1 - KB)) + off
    cr = (r - y) / (2 * (1 - KR)) + off
    if chroma_format == "420":
        cb, cr = _down2(cb), _down2(cr)
    return Picture([_round_clip(y, bd), _round_clip(cb, bd), _round_clip(cr, bd)], chroma_format, bd, "ycbcr")


def ycbcr_to_rgb(pic: Picture) -> Picture:
    """Y'CbCr BT.709 full range (4:2:0 or 4:4:4) -> RGB 4:4:4."""
    if pic.colour_space != "ycbcr" or pic.chroma_format not in ("420", "444"):
        raise PictureError("ycbcr_to_rgb needs a YCbCr 4:2:0 or 4:4:4 picture")
    bd = pic.bit_depth
    y = pic.planes[0].astype(np.float64)
    cb = pic.planes[1].astype(np.float64)
    cr = pic.planes[2].astype(np.float64)
    if pic.chroma_format == "420":
        h, w = y.shape
        cb = _up2_axis(_up2_axis(cb, 0, h), 1, w)
        cr = _up2_axis(_up2_axis(cr, 0, h), 1, w)
    off = float(1 << (bd - 1))
    r = y + 2 * (1 - KR) * (cr - off)
    b = y + 2 * (1 - KB) * (cb - off)
    g = (y - KR * r - KB * b) / KG
    return Picture([_round_clip(r, bd), _round_clip(g, bd), _round_clip(b, bd)], "444", bd, "rgb")


def change_bit_depth(pic: Picture, bit_depth: int) -> Picture:
    """Left shift to a higher bit depth; rounding right shift (clipped) to a lower one."""
    if bit_depth == pic.bit_depth:
        return pic
    if bit_depth > pic.bit_depth:
        s = bit_depth - pic.bit_depth
        planes = [(p.astype(np.uint32) << s).astype(np.uint16) for p in pic.planes]
    else:
        s = pic.bit_depth - bit_depth
        planes = [np.minimum((p.astype(np.uint32) + (1 << (s - 1))) >> s, (1 << bit_depth) - 1)
                  .astype(np.uint16) for p in pic.planes]
    return Picture(planes, pic.chroma_format, bit_depth, pic.colour_space)


def yuv444_to_420(pic: Picture) -> Picture:
    """4:4:4 Y'CbCr -> 4:2:0 by the 2x2 chroma mean of :func:`rgb_to_ycbcr`
    (a 4:2:0 picture is returned as it is)."""
    if pic.chroma_format == "420":
        return pic
    if pic.colour_space != "ycbcr" or pic.chroma_format != "444":
        raise PictureError("yuv444_to_420 needs a YCbCr 4:4:4 picture")
    cb, cr = (_round_clip(_down2(p.astype(np.float64)), pic.bit_depth) for p in pic.planes[1:])
    return Picture([pic.planes[0], cb, cr], "420", pic.bit_depth, "ycbcr")
