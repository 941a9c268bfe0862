"""Task-branch float weights (.npz, no pickle): ``config_json`` (uint8 UTF-8
JSON of the branch config) and ``model.<param>`` float32 tensors."""
from __future__ import annotations

import json
import os

import numpy as np
import torch

from .io import read_npz
from .task_face import FaceHead, FaceHeadConfig


def save_branch(head, path: str, meta: dict | None = None) -> None:
    arrays = {"config_json": np.frombuffer(json.dumps(head.cfg.to_dict(), sort_keys=True).encode(), dtype=np.uint8)}
    for k, v in head.state_dict().items():
        arrays["model." + k] = v.detach().cpu().float().numpy()
    for k, v in (meta or {}).items():
        arrays["meta." + k] = np.asarray(v)
    tmp = path + ".tmp.npz"
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def load_branch(path: str) -> FaceHead:
    z = read_npz(path)   # ValueError naming the file if unreadable or incomplete
    cfg = FaceHeadConfig.from_dict(json.loads(z["config_json"].tobytes().decode()))
    head = FaceHead(cfg)
    sd = {k[6:]: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in z.items() if k.startswith("model.")}
    head.load_state_dict(sd, strict=True)
    head.eval()
    return head
