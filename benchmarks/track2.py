"""Track 2 benchmark: refsw (inner codec + tools) against the inner-codec-only anchor.

    .venv/bin/python benchmarks/track2.py [--structures ra,ld,ai] [--qps 32,37,42,47]
        [--codec hevc] [--frames 33] [--network mtcnn] [--network-args k=v,...]
        [--gt-score 0.9] [--det-score 0.7] [--set Key=Value ...] [--json out.json]

Content: the default video (carphone_qcif_33.y4m, see refsw/content.py), or --input.
Task: detection with a task network of refsw.tasks given by name or
module:Class, the interface the ROI tool uses (default: the offline MTCNN
face detector; ``--network hog --network-args upscale=2`` for pedestrians).
The reference of the task metric is the network's own detections on the
UNCOMPRESSED source with a score of at least --gt-score (no human annotation
exists for these clips); mAP@0.5 is the AP of the detections on the decoded
video (scores >= --det-score) against that reference; mAP@[.5:.95] is also
reported.  Scores are in the network's own range (MTCNN: probability; HOG: SVM margin).

Anchor: the same inner codec (x265 / vvenc via ffmpeg) with the same coding
structure and QP, coding the source as is; its rate is the inner bitstream
alone.  Test: refsw-encode with the cfg of the structure (ctc/ra.cfg,
ctc/ld.cfg, ctc/ai_video.cfg) at the same QP, PictureHash 0; its rate is the
whole refsw bitstream (SPS, PH, RESTORATION and INNER units).  BD-rate:
refsw.ctc.bd (pchip; Pareto points for the task metric) when present.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from refsw import cfg as cfgmod  # noqa: E402
import refsw.encoder  # noqa: E402,F401  (registers the coding modes)
from refsw.content import default_video_path  # noqa: E402
from refsw.decoder import Decoder  # noqa: E402
from refsw.encoder import Encoder, pad_picture  # noqa: E402
from refsw.metrics import psnr  # noqa: E402
from refsw.options import ENCODER_OPTIONS  # noqa: E402
from refsw.picture import Picture, open_input  # noqa: E402
from refsw import tasks  # noqa: E402
from refsw.tasks.evaluate import average_precision, detections_as_tuples, ground_truth, map_50_95  # noqa: E402
from refsw.decoder.track2 import inner as dec_inner  # noqa: E402
from refsw.encoder.track2 import inner  # noqa: E402

GT_SCORE = 0.9
DET_SCORE = 0.7
CFGS = {"ra": "ra.cfg", "ld": "ld.cfg", "ai": "ai_video.cfg"}


class CachedNet(tasks.TaskNetwork):
    """A task network with a cache of its detections keyed by the picture's samples."""

    def __init__(self, net):
        self.net, self.cache = net, {}
        self.name = net.name

    def detect(self, picture):
        h = hashlib.md5(b"".join(np.ascontiguousarray(p).tobytes() for p in picture.planes)).hexdigest()
        if h not in self.cache:
            self.cache[h] = self.net.detect(picture)
        return self.cache[h]


def bd_rate(ra, qa, rt, qt, pareto=False):
    try:
        from refsw.ctc.bd import BDError, bd
    except ImportError:  # pragma: no cover
        return float("nan"), "refsw.ctc.bd missing"
    try:
        r = bd(ra, qa, rt, qt, kind="rate", method="pchip", pareto=pareto)
        return r.value, f"overlap {r.overlap:.2f}" + ("" if r.monotonic else ", non-monotonic")
    except BDError as e:
        return float("nan"), str(e)


def measure(pics, out, gt, net):
    dets = [net.detect(p) for p in out]
    d = detections_as_tuples(dets, net.det_score)
    ap50 = average_precision(gt, d, 0.5)
    ap = map_50_95(gt, d)
    ps = [psnr(a, b) for a, b in zip(pics, out)]
    return dict(map50=ap50, map5095=ap, psnr_y=float(np.mean([v[0] for v in ps])),
                psnr_yuv=float(np.mean([v[3] for v in ps])))


def run_anchor(c, pics, qp, gt, net, fps):
    W, H = pics[0].width + pics[0].width % 2, pics[0].height + pics[0].height % 2
    padded = [pad_picture(p, W, H) for p in pics]
    st = inner.Structure(intra_period=c.IntraPeriod, gop_size=c.GOPSize, low_delay=c.LowDelay, qp=qp,
                         preset=c.InnerPreset)
    codec = inner.CODEC_IDC[c.InnerCodec]
    depth = pics[0].bit_depth
    t0 = time.perf_counter()
    s = inner.encode(codec, [p.planes for p in padded], W, H, depth, inner.inner_bit_depth(codec, depth), st)
    t1 = time.perf_counter()
    dec = dec_inner.decode(codec, s.data, W, H, inner.inner_bit_depth(codec, depth), len(pics))
    t2 = time.perf_counter()
    out = [Picture([pl[:p.shape[0], :p.shape[1]] for pl, p in zip(planes, pic.planes)], "420", depth)
           for planes, pic in zip(dec, pics)]
    r = measure(pics, out, gt, net)
    r.update(qp=qp, bytes=len(s.data), kbps=8 * len(s.data) * fps / len(pics) / 1000, enc_s=t1 - t0, dec_s=t2 - t1)
    return r


