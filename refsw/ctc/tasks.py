"""Task-metric interface for machine-task CTCs (Track 2, task branches).

A *task metric* measures how well a machine task works on decoded pictures,
e.g. object-detection mAP on COCO-style annotations.  The runner calls one
per rate point when the condition sets ``TaskMetric : module:factory``:

    factory(item: dict, ctc: dict) -> TaskMetric
    TaskMetric.evaluate(item, sources, decoded) -> {"mAP": 0.41, ...}

``item`` is the test-set item (name, class, width, height, frames, fps,
path, and manifest extras such as ``annotations``), ``sources`` and
``decoded`` are lists of :class:`refsw.picture.Picture`.  Each returned value
becomes a ``task_<name>`` column; the report gives its BD-rate with the
Pareto variant (task curves are often non-monotonic).  The reserved key
``detail`` ({name: JSON data}) is no column: the runner keeps it in the
point's JSON as ``task_detail``; ``{"npos": N, "matches": [[score, tp], ...]}``
there lets the report pool one AP per rate point over all items
(:func:`refsw.ctc.report.pooled_curve`).

Task branches (``TaskBranch`` key): the runner scores the branch's
detections with ``TaskMetric.evaluate_detections(item, sources, dets)``
(``dets``: per picture [(x0, y0, x1, y1, score)] in luma samples), whose
values become ``task_branch_<name>`` columns (details: ``branch_<name>``).
See :mod:`refsw.ctc.detection_metric`.

:class:`CocoDetectionMetric` is the ready-made one: it runs a user-supplied
detector (any callable RGB uint8 HxWx3 array -> list of detections) on every
decoded picture and scores the detections against COCO ground truth with
:func:`coco_map` (pycocotools, or faster-coco-eval when installed).  No
detector weights ship offline; plug in yours (see docs/ctc.md).
"""
from __future__ import annotations

import contextlib
import copy
import importlib
import io
from abc import ABC, abstractmethod
from typing import Callable

import numpy as np

STAT_NAMES = ("mAP", "mAP50", "mAP75", "mAP_small", "mAP_medium", "mAP_large")


class TaskMetric(ABC):
    """One machine-task metric (higher is better)."""

    name = "task"

    @abstractmethod
    def evaluate(self, item: dict, sources: list, decoded: list) -> dict[str, float]:
        """Metric values of the decoded pictures of one item at one rate point."""


def load_task_metric(spec: str, item: dict, ctc: dict) -> TaskMetric:
    """``module:callable`` -> callable(item, ctc)."""
    mod, _, fn = spec.partition(":")
    if not mod or not fn:
        raise ValueError(f"TaskMetric {spec!r}: expected 'module:callable'")
    obj = getattr(importlib.import_module(mod), fn)
    return obj(item, ctc)


def _coco_backend(backend: str):
    if backend in ("auto", "faster-coco-eval"):
        try:
            from faster_coco_eval import COCO, COCOeval_faster
            return COCO, COCOeval_faster
        except ImportError:
            if backend != "auto":
                raise
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    return COCO, COCOeval


