"""Registry of learned models keyed by the integer ``sps_model_id``.

Model id 0 is reserved.  Each entry gives the config, the class, the
packaged weight file (relative to ``refsw/data/models``) and the SHA-256 of
the normative integer data derived from it (``<weights>_int.npz``, 10.6): the
decoder refuses other data.  After converting new weights, record the hashes:

    python -m refsw.models.record_hashes
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Callable

from ..filehash import file_sha256
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
    #: SHA-256 of the integer data file (10.6); None only for test registrations
    int_sha256: str | None = None

    @property
    def weights_path(self) -> str:
        return os.path.join(MODELS_DIR, self.weights)

    @property
    def int_path(self) -> str:
        return self.weights_path.replace(".npz", "_int.npz")


REGISTRY = {
    1: ModelEntry(1, "intra_v1", IntraConfig(), IntraCodec, "intra_v1.npz",
                  int_sha256="ce7aeda8f9e4e9a9f170dd318e826b2ed544875fcc68770327f8770f6edd140d"),
}


def check_int_data(path: str, sha256: str | None, what: str) -> None:
    """ValueError unless the file at ``path`` is the registered integer data (10.6)."""
    if sha256 is None or not os.path.exists(path):
        return   # missing files are reported by the loader, naming the syntax element
    got = file_sha256(path)
    if got != sha256:
        raise ValueError(f"{path}: SHA-256 {got[:16]}... is not the registered integer data of {what} "
                         f"({sha256[:16]}..., refsw/models/registry.py, clause 10.6); the file is damaged or "
                         f"was converted anew: restore it (git checkout) or, when releasing new weights, "
                         f"run python -m refsw.models.record_hashes")


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
    int_sha256: str | None = None   # SHA-256 of the integer data (10.6, 10.8)

    @property
    def weights_path(self) -> str:
        return os.path.join(MODELS_DIR, self.weights)

    @property
    def int_path(self) -> str:
        return self.weights_path.replace(".npz", "_int.npz")


TASK_BRANCHES = {
    (1, 1): TaskBranchEntry(1, 1, "face", 1, "intra_v1_face.npz",
                            int_sha256="957198d7bc0aee03cff627d47257ad3c0cce47577a78ba483d650115744dada0"),
}


def task_branches(model_id: int) -> list[TaskBranchEntry]:
    return [e for (m, _), e in sorted(TASK_BRANCHES.items()) if m == int(model_id)]


def find_task_branch(model_id: int, name_or_id) -> TaskBranchEntry:
    for e in task_branches(model_id):
        if str(name_or_id) in (e.name, str(e.branch_id)):
            return e
    known = ", ".join(f"{e.name} (id {e.branch_id})" for e in task_branches(model_id)) or "none"
    raise KeyError(f"model {model_id} has no task branch {name_or_id!r}; known: {known}")


def record_hashes(source: str = __file__) -> list:
    """Rewrite the int_sha256 literals of this file from the data files in MODELS_DIR."""
    text = open(source, encoding="utf-8").read()
    done = []
    for e in list(REGISTRY.values()) + list(TASK_BRANCHES.values()):
        sha = file_sha256(e.int_path)
        pat = re.compile(r'("' + re.escape(e.weights) + r'",\s*int_sha256=")[0-9a-f]{64}(")')
        text, n = pat.subn(lambda m: m.group(1) + sha + m.group(2), text)
        if n != 1:
            raise SystemExit(f"record_hashes: no single int_sha256 literal for {e.weights} in {source}")
        done.append((os.path.basename(e.int_path), sha))
    with open(source, "w", encoding="utf-8") as f:
        f.write(text)
    return done

