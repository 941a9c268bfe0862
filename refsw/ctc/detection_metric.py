"""Face-detection AP@0.5 as a CTC task metric (non-normative).

    TaskMetric : refsw.ctc.face_metric:face_ap        (condition file)

Ground truth (the VCM pseudo-GT practice, as benchmarks/track2.py): the
offline MTCNN's detections with score >= 0.9 on the uncompressed source.
The metric runs MTCNN on the decoded pictures (its own output threshold,
0.7) and gives the AP at IoU 0.5 (:func:`refsw.tasks.evaluate.average_precision`)
as the column ``task_AP50``.  :meth:`FaceAP.evaluate_detections` scores
other detections (a task branch's, ``task_branch_AP50``) the same way.

Each value comes with a detail (``task_detail`` in the point's JSON): the
number of ground-truth boxes, the (score, true positive) pairs and the
detector time, from which the report pools one AP per rate point over all
pictures of a test set (:func:`refsw.ctc.report.pooled_curve`).

The source detections are cached in memory and on disk under
``$REFSW_CACHE/task_gt`` (default ``~/.cache/refsw/ctc/task_gt``), keyed by
the sha256 of the prepared samples, so the workers of a run and later runs
compute them once per picture.
"""
from __future__ import annotations

import functools
import json
import os
import time

from .tasks import TaskMetric
from ..tasks.evaluate import ap_from_matches, match_detections

GT_SCORE = 0.9
IOU = 0.5
NAME = "AP50"


@functools.lru_cache(maxsize=1)
def _mtcnn():
    from ..tasks import get_task_network
    return get_task_network("mtcnn")


def _boxes(dets) -> list:
    return [(float(d.x0), float(d.y0), float(d.x1), float(d.y1), float(d.score)) for d in dets]


class FaceAP(TaskMetric):
    """AP@0.5 of face detections against a detector's own detections on the sources.

    net        a refsw.tasks.TaskNetwork (default: the offline MTCNN)
    cache_dir  folder of the on-disk cache of source detections (None: memory only)
    """

    name = NAME

    def __init__(self, net=None, gt_score: float = GT_SCORE, cache_dir: str | None = None):
        self.net = net or _mtcnn()
        self.gt_score = gt_score
        self.cache_dir = cache_dir
        self._gt: dict = {}

    def source_detections(self, item: dict, sources) -> list:
        """Per source picture, [(x0, y0, x1, y1, score)] (all scores; cached)."""
        key = item.get("prepared_sha256") or item["name"]
        if key in self._gt:
            return self._gt[key]
        path = os.path.join(self.cache_dir, f"{self.net.name}-{key}.json") if self.cache_dir else None
        dets = None
        if path and os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                dets = [[tuple(d) for d in ds] for ds in json.load(f)]
        if dets is None or len(dets) != len(sources):
            dets = [_boxes(self.net.detect(p)) for p in sources]
            if path:
                os.makedirs(self.cache_dir, exist_ok=True)
                tmp = f"{path}.{os.getpid()}.tmp"
                with open(tmp, "w", encoding="utf-8") as f:
                    json.dump(dets, f)
                os.replace(tmp, path)
        self._gt[key] = dets
        return dets

    def ground_truth(self, item: dict, sources) -> list:
        return [[d[:4] for d in ds if d[4] >= self.gt_score] for ds in self.source_detections(item, sources)]

    def score(self, item: dict, sources, dets, seconds: float = 0.0) -> dict:
        """{NAME: AP, "detail": {NAME: {...}}} of dets (per picture [(x0, y0, x1, y1, score)], luma samples)."""
        gt = self.ground_truth(item, sources)
        npos = sum(len(g) for g in gt)
        matches = match_detections(gt, dets, IOU)
        detail = {"npos": npos, "matches": [[round(s, 6), t] for s, t in matches], "time": seconds,
                  "pictures": len(dets)}
        return {NAME: ap_from_matches(npos, matches), "detail": {NAME: detail}}

    def evaluate(self, item, sources, decoded):
        t0 = time.perf_counter()
        dets = [_boxes(self.net.detect(p)) for p in decoded]
        return self.score(item, sources, dets, time.perf_counter() - t0)

    def evaluate_detections(self, item, sources, dets):
        return self.score(item, sources, dets)


def face_ap(item: dict, ctc: dict) -> FaceAP:
    """``TaskMetric : refsw.ctc.face_metric:face_ap`` (MTCNN, disk cache of the source detections)."""
    from .testsets import cache_dir
    return FaceAP(cache_dir=str(cache_dir() / "task_gt"))
