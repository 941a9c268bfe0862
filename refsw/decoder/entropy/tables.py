"""Normative integer probability tables for the rANS coder (spec clause 9.3).

A *table set* holds K tables.  Table k codes the integer values
``offset[k] .. offset[k] + num_symbols[k] - 1`` (bins ``0 .. n_k - 1``) plus one
escape bin (bin ``n_k``) that stands for every value outside that support.  Its
integer CDF ``cdf_k[0 .. n_k + 1]`` has ``cdf_k[0] = 0``,
``cdf_k[n_k + 1] = 2**P`` and is strictly increasing, so every bin has a
frequency of at least 1.

The integer tables are the normative data.  :func:`quantize_pmf` (the
documented integer-fixing procedure) and the builders that use it run offline;
a decoder only ever loads integer tables.

Two kinds of table sets exist:

* the Gaussian-conditional set (K = 64 scale indices), shipped with this
  package as ``refsw/data/entropy/gaussian_p16.npz`` and loaded by
  :func:`gaussian_tables` (file SHA-256 and content checksum are checked);
* factorised (per-channel) sets for hyper-latents, shipped with a model and
  built from a float pmf or CDF with :meth:`RansTables.from_pmfs` /
  :meth:`RansTables.from_float_cdfs`, stored with :meth:`RansTables.save`.
"""
from __future__ import annotations

import hashlib
import heapq
import math
import os
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Sequence

import numpy as np

#: CDF precision in bits (fixed in this version of the specification).
PRECISION = 16
#: Total frequency 2**PRECISION.
TOTAL = 1 << PRECISION
#: Symbol values are 32-bit signed integers.
INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1

#: Magic string that starts the canonical serialisation used by the checksum.
_CANON_MAGIC = b"RANSTAB1"

#: Number of Gaussian scale indices and the scale of index k (informative:
#: the integer tables in the data file are normative, these floats are only
#: the recipe they were built from).
GAUSSIAN_NUM_SCALES = 64
GAUSSIAN_SCALE_MIN = 0.11
GAUSSIAN_SCALE_MAX = 256.0
#: Tail-mass bound of the Gaussian support: M_k is the smallest M >= 0 with
#: P(|X| > M + 1/2) <= 2**-GAUSSIAN_TAIL_LOG2 for X ~ N(0, s_k**2).
GAUSSIAN_TAIL_LOG2 = 12

#: SHA-256 of the data file refsw/data/entropy/gaussian_p16.npz, checked at load.
GAUSSIAN_P16_FILE_SHA256 = (
    "559f83ba3ced232f8b39e7a87a1b92f7c659b6acb1021dd4c36f6c21b4b415b2")
#: SHA-256 of the canonical serialisation of its tables (spec clause 9.3.4),
#: independent of the container format.
GAUSSIAN_P16_TABLE_SHA256 = (
    "909a11835886e1b457f9c170c9c1c3c98e51b8747b9221b0343f4c5170cb6eb7")

_DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                         "data", "entropy")
GAUSSIAN_P16_PATH = os.path.join(_DATA_DIR, "gaussian_p16.npz")

#: The mean-offset set (clause 9.3.2.1): 4 mean positions per scale, 256 tables.
GAUSSIAN_P16_M4_PATH = os.path.join(_DATA_DIR, "gaussian_p16_m4.npz")
GAUSSIAN_P16_M4_FILE_SHA256 = (
    "f1913a2e2213f76c858843cc069ab42c6e6faf4c7280acbe722ca28d1516d9f5")
GAUSSIAN_P16_M4_TABLE_SHA256 = (
    "3226e98e0a7cfa6d23d1203aaa5a785516c6235a98d82529d856fad43f09ca78")

#: mean_frac_bits -> (data file, file SHA-256, table SHA-256)
GAUSSIAN_SETS = {
    0: (GAUSSIAN_P16_PATH, GAUSSIAN_P16_FILE_SHA256, GAUSSIAN_P16_TABLE_SHA256),
    2: (GAUSSIAN_P16_M4_PATH, GAUSSIAN_P16_M4_FILE_SHA256, GAUSSIAN_P16_M4_TABLE_SHA256),
}