def coco_map(ground_truth: dict, detections: list[dict], *, iou_type: str = "bbox",
             backend: str = "auto", image_ids=None) -> dict[str, float]:
    """COCO AP statistics of ``detections`` against ``ground_truth``.

    ground_truth  a COCO dict (images, annotations, categories)
    detections    [{"image_id", "category_id", "bbox": [x, y, w, h], "score"}, ...]
    Returns mAP (IoU .50:.95), mAP50, mAP75 and by object size; 0.0 when
    there is no detection (pycocotools refuses an empty result list)."""
    COCO, COCOeval = _coco_backend(backend)
    gt = COCO()
    gt.dataset = copy.deepcopy(ground_truth)
    gt.dataset.setdefault("info", {})
    gt.dataset.setdefault("licenses", [])
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        if not detections:
            return {k: 0.0 for k in STAT_NAMES}
        dt = gt.loadRes(copy.deepcopy(list(detections)))
        ev = COCOeval(gt, dt, iou_type)
        if image_ids is not None:
            ev.params.imgIds = list(image_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = [max(float(s), 0.0) for s in ev.stats[:6]]  # -1 (no object of a size) -> 0
    return dict(zip(STAT_NAMES, stats))


def picture_to_rgb_array(pic) -> np.ndarray:
    """An 8-bit RGB HxWx3 array for a detector (YCbCr is converted, BT.709 full range)."""
    if pic.colour_space != "rgb":
        from .colour import ycbcr_to_rgb
        if pic.chroma_format == "400":
            a = pic.planes[0]
            arr = np.stack([a, a, a], -1)
            return (arr >> max(pic.bit_depth - 8, 0)).astype(np.uint8)
        pic = ycbcr_to_rgb(pic)
    arr = np.stack(pic.planes, -1)
    return (arr >> max(pic.bit_depth - 8, 0)).astype(np.uint8)


class CocoDetectionMetric(TaskMetric):
    """Detection mAP of a detector on decoded pictures.

    annotations  COCO dict; image ``file_name`` entries are matched to the
                 item (images: the item name, with or without extension;
                 video: ``<item>/<frame index>`` or the frame order of the
                 images whose ``file_name`` starts with the item name)
    detector     callable(rgb uint8 HxWx3) -> [{"bbox": [x, y, w, h], "score": s, "category_id": c}]
    """

    name = "mAP"

    def __init__(self, annotations: dict, detector: Callable, *, backend: str = "auto"):
        self.gt = annotations
        self.detector = detector
        self.backend = backend

    def image_ids(self, item: dict, n: int) -> list[int]:
        name = item["name"]
        imgs = self.gt.get("images", [])
        exact = [im for im in imgs if im.get("file_name", "").rsplit(".", 1)[0] == name]
        if n == 1 and exact:
            return [exact[0]["id"]]
        seq = sorted((im for im in imgs if str(im.get("file_name", "")).startswith(name)),
                     key=lambda im: im["file_name"])
        if len(seq) < n:
            raise ValueError(f"annotations: {len(seq)} image(s) for item {name}, {n} picture(s) decoded")
        return [im["id"] for im in seq[:n]]

    def evaluate(self, item, sources, decoded):
        ids = self.image_ids(item, len(decoded))
        cats = {c["name"]: c["id"] for c in self.gt.get("categories", [])}
        dets = []
        for iid, pic in zip(ids, decoded):
            for d in detect(self.detector, pic, cats):
                dets.append(dict(d, image_id=iid))
        s = coco_map(self.gt, dets, backend=self.backend, image_ids=ids)
        return {"mAP": s["mAP"], "mAP50": s["mAP50"]}


def detect(detector, pic, categories: dict | None = None) -> list[dict]:
    """Detections of ``pic`` as COCO dicts (bbox x, y, w, h; score; category_id).

    ``detector`` is a :class:`refsw.tasks.TaskNetwork` (``detect(picture)``
    returning objects with x0, y0, x1, y1, score, label) or a callable on an
    RGB uint8 array returning COCO-style dicts.  Labels map to category ids
    through ``categories`` (name -> id; unknown labels: 1)."""
    out = []
    if hasattr(detector, "detect"):
        for d in detector.detect(pic):
            cid = (categories or {}).get(getattr(d, "label", ""), 1)
            out.append({"bbox": [float(d.x0), float(d.y0), float(d.x1 - d.x0), float(d.y1 - d.y0)],
                        "score": float(d.score), "category_id": int(cid)})
    else:
        for d in detector(picture_to_rgb_array(pic)):
            out.append({"bbox": [float(v) for v in d["bbox"]], "score": float(d["score"]),
                        "category_id": int(d.get("category_id", 1))})
    return out


class PseudoGroundTruthMetric(TaskMetric):
    """mAP of a task network on decoded pictures against its own detections
    on the source pictures (score >= ``threshold``) as ground truth: the
    usual machine-task check when a test set has no annotations.  NaN when
    the source has no detection at all (the point then drops out of BD)."""

    name = "mAP"

    def __init__(self, network, threshold: float = 0.5, backend: str = "auto"):
        self.network = network
        self.threshold = threshold
        self.backend = backend

    def evaluate(self, item, sources, decoded):
        images, anns, dets = [], [], []
        for i, (src, dec) in enumerate(zip(sources, decoded), 1):
            images.append({"id": i, "file_name": f"{item['name']}/{i - 1}", "width": src.width,
                           "height": src.height})
            for d in detect(self.network, src):
                if d["score"] >= self.threshold:
                    w, h = d["bbox"][2], d["bbox"][3]
                    anns.append({"id": len(anns) + 1, "image_id": i, "category_id": d["category_id"],
                                 "bbox": d["bbox"], "area": w * h, "iscrowd": 0})
            dets += [dict(d, image_id=i) for d in detect(self.network, dec)]
        if not anns:
            return {"mAP": float("nan"), "mAP50": float("nan")}
        cats = sorted({a["category_id"] for a in anns} | {d["category_id"] for d in dets})
        gt = {"images": images, "annotations": anns, "categories": [{"id": c, "name": str(c)} for c in cats]}
        s = coco_map(gt, dets, backend=self.backend)
        return {"mAP": s["mAP"], "mAP50": s["mAP50"]}


def mtcnn_pseudo_map(item: dict, ctc: dict) -> TaskMetric:
    """``TaskMetric : refsw.ctc.tasks:mtcnn_pseudo_map``: face-detection mAP of
    the offline MTCNN (refsw.tasks, facenet-pytorch weights) against its
    detections on the source."""
    from ..tasks import get_task_network
    return PseudoGroundTruthMetric(get_task_network("mtcnn"), threshold=0.6)
