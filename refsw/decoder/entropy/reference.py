"""Literal, element-by-element transcription of docs/spec/entropy.md (clauses 9.4-9.7).

Plain Python integers, no vectorisation: slow, meant for conformance checking
of the vectorised coder (:mod:`refsw.decoder.entropy.rans`) and as a readable model
for independent implementations.  :func:`decode_container` follows the
normative decoding process; :func:`encode_container` the informative encoder
(clause 9.7) and produces the same bytes as :func:`refsw.decoder.entropy.encode`
for the same lane count.
"""
from __future__ import annotations

from syntax.errors import BitstreamError

from .tables import RansTables

STRUCTURE = "entropy_substream"


def _fail(msg, element, clause, bitpos=None, where="lane data"):
    raise BitstreamError(msg, structure=STRUCTURE, element=element, bitpos=bitpos,
                         clause=clause, where=where)


class _Bits:
    """MSB-first bit reader over a byte string (clause 9.2)."""

    def __init__(self, data: bytes, where: str):
        self.data, self.pos, self.where = data, 0, where

    def read_bits(self, n: int, element: str, clause: str) -> int:
        v = 0
        for _ in range(n):
            if self.pos >= 8 * len(self.data):
                _fail("read past the end", element, clause, self.pos, self.where)
            v = (v << 1) | ((self.data[self.pos >> 3] >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return v

    def ue(self, element: str, clause: str) -> int:
        lz = -1
        b = 0
        while not b:
            b = self.read_bits(1, element, clause)
            lz += 1
            if lz > 32:
                _fail("more than 32 leading zero bits", element, clause, self.pos, self.where)
        return (1 << lz) - 1 + self.read_bits(lz, element, clause)


def _table(tables: RansTables, k: int):
    c = tables.cdf[tables.cdf_start[k]:tables.cdf_start[k + 1]]
    return int(tables.offsets[k]), int(tables.num_symbols[k]), [int(v) for v in c]


def decode_substream(num_lanes: int, lane_data: bytes, escape_data: bytes,
                     table_indexes, tables: RansTables) -> list:
    """Clause 9.4 + 9.5: values of the N elements (list of int)."""
    idx = [int(v) for v in table_indexes]
    N = len(idx)
    L = num_lanes
    K = tables.num_tables
    A = min(L, N)
    for i in range(N):
        if not 0 <= idx[i] < K:
            _fail("table index out of range", "table_index", "9.4.1", where="decoder input")
    nLD = len(lane_data)
    if N == 0:
        if nLD or len(escape_data):
            _fail("data present for no elements", "es_lane_data", "9.4.3", 0)
        return []
    if nLD % 2 or nLD < 4 * A:
        _fail("bad lane data size", "es_lane_data", "9.4.3", 8 * nLD)
    lane = _Bits(lane_data, "lane data")
    state = [0] * A
    for j in range(A):                                   # 9.4.3
        state[j] = lane.read_bits(32, "es_lane_data", "9.4.3")
        if state[j] < 65536:
            _fail("initial state below 2**16", "es_lane_data", "9.4.3", 32 * j)
    bins = [0] * N
    for i in range(N):                                   # 9.4.4
        j = i % L
        off, n, cdf = _table(tables, idx[i])
        slot = state[j] & 0xFFFF
        b = 0
        while cdf[b + 1] <= slot:                         # cdf[n + 1] = 2**16 > slot
            b += 1
        freq = cdf[b + 1] - cdf[b]
        state[j] = freq * (state[j] >> 16) + slot - cdf[b]
        if state[j] < 65536:                              # 9.4.5
            state[j] = (state[j] << 16) | lane.read_bits(16, "es_lane_data", "9.4.5")
        bins[i] = b
    if lane.pos != 8 * nLD:                               # 9.4.6
        _fail("lane data words left unread", "es_lane_data", "9.4.6", lane.pos)
    for j in range(A):
        if state[j] != 65536:
            _fail("final lane state is not 2**16", "es_lane_data", "9.4.6", lane.pos)
    esc = _Bits(escape_data, "escape data")             # 9.5
    values = [0] * N
    for i in range(N):
        off, n, _ = _table(tables, idx[i])
        if bins[i] < n:
            values[i] = off + bins[i]
        else:
            k = esc.ue("es_escape_data", "9.5")
            lo, hi = off, off + n - 1
            values[i] = hi + 1 + (k >> 1) if k % 2 == 0 else lo - 1 - (k >> 1)
            if not -(1 << 31) <= values[i] < (1 << 31):
                _fail("escaped value out of range", "es_escape_data", "9.5", esc.pos,
                      "escape data")
    rest = 8 * len(escape_data) - esc.pos
    if rest >= 8 or (rest and esc.read_bits(rest, "es_escape_data", "9.5") != 0):
        _fail("bits after the last escape code", "es_escape_data", "9.5", esc.pos, "escape data")
    return values


def read_container(data: bytes):
    """Clause 9.6: (num_lanes, lane_data, escape_data)."""
    r = _Bits(bytes(data), "entropy_substream")
    L = r.ue("es_num_lanes_minus1", "7.4") + 1
    if L > (1 << 16):
        _fail("too many lanes", "es_num_lanes_minus1", "7.4", 0, "entropy_substream")
    n_lane = r.ue("es_lane_data_size", "7.4")
    n_esc = r.ue("es_escape_data_size", "7.4")
    if max(n_lane, n_esc) > (1 << 31) - 1:
        _fail("size out of range", "es_lane_data_size", "7.4", r.pos, "entropy_substream")
    while r.pos % 8:
        if r.read_bits(1, "es_alignment_zero_bit", "7.4"):
            _fail("non-zero alignment bit", "es_alignment_zero_bit", "7.4", r.pos,
                  "entropy_substream")
    h = r.pos // 8
    if h + n_lane + n_esc != len(data):
        _fail("sizes do not match the substream length", "es_escape_data_size", "7.4",
              r.pos, "entropy_substream")
    return L, bytes(data[h:h + n_lane]), bytes(data[h + n_lane:])


def decode_container(data: bytes, table_indexes, tables: RansTables) -> list:
    L, lane, esc = read_container(data)
    return decode_substream(L, lane, esc, table_indexes, tables)


def _ue_str(k: int) -> str:
    c = bin(k + 1)[2:]
    return "0" * (len(c) - 1) + c


def encode_container(values, table_indexes, tables: RansTables, num_lanes: int) -> bytes:
    """Clause 9.7 (informative encoder), element by element."""
    vals = [int(v) for v in values]
    idx = [int(v) for v in table_indexes]
    N, L = len(vals), num_lanes
    A = min(L, N)
    coded = []
    esc_bits = ""
    for i in range(N):
        off, n, cdf = _table(tables, idx[i])
        b = vals[i] - off
        if not 0 <= b < n:
            lo, hi = off, off + n - 1
            k = 2 * (vals[i] - hi - 1) if vals[i] > hi else 2 * (lo - vals[i] - 1) + 1
            esc_bits += _ue_str(k)
            b = n
        coded.append((cdf[b], cdf[b + 1] - cdf[b]))
    state = [65536] * A
    words = []                                           # in emission order
    for i in range(N - 1, -1, -1):
        j = i % L
        start, freq = coded[i]
        if state[j] >= freq << 16:
            words.append(state[j] & 0xFFFF)
            state[j] >>= 16
        state[j] = ((state[j] // freq) << 16) + state[j] % freq + start
    lane = b"".join(s.to_bytes(4, "big") for s in state)
    lane += b"".join(w.to_bytes(2, "big") for w in reversed(words))
    esc_bits += "0" * (-len(esc_bits) % 8)
    esc = int(esc_bits, 2).to_bytes(len(esc_bits) // 8, "big") if esc_bits else b""
    head = _ue_str(L - 1) + _ue_str(len(lane)) + _ue_str(len(esc))
    head += "0" * (-len(head) % 8)
    return int(head, 2).to_bytes(len(head) // 8, "big") + lane + esc
