"""Machine-task networks (non-normative): the interface the Track 2 encoder
uses to find regions of interest, and the benchmarks use to score decoded
video.

A task network maps a :class:`refsw.picture.Picture` to detections::

    class MyDetector(TaskNetwork):
        name = "mine"
        def detect(self, picture):
            return [Detection(x0, y0, x1, y1, score, label), ...]

Boxes are in luma sample coordinates of the picture, x1/y1 exclusive.
``get_task_network("module:Class")`` loads a user network (e.g. a Faster
R-CNN or JDE wrapper) without touching refsw.
"""
from __future__ import annotations

import importlib

from .network import CentreBox, Detection, FullPicture, TaskNetwork, picture_to_rgb8  # noqa: F401


TASK_NETWORKS = {"full": FullPicture, "centre": CentreBox}


def mtcnn_detector(**kw):
    from .mtcnn import MtcnnFaceDetector
    return MtcnnFaceDetector(**kw)


TASK_NETWORKS["mtcnn"] = mtcnn_detector


def get_task_network(name: str, **kw) -> TaskNetwork:
    """A task network by registry name or ``module:Class``."""
    if name in TASK_NETWORKS:
        return TASK_NETWORKS[name](**kw)
    if ":" in name:
        mod, cls = name.split(":", 1)
        try:
            obj = getattr(importlib.import_module(mod), cls)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"task network {name!r}: {e}")
        net = obj(**kw)
        if not hasattr(net, "detect"):
            raise ValueError(f"task network {name!r} has no detect(picture) method")
        return net
    raise ValueError(f"unknown task network {name!r}; known: {', '.join(sorted(TASK_NETWORKS))} "
                     "or module:Class")
