"""The task-network interface: detections, networks, picture conversion."""
from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Detection:
    x0: float
    y0: float
    x1: float
    y1: float
    score: float
    label: str = "object"

    @property
    def box(self):
        return (self.x0, self.y0, self.x1, self.y1)


class TaskNetwork:
    """Interface of a task network: ``detect(picture) -> list[Detection]``.

    Scores are in the network's own range (probabilities for MTCNN, SVM margins
    for the HOG people detector); thresholds given to refsw (RoiThreshold,
    TaskGtScore) are in that range.  ``default_threshold`` is a sensible one."""
    name = "task"
    labels: tuple = ("object",)
    default_threshold = 0.5

    def detect(self, picture) -> list[Detection]:
        raise NotImplementedError


class FullPicture(TaskNetwork):
    """Trivial network: the whole picture is one region (tests, fallback)."""
    name = "full"

    def detect(self, picture):
        return [Detection(0, 0, picture.width, picture.height, 1.0)]


class CentreBox(TaskNetwork):
    """Deterministic stand-in network: one box over the centre half of the
    picture (conformance streams, tests)."""
    name = "centre"

    def detect(self, picture):
        w, h = picture.width, picture.height
        return [Detection(w // 4, h // 4, 3 * w // 4, 3 * h // 4, 0.99)]


def picture_to_rgb8(picture) -> np.ndarray:
    """H x W x 3 uint8 RGB of a YCbCr 4:2:0 / 4:4:4 / 4:0:0 or RGB picture
    (BT.601 limited range, chroma upsampled by sample repetition)."""
    sh = picture.bit_depth - 8
    planes = [np.asarray(p, dtype=np.float32) / (1 << sh) for p in picture.planes]
    h, w = planes[0].shape
    if picture.colour_space == "rgb":
        rgb = np.stack(planes, axis=-1)
    elif len(planes) == 1:
        rgb = np.repeat(planes[0][..., None], 3, axis=-1)
    else:
        y = planes[0]
        cb, cr = (np.repeat(np.repeat(p, h // p.shape[0] + (h % p.shape[0] > 0), 0),
                            w // p.shape[1] + (w % p.shape[1] > 0), 1)[:h, :w] for p in planes[1:])
        yy = (y - 16) * (255 / 219)
        u, v = (cb - 128) * (255 / 224), (cr - 128) * (255 / 224)
        rgb = np.stack([yy + 1.402 * v, yy - 0.344136 * u - 0.714136 * v, yy + 1.772 * u], axis=-1)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def build_network(registry: dict, name: str, kw: dict, what: str):
    """An instance of network ``name`` with settings ``kw``: ``registry[name](**kw)`` or, for
    ``module:Class``, ``Class(**kw)`` from an importable module.  ValueError naming ``what``
    (e.g. "task network") on an unknown name, an import failure or wrong settings."""
    if name in registry:
        factory = registry[name]
    elif ":" in name:
        mod, cls = name.split(":", 1)
        try:
            factory = getattr(importlib.import_module(mod), cls)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"{what} {name!r}: {e} (a module:Class network must be importable, "
                             f"e.g. through PYTHONPATH)") from None
    else:
        raise ValueError(f"unknown {what} {name!r}; known: {', '.join(sorted(registry))} or module:Class")
    try:
        return factory(**kw)
    except TypeError as e:
        raise ValueError(f"{what} {name!r}: {e}") from None
