"""Clause 10.6: the integer model data a decoder may load, by sps_model_id.

Each learned model and each task branch (10.8) has one integer data file in
``refsw/data/models`` and the SHA-256 that identifies it (listed in clause
10.6 of docs/spec): the decoder refuses other data before reading them.
This registry holds no float model (those are in :mod:`refsw.models.registry`,
which the decoder does not import).  After converting new weights, record
the hashes:

    python -m refsw.models.record_hashes
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..filehash import file_sha256

MODELS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "models")


@dataclass(frozen=True)
class ModelData:
    model_id: int
    name: str
    int_file: str                  # integer data, in MODELS_DIR (or an absolute path)
    int_sha256: str | None         # None only for test registrations
    #: sps_operating_point_set_id values the model data defines (10.1)
    operating_point_sets: frozenset = frozenset({0})

    @property
    def int_path(self) -> str:
        return os.path.join(MODELS_DIR, self.int_file)


@dataclass(frozen=True)
class TaskBranchData:
    """A task branch of a learned model: runs on latent layers 0..num_layers-1 (10.8)."""
    model_id: int
    branch_id: int
    name: str
    num_layers: int
    int_file: str
    int_sha256: str | None = None

    @property
    def int_path(self) -> str:
        return os.path.join(MODELS_DIR, self.int_file)


MODEL_DATA = {
    1: ModelData(1, "intra_v1", "intra_v1_int.npz",
                 int_sha256="ce7aeda8f9e4e9a9f170dd318e826b2ed544875fcc68770327f8770f6edd140d"),
}

TASK_BRANCH_DATA = {
    (1, 1): TaskBranchData(1, 1, "face", 1, "intra_v1_face_int.npz",
                           int_sha256="957198d7bc0aee03cff627d47257ad3c0cce47577a78ba483d650115744dada0"),
}


def model_data(model_id: int) -> ModelData:
    try:
        return MODEL_DATA[int(model_id)]
    except KeyError:
        raise KeyError(f"unknown sps_model_id {model_id}; known: {sorted(MODEL_DATA)}") from None


def task_branches(model_id: int) -> list[TaskBranchData]:
    return [e for (m, _), e in sorted(TASK_BRANCH_DATA.items()) if m == int(model_id)]


def find_task_branch(model_id: int, name_or_id) -> TaskBranchData:
    for e in task_branches(model_id):
        if str(name_or_id) in (e.name, str(e.branch_id)):
            return e
    known = ", ".join(f"{e.name} (id {e.branch_id})" for e in task_branches(model_id)) or "none"
    raise KeyError(f"model {model_id} has no task branch {name_or_id!r}; known: {known}")


def check_int_data(path: str, sha256: str | None, what: str) -> None:
    """ValueError unless the file at ``path`` is the registered integer data (10.6)."""
    if sha256 is None or not os.path.exists(path):
        return   # missing files are reported by the loader, naming the syntax element
    got = file_sha256(path)
    if got != sha256:
        raise ValueError(f"{path}: SHA-256 {got[:16]}... is not the registered integer data of {what} "
                         f"({sha256[:16]}..., refsw/decoder/model_data.py, clause 10.6); the file is damaged "
                         f"or was converted anew: restore it (git checkout) or, when releasing new weights, "
                         f"run python -m refsw.models.record_hashes")


def record_hashes(source: str = __file__) -> list:
    """Rewrite the int_sha256 literals of this file from the data files in MODELS_DIR."""
    text = open(source, encoding="utf-8").read()
    done = []
    for e in list(MODEL_DATA.values()) + list(TASK_BRANCH_DATA.values()):
        sha = file_sha256(e.int_path)
        pat = re.compile(r'("' + re.escape(e.int_file) + r'",\s*int_sha256=")[0-9a-f]{64}(")')
        text, n = pat.subn(lambda m: m.group(1) + sha + m.group(2), text)
        if n != 1:
            raise SystemExit(f"record_hashes: no single int_sha256 literal for {e.int_file} in {source}")
        done.append((os.path.basename(e.int_path), sha))
    with open(source, "w", encoding="utf-8") as f:
        f.write(text)
    return done
