"""Detection AP@0.5 of a task network as a CTC task metric (non-normative).

    TaskMetric  : refsw.ctc.detection_metric:detection_ap   (condition file)
    TaskNetwork : hog                 # registered name or module:Class (refsw.tasks)
    TaskNetworkArgs : upscale=2       # its settings
    TaskGtScore : 1.0                 # pseudo-GT score threshold, network's own range

    TaskMetric  : refsw.ctc.detection_metric:face_ap        (MTCNN, GT score 0.9)

Ground truth (the VCM pseudo-GT practice, as benchmarks/track2.py): the task
network's detections with a score of at least TaskGtScore on the uncompressed
source.  The metric runs the same network on the decoded pictures (all its
detections) and gives the AP at IoU 0.5 (:func:`refsw.tasks.evaluate.average_precision`)
as the column ``task_AP50``; the report names the network.  :meth:`DetectionAP.evaluate_detections` scores
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


class DetectionAP(TaskMetric):
    """AP@0.5 of a network's detections against its own detections on the sources.

    net        a refsw.tasks.TaskNetwork (default: the offline MTCNN)
    cache_dir  folder of the on-disk cache of source detections (None: memory only)
    """

    name = NAME

    def __init__(self, net=None, gt_score: float = GT_SCORE, cache_dir: str | None = None, tag: str = ""):
        self.net = net or _mtcnn()
        self.tag = tag or self.net.name     # names the disk cache of the source detections
        self.gt_score = gt_score
        self.cache_dir = cache_dir
        self._gt: dict = {}

    def source_detections(self, item: dict, sources) -> list:
        """Per source picture, [(x0, y0, x1, y1, score)] (all scores; cached)."""
        key = item.get("prepared_sha256") or item["name"]
        if key in self._gt:
            return self._gt[key]
        path = os.path.join(self.cache_dir, f"{self.tag}-{key}.json") if self.cache_dir else None
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
        detail["network"] = getattr(self.net, "name", type(self.net).__name__)
        return {NAME: ap_from_matches(npos, matches), "detail": {NAME: detail}}

    def evaluate(self, item, sources, decoded):
        t0 = time.perf_counter()
        dets = [_boxes(self.net.detect(p)) for p in decoded]
        return self.score(item, sources, dets, time.perf_counter() - t0)

    def evaluate_detections(self, item, sources, dets):
        return self.score(item, sources, dets)


def face_ap(item: dict, ctc: dict) -> DetectionAP:
    """``TaskMetric : refsw.ctc.detection_metric:face_ap`` (MTCNN, GT score 0.9, disk cache of the
    source detections)."""
    from .testsets import cache_dir
    return DetectionAP(cache_dir=str(cache_dir() / "task_gt"))


@functools.lru_cache(maxsize=4)
def _network(name: str, args: str):
    from ..tasks import get_task_network, parse_network_args
    return get_task_network(name, **parse_network_args(args))


def detection_ap(item: dict, ctc: dict) -> DetectionAP:
    """``TaskMetric : refsw.ctc.detection_metric:detection_ap``: the network of ``TaskNetwork``
    (``TaskNetworkArgs``), pseudo ground truth at ``TaskGtScore`` (disk cache of the source detections)."""
    from .testsets import cache_dir
    name = ctc.get("TaskNetwork") or "mtcnn"
    try:
        net = _network(name, ctc.get("TaskNetworkArgs") or "")
    except ValueError as e:
        raise ValueError(f"TaskNetwork / TaskNetworkArgs: {e}") from None
    gt = ctc.get("TaskGtScore")
    args = ctc.get("TaskNetworkArgs") or ""
    tag = net.name + ("-" + "".join(c if c.isalnum() or c in "=." else "_" for c in args) if args else "")
    return DetectionAP(net, GT_SCORE if gt is None else float(gt), cache_dir=str(cache_dir() / "task_gt"), tag=tag)
