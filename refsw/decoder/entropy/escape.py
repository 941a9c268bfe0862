"""Escape (bypass) substream: Exp-Golomb codes of escaped values (spec clause 9.5).

An element whose value v lies outside its table's support
[lo, hi] = [offset, offset + n - 1] is coded as the escape bin in the lane
data, and its value goes here as ``ue(k)`` with the signed mapping

    k = 2 * (v - hi - 1)        if v > hi
    k = 2 * (lo - v - 1) + 1    if v < lo

Codes are concatenated MSB-first in element order, then zero bits up to the
next byte boundary.  ``ue(k)``: ``z`` zero bits, a one bit, then the ``z``
low bits of ``k + 1`` where ``z = floor(log2(k + 1))``; z shall not exceed 32.
"""
from __future__ import annotations

import numpy as np

from syntax.errors import BitstreamError

from .tables import INT32_MAX, INT32_MIN

#: Largest number of leading zero bits allowed in an escape code.
MAX_LEADING_ZEROS = 32

STRUCTURE = "entropy_substream"


def map_escapes(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Signed mapping of escaped values to code numbers k >= 0 (int64)."""
    values = values.astype(np.int64)
    above = values > hi
    return np.where(above, 2 * (values - hi - 1), 2 * (lo - values - 1) + 1)


def unmap_escapes(k: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    k = k.astype(np.int64)
    return np.where((k & 1) == 0, hi + 1 + (k >> 1), lo - 1 - (k >> 1))


def write_ue(codes: np.ndarray) -> bytes:
    """Concatenate ue(k) for each k (vectorised), zero-pad to a byte boundary."""
    k1 = np.asarray(codes, dtype=np.int64) + 1
    if k1.size == 0:
        return b""
    if np.any(k1 < 1) or np.any(k1 >= (1 << (MAX_LEADING_ZEROS + 1))):
        raise ValueError("escape code number out of range")
    # nb = number of significant bits of k + 1 (exact integer bit length)
    nb = np.zeros(k1.shape, dtype=np.int64)
    rem = k1.copy()
    for sh in (32, 16, 8, 4, 2, 1):
        big = rem >= (1 << sh)
        nb += np.where(big, sh, 0)
        rem = np.where(big, rem >> sh, rem)
    nb += 1
    code_len = 2 * nb - 1
    end = np.cumsum(code_len)
    total = int(end[-1])
    first_one = end - nb                       # position of the MSB of k + 1
    rep = np.repeat(np.arange(k1.size), nb)
    within = np.arange(rep.size, dtype=np.int64) - np.repeat(np.cumsum(nb) - nb, nb)
    bitvals = (k1[rep] >> (nb[rep] - 1 - within)) & 1
    bits = np.zeros(((total + 7) // 8) * 8, dtype=np.uint8)
    bits[first_one[rep] + within] = bitvals
    return np.packbits(bits).tobytes()


def read_ue(data: bytes, count: int, *, element: str = "es_escape_data",
            clause: str = "9.5") -> np.ndarray:
    """Parse exactly ``count`` ue(v) codes from ``data``; the rest shall be the
    zero alignment bits of the last byte.  Raises BitstreamError."""
    nbits = 8 * len(data)
    if count == 0:
        if len(data):
            raise BitstreamError(
                "escape data present but no element was escaped",
                structure=STRUCTURE, element=element, bitpos=0, clause=clause,
                shall="es_escape_data_size shall be 0 when no escape bin is decoded",
                where="escape data")
        return np.zeros(0, dtype=np.int64)
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
    ones = np.flatnonzero(bits)
    out = np.empty(count, dtype=np.int64)
    pos = 0
    j = 0
    n_ones = ones.size
    for c in range(count):
        # first one bit at or after pos (pos only grows, so j only advances)
        while j < n_ones and ones[j] < pos:
            j += 1
        if j >= n_ones:
            raise BitstreamError(
                f"escape code {c} of {count} runs past the end of the escape data",
                structure=STRUCTURE, element=element, bitpos=nbits, clause=clause,
                shall="the escape data shall hold one ue(v) per escaped element",
                where="escape data")
        o = int(ones[j])
        z = o - pos
        if z > MAX_LEADING_ZEROS:
            raise BitstreamError(
                f"escape code {c} has {z} leading zero bits",
                structure=STRUCTURE, element=element, bitpos=pos, clause=clause,
                shall=f"leadingZeroBits shall not exceed {MAX_LEADING_ZEROS}",
                where="escape data")
        end = o + z + 1
        if end > nbits:
            raise BitstreamError(
                f"escape code {c} of {count} runs past the end of the escape data",
                structure=STRUCTURE, element=element, bitpos=nbits, clause=clause,
                shall="the escape data shall hold one ue(v) per escaped element",
                where="escape data")
        b0 = o >> 3
        b1 = (end + 7) >> 3
        chunk = int.from_bytes(data[b0:b1], "big")
        val = (chunk >> (8 * b1 - end)) & ((1 << (z + 1)) - 1)   # = k + 1
        out[c] = val - 1
        pos = end
    # trailing: only zero bits up to the byte boundary, no further bytes
    if (pos + 7) // 8 != len(data) or int(ones[-1]) >= pos:
        raise BitstreamError(
            "escape data has bits after the last escape code",
            structure=STRUCTURE, element=element, bitpos=pos, clause=clause,
            shall="the escape data shall end with fewer than 8 zero alignment bits",
            where="escape data")
    return out


def encode_escapes(values, lo, hi) -> bytes:
    return write_ue(map_escapes(np.asarray(values), np.asarray(lo), np.asarray(hi)))


def decode_escapes(data: bytes, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Values of the escaped elements (int64), in element order."""
    k = read_ue(data, int(lo.size))
    v = unmap_escapes(k, lo, hi)
    bad = (v < INT32_MIN) | (v > INT32_MAX)
    if np.any(bad):
        c = int(np.flatnonzero(bad)[0])
        raise BitstreamError(
            f"escaped value {int(v[c])} of escape code {c} is outside the 32-bit range",
            structure=STRUCTURE, element="es_escape_data", clause="9.5",
            shall="escaped values shall lie in -2**31 .. 2**31 - 1", where="escape data")
    return v
