"""CTC reports: BD tables (JVET/VCM template style), CSV curves, RD plots; the report is written
as Markdown and as a self-contained HTML page (refsw.ctc.doc).

Conventions (as the JVET CTC templates, JVET-T2010 / the VCM CTC):

* BD-rate per sequence and metric, test against anchor, with ``BdMethod``
  (PCHIP by default).  Negative = the test saves bits.
* Class and Overall rows: the arithmetic mean of the per-sequence values
  that are defined (``n/a`` with the reason when none is).
* EncT / DecT: per sequence the ratio of the mean time per rate point
  (test / anchor; the mean, not the sum, because the two codecs may have
  different numbers of rate points); Class and Overall rows: the geometric
  mean of the per-sequence ratios.
* Images: PSNR in Y'CbCr BT.709 4:2:0 (Y, U, V, YUV 6:1:1) and in RGB,
  rate in bpp; MS-SSIM (RGB) as -10 log10(1 - MS-SSIM) for BD.
  Video: PSNR Y, U, V, YUV, MS-SSIM on Y, rate in kbps.
* Task metrics (``task_*`` columns): Pareto BD-rate (see refsw.ctc.bd).
* Task branch (``TaskBranch``): one curve per codec pooled over all items
  (:func:`pooled_curve`), Pareto BD-rate of the branch against refsw's
  decoded pictures and the anchor (:func:`branch_comparison`).
"""
from __future__ import annotations

import csv
import math
import os
import time
from collections import OrderedDict

import numpy as np

from .bd import BDError, bd
from .doc import Doc

METRICS_VIDEO = [("psnr_y", "Y"), ("psnr_u", "U"), ("psnr_v", "V"), ("psnr_yuv", "YUV"),
                 ("msssim_db", "MS-SSIM")]
METRICS_IMAGE = [("psnr_y", "Y"), ("psnr_u", "U"), ("psnr_v", "V"), ("psnr_yuv", "YUV"),
                 ("psnr_rgb", "RGB"), ("msssim_db", "MS-SSIM")]


def metric_list(results: list[dict], kind: str):
    base = METRICS_IMAGE if kind == "image" else METRICS_VIDEO
    tasks = sorted({k for r in results for k in r if k.startswith("task_") and k != "task_detail"
                    and not k.startswith("task_branch_")})
    return base + [(t, t[5:] + " (Pareto)") for t in tasks]


