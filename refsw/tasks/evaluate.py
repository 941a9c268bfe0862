"""Task metric (non-normative): average precision of detections.

The reference ("ground truth") of a benchmark here is the task network's own
detections on the uncompressed source with score >= a threshold, as in the
MPEG VCM practice for sequences without annotations; the mAP of a decoded
video therefore measures how well coding preserved what the network sees.
"""
from __future__ import annotations

import numpy as np


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / ua if ua > 0 else 0.0


def match_detections(gt, dets, iou_thr: float = 0.5) -> list[tuple[float, int]]:
    """(score, 1 if true positive else 0) of every detection, in descending
    score order.

    gt:   per picture, a list of boxes (x0, y0, x1, y1);
    dets: per picture, a list of (x0, y0, x1, y1, score).
    Detections are matched greedily in descending score order, each ground
    truth box at most once (the unused box of highest IoU >= iou_thr).
    Matching is per picture, so the lists of several sets of pictures can be
    concatenated and passed to :func:`ap_from_matches` (pooled AP).
    """
    flat = [(d[4], i, d[:4]) for i, ds in enumerate(dets) for d in ds]
    flat.sort(key=lambda t: -t[0])
    used = [np.zeros(len(g), dtype=bool) for g in gt]
    out = []
    for score, i, box in flat:
        best, bj = iou_thr, -1
        for j, g in enumerate(gt[i]):
            o = iou(box, g)
            if o >= best and not used[i][j]:
                best, bj = o, j
        if bj >= 0:
            used[i][bj] = True
        out.append((float(score), int(bj >= 0)))
    return out


def ap_from_matches(npos: int, matches) -> float:
    """AP (VOC all-point interpolation) of (score, tp) pairs against npos
    ground-truth boxes; nan when npos == 0."""
    if npos == 0:
        return float("nan")
    if not len(matches):
        return 0.0
    tp = np.array([m[1] for m in sorted(matches, key=lambda m: -m[0])], dtype=np.float64)
    ctp = np.cumsum(tp)
    rec = ctp / npos
    prec = ctp / np.arange(1, len(tp) + 1)
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mpre = np.concatenate([[0.0], prec, [0.0]])
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    idx = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


def average_precision(gt, dets, iou_thr: float = 0.5) -> float:
    """AP of one class over a sequence (VOC all-point interpolation); see
    :func:`match_detections`.  Returns nan when there is no ground truth box.
    """
    return ap_from_matches(sum(len(g) for g in gt), match_detections(gt, dets, iou_thr))


def map_50_95(gt, dets) -> float:
    """COCO-style mean of AP over IoU thresholds 0.50, 0.55, ..., 0.95."""
    return float(np.mean([average_precision(gt, dets, t) for t in np.arange(0.5, 0.951, 0.05)]))


def detections_as_tuples(dets, min_score: float = 0.0):
    return [[(d.x0, d.y0, d.x1, d.y1, d.score) for d in ds if d.score >= min_score] for ds in dets]


def ground_truth(dets, min_score: float):
    return [[(d.x0, d.y0, d.x1, d.y1) for d in ds if d.score >= min_score] for ds in dets]