#: Table sets whose direct slot lookup table (K * 2**16 bin indexes) fits in
#: this many bytes use it; larger sets use a binary search instead.  Both give
#: the same symbols (the choice is an implementation detail).
LUT_MAX_BYTES = 64 << 20


def gaussian_scales() -> np.ndarray:
    """The 64 scales s_k = exp(ln 0.11 + k (ln 256 - ln 0.11) / 63) (informative)."""
    k = np.arange(GAUSSIAN_NUM_SCALES, dtype=np.float64)
    lo, hi = math.log(GAUSSIAN_SCALE_MIN), math.log(GAUSSIAN_SCALE_MAX)
    return np.exp(lo + k * (hi - lo) / (GAUSSIAN_NUM_SCALES - 1))


def gaussian_scale_index(scales) -> np.ndarray:
    """Nearest scale index in the log domain, clipped to 0..63 (informative).

    The model defines the normative derivation of its scale indices
    (refsw.models.entropy_models.scale_index uses the same rounding); this
    helper serves tests and benchmarks.
    """
    s = np.asarray(scales, dtype=np.float64)
    lo, hi = math.log(GAUSSIAN_SCALE_MIN), math.log(GAUSSIAN_SCALE_MAX)
    step = (hi - lo) / (GAUSSIAN_NUM_SCALES - 1)
    k = np.rint((np.log(np.maximum(s, 1e-300)) - lo) / step)
    return np.clip(k, 0, GAUSSIAN_NUM_SCALES - 1).astype(np.int32)


# --------------------------------------------------------------------------
# Integer-fixing procedure (spec clause 9.3.3)
# --------------------------------------------------------------------------

def quantize_pmf(pmf: Sequence[float], precision: int = PRECISION) -> np.ndarray:
    """Turn a probability vector into integer frequencies >= 1 summing to 2**precision.

    The documented, deterministic procedure (spec clause 9.3.3):

    0. ``p_i = p_i / sum(p)``.
    1. ``f_i = max(1, floor(p_i * 2**P))``.
    2. While ``sum f < 2**P``: add 1 to the bin with the largest gain
       ``p_i * log2((f_i + 1) / f_i)`` (ties: lowest bin index).
    3. While ``sum f > 2**P``: subtract 1 from the bin with ``f_i > 1`` that
       has the smallest loss ``p_i * log2(f_i / (f_i - 1))`` (ties: lowest
       bin index).

    The probabilities are first divided by their sum (so they need not sum to
    1 exactly); negative or non-finite ones are rejected.
    """
    p = np.asarray(pmf, dtype=np.float64).ravel()
    total = 1 << precision
    if p.size < 1 or p.size > total:
        raise ValueError(f"pmf length {p.size} outside 1..{total}")
    if not np.all(np.isfinite(p)) or np.any(p < 0) or not p.sum() > 0:
        raise ValueError("pmf must be finite, non-negative and not all zero")
    p = p / p.sum()
    pl = [float(v) for v in p]
    f = [max(1, int(math.floor(v * total))) for v in pl]
    d = total - sum(f)
    if d > 0:
        heap = [(-(pl[i] * math.log2((f[i] + 1) / f[i])), i) for i in range(len(f))]
        heapq.heapify(heap)
        for _ in range(d):
            _, i = heapq.heappop(heap)
            f[i] += 1
            heapq.heappush(heap, (-(pl[i] * math.log2((f[i] + 1) / f[i])), i))
    elif d < 0:
        heap = [(pl[i] * math.log2(f[i] / (f[i] - 1)), i) for i in range(len(f)) if f[i] > 1]
        heapq.heapify(heap)
        for _ in range(-d):
            _, i = heapq.heappop(heap)
            f[i] -= 1
            if f[i] > 1:
                heapq.heappush(heap, (pl[i] * math.log2(f[i] / (f[i] - 1)), i))
    out = np.asarray(f, dtype=np.int64)
    assert int(out.sum()) == total and int(out.min()) >= 1
    return out


# --------------------------------------------------------------------------
# Table set
# --------------------------------------------------------------------------

