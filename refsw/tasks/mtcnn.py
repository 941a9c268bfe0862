"""MTCNN face detector (Zhang et al. 2016) with the weights shipped in the
facenet-pytorch wheel (MIT licence; install it with ``pip install --no-deps
facenet-pytorch==2.6.0``: its declared dependencies would replace torch).

facenet-pytorch itself imports torchvision (for NMS only), so the three
networks and the cascade are re-implemented here after its
``models/mtcnn.py`` and ``models/utils/detect_face.py``; only the weight
files ``pnet.pt``, ``rnet.pt`` and ``onet.pt`` are loaded from the package.
"""
from __future__ import annotations

import importlib.util
import os

import numpy as np

from .network import Detection, TaskNetwork, picture_to_rgb8


def weights_dir() -> str:
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("the MTCNN task network needs the facenet-pytorch wheel: "
                         "pip install --no-deps facenet-pytorch==2.6.0")
    d = os.path.join(list(spec.submodule_search_locations)[0], "data")
    if not os.path.exists(os.path.join(d, "onet.pt")):
        raise ValueError(f"MTCNN weights not found in {d}")
    return d


def _nets():
    import torch
    from torch import nn

    class PNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
            self.prelu1 = nn.PReLU(10)
            self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
            self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
            self.prelu2 = nn.PReLU(16)
            self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
            self.prelu3 = nn.PReLU(32)
            self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
            self.softmax4_1 = nn.Softmax(dim=1)
            self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

        def forward(self, x):
            x = self.prelu1(self.conv1(x))
            x = self.pool1(x)
            x = self.prelu2(self.conv2(x))
            x = self.prelu3(self.conv3(x))
            return self.conv4_2(x), self.softmax4_1(self.conv4_1(x))

    class RNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
            self.prelu1 = nn.PReLU(28)
            self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
            self.prelu2 = nn.PReLU(48)
            self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
            self.prelu3 = nn.PReLU(64)
            self.dense4 = nn.Linear(576, 128)
            self.prelu4 = nn.PReLU(128)
            self.dense5_1 = nn.Linear(128, 2)
            self.softmax5_1 = nn.Softmax(dim=1)
            self.dense5_2 = nn.Linear(128, 4)

        def forward(self, x):
            x = self.pool1(self.prelu1(self.conv1(x)))
            x = self.pool2(self.prelu2(self.conv2(x)))
            x = self.prelu3(self.conv3(x))
            x = x.permute(0, 3, 2, 1).contiguous()
            x = self.prelu4(self.dense4(x.view(x.shape[0], -1)))
            return self.dense5_2(x), self.softmax5_1(self.dense5_1(x))

    class ONet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
            self.prelu1 = nn.PReLU(32)
            self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
            self.prelu2 = nn.PReLU(64)
            self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
            self.prelu3 = nn.PReLU(64)
            self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
            self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
            self.prelu4 = nn.PReLU(128)
            self.dense5 = nn.Linear(1152, 256)
            self.prelu5 = nn.PReLU(256)
            self.dense6_1 = nn.Linear(256, 2)
            self.softmax6_1 = nn.Softmax(dim=1)
            self.dense6_2 = nn.Linear(256, 4)
            self.dense6_3 = nn.Linear(256, 10)

        def forward(self, x):
            x = self.pool1(self.prelu1(self.conv1(x)))
            x = self.pool2(self.prelu2(self.conv2(x)))
            x = self.pool3(self.prelu3(self.conv3(x)))
            x = self.prelu4(self.conv4(x))
            x = x.permute(0, 3, 2, 1).contiguous()
            x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
            return self.dense6_2(x), self.softmax6_1(self.dense6_1(x))

    d = weights_dir()
    nets = []
    for cls, fn in ((PNet, "pnet.pt"), (RNet, "rnet.pt"), (ONet, "onet.pt")):
        net = cls()
        sd = torch.load(os.path.join(d, fn), map_location="cpu", weights_only=True)
        sd = {k: v for k, v in sd.items() if k in net.state_dict()}
        net.load_state_dict(sd)
        net.eval()
        nets.append(net)
    return nets


