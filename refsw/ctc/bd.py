"""Bjøntegaard delta metrics: BD-rate and BD-quality (non-normative).

Definitions
    BD-rate: the average difference of log10(rate) between the test and
    the anchor curve over the overlapping quality interval, with rate
    interpolated as a function of quality, expressed as a percentage:
    ``(10 ** avg - 1) * 100``.  Negative values are bit-rate savings.

    BD-quality (BD-PSNR for PSNR): the average quality difference over the
    overlapping log10(rate) interval, with quality interpolated as a
    function of log10(rate).  Positive values are quality gains.

Interpolation (``method``)
    ``"pchip"``  piecewise cubic Hermite with the Fritsch-Carlson
                 (shape-preserving) slopes and the three-point end rule: the
                 interpolation of the JVET BD-rate spreadsheet (``bdRateExtend``
                 / ``pchipend`` macros), of MATLAB ``pchip`` and of scipy's
                 ``PchipInterpolator``.  Integrated exactly, segment by
                 segment, in the power form used by the JVET macro.  The JVET
                 CTC default.
    ``"cubic"``  VCEG-M33 (Bjøntegaard 2001): a least-squares polynomial of
                 degree 3 (degree n-1 with fewer than 4 points), integrated
                 exactly.

Point handling (documented rules; the report states which was used)
    * Points with a non-finite quality (e.g. lossless, PSNR = inf) or a
      rate <= 0 are dropped; the result's ``notes`` says so.
    * Repeated identical (rate, quality) points are kept once.
    * Every other point is kept (the JVET rule).  The points are ordered by
      the interpolation abscissa (quality for BD-rate, log-rate for
      BD-quality).  A curve whose quality does not increase with rate is
      *non-monotonic*: it is still interpolated (PCHIP does not overshoot
      between points) and the result carries ``monotonic=False`` so the
      report can flag it.  Two points with the same abscissa but different
      ordinates cannot be interpolated by PCHIP: :class:`BDError`.
    * ``pareto=True`` (the variant for machine-task curves such as mAP vs
      bpp, which are often non-monotonic): first keep only the Pareto-optimal
      points -- a point is dropped if another point has a rate <= and a
      quality >= (one of them strict).  The remaining points increase
      strictly in both rate and quality, so the interpolation is
      well-defined and monotonic.
    * Fewer than 2 points left on either curve, or no overlap of the
      integration intervals: :class:`BDError` (BD is undefined; the runner
      reports "n/a" with the reason rather than failing).
    * The relative overlap (overlap / union of the intervals) is returned;
      the bjontegaard package warns below 0.75, the report flags it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["BDError", "BDResult", "bd_rate", "bd_quality", "bd", "pareto_front",
           "pchip_slopes", "pchip_integral", "cubic_integral", "METHODS"]

METHODS = ("pchip", "cubic")


class BDError(ValueError):
    """BD metric undefined for these curves (message says why)."""


@dataclass
class BDResult:
    value: float                  # percent for BD-rate, quality units for BD-quality
    kind: str                     # "rate" or "quality"
    method: str
    pareto: bool
    n_anchor: int                 # points used
    n_test: int
    overlap: float                # overlap / union of the integration intervals
    monotonic: bool               # both curves monotonic (quality increases with rate)
    notes: list = field(default_factory=list)
    interval: tuple = ()          # the integration interval: quality (BD-rate) or log10 rate (BD-quality)
    rate_span: tuple = ()         # BD-rate: rates of the test curve at the ends of the interval (linear
                                  # interpolation of log-rate in quality; informative)


# --------------------------------------------------------------------------
# Point selection
# --------------------------------------------------------------------------

def pareto_front(rate, quality) -> np.ndarray:
    """Indices (in increasing rate) of the Pareto-optimal points: no other
    point has a lower-or-equal rate and a higher-or-equal quality with at
    least one strict.  Along the front both rate and quality strictly
    increase."""
    r = np.asarray(rate, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    order = sorted(range(len(r)), key=lambda i: (r[i], -q[i]))
    keep = []
    best = -math.inf
    for i in order:
        if q[i] > best:
            if keep and r[keep[-1]] == r[i]:
                continue  # same rate, lower quality (sorted by -q): dominated
            keep.append(i)
            best = q[i]
    return np.asarray(keep, dtype=np.int64)


def _clean(rate, quality, pareto: bool, who: str, notes: list):
    r = np.asarray(rate, dtype=np.float64).ravel()
    q = np.asarray(quality, dtype=np.float64).ravel()
    if r.shape != q.shape:
        raise BDError(f"{who}: {r.size} rates but {q.size} quality values")
    ok = np.isfinite(r) & np.isfinite(q) & (r > 0)
    dropped = int((~ok).sum())
    if dropped:
        notes.append(f"{who}: {dropped} point(s) with non-finite quality or rate <= 0 dropped")
    r, q = r[ok], q[ok]
    if r.size:
        pairs = sorted(set(zip(r.tolist(), q.tolist())))
        if len(pairs) < r.size:
            notes.append(f"{who}: {r.size - len(pairs)} repeated point(s) dropped")
        r = np.array([p[0] for p in pairs])
        q = np.array([p[1] for p in pairs])
    if pareto and r.size:
        idx = pareto_front(r, q)
        if idx.size < r.size:
            notes.append(f"{who}: {r.size - idx.size} point(s) off the Pareto front dropped")
        r, q = r[idx], q[idx]
    if r.size < 2:
        why = (f" ({dropped} with an infinite or undefined quality, e.g. lossless PSNR = inf or "
               f"MS-SSIM of a picture too small for it, or a "
               f"rate <= 0)") if dropped else ""
        raise BDError(f"{who} has {r.size} usable rate point(s){why}; BD needs at least 2")
    return r, q


def _is_monotonic(r, q) -> bool:
    o = np.argsort(r, kind="stable")
    return bool(np.all(np.diff(q[o]) > 0) and np.all(np.diff(r[o]) > 0))


# --------------------------------------------------------------------------
# Interpolation and exact integration
# --------------------------------------------------------------------------

def _pchip_end(h0, h1, m0, m1):
    d = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
    if np.sign(d) != np.sign(m0):
        return 0.0
    if np.sign(m0) != np.sign(m1) and abs(d) > abs(3 * m0):
        return 3 * m0
    return d


def pchip_slopes(x, y) -> np.ndarray:
    """Fritsch-Carlson slopes at the knots (x strictly increasing)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = x.size
    h = np.diff(x)
    m = np.diff(y) / h
    if n == 2:
        return np.array([m[0], m[0]])
    d = np.zeros(n)
    for k in range(1, n - 1):
        if m[k - 1] * m[k] > 0:
            w1 = 2 * h[k] + h[k - 1]
            w2 = h[k] + 2 * h[k - 1]
            d[k] = (w1 + w2) / (w1 / m[k - 1] + w2 / m[k])
    d[0] = _pchip_end(h[0], h[1], m[0], m[1])
    d[-1] = _pchip_end(h[-1], h[-2], m[-1], m[-2])
    return d


