"""Face-detection task branch of intra_v1 (branch id 1, "face"), float model.

The branch reads the base latent layer only: its input is the g_s input of
the base channels, y_hat[:, :48] * gD[q] (clause 10.8 in integer form), at
stride 16, and it never reconstructs pixels.  It is a CenterNet-style head
of 3x3 convolutions and clipped ReLUs (integerisable like g_s); per latent
cell (i, j) it outputs

    o        face-centre logit
    dx, dy   centre offset from the cell centre, in cells
    w, h     box size, in cells

so that a face at cell (i, j) has its centre at (16 (j + 0.5 + dx), 16 (i + 0.5 + dy)).
Training (refsw/train/train_task.py) distils the offline MTCNN detector.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from .intra import ClippedReLU, DecConv


@dataclass(frozen=True)
class FaceHeadConfig:
    name: str = "intra_v1_face"
    branch_id: int = 1
    in_channels: int = 48       # base-layer channels of intra_v1
    channels: int = 96
    depth: int = 3              # hidden 3x3 conv + cReLU layers
    act_max: float = 6.0
    stride: int = 16
    score_min: float = -4.0     # logits below this are not output
    max_detections: int = 100
    nms_iou: float = 0.5

    def to_dict(self):
        return asdict(self)

    @staticmethod
    def from_dict(d):
        known = {f.name for f in fields(FaceHeadConfig)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"face branch config: unknown keys {', '.join(unknown)} (not a face-branch file?)")
        return FaceHeadConfig(**d)


class FaceHead(nn.Module):
    def __init__(self, cfg: FaceHeadConfig = FaceHeadConfig()):
        super().__init__()
        self.cfg = cfg
        layers, c = [], cfg.in_channels
        for _ in range(cfg.depth):
            layers += [DecConv(c, cfg.channels), ClippedReLU(cfg.act_max)]
            c = cfg.channels
        layers.append(DecConv(c, 5))
        self.t_s = nn.Sequential(*layers)
        with torch.no_grad():
            self.t_s[-1].bias.copy_(torch.tensor([-4.0, 0.0, 0.0, 3.0, 3.0]))

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        """a: (B, 48, h, w) base latent times gD.  Returns (B, 5, h, w)."""
        return self.t_s(a)

    def kmac_per_pixel(self) -> float:
        s = self.cfg.stride
        return sum(m.in_channels * m.out_channels * 9 for m in self.t_s if isinstance(m, nn.Conv2d)) / (s * s) / 1e3


# ---------------------------------------------------------------- training targets (non-normative)
def make_targets(boxes_list, h: int, w: int, stride: int = 16):
    """CenterNet targets: heat (B,1,h,w) Gaussian peaks, reg (B,4,h,w), mask (B,1,h,w)."""
    B = len(boxes_list)
    heat = torch.zeros(B, 1, h, w)
    reg = torch.zeros(B, 4, h, w)
    mask = torch.zeros(B, 1, h, w)
    ys = torch.arange(h, dtype=torch.float32).view(h, 1)
    xs = torch.arange(w, dtype=torch.float32).view(1, w)
    for b, boxes in enumerate(boxes_list):
        for x0, y0, x1, y1 in boxes:
            cx, cy = (x0 + x1) / 2 / stride, (y0 + y1) / 2 / stride
            bw, bh = (x1 - x0) / stride, (y1 - y0) / stride
            j, i = min(int(cx), w - 1), min(int(cy), h - 1)
            sigma = max(0.35, 0.15 * (bw + bh) / 2)
            g = torch.exp(-((xs + 0.5 - cx) ** 2 + (ys + 0.5 - cy) ** 2) / (2 * sigma ** 2))
            heat[b, 0] = torch.maximum(heat[b, 0], g)
            heat[b, 0, i, j] = 1.0
            reg[b, :, i, j] = torch.tensor([cx - (j + 0.5), cy - (i + 0.5), bw, bh])
            mask[b, 0, i, j] = 1.0
    return heat, reg, mask


def loss_fn(out, heat, reg, mask):
    """Penalty-reduced focal loss on the centre heat map + L1 on the box at centres."""
    p = torch.sigmoid(out[:, :1]).clamp(1e-4, 1 - 1e-4)
    pos = heat.eq(1.0).float()
    neg = 1.0 - pos
    lp = -(torch.log(p) * (1 - p) ** 2 * pos).sum()
    ln = -(torch.log(1 - p) * p ** 2 * (1 - heat) ** 4 * neg).sum()
    npos = pos.sum().clamp_min(1.0)
    l1 = (F.smooth_l1_loss(out[:, 1:], reg, reduction="none") * mask).sum() / npos
    return (lp + ln) / npos + 0.5 * l1