@dataclass(eq=False)
class RansTables:
    """A set of K integer rANS tables (format: spec clause 9.3.1).

    Attributes (all numpy int64 arrays):
      offsets[k]      value coded by bin 0 of table k
      num_symbols[k]  n_k >= 1, number of in-support values; bin n_k is escape
      cdf             concatenation of cdf_k[0 .. n_k + 1] for k = 0..K-1
      cdf_start[k]    index of cdf_k[0] in ``cdf`` (length K + 1)
    """

    offsets: np.ndarray
    num_symbols: np.ndarray
    cdf: np.ndarray
    precision: int = PRECISION
    scales: np.ndarray | None = None   # informative (Gaussian set only)
    cdf_start: np.ndarray = field(init=False)
    _cache: dict = field(init=False, default_factory=dict, repr=False)

    def __post_init__(self):
        self.offsets = np.ascontiguousarray(self.offsets, dtype=np.int64).ravel()
        self.num_symbols = np.ascontiguousarray(self.num_symbols, dtype=np.int64).ravel()
        self.cdf = np.ascontiguousarray(self.cdf, dtype=np.int64).ravel()
        self.precision = int(self.precision)
        self.cdf_start = np.zeros(self.offsets.size + 1, dtype=np.int64)
        np.cumsum(self.num_symbols + 2, out=self.cdf_start[1:])
        self.validate()

    # -- construction -----------------------------------------------------

    @classmethod
    def from_cdfs(cls, cdfs: Sequence[Sequence[int]], offsets: Sequence[int],
                  precision: int = PRECISION, scales=None) -> "RansTables":
        """From integer CDFs (each cdf_k[0..n_k+1], last bin = escape)."""
        cdfs = [np.asarray(c, dtype=np.int64).ravel() for c in cdfs]
        if len(cdfs) != len(offsets):
            raise ValueError("one offset per table needed")
        n = [c.size - 2 for c in cdfs]
        flat = np.concatenate(cdfs) if cdfs else np.zeros(0, np.int64)
        return cls(offsets=np.asarray(offsets, np.int64), num_symbols=np.asarray(n, np.int64),
                   cdf=flat, precision=precision, scales=scales)

    @classmethod
    def from_freqs(cls, freqs: Sequence[Sequence[int]], offsets: Sequence[int],
                   precision: int = PRECISION, scales=None) -> "RansTables":
        """From integer frequencies (each f_k[0..n_k], last entry = escape bin)."""
        cdfs = []
        for f in freqs:
            f = np.asarray(f, dtype=np.int64).ravel()
            c = np.zeros(f.size + 1, dtype=np.int64)
            np.cumsum(f, out=c[1:])
            cdfs.append(c)
        return cls.from_cdfs(cdfs, offsets, precision, scales)

    @classmethod
    def from_pmfs(cls, pmfs: Sequence[Sequence[float]], offsets: Sequence[int],
                  escape_probs: Sequence[float] | None = None,
                  precision: int = PRECISION) -> "RansTables":
        """Builder for factorised (per-channel) tables from float pmfs (offline).

        ``pmfs[c][i]`` is the probability of value ``offsets[c] + i``;
        ``escape_probs[c]`` the probability of any value outside that support
        (default: ``max(0, 1 - sum(pmfs[c]))``).  Each pmf + escape
        probability is quantised with :func:`quantize_pmf`.  Ship the result
        with the model (:meth:`save`); decoders load it, never rebuild it.
        """
        freqs = []
        for c, p in enumerate(pmfs):
            p = np.asarray(p, dtype=np.float64).ravel()
            if escape_probs is None:
                esc = max(0.0, 1.0 - float(np.sum(p)))
            else:
                esc = float(escape_probs[c])
            freqs.append(quantize_pmf(np.concatenate([p, [esc]]), precision))
        return cls.from_freqs(freqs, offsets, precision)

    @classmethod
    def from_float_cdfs(cls, cdfs: Sequence[Sequence[float]], offsets: Sequence[int],
                        precision: int = PRECISION) -> "RansTables":
        """Builder from float CDFs evaluated at bin edges (offline).

        ``cdfs[c]`` has n_c + 1 entries: F(offset - 1/2), F(offset + 1/2), ...,
        F(offset + n_c - 1/2).  The pmf is their difference and the escape
        probability the mass outside, ``F(lo) + 1 - F(hi)``.
        """
        pmfs, esc = [], []
        for c in cdfs:
            c = np.asarray(c, dtype=np.float64).ravel()
            pmfs.append(np.maximum(np.diff(c), 0.0))
            esc.append(max(0.0, float(c[0]) + 1.0 - float(c[-1])))
        return cls.from_pmfs(pmfs, offsets, esc, precision)

    # -- validation / metadata --------------------------------------------

    @property
    def num_tables(self) -> int:
        return int(self.offsets.size)

    def __len__(self) -> int:
        return self.num_tables

    def validate(self) -> None:
        """Check the constraints of spec clause 9.3.1; raise ValueError."""
        if self.precision != PRECISION:
            raise ValueError(f"precision shall be {PRECISION}, got {self.precision}")
        K = self.num_tables
        if K < 1:
            raise ValueError("a table set shall hold at least one table")
        if self.num_symbols.size != K:
            raise ValueError("num_symbols length differs from offsets length")
        n = self.num_symbols
        if np.any(n < 1) or np.any(n > TOTAL - 1):
            raise ValueError(f"num_symbols shall be in 1..{TOTAL - 1}")
        if self.cdf.size != int(self.cdf_start[-1]):
            raise ValueError("cdf length differs from sum(num_symbols + 2)")
        if np.any(self.offsets <= INT32_MIN) or np.any(self.offsets + n - 1 > INT32_MAX):
            raise ValueError("table support shall lie in -2**31+1 .. 2**31-1")
        first = self.cdf[self.cdf_start[:-1]]
        last = self.cdf[self.cdf_start[1:] - 1]
        if np.any(first != 0) or np.any(last != TOTAL):
            raise ValueError(f"each cdf shall start at 0 and end at {TOTAL}")
        d = np.diff(self.cdf)
        inner = np.ones(d.size, dtype=bool)
        inner[self.cdf_start[1:-1] - 1] = False      # steps between tables
        if np.any(d[inner] < 1):
            raise ValueError("every bin frequency shall be >= 1")

    def canonical_bytes(self) -> bytes:
        """Canonical serialisation (spec clause 9.3.4), input of :meth:`checksum`."""
        head = _CANON_MAGIC + np.array([self.precision, self.num_tables], "<u4").tobytes()
        per = np.empty((self.num_tables, 2), dtype="<i8")
        per[:, 0] = self.offsets
        per[:, 1] = self.num_symbols
        return (head + per.astype("<i4").tobytes()
                + self.cdf.astype("<u4").tobytes())

    def checksum(self) -> str:
        """SHA-256 (hex) of :meth:`canonical_bytes`."""
        return hashlib.sha256(self.canonical_bytes()).hexdigest()

    def freqs(self, k: int) -> np.ndarray:
        c = self.cdf[self.cdf_start[k]:self.cdf_start[k + 1]]
        return np.diff(c)

    # -- storage ----------------------------------------------------------

    def save(self, path) -> None:
        """Write the npz format of spec clause 9.3.4 (uncompressed, deterministic)."""
        arrays = dict(
            precision=np.array(self.precision, dtype="<i4"),
            offsets=self.offsets.astype("<i4"),
            num_symbols=self.num_symbols.astype("<i4"),
            cdf=self.cdf.astype("<u4"),
        )
        if self.scales is not None:
            arrays["scales"] = np.asarray(self.scales, dtype="<f8")
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)

    @classmethod
    def load(cls, path, sha256: str | None = None,
             table_sha256: str | None = None) -> "RansTables":
        """Load an npz table set; optionally check file / content SHA-256."""
        with open(path, "rb") as fh:
            raw = fh.read()
        if sha256 is not None:
            got = hashlib.sha256(raw).hexdigest()
            if got != sha256:
                raise ValueError(f"{path}: file sha256 {got} != expected {sha256}")
        import io
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            t = cls(offsets=z["offsets"], num_symbols=z["num_symbols"], cdf=z["cdf"],
                    precision=int(z["precision"]),
                    scales=z["scales"] if "scales" in z.files else None)
        if table_sha256 is not None and t.checksum() != table_sha256:
            raise ValueError(f"{path}: table checksum {t.checksum()} != expected {table_sha256}")
        return t

    # -- derived arrays (cached; all derived by integer arithmetic) ---------

    def bin_arrays(self):
        """Per global bin g (table k's bin b is g = bin_start[k] + b):
        freq, start (cdf), value (INT32_MIN for the escape bin)."""
        c = self._cache.get("bins")
        if c is None:
            K = self.num_tables
            bin_start = self.cdf_start[:-1] - np.arange(K, dtype=np.int64)   # n_k + 1 bins each
            nb = self.num_symbols + 1
            g_table = np.repeat(np.arange(K, dtype=np.int64), nb)
            local = np.arange(int(nb.sum()), dtype=np.int64) - np.repeat(bin_start, nb)
            cdf_idx = self.cdf_start[g_table] + local
            start = self.cdf[cdf_idx]
            freq = self.cdf[cdf_idx + 1] - start
            value = self.offsets[g_table] + local
            value[local == self.num_symbols[g_table]] = INT32_MIN
            c = dict(bin_start=bin_start, freq=freq, start=start, value=value,
                     value32=value.astype(np.int32), table=g_table)
            self._cache["bins"] = c
        return c

    def use_lut(self) -> bool:
        """Direct slot lookup if its table is at most LUT_MAX_BYTES."""
        return self.num_tables * TOTAL * self._lut_dtype().itemsize <= LUT_MAX_BYTES

    def _lut_dtype(self):
        nbins = int(self.num_symbols.sum()) + self.num_tables
        return np.dtype(np.uint16) if nbins <= (1 << 16) else np.dtype(np.int32)

    def decode_lut(self) -> np.ndarray:
        """Direct lookup table: entry ``k * 2**16 + slot`` is the global bin
        index g of the bin of table k containing ``slot`` (uint16 if the set
        has at most 2**16 bins, else int32)."""
        lut = self._cache.get("lut")
        if lut is None:
            b = self.bin_arrays()
            lut = np.repeat(np.arange(b["freq"].size).astype(self._lut_dtype()), b["freq"])
            self._cache["lut"] = lut
        return lut

    def search_keys(self) -> np.ndarray:
        """Sorted ``k * 2**16 + start`` per global bin (binary-search lookup)."""
        s = self._cache.get("keys")
        if s is None:
            b = self.bin_arrays()
            s = (b["table"] << PRECISION) + b["start"]
            self._cache["keys"] = s
        return s

    def torch_cache(self, device):
        """Arrays used by the torch backend, as tensors on ``device`` (cached)."""
        import torch
        key = ("torch", str(device))
        t = self._cache.get(key)
        if t is None:
            b = self.bin_arrays()
            t = dict(freq=torch.as_tensor(b["freq"], device=device),
                     start=torch.as_tensor(b["start"], device=device))
            if self.use_lut():
                t["lut"] = torch.as_tensor(self.decode_lut().astype(np.int64), device=device)
            else:
                t["keys"] = torch.as_tensor(self.search_keys(), device=device)
            self._cache[key] = t
        return t


@lru_cache(maxsize=2)
def gaussian_tables(mean_frac_bits: int = 0) -> RansTables:
    """A normative Gaussian-conditional table set, P = 16: 64 scale indices
    (mean_frac_bits 0), or 64 x 4 (scale, mean position) tables (2, 9.3.2.1).

    Loaded from the data file; its SHA-256 and table checksum are verified.
    """
    if mean_frac_bits not in GAUSSIAN_SETS:
        raise ValueError(f"no Gaussian table set for {mean_frac_bits} mean fraction bits")
    path, file_sha, table_sha = GAUSSIAN_SETS[mean_frac_bits]
    return RansTables.load(path, sha256=file_sha, table_sha256=table_sha)