def pchip_integral(x, y, lo: float, hi: float) -> float:
    """Exact integral over [lo, hi] (inside [x[0], x[-1]]) of the PCHIP
    interpolant of (x, y), x strictly increasing."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    d = pchip_slopes(x, y)
    total = 0.0
    for k in range(x.size - 1):
        a, b = max(lo, x[k]), min(hi, x[k + 1])
        if b <= a:
            continue
        h = x[k + 1] - x[k]
        delta = (y[k + 1] - y[k]) / h
        c = (3 * delta - 2 * d[k] - d[k + 1]) / h
        e = (d[k] - 2 * delta + d[k + 1]) / (h * h)
        s0, s1 = a - x[k], b - x[k]
        total += ((s1 - s0) * y[k] + (s1 ** 2 - s0 ** 2) * d[k] / 2
                  + (s1 ** 3 - s0 ** 3) * c / 3 + (s1 ** 4 - s0 ** 4) * e / 4)
    return total


def cubic_integral(x, y, lo: float, hi: float) -> float:
    """VCEG-M33: integral over [lo, hi] of the least-squares polynomial of
    degree min(3, n-1) through (x, y)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    deg = min(3, np.unique(x).size - 1)
    p = np.polyint(np.polyfit(x, y, deg))
    return float(np.polyval(p, hi) - np.polyval(p, lo))


