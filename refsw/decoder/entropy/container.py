"""Stand-alone serialisation of one entropy substream (spec clause 9.6, syntax 7.4).

Byte layout (identical to the syntax structure ``entropy_substream()``)::

    es_num_lanes_minus1    ue(v)
    es_lane_data_size      ue(v)    bytes
    es_escape_data_size    ue(v)    bytes
    es_alignment_zero_bit ...       zero bits up to the next byte boundary
    lane data              es_lane_data_size bytes
    escape data            es_escape_data_size bytes

Bits are written MSB-first.  The container shall end exactly after the escape
data.  Embedded in a unit (syntax 7.4), the alignment is relative to the start
of the unit, so the bytes are identical when the substream starts byte-aligned.
"""
from __future__ import annotations

from syntax.errors import BitstreamError

from .rans import MAX_DATA_SIZE, MAX_LANES, RansSubstreams

STRUCTURE = "entropy_substream"
#: Largest number of leading zero bits of a header ue(v).
MAX_UE_LEADING_ZEROS = 32


def _ue_bits(value: int) -> str:
    if value < 0 or value >= (1 << (MAX_UE_LEADING_ZEROS + 1)) - 1:
        raise ValueError(f"ue(v) value {value} out of range")
    code = bin(value + 1)[2:]
    return "0" * (len(code) - 1) + code


def write(subs: RansSubstreams) -> bytes:
    """RansSubstreams -> bytes."""
    L = int(subs.num_lanes)
    if L < 1 or L > MAX_LANES:
        raise ValueError(f"num_lanes shall be in 1..{MAX_LANES}")
    if max(len(subs.lane_data), len(subs.escape_data)) > MAX_DATA_SIZE:
        raise ValueError("substream data too large")
    bits = (_ue_bits(L - 1) + _ue_bits(len(subs.lane_data))
            + _ue_bits(len(subs.escape_data)))
    bits += "0" * (-len(bits) % 8)
    head = int(bits, 2).to_bytes(len(bits) // 8, "big")
    return head + bytes(subs.lane_data) + bytes(subs.escape_data)


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.nbits = 8 * len(data)
        self.pos = 0

    def bit(self, element: str) -> int:
        if self.pos >= self.nbits:
            raise BitstreamError("entropy substream header truncated", structure=STRUCTURE,
                                 element=element, bitpos=self.pos, clause="7.4",
                                 shall="the header shall be complete", where="entropy_substream")
        b = (self.data[self.pos >> 3] >> (7 - (self.pos & 7))) & 1
        self.pos += 1
        return b

    def ue(self, element: str) -> int:
        start = self.pos
        z = 0
        while self.bit(element) == 0:
            z += 1
            if z > MAX_UE_LEADING_ZEROS:
                raise BitstreamError(f"{element}: more than {MAX_UE_LEADING_ZEROS} leading "
                                     "zero bits", structure=STRUCTURE, element=element,
                                     bitpos=start, clause="4.3",
                                     shall=f"A ue(v) or se(v) code word shall not have more than "
                                           f"{MAX_UE_LEADING_ZEROS} leading zero bits",
                                     where="entropy_substream")
        v = 1
        for _ in range(z):
            v = (v << 1) | self.bit(element)
        return v - 1


def read(data: bytes) -> RansSubstreams:
    """bytes -> RansSubstreams; raises BitstreamError on any malformation."""
    data = bytes(data)
    r = _Reader(data)
    pos = r.pos
    lanes_m1 = r.ue("es_num_lanes_minus1")
    if lanes_m1 > MAX_LANES - 1:
        raise BitstreamError(f"es_num_lanes_minus1 = {lanes_m1}", structure=STRUCTURE,
                             element="es_num_lanes_minus1", bitpos=pos, clause="7.4",
                             shall=f"es_num_lanes_minus1 shall be in the range 0 to "
                                   f"{MAX_LANES - 1}", where="entropy_substream")
    pos = r.pos
    lane_size = r.ue("es_lane_data_size")
    pos_e = r.pos
    esc_size = r.ue("es_escape_data_size")
    while r.pos & 7:
        p = r.pos
        if r.bit("es_alignment_zero_bit") != 0:
            raise BitstreamError("non-zero byte alignment bit", structure=STRUCTURE,
                                 element="es_alignment_zero_bit", bitpos=p, clause="7.4",
                                 shall="alignment bits shall be 0", where="entropy_substream")
    for name, size, p in (("es_lane_data_size", lane_size, pos),
                          ("es_escape_data_size", esc_size, pos_e)):
        if size > MAX_DATA_SIZE:
            raise BitstreamError(f"{name} = {size}", structure=STRUCTURE, element=name,
                                 bitpos=p, clause="7.4",
                                 shall=f"{name} shall be in the range 0 to {MAX_DATA_SIZE}",
                                 where="entropy_substream")
    head = r.pos >> 3
    remaining = len(data) - head
    if lane_size > remaining:
        raise BitstreamError(f"es_lane_data_size {lane_size} exceeds the {remaining} bytes "
                             "left", structure=STRUCTURE, element="es_lane_data_size",
                             bitpos=pos, clause="7.4",
                             shall="the lane data shall lie within the substream",
                             where="entropy_substream")
    if lane_size + esc_size != remaining:
        raise BitstreamError(f"es_lane_data_size + es_escape_data_size = "
                             f"{lane_size + esc_size}, but {remaining} bytes follow the header",
                             structure=STRUCTURE, element="es_escape_data_size", bitpos=pos_e,
                             clause="7.4",
                             shall="the substream shall end right after the escape data",
                             where="entropy_substream")
    return RansSubstreams(lanes_m1 + 1, data[head:head + lane_size],
                          data[head + lane_size:])
