"""Clause 10.7: normative integer colour conversion of learned pictures.

The learned synthesis outputs R, G, B samples. When the SPS signals YCbCr
(sps_colour_space_idc equal to 0), the decoded picture is converted with
BT.709 limited-range coefficients in 14-bit fixed point, and for 4:2:0 the
chroma is the rounded mean of each 2x2 block (edge samples repeated):

    Y  = Clip3( 0, 255, ( 2991 R + 10064 G + 1016 B + ( 16 << 14 ) + 8192 ) >> 14 )
    Cb' = −1649 R − 5547 G + 7196 B          Cr' = 7196 R − 6536 G − 660 B
    4:4:4: Cb = Clip3( 0, 255, ( Cb' + ( 128 << 14 ) + 8192 ) >> 14 )
    4:2:0: Cb = Clip3( 0, 255, ( Σ2x2 Cb' + ( 128 << 16 ) + 32768 ) >> 16 )   (likewise Cr)

The encoder's inverse conversion (YCbCr input to RGB) is not normative.
"""
from __future__ import annotations

import numpy as np

from .picture import Picture

KY = (2991, 10064, 1016)
KCB = (-1649, -5547, 7196)
KCR = (7196, -6536, -660)


def _sum2x2(a: np.ndarray) -> np.ndarray:
    h, w = a.shape
    a = np.pad(a, ((0, h % 2), (0, w % 2)), mode="edge")
    return a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]


def rgb_to_ycbcr(pic: Picture, chroma_format: str) -> Picture:
    """Normative: 8-bit RGB 4:4:4 -> 8-bit YCbCr 4:4:4 or 4:2:0 (clause 10.7)."""
    r, g, b = (np.asarray(p, dtype=np.int64) for p in pic.planes)
    y = np.clip((KY[0] * r + KY[1] * g + KY[2] * b + (16 << 14) + 8192) >> 14, 0, 255)
    cb = KCB[0] * r + KCB[1] * g + KCB[2] * b
    cr = KCR[0] * r + KCR[1] * g + KCR[2] * b
    if chroma_format == "444":
        cb = np.clip((cb + (128 << 14) + 8192) >> 14, 0, 255)
        cr = np.clip((cr + (128 << 14) + 8192) >> 14, 0, 255)
    elif chroma_format == "420":
        cb = np.clip((_sum2x2(cb) + (128 << 16) + 32768) >> 16, 0, 255)
        cr = np.clip((_sum2x2(cr) + (128 << 16) + 32768) >> 16, 0, 255)
    else:
        raise ValueError(f"chroma format {chroma_format} not supported by the learned colour conversion")
    return Picture([y.astype(np.uint16), cb.astype(np.uint16), cr.astype(np.uint16)], chroma_format, 8, "ycbcr")


def ycbcr_to_rgb(pic: Picture) -> Picture:
    """Encoder side (non-normative): 8-bit YCbCr 4:2:0/4:4:4 BT.709 limited -> RGB."""
    y = pic.planes[0].astype(np.float64)
    h, w = y.shape
    cb, cr = (np.repeat(np.repeat(p.astype(np.float64), 2 if pic.chroma_format == "420" else 1, 0),
                        2 if pic.chroma_format == "420" else 1, 1)[:h, :w] for p in pic.planes[1:])
    Kr, Kb = 0.2126, 0.0722
    Kg = 1 - Kr - Kb
    yy = (y - 16) * 255 / 219
    u = (cb - 128) * 255 / 224
    v = (cr - 128) * 255 / 224
    r = yy + 2 * (1 - Kr) * v
    b = yy + 2 * (1 - Kb) * u
    g = (yy - Kr * r - Kb * b) / Kg
    planes = [np.clip(np.round(c), 0, 255).astype(np.uint16) for c in (r, g, b)]
    return Picture(planes, "444", 8, "rgb")