def run_test(argv_cfg, pics, qp, gt, net, fps):
    c, _ = cfgmod.parse(argv_cfg + ["--QP", str(qp), "--PictureHash", "0"], ENCODER_OPTIONS)
    enc = Encoder(c)
    t0 = time.perf_counter()
    data = enc.encode(pics)
    t1 = time.perf_counter()
    out = [d.picture for d in Decoder().decode(data)]
    t2 = time.perf_counter()
    r = measure(pics, out, gt, net)
    r.update(qp=qp, bytes=len(data), kbps=8 * len(data) * fps / len(pics) / 1000, enc_s=t1 - t0, dec_s=t2 - t1)
    return r


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--structures", default="ra,ld,ai")
    ap.add_argument("--qps", default="32,37,42,47", help="QPs of the anchor and of refsw")
    ap.add_argument("--test-qps", default="", help="QPs of refsw if different from --qps")
    ap.add_argument("--codec", default="hevc")
    ap.add_argument("--frames", type=int, default=33)
    ap.add_argument("--input", default="")
    ap.add_argument("--network", default="mtcnn", help="task network of the metric: name or module:Class")
    ap.add_argument("--network-args", default="", help="its settings, key=value,key=value")
    ap.add_argument("--gt-score", type=float, default=GT_SCORE, help="pseudo ground truth: score >= this")
    ap.add_argument("--det-score", type=float, default=DET_SCORE, help="detections on decoded video: score >= this")
    ap.add_argument("--set", action="append", default=[], help="Key=Value override of the refsw cfg")
    ap.add_argument("--json", default="")
    a = ap.parse_args(argv)
    path = a.input or default_video_path()
    pics = list(open_input(path, max_frames=a.frames))
    fps = 30000 / 1001
    net = CachedNet(tasks.get_task_network(a.network, **tasks.parse_network_args(a.network_args)))
    net.det_score = a.det_score
    # the ROI tool of the test runs (RoiDetector) shares the cache when it names the same network
    tasks.TASK_NETWORKS["_bench"] = lambda **kw: net
    t0 = time.perf_counter()
    gt = ground_truth([net.detect(p) for p in pics], a.gt_score)
    print(f"# content {os.path.basename(path)}: {len(pics)} pictures {pics[0].width}x{pics[0].height}; "
          f"task network {a.network} {a.network_args}; reference: its detections on the uncompressed source, "
          f"score >= {a.gt_score}: {sum(map(len, gt))} boxes ({time.perf_counter() - t0:.1f} s)")
    qps = [int(q) for q in a.qps.split(",")]
    tqps = [int(q) for q in a.test_qps.split(",")] if a.test_qps else qps
    results = {}
    for s in a.structures.split(","):
        argv_cfg = ["--cfg", os.path.join(ROOT, "ctc", CFGS[s]), "--InnerCodec", a.codec]
        for kv in a.set:
            k, v = kv.split("=", 1)
            argv_cfg += [f"--{k}", v]
        c, _ = cfgmod.parse(argv_cfg, ENCODER_OPTIONS)
        if (c.RoiDetector, c.RoiDetectorArgs) == (a.network, a.network_args):   # share the detection cache
            argv_cfg += ["--RoiDetector", "_bench", "--RoiDetectorArgs", ""]
        anc = [run_anchor(c, pics, q, gt, net, fps) for q in qps]
        tst = [run_test(argv_cfg, pics, q, gt, net, fps) for q in tqps]
        bd_task, n1 = bd_rate([r["kbps"] for r in anc], [r["map50"] for r in anc],
                              [r["kbps"] for r in tst], [r["map50"] for r in tst], pareto=True)
        bd_task2, n2 = bd_rate([r["kbps"] for r in anc], [r["map5095"] for r in anc],
                               [r["kbps"] for r in tst], [r["map5095"] for r in tst], pareto=True)
        bd_psnr, n3 = bd_rate([r["kbps"] for r in anc], [r["psnr_yuv"] for r in anc],
                              [r["kbps"] for r in tst], [r["psnr_yuv"] for r in tst])
        results[s] = dict(anchor=anc, test=tst, bd_map50=bd_task, bd_map5095=bd_task2, bd_psnr=bd_psnr,
                          notes=[n1, n2, n3])
        print(f"\n## {s.upper()} ({a.codec}, cfg {CFGS[s]}{' ' + ' '.join(a.set) if a.set else ''})")
        print("| run | QP | kbit/s | mAP@0.5 | mAP@[.5:.95] | PSNR-Y | PSNR-YUV | enc s | dec s |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name, rows in (("anchor", anc), ("refsw", tst)):
            for r in rows:
                print(f"| {name} | {r['qp']} | {r['kbps']:.1f} | {r['map50']:.3f} | {r['map5095']:.3f} | "
                      f"{r['psnr_y']:.2f} | {r['psnr_yuv']:.2f} | {r['enc_s']:.2f} | {r['dec_s']:.2f} |")
        print(f"BD-rate mAP@0.5: {bd_task:+.1f}% ({n1}); mAP@[.5:.95]: {bd_task2:+.1f}% ({n2}); "
              f"PSNR-YUV: {bd_psnr:+.1f}% ({n3})")
    print("\n| structure | BD-rate mAP@0.5 | BD-rate mAP@[.5:.95] | BD-rate PSNR-YUV | anchor enc/dec s | refsw enc/dec s |")
    print("|---|---|---|---|---|---|")
    for s, r in results.items():
        ae = sum(x["enc_s"] for x in r["anchor"]); ad = sum(x["dec_s"] for x in r["anchor"])
        te = sum(x["enc_s"] for x in r["test"]); td = sum(x["dec_s"] for x in r["test"])
        print(f"| {s.upper()} | {r['bd_map50']:+.1f}% | {r['bd_map5095']:+.1f}% | {r['bd_psnr']:+.1f}% | "
              f"{ae:.1f} / {ad:.1f} | {te:.1f} / {td:.1f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1, default=lambda o: None if isinstance(o, float) and math.isnan(o) else o)
    return 0


if __name__ == "__main__":
    sys.exit(main())