def _f(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def curves(results: list[dict], codec: str) -> "OrderedDict[str, dict]":
    """Per sequence: class, labels, rates and metric values of ``codec`` (ok points, by rate)."""
    out: OrderedDict = OrderedDict()
    for r in results:
        if r is None or r.get("codec") != codec or r.get("status") != "ok":
            continue
        c = out.setdefault(r["sequence"], {"class": r["class"], "points": []})
        c["points"].append(r)
    for c in out.values():
        c["points"].sort(key=lambda r: _f(r["rate"]))
    return out


#: the JPEG AI common test rates (bpp)
JPEG_AI_RATES = (0.06, 0.12, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)


def quality_at_rates(results: list[dict], codec: str, metric: str, rates=JPEG_AI_RATES) -> list[tuple]:
    """Per rate: (mean quality over the sequences whose curve spans it, number of them), the
    quality of a sequence interpolated linearly in log-rate between its two nearest points;
    (nan, 0) where no curve spans the rate."""
    out = []
    cv = curves(results, codec)
    for R in rates:
        vals = []
        for c in cv.values():
            pts = [(math.log(_f(r["rate"])), _f(r.get(metric))) for r in c["points"]
                   if _f(r["rate"]) > 0 and math.isfinite(_f(r.get(metric)))]
            pts.sort()
            if len(pts) >= 2 and pts[0][0] <= math.log(R) <= pts[-1][0]:
                x = np.array([p[0] for p in pts])
                y = np.array([p[1] for p in pts])
                vals.append(float(np.interp(math.log(R), x, y)))
        out.append((float(np.mean(vals)) if vals else float("nan"), len(vals)))
    return out


def _rate_point_section(results, codecs: list[str], metric: str, label: str, nseq: int, doc: Doc):
    doc.heading(2, "Quality at the JPEG AI rate points")
    doc.para(f"Mean {label} over the images whose RD curve spans the rate (interpolated linearly in "
             f"log-rate between the two nearest points; the count is given when not all {nseq} do; "
             f"'-': no curve reaches the rate).")
    rows = []
    for c in codecs:
        q = quality_at_rates(results, c, metric)
        rows.append([c] + [("-" if n == 0 else f"{v:.2f}" + ("" if n == nseq else f" ({n}/{nseq})")) for v, n in q])
    doc.table(["Codec"] + [f"{r:g} bpp" for r in JPEG_AI_RATES], rows)


def write_curve_csvs(out_dir: str, results: list[dict], kind: str) -> list[str]:
    """``bd/<codec>.<metric>.csv`` with columns name,rate,quality (input of ``refsw-ctc bdrate``)."""
    d = os.path.join(out_dir, "bd")
    os.makedirs(d, exist_ok=True)
    paths = []
    codecs = sorted({r["codec"] for r in results if r})
    for codec in codecs:
        cv = curves(results, codec)
        for m, _ in metric_list(results, kind):
            p = os.path.join(d, f"{codec}.{m}.csv")
            with open(p, "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(["name", "rate", "quality"])
                for seq, c in cv.items():
                    for r in c["points"]:
                        w.writerow([seq, repr(_f(r["rate"])), repr(_f(r.get(m)))])
            paths.append(p)
    return paths


def pooled_curve(results: list[dict], codec: str, name: str, *, bits: str = "bits",
                 time_col: str = "dec_time") -> list[dict]:
    """One point per rate point (label) of ``codec`` over all its items, sorted by rate.

    rate = total ``bits`` / total pixels (bpp); ``ap`` pooled from the
    (score, tp) matches of ``task_detail[name]`` (AP@IoU of the whole set,
    as the VCM CTC score a data set); ``dec_time`` (of ``time_col``) and
    ``net_time`` (the task network, from the detail) in seconds per picture.
    A label that is not ok for every item of the codec is left out."""
    from ..tasks.evaluate import ap_from_matches
    groups: OrderedDict = OrderedDict()
    items = set()
    for r in results:
        if r is None or r.get("codec") != codec:
            continue
        items.add(r["sequence"])
        d = (r.get("task_detail") or {}).get(name)
        if r.get("status") == "ok" and d is not None and r.get(bits) is not None:
            groups.setdefault(r["label"], []).append((r, d))
    out = []
    for label, rs in groups.items():
        if len(rs) != len(items):
            continue
        px = sum(r["width"] * r["height"] * r["frames"] for r, _ in rs)
        pics = sum(r["frames"] for r, _ in rs)
        npos = sum(d["npos"] for _, d in rs)
        out.append({"label": label, "rate": sum(_f(r[bits]) for r, _ in rs) / px, "n": len(rs), "npos": npos,
                    "ap": ap_from_matches(npos, [m for _, d in rs for m in d["matches"]]),
                    "dec_time": sum(_f(r[time_col]) for r, _ in rs) / pics,
                    "net_time": sum(_f(d.get("time", 0.0)) for _, d in rs) / pics})
    return sorted(out, key=lambda p: p["rate"])


def branch_comparison(results: list[dict], anchors: list[str], name: str, method: str = "pchip") -> list[dict]:
    """Task branch against the task network on decoded pictures, pooled curves.

    Rows: path "a" (refsw, the branch on the layers it reads: rate bpp_base,
    quality task_branch_<name>), "b" (refsw, decoded pictures: bpp,
    task_<name>), "c" (each anchor); ``bd`` is the Pareto BD-rate of (a)
    against the row and ``bd_q`` its BD-quality (mean difference of the task
    metric over the common log-rate range, like BD-PSNR), each a BDResult or the
    reason it is undefined.  BD-rate integrates log-rate over the common metric
    range, which is narrow when a curve is flat (a saturating AP); BD-quality
    stays well conditioned there, so both are reported."""
    a = pooled_curve(results, "refsw", "branch_" + name, bits="bits_base", time_col="branch_dec_time")
    rows = [{"path": "a", "codec": "refsw", "curve": a, "bd": None, "bd_q": None}]
    for codec in ["refsw"] + [c for c in anchors if c != "refsw"]:
        c = pooled_curve(results, codec, name)
        v = {}
        for kind in ("rate", "quality"):
            try:
                v[kind] = bd([p["rate"] for p in c], [p["ap"] for p in c], [p["rate"] for p in a],
                             [p["ap"] for p in a], kind=kind, method=method, pareto=True)
            except BDError as e:
                v[kind] = str(e)
        rows.append({"path": "b" if codec == "refsw" else "c", "codec": codec, "curve": c, "bd": v["rate"],
                     "bd_q": v["quality"]})
    return rows


def branch_names(results: list[dict]) -> list[str]:
    """Task-metric names that have task-branch details (``task_detail['branch_<name>']``)."""
    return sorted({k[7:] for r in results if r for k in (r.get("task_detail") or {}) if k.startswith("branch_")})


PATHS = {"a": "task branch on the latent layers it reads (no pixels)",
         "b": "task network on the decoded pictures",
         "c": "task network on the anchor's decoded pictures"}


def _branch_section(results, anchor: str, method: str, doc: Doc) -> list[str]:
    """Summary lines of the task-branch comparison; its sections are added to ``doc``."""
    summary = []
    for name in branch_names(results):
        rows = branch_comparison(results, [anchor], name, method)
        n = max((p["n"] for r in rows for p in r["curve"]), default=0)
        summary.append(f"Task branch ({name}, pooled over {n} items): BD-rate (BD-{name}) of (a) the branch vs "
                       + ", ".join(f"({r['path']}) {r['codec']} {_pct(r['bd'])} ({_signed(r['bd_q'])})"
                                   for r in rows[1:]))
        doc.heading(2, f"Task branch: {name}")
        doc.para(f"One curve per path, pooled over all items (AP of all pictures at each rate point; bpp = "
                 f"total bits / total pixels); BD-rate and BD-{name} (mean {name} difference over the common "
                 f"log-rate range) of (a) against each path ({method}, Pareto). Times: seconds per picture.")
        table = []
        for r in rows:
            c = r["curve"] or [{"rate": math.nan, "ap": math.nan, "dec_time": math.nan, "net_time": math.nan}]
            mean = {k: sum(p[k] for p in c) / len(c) for k in ("dec_time", "net_time")}
            table.append([f"({r['path']})", r["codec"], PATHS[r["path"]], len(r["curve"]),
                          f"{_num(c[0]['rate'], 4)}..{_num(c[-1]['rate'], 4)}",
                          f"{_num(min(p['ap'] for p in c))}..{_num(max(p['ap'] for p in c))}",
                          "-" if r["bd"] is None else _pct(r["bd"]), "-" if r["bd_q"] is None else _signed(r["bd_q"]),
                          _num(mean["dec_time"]), _num(mean["net_time"])])
        doc.table(["Path", "Codec", "What", "Points", "bpp", name, "BD-rate of (a)", f"BD-{name} of (a)",
                   "Decode [s]", "Task net [s]"], table)
        reasons = sorted({r[k] for r in rows for k in ("bd", "bd_q") if isinstance(r[k], str)})
        if reasons:
            doc.para("n/a: " + "; ".join(reasons) + ".")
        doc.table(["Path", "Codec", "Point", "bpp", name, "GT boxes"],
                  [[f"({r['path']})", r["codec"], p["label"], _num(p["rate"], 4), _num(p["ap"]), p["npos"]]
                   for r in rows for p in r["curve"]])
    return summary


def _geomean(xs):
    xs = [x for x in xs if x and x > 0 and math.isfinite(x)]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else math.nan


def compare(results: list[dict], test: str, anchor: str, kind: str, method: str = "pchip"):
    """Per-sequence BD-rates and time ratios of ``test`` against ``anchor``.

    Returns (rows, metrics): rows is a list of dicts with sequence, class,
    ``bd[metric]`` (BDResult or the reason string), enct, dect."""
    ct, ca = curves(results, test), curves(results, anchor)
    metrics = metric_list(results, kind)
    rows = []
    for seq, a in ca.items():
        t = ct.get(seq)
        row = {"sequence": seq, "class": a["class"], "bd": {}, "enct": math.nan, "dect": math.nan}
        for m, _ in metrics:
            if t is None:
                row["bd"][m] = f"no {test} result"
                continue
            pareto = m.startswith("task_")
            try:
                row["bd"][m] = bd([_f(r["rate"]) for r in a["points"]], [_f(r.get(m)) for r in a["points"]],
                                  [_f(r["rate"]) for r in t["points"]], [_f(r.get(m)) for r in t["points"]],
                                  kind="rate", method=method, pareto=pareto)
            except BDError as e:
                row["bd"][m] = str(e)
        if t is not None:
            for key, col in (("enct", "enc_time"), ("dect", "dec_time")):
                ta = sum(_f(r[col]) for r in a["points"]) / len(a["points"])
                tt = sum(_f(r[col]) for r in t["points"]) / len(t["points"])
                row[key] = tt / ta if ta > 0 else math.nan
        rows.append(row)
    return rows, metrics


def aggregate(rows: list[dict], metrics) -> "OrderedDict[str, dict]":
    """Class rows then 'Overall': mean BD of defined values, geometric mean of time ratios."""
    groups: OrderedDict = OrderedDict()
    for r in sorted(rows, key=lambda r: r["class"]):
        groups.setdefault(r["class"], []).append(r)
    groups["Overall"] = list(rows)
    out: OrderedDict = OrderedDict()
    for g, rs in groups.items():
        agg = {"n": len(rs), "bd": {}, "enct": _geomean([r["enct"] for r in rs]),
               "dect": _geomean([r["dect"] for r in rs])}
        for m, _ in metrics:
            vals = [r["bd"][m].value for r in rs if not isinstance(r["bd"].get(m), str) and m in r["bd"]]
            if vals:
                agg["bd"][m] = (sum(vals) / len(vals), len(vals))
            else:
                reasons = sorted({r["bd"][m] for r in rs if isinstance(r["bd"].get(m), str)})
                agg["bd"][m] = reasons[0] if reasons else "no data"
        out[g] = agg
    return out


def _signed(v, nd: int = 4) -> str:
    """A BD-quality value (BDResult) with its sign, or n/a."""
    if v is None or isinstance(v, str):
        return "n/a"
    return f"{v.value:+.{nd}f}" + ("" if v.monotonic else " (nm)")


def _pct(v) -> str:
    if isinstance(v, str):
        return "n/a"
    if isinstance(v, tuple):
        val, n = v
        return f"{val:.2f}%"
    return f"{v.value:.2f}%" + ("" if v.monotonic else " (nm)")


def _ratio(x) -> str:
    return "n/a" if not math.isfinite(x) else f"{100 * x:.0f}%"


def _num(x, nd=3) -> str:
    x = _f(x)
    if math.isnan(x):
        return "-"
    if math.isinf(x):
        return "inf"
    return f"{x:.{nd}f}"


# --------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------

def plot_rd(out_dir: str, results: list[dict], codecs: list[str], kind: str) -> dict:
    """One PNG per sequence (quality vs rate, every codec); {sequence: path}.
    Empty when matplotlib is not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return {}
    d = os.path.join(out_dir, "plots")
    os.makedirs(d, exist_ok=True)
    per = {c: curves(results, c) for c in codecs}
    seqs = list(OrderedDict.fromkeys(s for c in codecs for s in per[c]))
    panels = [("psnr_rgb", "PSNR RGB [dB]"), ("psnr_yuv", "PSNR YUV [dB]")] if kind == "image" else \
        [("psnr_yuv", "PSNR YUV 6:1:1 [dB]"), ("psnr_y", "PSNR Y [dB]")]
    xlabel = "rate [bpp]" if kind == "image" else "rate [kbps]"
    paths = {}
    for seq in seqs:
        fig, axs = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8))
        for ax, (m, lab) in zip(axs, panels):
            for c in codecs:
                pts = per[c].get(seq, {}).get("points", [])
                xs = [_f(r["rate"]) for r in pts if math.isfinite(_f(r.get(m)))]
                ys = [_f(r.get(m)) for r in pts if math.isfinite(_f(r.get(m)))]
                lossless = [_f(r["rate"]) for r in pts if _f(r.get(m)) == math.inf]
                name = c.upper() if c != "refsw" else "refsw"
                if xs:
                    ax.plot(xs, ys, "o-", label=name, ms=4)
                if lossless:
                    ax.plot([], [], " ", label=f"{name}: lossless at {lossless[0]:.3g} (not drawn)")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(lab)
            ax.grid(True, alpha=0.4)
            ax.legend(fontsize=8)
        fig.suptitle(seq, fontsize=10)
        fig.tight_layout()
        p = os.path.join(d, f"{seq}.png")
        fig.savefig(p, dpi=90)
        plt.close(fig)
        paths[seq] = p
    return paths


# --------------------------------------------------------------------------
# Report (Markdown and HTML, refsw.ctc.doc)
# --------------------------------------------------------------------------

def build_report(run, cond, test: str, anchor: str, *, argv=None, plots: bool = True) -> tuple[str, list[str]]:
    """Write ``report-<test>-vs-<anchor>.md`` and the same report as a self-contained HTML page,
    ``report-<test>-vs-<anchor>.html`` (tables, RD plots inline), + bd/*.csv, plots/*.png in
    ``run.out_dir``; returns (path of the Markdown report, summary lines)."""
    results = [r for r in run.results if r is not None]
    kind = run.testset.kind
    method = cond.ctc.BdMethod
    write_curve_csvs(run.out_dir, results, kind)
    rows, metrics = compare(results, test, anchor, kind, method)
    agg = aggregate(rows, metrics)
    others = sorted({r["codec"] for r in results} - {anchor, test})   # run with several anchors: all in one plot
    plot_paths = plot_rd(run.out_dir, results, [anchor] + others + [test], kind) if plots else {}
    unit = "bpp" if kind == "image" else "kbps"
    errors = [r for r in results if r.get("status") != "ok"]

    summary = []
    ov = agg.get("Overall")
    npts = {c: len([r for r in results if r["codec"] == c and r.get("status") == "ok"]) for c in (test, anchor)}
    av = run.versions.get(anchor, {})
    summary.append(f"Condition {cond.name} ({cond.structure.upper()}), test set {run.testset.name} "
                   f"({len(run.testset.items)} {'images' if kind == 'image' else 'clips'}); "
                   f"{test} (CodingMode {cond.enc.CodingMode}, {npts[test]} points) vs {anchor.upper()} "
                   f"({av.get('encoder', av.get('libjpeg', ''))}, {npts[anchor]} points) over all items; "
                   f"BD {method}")
    if cond.enc.CodingMode == "pcm":
        summary.append("note: CodingMode pcm is lossless (one rate point per item, PSNR = inf): BD-rate is "
                       "undefined; use CodingMode learned with QualityPoints for RD curves")
    if ov:
        summary.append("Overall BD-rate: " + "  ".join(f"{lab} {_pct(ov['bd'][m])}" for m, lab in metrics)
                       + f"  EncT {_ratio(ov['enct'])}  DecT {_ratio(ov['dect'])}")
        reasons = sorted({v for v in ov["bd"].values() if isinstance(v, str)})
        for why in reasons:
            summary.append(f"n/a: {why}")
    for c in (anchor, test):
        pts = [r for r in results if r["codec"] == c and r.get("status") == "ok"]
        if pts:
            q = "psnr_rgb" if kind == "image" else "psnr_yuv"
            fin = [_f(r.get(q)) for r in pts if math.isfinite(_f(r.get(q)))]
            summary.append(f"{c}: {len(pts)} points, rate {min(_f(r['rate']) for r in pts):.4g}.."
                           f"{max(_f(r['rate']) for r in pts):.4g} {unit}, {q} "
                           + (f"{min(fin):.2f}..{max(fin):.2f} dB" if fin else "")
                           + ((" + " if fin else "") + "lossless" if len(fin) < len(pts) else "")
                           + f", enc {sum(_f(r['enc_time']) for r in pts):.1f} s, "
                           f"dec {sum(_f(r['dec_time']) for r in pts):.1f} s")
    doc = Doc(f"CTC report: {cond.name} — {test} vs {anchor.upper()}")
    branch = Doc("")                 # the task-branch sections, placed after the rate points
    summary += _branch_section(results, anchor, method, branch)
    if errors:
        summary.append(f"{len(errors)} point(s) failed; see the report")

    doc.heading(1, doc.title)
    doc.para(f"Generated {time.strftime('%Y-%m-%d %H:%M:%S %z')} by `{' '.join(argv or ['refsw-ctc'])}`.")
    doc.heading(2, "Summary")
    doc.pre(summary)
    doc.para(f"BD-rate of {test} against {anchor.upper()} ({method}; negative = fewer bits for the same "
             f"quality; (nm) = a non-monotonic curve, see docs/ctc.md). EncT/DecT: test/anchor time per "
             f"rate point (geometric mean over sequences).")
    doc.table(["Class", "Seqs"] + [lab for _, lab in metrics] + ["EncT", "DecT"],
              [[f"**{g}**" if g == "Overall" else g, a["n"]] + [_pct(a["bd"][m]) for m, _ in metrics]
               + [_ratio(a["enct"]), _ratio(a["dect"])] for g, a in agg.items()])
    reasons = sorted({v for a in agg.values() for v in a["bd"].values() if isinstance(v, str)})
    if reasons:
        doc.para("n/a means BD-rate is undefined: " + "; ".join(reasons) + ".")
    doc.heading(2, "Per sequence")
    per_seq = []
    for r in rows:
        notes = sorted({n for v in r["bd"].values() if not isinstance(v, str) for n in v.notes
                        if "non-finite" not in n})
        notes += [f"overlap {v.overlap:.0%} ({lab})" for (m, lab) in metrics
                  for v in [r["bd"][m]] if not isinstance(v, str) and v.overlap < 0.75]
        main = "psnr_rgb" if kind == "image" else "psnr_yuv"
        m0, lab0 = next(((m, lab) for m, lab in metrics if m == main), metrics[0])
        v0 = r["bd"][m0]
        if not isinstance(v0, str) and v0.interval and v0.rate_span:   # the range the BD-rate covers
            notes.append(f"{lab0} range {v0.interval[0]:.2f}..{v0.interval[1]:.2f} ({test} "
                         f"{v0.rate_span[0]:.3g}..{v0.rate_span[1]:.3g} {unit})")
        per_seq.append([r["class"], r["sequence"]] + [_pct(r["bd"][m]) for m, _ in metrics]
                       + [_ratio(r["enct"]), _ratio(r["dect"]), "; ".join(notes)])
    doc.table(["Class", "Sequence"] + [lab for _, lab in metrics] + ["EncT", "DecT", "Notes"], per_seq)

    doc.heading(2, "Rate points")
    doc.table(["Codec", "Sequence", "Point", unit] + [lab for _, lab in metrics] + ["Enc [s]", "Dec [s]"],
              [[c, seq, r["label"], _num(r["rate"], 4)] + [_num(r.get(m), 3) for m, _ in metrics]
               + [_num(r["enc_time"], 2), _num(r["dec_time"], 2)]
               for c in (anchor, test) for seq, cv in curves(results, c).items() for r in cv["points"]])
    if kind == "image":
        q = "psnr_rgb" if any("psnr_rgb" in r for r in results) else metrics[0][0]
        _rate_point_section(results, [anchor] + others + [test], q, dict(metrics).get(q, q),
                            len(run.testset.items), doc)
    doc.blocks += branch.blocks
    if errors:
        doc.heading(2, "Failed points")
        doc.bullets([f"{r['codec']} {r['sequence']} {r['label']}: {r.get('notes', '')}" for r in errors])
    if plot_paths:
        doc.heading(2, "RD plots")
        doc.images(list(plot_paths.items()))
    elif plots:
        doc.para("(RD plots skipped: matplotlib is not installed.)")

    doc.heading(2, "Conditions and versions")
    items = [f"cfg files: {', '.join(cond.files)} (every setting with its source: `run-*.json`)",
             (f"test set `{run.testset.name}` ({run.testset.manifest or run.testset.root}):",
              [f"{it.name} (class {it.cls}, {it.width}x{it.height}"
               + (f", {it.frames} frames @ {it.fps:g} fps" if it.kind == "video" else "")
               + f"), licence: {it.licence or 'not stated'}; sha256 {it.prepared_sha256[:16]}…"
               for it in run.testset.items])]
    items += [f"{c}: " + ", ".join(f"{k} `{x}`" for k, x in v.items()) for c, v in run.versions.items()]
    ex = next((r for r in results if r["codec"] == anchor and r.get("status") == "ok"), None)
    if ex:
        items.append(f"{anchor} encode command (first point): `{' '.join(ex.get('enc_cmd', []))}`")
        items.append(f"{anchor} decode command: `{' '.join(ex.get('dec_cmd', []))}`")
    ex = next((r for r in results if r["codec"] == test and r.get("status") == "ok"), None)
    if ex:
        items.append(f"{test}: `{' '.join(ex.get('enc_cmd', []))}`")
    items.append("per-point results (metrics, times, exact commands, keys): `<codec>/<sequence>/<point>.json`; "
                 "all points: `results.csv`; curves for `refsw-ctc bdrate`: `bd/<codec>.<metric>.csv`.")
    doc.bullets(items)
    path = os.path.join(run.out_dir, f"report-{test}-vs-{anchor}.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write(doc.markdown(run.out_dir))
    with open(html_path(path), "w", encoding="utf-8") as f:
        f.write(doc.html())
    return path, summary


def html_path(md_path: str) -> str:
    """The HTML report written beside the Markdown one."""
    return os.path.splitext(md_path)[0] + ".html"


def anchor_summary(run, anchors: list[str]) -> tuple[str, list[str]]:
    """``anchors.md`` for ``refsw-ctc anchors``: per codec and sequence the
    rate points, versions and commands; returns (path, printed lines)."""
    results = [r for r in run.results if r is not None]
    kind = run.testset.kind
    write_curve_csvs(run.out_dir, results, kind)
    unit = "bpp" if kind == "image" else "kbps"
    q = "psnr_yuv"
    lines = []
    md = [f"# Anchors ({', '.join(a.upper() for a in anchors)})", "",
          f"Generated {time.strftime('%Y-%m-%d %H:%M:%S %z')}.", ""]
    for a in anchors:
        v = run.versions.get(a, {})
        pts = [r for r in results if r["codec"] == a]
        ok = [r for r in pts if r.get("status") == "ok"]
        enc = sum(_f(r["enc_time"]) for r in ok)
        dec = sum(_f(r["dec_time"]) for r in ok)
        lines.append(f"{a.upper()} ({v.get('encoder', v.get('libjpeg', ''))}; {v.get('ffmpeg', '')[:40]}): "
                     f"{len(ok)}/{len(pts)} points ok, encode {enc:.2f} s, decode {dec:.2f} s")
        md += [f"## {a.upper()}", "", "Versions: " + ", ".join(f"{k} `{x}`" for k, x in v.items()), ""]
        md += [f"| Sequence | Point | {unit} | PSNR Y | PSNR YUV | Enc [s] | Dec [s] |", "|---|---|---|---|---|---|---|"]
        for seq, cv in curves(results, a).items():
            for r in cv["points"]:
                lines.append(f"  {seq:<24} {r['label']:<6} {unit}={_f(r['rate']):10.4f} "
                             f"Y={_f(r.get('psnr_y')):7.3f} YUV={_f(r.get(q)):7.3f} dB "
                             f"enc={_f(r['enc_time']):6.2f}s dec={_f(r['dec_time']):5.2f}s")
                md.append(f"| {seq} | {r['label']} | {_num(r['rate'], 4)} | {_num(r.get('psnr_y'))} | "
                          f"{_num(r.get(q))} | {_num(r['enc_time'], 2)} | {_num(r['dec_time'], 2)} |")
        if ok:
            md += ["", f"Encode: `{' '.join(ok[0].get('enc_cmd', []))}`", "",
                   f"Decode: `{' '.join(ok[0].get('dec_cmd', []))}`", ""]
        for r in pts:
            if r.get("status") != "ok":
                lines.append(f"  FAILED {r['sequence']} {r['label']}: {r.get('notes', '')}")
    path = os.path.join(run.out_dir, f"anchors-{'+'.join(anchors)}.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(md) + "\n")
    return path, lines
