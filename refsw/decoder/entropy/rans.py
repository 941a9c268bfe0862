"""Multi-lane rANS coder: L interleaved lanes, decoded in lockstep (spec clause 9.4).

Arithmetic (all integer):

* state x of each lane: 32 bits, kept in [2**16, 2**32) between symbols;
* renormalisation: one 16-bit word at a time (at most one per symbol);
* CDF precision P = 16.

Element i (raster order of the symbol array) is coded by lane ``i mod L`` at
step ``i div L``.  Decoding steps advance all lanes at once: within a step the
lanes that need a word read consecutive words in increasing lane order, which
is exactly the order of a sequential decoder visiting elements 0, 1, 2, ...

Lane data layout (bytes): the initial state of each active lane
(A = min(L, N) lanes) as a big-endian 32-bit word, then the renormalisation
words as big-endian 16-bit words in reading order.

Two backends give identical bytes and symbols: ``"numpy"`` (vectorised over
lanes, loops over steps) and ``"torch"`` (the same operations on tensors, on
any device).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from syntax.errors import BitstreamError

from . import escape as _esc
from .tables import INT32_MAX, INT32_MIN, PRECISION, TOTAL, RansTables

#: Lower bound of the normalised state interval (also the initial/final state).
RANS_L = 1 << 16
#: Renormalisation word size in bits.
WORD_BITS = 16
#: Largest number of lanes (es_num_lanes_minus1 <= MAX_LANES - 1; syntax 7.4).
MAX_LANES = 1 << 16
#: Largest es_lane_data_size / es_escape_data_size (syntax 7.4).
MAX_DATA_SIZE = (1 << 31) - 1

STRUCTURE = "entropy_substream"

#: Default-lane-count heuristic (an encoder choice, signalled; not normative).
#: About LANE_OVERHEAD_BITS are lost per lane (flushed 32-bit state minus the
#: information it carries), so L is chosen near TARGET_LANE_OVERHEAD of the
#: estimated payload, but at least ceil(N / MAX_STEPS) (bounds the number of
#: lockstep steps, i.e. the decoding time), at most MAX_DEFAULT_LANES unless
#: that bound needs more, and at most N.
LANE_OVERHEAD_BITS = 24
TARGET_LANE_OVERHEAD = 0.007
MAX_DEFAULT_LANES = 4096
MAX_STEPS = 4096


@dataclass(frozen=True)
class RansSubstreams:
    """What the syntax layer carries for one entropy substream (clause 9.6)."""
    num_lanes: int
    lane_data: bytes
    escape_data: bytes

    @classmethod
    def from_syntax(cls, es) -> "RansSubstreams":
        """The substreams of a parsed entropy_substream() structure (7.4)."""
        return cls(es.es_num_lanes_minus1 + 1, bytes(es.es_lane_data), bytes(es.es_escape_data))


def _err(message, *, element, bitpos=None, clause, shall=None, where="lane data"):
    return BitstreamError(message, structure=STRUCTURE, element=element, bitpos=bitpos,
                          clause=clause, shall=shall, where=where)


# --------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------

def _is_torch(a) -> bool:
    return type(a).__module__.startswith("torch")


def _to_numpy_int(a, name) -> np.ndarray:
    if _is_torch(a):
        a = a.detach().cpu().numpy()
    arr = np.asarray(a)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} shall be an integer array, got {arr.dtype}")
    return arr


def _check_lanes(num_lanes) -> int:
    L = int(num_lanes)
    if L != num_lanes or L < 1 or L > MAX_LANES:
        raise ValueError(f"num_lanes shall be an integer in 1..{MAX_LANES}")
    return L


def default_num_lanes(n: int, est_bits: float) -> int:
    """Encoder's default lane count for n symbols of about est_bits bits."""
    if n <= 0:
        return 1
    lo = -(-n // MAX_STEPS)
    by_size = int(est_bits * TARGET_LANE_OVERHEAD / LANE_OVERHEAD_BITS)
    return max(1, min(n, MAX_LANES, max(lo, min(by_size, MAX_DEFAULT_LANES))))


def estimate_bits(freq: np.ndarray) -> float:
    """Information content estimate from a subsample of the coded frequencies."""
    n = freq.size
    if n == 0:
        return 0.0
    stride = max(1, n // 65536)
    sub = freq[::stride]
    return float(np.sum(PRECISION - np.log2(sub.astype(np.float64)))) * (n / sub.size)


# --------------------------------------------------------------------------
# binarisation shared by both backends (numpy, on the host)
# --------------------------------------------------------------------------

def _binarise(v: np.ndarray, t: np.ndarray, tables: RansTables):
    """Global bin index per element (escape bin outside the support) and the
    escape mask.  v: integers of at most 64 bits (not uint64), t: int64."""
    b = np.subtract(v, np.take(tables.offsets, t), dtype=np.int64)
    n = np.take(tables.num_symbols, t)
    esc = b.view(np.uint64) >= n.view(np.uint64)      # b < 0 or b >= n
    if esc.any():
        np.copyto(b, n, where=esc)
    b += np.take(tables.bin_arrays()["bin_start"], t)
    return b, esc


# --------------------------------------------------------------------------
# numpy lane coder
# --------------------------------------------------------------------------

def _encode_lanes_numpy(f: np.ndarray, st: np.ndarray, L: int) -> bytes:
    N = f.size
    A = min(L, N)
    S = -(-N // L)
    xm = f << PRECISION              # x >= freq << 16 needs a word out first
    a = TOTAL - f                    # x + q * (2**16 - f) + start == C(x)
    x = np.full(A, RANS_L, dtype=np.int64)
    q = np.empty(A, dtype=np.int64)
    m = np.empty(A, dtype=bool)
    chunks = []
    for s in range(S - 1, -1, -1):
        lo = s * L
        hi = min(lo + L, N)
        if hi - lo == A:
            xs, qs, ms = x, q, m
        else:
            k = hi - lo
            xs, qs, ms = x[:k], q[:k], m[:k]
        np.greater_equal(xs, xm[lo:hi], out=ms)
        idx = np.flatnonzero(ms)
        if idx.size:
            y = xs[idx]
            chunks.append(y)
            xs[idx] = y >> WORD_BITS
        np.floor_divide(xs, f[lo:hi], out=qs)
        np.multiply(qs, a[lo:hi], out=qs)
        xs += qs
        xs += st[lo:hi]
    if chunks:
        chunks.reverse()
        words = (np.concatenate(chunks) & 0xFFFF).astype(">u2")
    else:
        words = np.zeros(0, dtype=">u2")
    return x.astype(">u4").tobytes() + words.tobytes()


def _split_lane_data(lane_data: bytes, N: int, L: int):
    """Check the lane data size, return (initial states, words) as int64."""
    A = min(L, N)
    nbytes = len(lane_data)
    if N == 0:
        if nbytes:
            raise _err("lane data present for an empty symbol array", element="es_lane_data",
                       bitpos=0, clause="9.4.3",
                       shall="es_lane_data_size shall be 0 when there are no elements")
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if nbytes < 4 * A:
        raise _err(f"lane data has {nbytes} bytes, fewer than the {4 * A} bytes of "
                   f"{A} initial lane states", element="es_lane_data", bitpos=8 * nbytes,
                   clause="9.4.3",
                   shall="es_lane_data_size shall be at least 4 * NumActiveLanes")
    if nbytes & 1:
        raise _err(f"lane data size {nbytes} is odd", element="es_lane_data",
                   bitpos=8 * nbytes, clause="9.4.3",
                   shall="es_lane_data_size shall be even")
    states = np.frombuffer(lane_data, dtype=">u4", count=A).astype(np.int64)
    bad = states < RANS_L
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise _err(f"initial state of lane {j} is {int(states[j])} < 2**16",
                   element="es_lane_data", bitpos=32 * j, clause="9.4.3",
                   shall="each initial lane state shall be >= 2**16")
    words = np.frombuffer(lane_data, dtype=">u2", offset=4 * A).astype(np.int64)
    return states, words


def _exhausted(A, W, p, k, s):
    return _err(f"lane data exhausted at step {s}: {k} words needed, {W - p} left",
                element="es_lane_data", bitpos=8 * (4 * A + 2 * W), clause="9.4.5",
                shall="a renormalisation word shall not be read past the end of the lane data")


def _final_check(x, A, W, p):
    if p != W:
        raise _err(f"{W - p} lane data words left unread", element="es_lane_data",
                   bitpos=8 * (4 * A + 2 * p), clause="9.4.6",
                   shall="all lane data words shall be consumed")
    bad = x != RANS_L
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise _err(f"final state of lane {j} is {int(x[j])}, not 2**16", element="es_lane_data",
                   bitpos=8 * (4 * A + 2 * W), clause="9.4.6",
                   shall="every lane state shall end at 2**16")


def _decode_lanes_numpy(lane_data: bytes, t: np.ndarray, tables: RansTables, L: int,
                        force_search: bool = False) -> np.ndarray:
    """Returns the global bin index of every element (spec clause 9.4.4)."""
    N = t.size
    x, words = _split_lane_data(lane_data, N, L)
    A = x.size
    W = words.size
    use_lut = tables.use_lut() and not force_search
    if use_lut:
        lut = tables.decode_lut()
        g_all = np.empty(N, dtype=lut.dtype)
    else:
        keys = tables.search_keys()
        g_all = np.empty(N, dtype=np.int64)
    if N == 0:
        return g_all
    bins = tables.bin_arrays()
    freq = bins["freq"]
    start = bins["start"]
    S = -(-N // L)
    base = np.left_shift(t, PRECISION, dtype=np.int64)
    slot = np.empty(A, dtype=np.int64)
    gi = np.empty(A, dtype=np.int64)
    m = np.empty(A, dtype=bool)
    p = 0
    for s in range(S):
        lo = s * L
        hi = min(lo + L, N)
        if hi - lo == A:
            xs, sl, gs, ms = x, slot, gi, m
        else:
            k = hi - lo
            xs, sl, gs, ms = x[:k], slot[:k], gi[:k], m[:k]
        g = g_all[lo:hi]
        np.bitwise_and(xs, TOTAL - 1, out=sl)           # slot = x mod 2**16
        np.add(base[lo:hi], sl, out=gs)                 # table << 16 | slot
        if use_lut:
            np.take(lut, gs, out=g, mode="clip")        # bin holding the slot (gs < K << 16)
            gg = g.astype(np.intp)
        else:
            gg = np.searchsorted(keys, gs, side="right") - 1
            g[...] = gg
        np.right_shift(xs, PRECISION, out=xs)
        np.multiply(xs, freq[gg], out=xs)               # freq * (x >> 16)
        np.add(xs, sl, out=xs)
        np.subtract(xs, start[gg], out=xs)              # + slot - start
        np.less(xs, RANS_L, out=ms)
        idx = np.flatnonzero(ms)
        k = idx.size
        if k:
            if p + k > W:
                raise _exhausted(A, W, p, k, s)
            xs[idx] = (xs[idx] << WORD_BITS) | words[p:p + k]
            p += k
    _final_check(x, A, W, p)
    return g_all


# --------------------------------------------------------------------------
# torch lane coder (same operations; identical results)
# --------------------------------------------------------------------------

def _encode_lanes_torch(f, st, L: int) -> bytes:
    """Same words as :func:`_encode_lanes_numpy`; no host synchronisation in
    the step loop (a word slot per element, compacted at the end)."""
    import torch
    N = f.numel()
    A = min(L, N)
    S = -(-N // L)
    xm = f << PRECISION
    a = TOTAL - f
    x = torch.full((A,), RANS_L, dtype=torch.int64, device=f.device)
    word = torch.empty(N, dtype=torch.int64, device=f.device)
    emit = torch.empty(N, dtype=torch.bool, device=f.device)
    for s in range(S - 1, -1, -1):
        lo = s * L
        hi = min(lo + L, N)
        xs = x[:hi - lo]
        m = xs >= xm[lo:hi]
        emit[lo:hi] = m
        word[lo:hi] = xs & 0xFFFF
        xs = torch.where(m, xs >> WORD_BITS, xs)
        q = torch.div(xs, f[lo:hi], rounding_mode="floor")
        x[:hi - lo] = xs + q * a[lo:hi] + st[lo:hi]
    words = word[emit].cpu().numpy().astype(">u2")      # element order = reading order
    return x.cpu().numpy().astype(">u4").tobytes() + words.tobytes()


def _decode_lanes_torch(lane_data: bytes, t, tables: RansTables, L: int,
                        force_search: bool = False):
    """Same process as :func:`_decode_lanes_numpy` on tensors.  The word
    reads use a prefix sum, so the step loop never synchronises with the
    host; a read past the end is clamped and reported after the loop (the
    read position only grows, so overrunning at any step means overrunning
    at the end)."""
    import torch
    N = t.numel()
    dev = t.device
    x_np, words_np = _split_lane_data(lane_data, N, L)
    A = x_np.size
    W = words_np.size
    g_all = torch.empty(N, dtype=torch.int64, device=dev)
    if N == 0:
        return g_all
    x = torch.as_tensor(x_np, device=dev)
    words = torch.as_tensor(np.append(words_np, 0), device=dev)    # slot W: clamp target
    tc = tables.torch_cache(dev)
    use_lut = "lut" in tc and not force_search
    if not use_lut and "keys" not in tc:
        tc["keys"] = torch.as_tensor(tables.search_keys(), device=dev)
    freq = tc["freq"]
    start = tc["start"]
    S = -(-N // L)
    base = t << PRECISION
    p = torch.zeros((), dtype=torch.int64, device=dev)
    for s in range(S):
        lo = s * L
        hi = min(lo + L, N)
        xs = x[:hi - lo]
        slot = xs & (TOTAL - 1)
        gs = base[lo:hi] + slot
        if use_lut:
            g = tc["lut"][gs]
        else:
            g = torch.searchsorted(tc["keys"], gs, right=True) - 1
        g_all[lo:hi] = g
        xs = (xs >> PRECISION) * freq[g] + slot - start[g]
        m = xs < RANS_L
        c = torch.cumsum(m, 0)
        w = words[torch.clamp(p + c - 1, max=W)]
        x[:hi - lo] = torch.where(m, (xs << WORD_BITS) | w, xs)
        p = p + c[-1]
    p = int(p)
    if p > W:
        raise _err(f"lane data exhausted: {p} words needed, {W} present", element="es_lane_data",
                   bitpos=8 * (4 * A + 2 * W), clause="9.4.5",
                   shall="a renormalisation word shall not be read past the end of the "
                         "lane data")
    _final_check(x.cpu().numpy(), A, W, p)
    return g_all


# --------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------

def _check_backend(backend):
    if backend not in ("numpy", "torch"):
        raise ValueError("backend shall be 'numpy' or 'torch'")


def encode_substreams(symbols, table_indexes, tables: RansTables, num_lanes: int | None = None,
                      backend: str = "numpy", device=None) -> RansSubstreams:
    """Encode integer symbols, each with the table ``table_indexes`` selects.

    ``symbols`` and ``table_indexes``: integer arrays (numpy or torch) of the
    same shape; symbol values in the 32-bit signed range, table indexes in
    ``0 .. K-1``.  Values outside a table's support are escaped.
    ``num_lanes``: any L in 1..2**16; default from :func:`default_num_lanes`.
    ``backend="torch"`` runs the lane coder on ``device`` (default: the
    device of the input tensors, else CPU); the bytes are identical.
    """
    _check_backend(backend)
    v = _to_numpy_int(symbols, "symbols")
    t = _to_numpy_int(table_indexes, "table_indexes")
    if v.shape != t.shape:
        raise ValueError(f"symbols shape {v.shape} != table_indexes shape {t.shape}")
    v = v.reshape(-1)
    t = t.reshape(-1)
    N = v.size
    if N and (int(v.min()) < INT32_MIN or int(v.max()) > INT32_MAX):
        raise ValueError("symbol values shall lie in the 32-bit signed range")
    K = tables.num_tables
    if N and (int(t.min()) < 0 or int(t.max()) >= K):
        raise ValueError(f"table indexes shall lie in 0..{K - 1}")
    if v.dtype == np.uint64:
        v = v.astype(np.int64)              # (range checked) avoid uint64/int64 -> float
    t = t.astype(np.int64, copy=False)
    if num_lanes is not None:
        L = _check_lanes(num_lanes)
    if N == 0:
        return RansSubstreams(1 if num_lanes is None else L, b"", b"")
    g, esc = _binarise(v, t, tables)
    bins = tables.bin_arrays()
    f = np.take(bins["freq"], g)
    st = np.take(bins["start"], g)
    escape_data = b""
    if esc.any():
        te = t[esc]
        lo = tables.offsets[te]
        escape_data = _esc.encode_escapes(v[esc], lo, lo + tables.num_symbols[te] - 1)
    if num_lanes is None:
        L = default_num_lanes(N, estimate_bits(f) + 8 * len(escape_data))
    if backend == "numpy":
        lane_data = _encode_lanes_numpy(f, st, L)
    else:
        import torch
        dev = device if device is not None else (
            symbols.device if _is_torch(symbols) else "cpu")
        lane_data = _encode_lanes_torch(torch.as_tensor(f, device=dev),
                                        torch.as_tensor(st, device=dev), L)
    return RansSubstreams(L, lane_data, escape_data)


def decode_substreams(subs: RansSubstreams, table_indexes, tables: RansTables,
                      backend: str = "numpy", device=None, *, force_search: bool = False):
    """Decode the symbols (int32, shape of ``table_indexes``).

    Returns a numpy array for ``backend="numpy"`` and a torch tensor on
    ``device`` for ``backend="torch"``.  Malformed data raises
    :class:`syntax.errors.BitstreamError`.
    """
    _check_backend(backend)
    t_np = _to_numpy_int(table_indexes, "table_indexes")
    shape = t_np.shape
    t_np = t_np.reshape(-1)
    N = t_np.size
    K = tables.num_tables
    if N and (int(t_np.min()) < 0 or int(t_np.max()) >= K):
        bad = (t_np < 0) | (t_np >= K)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise BitstreamError(
                f"table index {int(t_np[i])} of element {i} outside 0..{K - 1}",
                structure=STRUCTURE, element="table_index", clause="9.4.1",
                shall="each table index shall be in the range 0 to K - 1",
                where="decoder input")
    L = subs.num_lanes
    if not isinstance(L, (int, np.integer)) or L < 1 or L > MAX_LANES:
        raise BitstreamError(f"number of lanes {L} outside 1..{MAX_LANES}",
                             structure=STRUCTURE, element="es_num_lanes_minus1",
                             clause="7.4", where="entropy_substream",
                             shall="es_num_lanes_minus1 shall be in the range 0 to "
                                   f"{MAX_LANES - 1}")
    L = int(L)
    lane_data = bytes(subs.lane_data)
    if backend == "numpy":
        g = _decode_lanes_numpy(lane_data, t_np, tables, L, force_search)
    else:
        import torch
        dev = device if device is not None else (
            table_indexes.device if _is_torch(table_indexes) else "cpu")
        g = _decode_lanes_torch(lane_data, torch.as_tensor(t_np.astype(np.int64, copy=False),
                                                           device=dev), tables, L,
                                force_search).cpu().numpy()
    vals = np.take(tables.bin_arrays()["value32"], g)
    esc = vals == INT32_MIN
    if esc.any():
        te = t_np[esc]
        lo = tables.offsets[te]
        vals[esc] = _esc.decode_escapes(bytes(subs.escape_data), lo,
                                        lo + tables.num_symbols[te] - 1)
    else:
        _esc.read_ue(bytes(subs.escape_data), 0)
    out = vals.reshape(shape)
    if backend == "torch":
        import torch
        return torch.as_tensor(out, device=dev)
    return out
