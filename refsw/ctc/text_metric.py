"""Text-detection precision, recall and F1 at IoU 0.5 (Track 1 task metric; non-normative).

    TaskMetric      : refsw.ctc.text_metric:text_f1     # columns task_F1, task_precision, task_recall
    TaskNetwork     : ppocr_det        # default; a split network or task network name, or module:Class
    TaskNetworkArgs : limit_type=none  # its settings

Matching (:func:`match_boxes`), per picture: the IoU of every (detection,
ground-truth) pair of axis-aligned boxes is computed; pairs with IoU >= 0.5
are taken greedily in descending IoU order (ties: the lower detection index,
then the lower ground-truth index first), each detection and each
ground-truth box at most once.  Matched detections are true positives,
unmatched detections false positives, unmatched ground-truth boxes false
negatives.  Scores play no part: every detection the network outputs counts
(the network applies its own threshold, ``box_thresh`` for ppocr_det).

Over a set of pictures the counts are summed (pooled), then
precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2PR / (P + R).
With no detection precision is 1, with no ground truth recall is 1, so a
picture without text and without detections scores F1 = 1, and a false
detection there F1 = 0.

Ground truth: the item's ``boxes`` in the test-set manifest (``[[x0, y0,
x1, y1], ...]`` per picture item, or per frame ``[[[...], ...], ...]``; see
ctc/testsets/text.json and refsw/tasks/text_data.py).  Each point's detail
(``task_detail`` in its JSON) keeps TP, FP, FN, the network and its time, so
a whole test set can be pooled (:func:`pooled_prf`).  A picture without
text scores F1 = 0 or 1, so the per-item values (and their BD-rates) are
coarse; the set's curve is the pooled one, one point per rate point:

    python -m refsw.ctc.text_metric ctc-results/task_text    # codec, point, bpp, P, R, F1
"""
from __future__ import annotations

import functools
import glob
import json
import os
import time

import numpy as np

from .tasks import TaskMetric

IOU = 0.5
NAME = "F1"
DEFAULT_NETWORK = "ppocr_det"


def iou_matrix(a, b) -> np.ndarray:
    """IoU of every box of ``a`` (N x 4) with every box of ``b`` (M x 4), x0, y0, x1, y1."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    area = lambda x: np.clip(x[:, 2] - x[:, 0], 0, None) * np.clip(x[:, 3] - x[:, 1], 0, None)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def match_boxes(dets, gt, iou_thr: float = IOU) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching by IoU: [(detection index, ground-truth index, IoU)]
    of the pairs with IoU >= iou_thr, taken in descending IoU order (see the module docstring)."""
    m = iou_matrix(np.asarray([d[:4] for d in dets], np.float64), gt)
    cand = [(-m[i, j], i, j) for i, j in zip(*np.nonzero(m >= iou_thr))]
    cand.sort()
    used_d, used_g, out = set(), set(), []
    for neg, i, j in cand:
        if i not in used_d and j not in used_g:
            used_d.add(i)
            used_g.add(j)
            out.append((int(i), int(j), float(-neg)))
    return out


def prf(tp: int, fp: int, fn: int) -> dict:
    """Precision, recall, F1 from counts (P = 1 without detections, R = 1 without ground truth)."""
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "F1": f, "tp": int(tp), "fp": int(fp), "fn": int(fn)}


def text_prf(gt, dets, iou_thr: float = IOU) -> dict:
    """P, R, F1 (and TP, FP, FN) of detections against ground truth over pictures.

    gt    per picture, ground-truth boxes (x0, y0, x1, y1)
    dets  per picture, detections: (x0, y0, x1, y1[, score]) tuples or objects with x0..y1
    Counts are pooled over the pictures before P, R and F1 are computed."""
    if len(gt) != len(dets):
        raise ValueError(f"text_prf: {len(gt)} ground-truth pictures, {len(dets)} detection pictures")
    tp = fp = fn = 0
    for g, d in zip(gt, dets):
        d = [_box(x) for x in d]
        n = len(match_boxes(d, np.asarray(g, np.float64).reshape(-1, 4), iou_thr))
        tp, fp, fn = tp + n, fp + len(d) - n, fn + len(g) - n
    return prf(tp, fp, fn)


def _box(d):
    if hasattr(d, "x0"):
        return (float(d.x0), float(d.y0), float(d.x1), float(d.y1))
    return tuple(float(v) for v in d[:4])


def pooled_prf(details) -> dict:
    """P, R, F1 of a test set from the per-point details ({"tp", "fp", "fn"}) of its items."""
    details = list(details)
    return prf(sum(d["tp"] for d in details), sum(d["fp"] for d in details), sum(d["fn"] for d in details))