def _avg_delta(xa, ya, xt, yt, method: str, what: str):
    """(average of f_test - f_anchor over the overlap of the x intervals, overlap / union,
    the overlap (lo, hi), f_test at lo and hi by linear interpolation)."""
    if method not in METHODS:
        raise BDError(f"unknown BD interpolation {method!r}; known: {', '.join(METHODS)}")
    curves = []
    for who, x, y in (("anchor", xa, ya), ("test", xt, yt)):
        o = np.argsort(x, kind="stable")
        x, y = x[o], y[o]
        if method == "pchip" and np.any(np.diff(x) == 0):
            raise BDError(f"{who}: two points with the same {what} but different ordinates; "
                          f"PCHIP cannot interpolate them (use the Pareto variant)")
        curves.append((x, y))
    (xa, ya), (xt, yt) = curves
    lo, hi = max(xa[0], xt[0]), min(xa[-1], xt[-1])
    union = max(xa[-1], xt[-1]) - min(xa[0], xt[0])
    if not hi > lo:
        raise BDError(f"the curves do not overlap in {what} "
                      f"(anchor {xa[0]:.4g}..{xa[-1]:.4g}, test {xt[0]:.4g}..{xt[-1]:.4g})")
    integ = pchip_integral if method == "pchip" else cubic_integral
    ia = integ(xa, ya, lo, hi)
    it = integ(xt, yt, lo, hi)
    return ((it - ia) / (hi - lo), (hi - lo) / union if union > 0 else 1.0, (float(lo), float(hi)),
            (float(np.interp(lo, xt, yt)), float(np.interp(hi, xt, yt))))


def bd(rate_anchor, quality_anchor, rate_test, quality_test, *, kind: str = "rate",
       method: str = "pchip", pareto: bool = False) -> BDResult:
    """BD-rate (``kind="rate"``, percent) or BD-quality (``kind="quality"``)
    with the point rules of the module docstring.  Raises :class:`BDError`
    when undefined."""
    notes: list = []
    ra, qa = _clean(rate_anchor, quality_anchor, pareto, "anchor", notes)
    rt, qt = _clean(rate_test, quality_test, pareto, "test", notes)
    mono = _is_monotonic(ra, qa) and _is_monotonic(rt, qt)
    if not mono:
        notes.append("non-monotonic curve: quality does not increase with rate at every point")
    la, lt = np.log10(ra), np.log10(rt)
    if kind == "rate":
        avg, ov, interval, test_at = _avg_delta(qa, la, qt, lt, method, "quality")
        value = (10.0 ** avg - 1.0) * 100.0
    elif kind == "quality":
        avg, ov, interval, test_at = _avg_delta(la, qa, lt, qt, method, "log-rate")
        value = avg
    else:
        raise BDError(f"unknown BD kind {kind!r}; known: rate, quality")
    span = tuple(10.0 ** v for v in test_at) if kind == "rate" else ()
    return BDResult(float(value), kind, method, pareto, int(ra.size), int(rt.size), float(ov), mono, notes,
                    interval, span)


def bd_rate(rate_anchor, quality_anchor, rate_test, quality_test, *, method: str = "pchip",
            pareto: bool = False) -> float:
    """BD-rate in percent (negative: the test saves bits)."""
    return bd(rate_anchor, quality_anchor, rate_test, quality_test, kind="rate", method=method,
              pareto=pareto).value


def bd_quality(rate_anchor, quality_anchor, rate_test, quality_test, *, method: str = "pchip",
               pareto: bool = False) -> float:
    """BD-quality (BD-PSNR in dB for PSNR; positive: the test is better)."""
    return bd(rate_anchor, quality_anchor, rate_test, quality_test, kind="quality", method=method,
              pareto=pareto).value
