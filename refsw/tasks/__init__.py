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

Split networks (Track 1 feature coding: part 1, the cut tensors, part 2 and
the post-processing) are in :mod:`refsw.tasks.split`
(``get_split_network("ppocr_det")``); each is also a task network.
"""
from __future__ import annotations

from .network import CentreBox, Detection, FullPicture, TaskNetwork, build_network, picture_to_rgb8  # noqa: F401


TASK_NETWORKS = {"full": FullPicture, "centre": CentreBox}


def mtcnn_detector(**kw):
    from .mtcnn import MtcnnFaceDetector
    return MtcnnFaceDetector(**kw)


def hog_detector(**kw):
    from .hog import HogPeopleDetector
    return HogPeopleDetector(**kw)


def ppocr_text_detector(**kw):
    from .split import PpOcrTextDetector
    return PpOcrTextDetector(**kw)


TASK_NETWORKS["mtcnn"] = mtcnn_detector
TASK_NETWORKS["hog"] = hog_detector
TASK_NETWORKS["ppocr_det"] = ppocr_text_detector   # a split network (refsw.tasks.split), run whole


def get_split_network(name: str, **kw):
    """A split network (Track 1) by name or ``module:Class``: see :mod:`refsw.tasks.split`."""
    from .split import get_split_network as get
    return get(name, **kw)


def parse_network_args(text: str) -> dict:
    """``key=value,key=value`` (a cfg value) -> keyword arguments of a task network;
    values are int, float or str."""
    kw = {}
    for part in (p.strip() for p in (text or "").split(",")):
        if not part:
            continue
        key, sep, val = part.partition("=")
        key, val = key.strip(), val.strip()
        if not sep or not key.isidentifier():
            raise ValueError(f"network arguments {text!r}: {part!r} is not key=value")
        for conv in (int, float):
            try:
                kw[key] = conv(val)
                break
            except ValueError:
                pass
        else:
            kw[key] = val
    return kw


def get_task_network(name: str, **kw) -> TaskNetwork:
    """A task network by registry name or ``module:Class`` (the module must be
    importable, e.g. through PYTHONPATH); ``kw`` are its settings."""
    net = build_network(TASK_NETWORKS, name, kw, "task network")
    if not hasattr(net, "detect"):
        raise ValueError(f"task network {name!r} has no detect(picture) method")
    return net
