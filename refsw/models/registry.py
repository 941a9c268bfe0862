"""Registry of learned models keyed by the integer ``sps_model_id``.

Model id 0 is reserved.  Each entry gives the config, the class and the
packaged weight file (relative to ``refsw/data/models``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from .intra import IntraCodec, IntraConfig

MODELS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "models")


@dataclass(frozen=True)
class ModelEntry:
    model_id: int
    name: str
    config: IntraConfig
    factory: Callable
    weights: str  # file name in MODELS_DIR
    #: sps_operating_point_set_id values the model data defines (10.1)
    operating_point_sets: frozenset = frozenset({0})

    @property
    def weights_path(self) -> str:
        return os.path.join(MODELS_DIR, self.weights)


REGISTRY = {
    1: ModelEntry(1, "intra_v1", IntraConfig(), IntraCodec, "intra_v1.npz"),
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


# ---------------------------------------------------------------- task branches (10.8)
@dataclass(frozen=True)
class TaskBranchEntry:
    """A task branch of a learned model: runs on latent layers 0..num_layers-1."""
    model_id: int
    branch_id: int
    name: str
    num_layers: int
    weights: str           # float weights in MODELS_DIR; integer data: <weights>_int.npz

    @property
    def weights_path(self) -> str:
        return os.path.join(MODELS_DIR, self.weights)

    @property
    def int_path(self) -> str:
        return self.weights_path.replace(".npz", "_int.npz")


TASK_BRANCHES = {
    (1, 1): TaskBranchEntry(1, 1, "face", 1, "intra_v1_face.npz"),
}


def task_branches(model_id: int) -> list[TaskBranchEntry]:
    return [e for (m, _), e in sorted(TASK_BRANCHES.items()) if m == int(model_id)]


def find_task_branch(model_id: int, name_or_id) -> TaskBranchEntry:
    for e in task_branches(model_id):
        if str(name_or_id) in (e.name, str(e.branch_id)):
            return e
    known = ", ".join(f"{e.name} (id {e.branch_id})" for e in task_branches(model_id)) or "none"
    raise KeyError(f"model {model_id} has no task branch {name_or_id!r}; known: {known}")