def item_ground_truth(item: dict, n: int) -> list:
    """Per picture, the ground-truth boxes of a test-set item (manifest key ``boxes``)."""
    boxes = item.get("boxes")
    if boxes is None:
        boxes = (item.get("extra") or {}).get("boxes")
    if boxes is None:
        raise ValueError(f"test-set item {item.get('name')}: no 'boxes' (ground truth of the text metric); "
                         f"use a test set with text annotations, e.g. TestSet : text")
    per_frame = len(boxes) > 0 and len(boxes[0]) > 0 and isinstance(boxes[0][0], (list, tuple))
    if not per_frame:
        boxes = [boxes]
    if len(boxes) != n:
        raise ValueError(f"test-set item {item.get('name')}: boxes for {len(boxes)} picture(s), {n} decoded")
    return [[tuple(float(v) for v in b) for b in frame] for frame in boxes]


class TextF1(TaskMetric):
    """Text-detection F1 (with precision and recall) at IoU 0.5 against the item's boxes."""

    name = NAME

    def __init__(self, net=None, iou_thr: float = IOU):
        self.net = net if net is not None else _network(DEFAULT_NETWORK, "")
        self.iou_thr = float(iou_thr)

    def score(self, item: dict, dets, seconds: float = 0.0) -> dict:
        gt = item_ground_truth(item, len(dets))
        r = text_prf(gt, dets, self.iou_thr)
        detail = {k: r[k] for k in ("tp", "fp", "fn")}
        detail.update(time=seconds, pictures=len(dets), iou=self.iou_thr,
                      network=getattr(self.net, "name", type(self.net).__name__))
        return {"F1": r["F1"], "precision": r["precision"], "recall": r["recall"], "detail": {NAME: detail}}

    def evaluate(self, item, sources, decoded):
        t0 = time.perf_counter()
        dets = [self.net.detect(p) for p in decoded]
        return self.score(item, dets, time.perf_counter() - t0)

    def evaluate_detections(self, item, sources, dets):
        return self.score(item, dets)


@functools.lru_cache(maxsize=4)
def _network(name: str, args: str):
    from ..tasks import parse_network_args
    from ..tasks.split import SPLIT_NETWORKS, get_split_network
    kw = parse_network_args(args)
    if name in SPLIT_NETWORKS:
        return get_split_network(name, **kw)
    from ..tasks import get_task_network
    return get_task_network(name, **kw)


def text_f1(item: dict, ctc: dict) -> TextF1:
    """``TaskMetric : refsw.ctc.text_metric:text_f1``: the network of ``TaskNetwork`` (default
    ppocr_det; ``TaskNetworkArgs`` its settings) scored against the item's boxes."""
    name = ctc.get("TaskNetwork") or DEFAULT_NETWORK
    try:
        net = _network(name, ctc.get("TaskNetworkArgs") or "")
    except ValueError as e:
        raise ValueError(f"TaskNetwork / TaskNetworkArgs: {e}") from None
    return TextF1(net)


def pooled_points(out_dir: str) -> list[dict]:
    """One row per (codec, rate point) of a refsw-ctc output folder: bpp = total bits /
    total pixels, P, R, F1 from the TP/FP/FN pooled over all items.  A point that is
    not ok for every item of its codec is left out."""
    groups, items = {}, {}
    for path in sorted(glob.glob(os.path.join(out_dir, "*", "*", "*.json"))):
        with open(path, encoding="utf-8") as f:
            r = json.load(f)
        if not isinstance(r, dict) or "codec" not in r or "label" not in r:
            continue
        items.setdefault(r["codec"], set()).add(r.get("sequence"))
        d = (r.get("task_detail") or {}).get(NAME)
        if r.get("status") == "ok" and d is not None and "tp" in d:
            groups.setdefault((r["codec"], r["label"]), []).append((r, d))
    rows = []
    for (codec, label), rs in groups.items():
        if len(rs) != len(items[codec]):
            continue
        px = sum(r["width"] * r["height"] * r.get("frames", 1) for r, _ in rs)
        row = {"codec": codec, "label": label, "items": len(rs), "bpp": sum(r["bits"] for r, _ in rs) / px}
        row.update(pooled_prf(d for _, d in rs))
        rows.append(row)
    return sorted(rows, key=lambda r: (r["codec"], r["bpp"]))


def main(argv=None) -> int:
    import argparse
    ap = argparse.ArgumentParser(prog="python -m refsw.ctc.text_metric",
                                 description="pooled text-detection P, R, F1 per rate point of a refsw-ctc run")
    ap.add_argument("out_dir", help="the output folder of refsw-ctc run (TaskMetric text_f1)")
    a = ap.parse_args(argv)
    rows = pooled_points(a.out_dir)
    if not rows:
        print(f"{a.out_dir}: no point with a text_f1 detail")
        return 1
    print(f"{'codec':8} {'point':8} {'items':>5} {'bpp':>8} {'P':>6} {'R':>6} {'F1':>6} {'TP':>5} {'FP':>5} {'FN':>5}")
    for r in rows:
        print(f"{r['codec']:8} {r['label']:8} {r['items']:5d} {r['bpp']:8.4f} {r['precision']:6.3f} {r['recall']:6.3f} "
              f"{r['F1']:6.3f} {r['tp']:5d} {r['fp']:5d} {r['fn']:5d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
