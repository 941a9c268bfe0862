"""Task-branch decoding process (clause 10.8, docs/spec/10-task-branches.md).

A task branch of the model signalled by sps_model_id runs a machine task on
latent layers 0..n-1 (n = sps_task_branch_num_layers_minus1 + 1) without
reconstructing the picture:

1. HYPER unit and hyper-synthesis as in 10.3; LATENT units of layers < n as
   in 10.4 (units of higher layers are not entropy-decoded).
2. a = Clip3(-2^15, 2^15-1, (Clip3(-2^20, 2^20, y_hat[c]) * GD[q][c] + rnd) >> Sg), c < C_n
   (the synthesis input of those channels, 10.5).
3. The integer layers of the branch (10.2 layer process); the last layer
   gives per cell (i, j) five values v0..v4 in units of 1/256.
4. Detection output (10.8.2): every cell with v0 >= ScoreMin is a candidate
   box, in units of 1/256 luma sample,
       cx = 256*S*j + 128*S + S*v1,   w = S*Max(1, v3),   x0 = cx - (w >> 1),   x1 = x0 + w
   (likewise y with i, v2, v4), shifted by the conformance window and clipped
   to the output picture.  Candidates are ordered by decreasing v0, then
   raster order; a candidate is dropped when NmsDen * inter > NmsNum * union
   with a kept box; at most MaxDetections are kept.  All arithmetic is integer.

The decoded latent of layers 0..n-1 is checked against the latent hash of the
DPH unit of layer n-1 when the stream carries one (7.8, 8.6).
"""
from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass

import numpy as np

from syntax import hls
from syntax.errors import BitstreamError

from ..npzfile import read_npz
from . import probe
from .core import TASK_DECODERS, check_latent_hash
from .intnet import check_bounds, from_npz
from .learned_intra import (IN_CLIP, LAT_MAX, clip3, decode_latents, decoder_device, engine, learned_picture_units,
                            to_numpy)
from .model_data import check_int_data, find_task_branch


@dataclass
class TaskOutput:
    """Output of a task branch for one picture."""
    branch: str
    width: int
    height: int
    detections: list        # [(x0, y0, x1, y1, v0)], coordinates in 1/256 luma sample

    def boxes(self) -> list:
        """[(x0, y0, x1, y1, score)] in luma samples; score = 1 / (1 + e^(-v0/256)) (informative)."""
        return [(x0 / 256, y0 / 256, x1 / 256, y1 / 256, 1 / (1 + math.exp(-v0 / 256)))
                for x0, y0, x1, y1, v0 in self.detections]

    def to_json(self, poc: int) -> dict:
        return {"poc": poc, "task": self.branch, "width": self.width, "height": self.height,
                "detections": [{"box": list(b[:4]), "logit": d[4] / 256, "score": round(b[4], 6)}
                               for b, d in zip(self.boxes(), self.detections)]}

    def canonical(self) -> bytes:
        """Integer form for hashing (conformance): one line per detection."""
        return "".join(f"{a} {b} {c} {d} {e}\n" for a, b, c, d, e in self.detections).encode()


class IntBranch:
    """Normative integer data of a task branch."""

    def __init__(self, path: str, entry):
        if not os.path.exists(path):
            raise BitstreamError(f"no integer data for task branch {entry.branch_id} of model {entry.model_id} "
                                 f"({path} missing)", element="sps_task_branch_id", clause="10.8")
        z = read_npz(path)   # ValueError naming the file if unreadable or incomplete
        self.entry = entry
        self.cfg = json.loads(bytes(z["meta.config_json"]).decode())
        self.layers = from_npz(z, "tb")
        self.stride, self.score_min, self.max_det, self.nms_num, self.nms_den = (int(v) for v in z["out.params"])
        check_bounds(self.layers, LAT_MAX, name=entry.name)
        # the branch input is the codec's synthesis input: both integer files must
        # come from the same codec conversion (refsw.nn.convert)
        self.codec_calibration = (np.asarray(z["meta.codec_calibration"], dtype=np.float64)
                                  if "meta.codec_calibration" in z else None)
        self.cache = {}

    def check_codec(self, m) -> None:
        """ValueError unless this branch was converted against codec integer data ``m``."""
        if self.codec_calibration is None or m.calibration is None or \
                not np.array_equal(self.codec_calibration, m.calibration):
            raise ValueError(f"task branch {self.entry.name} of model {self.entry.model_id}: its integer data "
                             f"({os.path.basename(self.entry.int_path)}) was converted for another codec "
                             f"calibration than the shipped codec's; run python -m refsw.nn.convert "
                             f"--branch {self.entry.name}")


@functools.lru_cache(maxsize=8)
def int_branch(model_id: int, name_or_id) -> IntBranch:
    try:
        e = find_task_branch(model_id, name_or_id)
    except KeyError as err:
        raise ValueError(f"Task: {err.args[0]}") from None
    check_int_data(e.int_path, e.int_sha256, f"task branch {e.name} of sps_model_id {model_id}")
    return IntBranch(e.int_path, e)


