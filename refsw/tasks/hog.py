"""Pedestrian detector: OpenCV's HOG people detector (Dalal & Triggs 2005) with
the linear SVM that OpenCV ships (``cv2.HOGDescriptor_getDefaultPeopleDetector``,
inside the opencv-python-headless wheel, Apache-2.0; no download).

Scores are the SVM margins OpenCV returns (about 0 to 3), not probabilities:
thresholds (``RoiThreshold``, ``TaskGtScore``) take that range.
Settings (``RoiDetectorArgs`` / ``TaskNetworkArgs``): ``scale`` (pyramid step,
default 1.05), ``stride`` (window stride in pixels, 8), ``upscale`` (the picture
is enlarged by this factor first, default 1: the detection window is 64x128, so
small pedestrians need 2), ``nms`` (IoU above which the lower-scored of two boxes
is dropped, default 0.5).
"""
from __future__ import annotations

import numpy as np

from .evaluate import iou
from .network import Detection, TaskNetwork, picture_to_rgb8


class HogPeopleDetector(TaskNetwork):
    name = "hog"
    labels = ("person",)
    default_threshold = 0.5      # SVM margin

    def __init__(self, scale: float = 1.05, stride: int = 8, upscale: float = 1.0, nms: float = 0.5):
        try:
            import cv2
        except ImportError:
            raise ValueError("the hog task network needs OpenCV: pip install opencv-python-headless") from None
        if not (scale > 1.0 and stride >= 1 and upscale > 0 and 0 < nms <= 1):
            raise ValueError(f"hog: scale {scale} (> 1), stride {stride} (>= 1), upscale {upscale} (> 0), "
                             f"nms {nms} (0..1)")
        self.cv2 = cv2
        cv2.setNumThreads(1)            # deterministic and light on a shared machine
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.scale, self.stride, self.upscale, self.nms = float(scale), int(stride), float(upscale), float(nms)

    def detect(self, picture) -> list[Detection]:
        rgb = picture_to_rgb8(picture)
        gray = self.cv2.cvtColor(rgb, self.cv2.COLOR_RGB2GRAY)
        f = self.upscale
        if f != 1.0:
            gray = self.cv2.resize(gray, None, fx=f, fy=f, interpolation=self.cv2.INTER_LINEAR)
        rects, weights = self.hog.detectMultiScale(gray, winStride=(self.stride, self.stride), padding=(8, 8),
                                                   scale=self.scale)
        dets = [Detection(x / f, y / f, (x + w) / f, (y + h) / f, float(s), "person")
                for (x, y, w, h), s in zip(np.asarray(rects).reshape(-1, 4), np.asarray(weights).ravel())]
        return _nms(dets, self.nms)


def _nms(dets, thr: float):
    """Greedy non-maximum suppression by score (OpenCV's HOG returns overlapping windows)."""
    kept = []
    for d in sorted(dets, key=lambda d: -d.score):
        if all(iou(d.box, k.box) <= thr for k in kept):
            kept.append(d)
    return kept