def nms(boxes: np.ndarray, scores: np.ndarray, thr: float, method: str = "union") -> np.ndarray:
    """Greedy non-maximum suppression; returns kept indices (highest score first)."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        o = inter / np.minimum(area[i], area[rest]) if method == "min" else inter / (area[i] + area[rest] - inter)
        order = rest[o <= thr]
    return np.array(keep, dtype=np.int64)


def _rerec(b):
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    m = np.maximum(w, h)
    b = b.copy()
    b[:, 0] = b[:, 0] + w * 0.5 - m * 0.5
    b[:, 1] = b[:, 1] + h * 0.5 - m * 0.5
    b[:, 2] = b[:, 0] + m
    b[:, 3] = b[:, 1] + m
    return b


def _bbreg(b, reg):
    w = b[:, 2] - b[:, 0] + 1
    h = b[:, 3] - b[:, 1] + 1
    b = b.copy()
    b[:, 0] += reg[:, 0] * w
    b[:, 1] += reg[:, 1] * h
    b[:, 2] += reg[:, 2] * w
    b[:, 3] += reg[:, 3] * h
    return b


class MtcnnFaceDetector(TaskNetwork):
    """Face detection; ``detect`` returns boxes with the O-Net probability."""
    name = "mtcnn"
    labels = ("face",)

    def __init__(self, min_face_size: int = 20, thresholds=(0.6, 0.7, 0.7), factor: float = 0.709):
        self.min_face_size = min_face_size
        self.thresholds = thresholds
        self.factor = factor
        self.pnet, self.rnet, self.onet = _nets()

    def _crops(self, img, boxes, size):
        import torch
        from torch.nn.functional import interpolate
        h, w = img.shape[2:]
        b = np.trunc(boxes[:, :4]).astype(np.int64)
        x, y = np.maximum(b[:, 0], 1), np.maximum(b[:, 1], 1)
        ex, ey = np.minimum(b[:, 2], w), np.minimum(b[:, 3], h)
        crops, ok = [], []
        for k in range(len(b)):
            if ey[k] > y[k] - 1 and ex[k] > x[k] - 1:
                c = img[:, :, y[k] - 1:ey[k], x[k] - 1:ex[k]]
                crops.append(interpolate(c, size=(size, size), mode="area"))
                ok.append(k)
        if not crops:
            return None, np.zeros(0, dtype=np.int64)
        return (torch.cat(crops) - 127.5) * 0.0078125, np.array(ok, dtype=np.int64)

    def detect_rgb(self, rgb: np.ndarray) -> list[Detection]:
        import torch
        from torch.nn.functional import interpolate
        t0, t1, t2 = self.thresholds
        with torch.no_grad():
            img = torch.as_tensor(np.ascontiguousarray(rgb.transpose(2, 0, 1))[None].astype(np.float32))
            h, w = img.shape[2:]
            m = 12.0 / self.min_face_size
            minl = min(h, w) * m
            scales, s = [], m
            while minl >= 12:
                scales.append(s)
                s *= self.factor
                minl *= self.factor
            allb = []
            for scale in scales:
                im = interpolate(img, size=(int(h * scale + 1), int(w * scale + 1)), mode="area")
                reg, prob = self.pnet((im - 127.5) * 0.0078125)
                p = prob[0, 1].numpy()
                r = reg[0].numpy()
                ys, xs = np.nonzero(p >= t0)
                if len(ys) == 0:
                    continue
                q1x = np.floor((2 * xs + 1) / scale)
                q1y = np.floor((2 * ys + 1) / scale)
                q2x = np.floor((2 * xs + 12) / scale)
                q2y = np.floor((2 * ys + 12) / scale)
                bb = np.stack([q1x, q1y, q2x, q2y, p[ys, xs], r[0, ys, xs], r[1, ys, xs], r[2, ys, xs],
                               r[3, ys, xs]], axis=1)
                allb.append(bb[nms(bb[:, :4], bb[:, 4], 0.5)])
            if not allb:
                return []
            b = np.concatenate(allb)
            b = b[nms(b[:, :4], b[:, 4], 0.7)]
            rw, rh = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
            b = np.stack([b[:, 0] + b[:, 5] * rw, b[:, 1] + b[:, 6] * rh, b[:, 2] + b[:, 7] * rw,
                          b[:, 3] + b[:, 8] * rh, b[:, 4]], axis=1)
            b = np.concatenate([_rerec(b[:, :4]), b[:, 4:5]], axis=1)
            # R-Net
            data, ok = self._crops(img, b, 24)
            if data is None:
                return []
            reg, prob = self.rnet(data)
            score = prob[:, 1].numpy()
            reg = reg.numpy()
            b = b[ok]
            keep = score > t1
            b = np.concatenate([b[keep, :4], score[keep, None]], axis=1)
            reg = reg[keep]
            k = nms(b[:, :4], b[:, 4], 0.7)
            b, reg = b[k], reg[k]
            b = _bbreg(b, reg)
            b = np.concatenate([_rerec(b[:, :4]), b[:, 4:5]], axis=1)
            if len(b) == 0:
                return []
            # O-Net
            data, ok = self._crops(img, b, 48)
            if data is None:
                return []
            reg, prob = self.onet(data)
            score = prob[:, 1].numpy()
            reg = reg.numpy()
            b = b[ok]
            keep = score > t2
            b = np.concatenate([b[keep, :4], score[keep, None]], axis=1)
            b = _bbreg(b, reg[keep])
            b = b[nms(b[:, :4], b[:, 4], 0.7, "min")]
        return [Detection(float(x0), float(y0), float(x1), float(y1), float(sc), "face")
                for x0, y0, x1, y1, sc in b]

    def detect(self, picture) -> list[Detection]:
        # one thread: faster on small pictures and independent of the machine
        import torch
        n = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self.detect_rgb(picture_to_rgb8(picture))
        finally:
            torch.set_num_threads(n)