def signalled_layers(sps, branch_id: int) -> int:
    """Number of latent layers of the branch, from the SPS (6.1)."""
    for i in range(sps.sps_num_task_branches):
        if sps.sps_task_branch_id[i] == branch_id:
            return sps.sps_task_branch_num_layers_minus1[i] + 1
    ids = [sps.sps_task_branch_id[i] for i in range(sps.sps_num_task_branches)]
    raise BitstreamError(f"the SPS does not signal task branch {branch_id} (signalled: {ids or 'none'})",
                         element="sps_task_branch_id", clause="10.8")


def branch_map(m, br: IntBranch, y_hat, q: int, c_n: int, path="float64", device="cpu"):
    """Steps 2-3: the branch output v (1, 5, H/16, W/16), int64 (a torch tensor on a GPU)."""
    eng = engine(device)
    x = eng.requant(clip3(y_hat[:, :c_n], IN_CLIP), m.gd_mult[q][:c_n], None, m.gd_shift, -LAT_MAX, LAT_MAX - 1)
    return eng.run(br.layers, x, path, cache=br.cache)


def detections(v: np.ndarray, br: IntBranch, sps) -> list:
    """Step 4 (10.8.2) on v (5, h, w) int64."""
    S = br.stride
    left, top = sps.sps_conf_win_left_offset, sps.sps_conf_win_top_offset
    out_w, out_h = hls.output_size(sps)
    ii, jj = np.nonzero(v[0] >= br.score_min)
    cand = []
    for i, j in zip(ii.tolist(), jj.tolist()):
        v0, v1, v2, v3, v4 = (int(t) for t in v[:, i, j])
        w, h = S * max(1, v3), S * max(1, v4)
        x0 = 256 * S * j + 128 * S + S * v1 - (w >> 1) - 256 * left
        y0 = 256 * S * i + 128 * S + S * v2 - (h >> 1) - 256 * top
        x1, y1 = x0 + w, y0 + h
        x0, x1 = max(0, x0), min(256 * out_w, x1)
        y0, y1 = max(0, y0), min(256 * out_h, y1)
        if x1 > x0 and y1 > y0:
            cand.append((-v0, i, j, (x0, y0, x1, y1, v0)))
    cand.sort()
    kept = []
    for _, _, _, d in cand:
        if len(kept) == br.max_det:
            break
        area = (d[2] - d[0]) * (d[3] - d[1])
        ok = True
        for k in kept:
            iw = min(d[2], k[2]) - max(d[0], k[0])
            ih = min(d[3], k[3]) - max(d[1], k[1])
            if iw > 0 and ih > 0:
                inter = iw * ih
                union = area + (k[2] - k[0]) * (k[3] - k[1]) - inter
                if br.nms_den * inter > br.nms_num * union:
                    ok = False
                    break
        if ok:
            kept.append(d)
    return kept


def decode_task_picture(dec, cp, task: str) -> TaskOutput:
    """Clause 10.8: task-branch decoding of a learned picture."""
    sps = cp.sps
    where = f"unit {cp.ph_unit.index}"
    # registered for learned pictures only (TASK_DECODERS): core refuses the other modes
    m, H, W, hyp, lats = learned_picture_units(cp)
    br = int_branch(sps.sps_model_id, task)
    br.check_codec(m)
    n = signalled_layers(sps, br.entry.branch_id)
    c_n = m.layer_channels(sps.sps_num_latent_layers_minus1 + 1)[n]
    if n != br.entry.num_layers or c_n != br.layers[0].cin:
        raise BitstreamError(f"task branch {br.entry.name} reads {br.entry.num_layers} latent layer(s), channels "
                             f"[0, {br.layers[0].cin}); the SPS gives it {n} of {sps.sps_num_latent_layers_minus1 + 1}"
                             f", channels [0, {c_n})", element="sps_task_branch_num_layers_minus1", clause="10.8",
                             where=where, shall="The latent layers a task branch reads shall be those of Table 10-2")
    lats = [u for u in lats if u.unit_layer_id < n]
    if sorted(u.unit_layer_id for u in lats) != list(range(n)):
        raise BitstreamError(f"task branch {br.entry.name} needs latent layers 0..{n - 1}; present: "
                             f"{sorted(u.unit_layer_id for u in lats)}", element="unit_layer_id",
                             clause="10.8", where=where)
    if probe.COUNTER is not None:
        probe.COUNTER[("task branch", br.entry.name)] += 1
    path = "int64" if dec.reference else "float64"
    q = cp.ph.ph_quality_idx
    dev = decoder_device(dec)
    y_hat = decode_latents(m, sps, hyp, lats, q, H, W, path, dev)
    check_latent_hash(dec, cp, n - 1, to_numpy(y_hat), c_n)   # 8.6: the DPH unit of layer n - 1
    v = to_numpy(branch_map(m, br, y_hat, q, c_n, path, dev))[0]
    out_w, out_h = hls.output_size(sps)
    return TaskOutput(br.entry.name, out_w, out_h, detections(v, br, sps))


TASK_DECODERS[hls.LEARNED_MODE] = decode_task_picture
