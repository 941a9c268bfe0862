"""Offline builder of the Gaussian-conditional table set (spec clause 9.3.2).

Run once; the output file is the normative data, the decoder never runs this::

    python -m refsw.decoder.entropy.build_tables [--out refsw/data/entropy/gaussian_p16.npz] [--check]

Procedure, for k = 0..63:

1. s_k = exp(ln 0.11 + k * (ln 256 - ln 0.11) / 63).
2. Support: M_k = smallest integer M >= 0 with P(|X| > M + 1/2) <= 2**-12,
   X ~ N(0, s_k**2), i.e. erfc((M + 1/2) / (s_k * sqrt 2)) <= 2**-12.
   Table k codes the values -M_k .. M_k (offset -M_k, n_k = 2 M_k + 1).
3. pmf of value v: Phi((|v| + 1/2) / s_k) - Phi((|v| - 1/2) / s_k), computed
   as (erfc((|v| - 1/2) / (s_k sqrt 2)) - erfc((|v| + 1/2) / (s_k sqrt 2))) / 2
   (for v = 0: 1 - erfc(1 / (2 s_k sqrt 2))); escape probability
   erfc((M_k + 1/2) / (s_k sqrt 2)).
4. Frequencies by the integer-fixing procedure of
   :func:`refsw.decoder.entropy.tables.quantize_pmf` (clause 9.3.3), P = 16.

Mean-offset set (clause 9.3.2.1), F = 2**n mean positions per scale
(``--mean-frac-bits n``, n >= 1): table t = k * F + f, f = 0..F-1, codes the
values -(M_k + 1) .. M_k + 1 of X ~ N(d_f, s_k**2), d_f = (f - F/2) / F, with
pmf P(v) = Phi((v + 1/2 - d_f) / s_k) - Phi((v - 1/2 - d_f) / s_k) (erfc form
on the side of the smaller tail) and escape P(X < -M_k - 3/2) + P(X > M_k + 3/2).

Float evaluation (Python's ``math.erfc``/``math.log2``, IEEE double) is used
only here; the resulting integers are stored with their checksums.
"""
from __future__ import annotations

import argparse
import hashlib
import math
import sys

import numpy as np

from .tables import (GAUSSIAN_SETS, GAUSSIAN_TAIL_LOG2, PRECISION,
                     RansTables, gaussian_scales, quantize_pmf)

_SQRT2 = math.sqrt(2.0)


def gaussian_support(scale: float, tail_log2: int = GAUSSIAN_TAIL_LOG2) -> int:
    """M = smallest integer >= 0 with erfc((M + 1/2) / (s sqrt 2)) <= 2**-tail_log2."""
    bound = 2.0 ** -tail_log2
    m = 0
    while math.erfc((m + 0.5) / (scale * _SQRT2)) > bound:
        m += 1
    return m


def gaussian_pmf(scale: float, m: int) -> np.ndarray:
    """pmf of values -m..m followed by the escape probability."""
    def upper2(a: float) -> float:            # 2 * P(X > a) = erfc(a / (s sqrt 2))
        return math.erfc(a / (scale * _SQRT2))
    half = [1.0 - upper2(0.5)]
    for v in range(1, m + 1):
        half.append(0.5 * (upper2(v - 0.5) - upper2(v + 0.5)))
    p = half[:0:-1] + half
    p.append(upper2(m + 0.5))
    return np.asarray(p, dtype=np.float64)


def _bin_prob(a: float, b: float) -> float:
    """P(a < X / (s sqrt 2) < b) * ... : Phi-difference of a bin from erfc, a < b
    in units of s*sqrt(2), evaluated on the side of the smaller tail."""
    if a >= 0:
        return 0.5 * (math.erfc(a) - math.erfc(b))
    if b <= 0:
        return 0.5 * (math.erfc(-b) - math.erfc(-a))
    return 1.0 - 0.5 * (math.erfc(-a) + math.erfc(b))


def gaussian_pmf_offset(scale: float, m: int, d: float) -> np.ndarray:
    """pmf of values -m..m under N(d, scale^2), followed by the escape probability."""
    c = scale * _SQRT2
    p = [_bin_prob((v - 0.5 - d) / c, (v + 0.5 - d) / c) for v in range(-m, m + 1)]
    p.append(0.5 * math.erfc((m + 0.5 - d) / c) + 0.5 * math.erfc((m + 0.5 + d) / c))
    return np.asarray(p, dtype=np.float64)


def build_gaussian_tables(mean_frac_bits: int = 0) -> RansTables:
    scales = gaussian_scales()
    F = 1 << mean_frac_bits
    freqs, offsets = [], []
    for s in scales:
        m = gaussian_support(float(s))
        if F == 1:
            freqs.append(quantize_pmf(gaussian_pmf(float(s), m), PRECISION))
            offsets.append(-m)
            continue
        for f in range(F):
            d = (f - F // 2) / F
            freqs.append(quantize_pmf(gaussian_pmf_offset(float(s), m + 1, d), PRECISION))
            offsets.append(-(m + 1))
    return RansTables.from_freqs(freqs, offsets, PRECISION, scales=np.repeat(scales, F))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mean-frac-bits", type=int, default=0, choices=(0, 2),
                    help="0: the 64-table set; 2: the mean-offset set (256 tables, 4 mean positions)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--check", action="store_true",
                    help="rebuild and compare with the stored file instead of writing")
    a = ap.parse_args(argv)
    t = build_gaussian_tables(a.mean_frac_bits)
    path, file_rec, table_rec = GAUSSIAN_SETS[a.mean_frac_bits]
    out = a.out or path
    if a.check:
        stored = RansTables.load(path)
        same = stored.checksum() == t.checksum()
        print(f"rebuilt {t.checksum()} stored {stored.checksum()} "
              f"expected {table_rec}: {'identical' if same else 'DIFFERENT'}")
        return 0 if same else 1
    t.save(out)
    with open(out, "rb") as fh:
        file_sha = hashlib.sha256(fh.read()).hexdigest()
    print(f"wrote {out}")
    print(f"file sha256  {file_sha} (recorded {file_rec})")
    print(f"table sha256 {t.checksum()} (recorded {table_rec})")
    print(f"supports M_k: {[-int(o) for o in t.offsets]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
