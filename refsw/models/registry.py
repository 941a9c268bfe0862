"""Registry of the float learned models keyed by the integer ``sps_model_id``
(training, encoder and conversion side).

Model id 0 is reserved.  Each entry gives the config, the class and the
packaged float weight file (in ``refsw/data/models``).  The integer data a
decoder loads, and their SHA-256 (10.6), are registered apart, in
:mod:`refsw.decoder.model_data`, which imports no float model.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from ..decoder.model_data import (MODELS_DIR, TASK_BRANCH_DATA, TaskBranchData, check_int_data,  # noqa: F401
                                  find_task_branch, model_data, record_hashes, task_branches)
from .intra import IntraCodec, IntraConfig


@dataclass(frozen=True)
class ModelEntry:
    model_id: int
    name: str
    config: IntraConfig
    factory: Callable
    weights: str  # file name in MODELS_DIR

    @property
    def weights_path(self) -> str:
        return os.path.join(MODELS_DIR, self.weights)

    @property
    def int_path(self) -> str:
        """Where :mod:`refsw.nn.convert` writes the integer data of these weights."""
        return self.weights_path.replace(".npz", "_int.npz")


#: model 2 (docs/models/intra_v2.md): model 1's transforms with a wider g_s, a checkerboard
#: context model (10.9) and operating points up to lambda 0.512 (refsw.train.make_intra2)
INTRA_V2 = IntraConfig(name="intra_v2", model_id=2, gs_channels=(160, 160, 96, 96, 80),
                       lambdas=(0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512),
                       context="checkerboard", ctx_channels=192, ctx_base_channels=64)

REGISTRY = {
    1: ModelEntry(1, "intra_v1", IntraConfig(), IntraCodec, "intra_v1.npz"),
    2: ModelEntry(2, "intra_v2", INTRA_V2, IntraCodec, "intra_v2.npz"),
}


def get_entry(model_id: int) -> ModelEntry:
    try:
        return REGISTRY[int(model_id)]
    except KeyError:
        raise KeyError(f"unknown sps_model_id {model_id}; known: {sorted(REGISTRY)}") from None


def build_model(model_id: int):
    """Untrained model of the given id."""
    e = get_entry(model_id)
    return e.factory(e.config)


def load_model(model_id: int, path: str | None = None):
    """Model of the given id with its packaged (or given) weights, in eval mode."""
    from .io import load_npz

    e = get_entry(model_id)
    m = load_npz(path or e.weights_path, e.factory)
    if m.cfg != e.config:
        got, want = m.cfg.to_dict(), e.config.to_dict()
        diff = "; ".join(f"{k}: registered {v}, file {got[k]}" for k, v in want.items() if got[k] != v)
        raise ValueError(f"weights {path or e.weights_path} do not match registry config of model {model_id} ({diff})")
    return m


def branch_weights_path(branch: TaskBranchData) -> str:
    """The float weights of a task branch (its integer data with ``_int`` dropped)."""
    return branch.int_path.replace("_int.npz", ".npz")
