"""ROI-based background simplification (docs/spec/track2.md, T2.7).

Encoder side (non-normative): a task network (refsw.tasks) finds the objects
on the source; boxes above a score threshold, enlarged by a margin and merged
over a temporal window, are the regions of interest.  Outside them the
picture is simplified (strong low-pass or flat) before coding, which the
inner codec then codes with few bits.  Safe rule: a picture whose regions
cover less than ``RoiMinArea`` of it (in particular one where the detector
found nothing) is coded as it is: simplifying it would remove what the task
looks for.  The boxes may be signalled per picture
(rm_num_roi, rm_roi_*); decoding does not depend on them.
"""
from __future__ import annotations

import numpy as np
from PIL import Image


def boxes_from_detections(dets, threshold: float, margin: float, width: int, height: int):
    """Integer boxes (x, y, w, h), enlarged by ``margin`` of their size on each side."""
    out = []
    for d in dets:
        if d.score < threshold:
            continue
        bw, bh = d.x1 - d.x0, d.y1 - d.y0
        x0 = int(np.floor(max(0.0, d.x0 - margin * bw)))
        y0 = int(np.floor(max(0.0, d.y0 - margin * bh)))
        x1 = int(np.ceil(min(float(width), d.x1 + margin * bw)))
        y1 = int(np.ceil(min(float(height), d.y1 + margin * bh)))
        if x1 > x0 and y1 > y0:
            out.append((x0, y0, x1 - x0, y1 - y0))
    return out


def merge_boxes(boxes):
    """Replace overlapping boxes by their bounding box until none overlap."""
    boxes = [tuple(b) for b in boxes]
    changed = True
    while changed:
        changed = False
        out = []
        for b in boxes:
            for i, o in enumerate(out):
                if b[0] < o[0] + o[2] and o[0] < b[0] + b[2] and b[1] < o[1] + o[3] and o[1] < b[1] + b[3]:
                    x0, y0 = min(b[0], o[0]), min(b[1], o[1])
                    x1, y1 = max(b[0] + b[2], o[0] + o[2]), max(b[1] + b[3], o[1] + o[3])
                    out[i] = (x0, y0, x1 - x0, y1 - y0)
                    changed = True
                    break
            else:
                out.append(b)
        boxes = out
    return sorted(boxes)


def temporal_union(per_pic, radius: int):
    """Boxes of picture n: merged boxes of pictures n - radius .. n + radius."""
    n = len(per_pic)
    return [merge_boxes([b for k in range(max(0, i - radius), min(n, i + radius + 1)) for b in per_pic[k]])
            for i in range(n)]


def segment_union(per_pic, period: int):
    """Boxes of picture n: merged boxes of the pictures of its segment
    [ period * k, period * ( k + 1 ) ), k = n // period."""
    out = []
    for s in range(0, len(per_pic), period):
        seg = per_pic[s:s + period]
        u = merge_boxes([b for boxes in seg for b in boxes])
        out += [u] * len(seg)
    return out


def covered_fraction(boxes, width: int, height: int) -> float:
    """Share of the picture area inside the boxes (overlaps counted once)."""
    return float(roi_mask(boxes, width, height).mean()) if boxes else 0.0


def roi_mask(boxes, width: int, height: int) -> np.ndarray:
    m = np.zeros((height, width), dtype=bool)
    for x, y, w, h in boxes:
        m[y:y + h, x:x + w] = True
    return m


def simplify(planes, boxes, mode: str, factor: int, bit_depth: int):
    """Background (outside ``boxes``) of 4:2:0 planes: ``blur`` = low-passed by
    area down-sampling by ``factor`` and bilinear up-sampling; ``flat`` = mean."""
    if mode == "none":
        return planes
    h, w = planes[0].shape
    mask = roi_mask(boxes, w, h)
    out = []
    for c, p in enumerate(planes):
        ph, pw = p.shape
        if c == 0:
            m = mask
        else:  # a chroma sample is in the ROI when one of its luma samples is
            mp = np.pad(mask, ((0, 2 * ph - h), (0, 2 * pw - w)), mode="edge")
            m = mp.reshape(ph, 2, pw, 2).any(axis=(1, 3))
        if m.all():
            out.append(p)
            continue
        a = np.asarray(p, dtype=np.float32)
        if mode == "flat":
            bg = np.full_like(a, float(np.round(a[~m].mean())))
        else:
            sw, sh = max(1, pw // factor), max(1, ph // factor)
            small = Image.fromarray(a, mode="F").resize((sw, sh), Image.BOX)
            bg = np.asarray(small.resize((pw, ph), Image.BILINEAR), dtype=np.float32)
        bg = np.clip(np.round(bg), 0, (1 << bit_depth) - 1).astype(np.uint16)
        out.append(np.where(m, p, bg).astype(np.uint16))
    return out
